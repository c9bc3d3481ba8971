"""``pip install .`` (not only ``-e``): a wheel built from the project holds the page's static
files and the built-in configs, and the ``seq2seq`` command it installs works from an empty
folder, finding ``configs/NAME.yaml`` among the configs it ships."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import seq2seq

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The wheel ``pip wheel`` builds from a copy of the project (the checkout stays clean)."""
    project = tmp_path_factory.mktemp("project")
    shutil.copytree(ROOT / "seq2seq", project / "seq2seq", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, project / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
                    "-q", "-w", str(out), str(project)], check=True, timeout=300)
    (built,) = out.glob("seq2seq-*.whl")
    return built


def test_the_wheel_holds_the_page_the_configs_and_the_command(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for static in (ROOT / "seq2seq" / "serve" / "static").iterdir():
        assert f"seq2seq/serve/static/{static.name}" in names
    shipped = {n for n in names if n.startswith("seq2seq/configs/") and n.endswith(".yaml")}
    in_repo = {f"seq2seq/{p.relative_to(ROOT / 'seq2seq').as_posix()}" for p in (ROOT / "seq2seq" / "configs").rglob("*.yaml")}
    assert shipped == in_repo and "seq2seq/configs/presets/bahdanau2015.yaml" in shipped
    assert not any(n.startswith("tests/") or n.startswith("benchmarks/") for n in names)
    (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
    assert "seq2seq = seq2seq.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
    assert wheel.name.startswith(f"seq2seq-{seq2seq.__version__}-")


def test_the_installed_command_trains_from_an_empty_folder(wheel, tmp_path):
    """Installed (``--no-deps``: the dependencies are this interpreter's) into a folder of its own
    that comes first on the path, the wheel's ``seq2seq`` command runs from a folder that has no
    checkout: ``--version``, a dataset, and a training run of a built-in config."""
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "-q", "--target", str(site),
                    str(wheel)], check=True, timeout=300)
    work = tmp_path / "work"
    work.mkdir()
    env = dict(os.environ, PYTHONPATH=str(site), PATH=f"{site / 'bin'}{os.pathsep}{os.environ['PATH']}")

    def run(*command: str) -> str:
        done = subprocess.run(list(command), cwd=work, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              text=True, timeout=300)
        assert done.returncode == 0, f"{' '.join(command)} exited {done.returncode}:\n{done.stdout}"
        return done.stdout

    where = run(sys.executable, "-c", "import seq2seq; print(seq2seq.__file__)").strip()
    assert Path(where).is_relative_to(site), where        # the wheel's copy, not the checkout's
    assert run("seq2seq", "--version").split() == ["seq2seq", seq2seq.__version__]
    run("seq2seq", "data", "toy", "--task", "copy", "--out", "data/toy_copy", "--train", "200")
    out = run("seq2seq", "train", "configs/toy_copy.yaml", "--set", "training.max_steps=20",
              "training.validate_every=20", "training.progress_bar=false", "training.num_threads=1")
    assert "run saved in runs/toy_copy" in out
    assert (work / "runs" / "toy_copy" / "checkpoints" / "best.safetensors").is_file()
    assert not (work / "configs").exists()
    run("seq2seq", "data", "word-pairs")                  # the toy config's data, shipped in the package
    assert (work / "examples" / "word_pairs.tsv").read_bytes() == (ROOT / "examples" / "word_pairs.tsv").read_bytes()
