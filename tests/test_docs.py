"""The documentation: the site builds strictly, its reference pages are generated from the code,
and every example in the README and the docs that shows an output prints that output.

Examples that claim an output are fenced blocks of two kinds:

- ``console``: lines ``$ command`` (run by bash, in order, from one fresh folder per page) each
  followed by the output it must print (stdout and stderr together). A line ``...`` stands for
  any number of lines and ``...`` inside a line for any text; runs of spaces and tabs compare
  equal.
- ``pycon``: ``>>>`` lines run by :mod:`doctest` (``ELLIPSIS``, ``NORMALIZE_WHITESPACE``) in the
  same folder, after the page's earlier blocks, sharing their variables with the page's other
  ``pycon`` blocks.

Plain ``bash`` / ``python`` blocks show commands without claiming what they print (long
trainings, servers); they are not run here, but every ``seq2seq train|distill CONFIG --set ...``
line in them must name a config and keys that validate.
"""

from __future__ import annotations

import doctest
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
FENCE = re.compile(r"^```(console|pycon)[^\n]*\n(.*?)^```", re.M | re.S)


def _blocks(page: Path) -> list[tuple[str, str, int]]:
    """(language, body, line number of the fence) of every example that claims an output."""
    text = page.read_text(encoding="utf-8")
    return [(m.group(1), m.group(2), text.count("\n", 0, m.start()) + 1) for m in FENCE.finditer(text)]


def _console_steps(body: str) -> list[tuple[str, list[str]]]:
    """(command, expected output lines) for each ``$`` line of a console block."""
    steps: list[tuple[str, list[str]]] = []
    for line in body.splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif steps:
            steps[-1][1].append(line)
        elif line.strip():
            raise AssertionError(f"console block: output {line!r} before any '$ ' command")
    return steps


def _norm(line: str) -> str:
    return " ".join(line.split())


def _line_matches(pattern: str, line: str) -> bool:
    parts = [re.escape(p) for p in _norm(pattern).split("...")]
    return re.fullmatch(".*".join(parts), _norm(line)) is not None


def output_matches(expected: list[str], actual: list[str]) -> bool:
    """Whether ``actual`` lines match ``expected`` (``...`` lines: any number of lines)."""
    expected = [e for e in expected if e.strip()] if expected else []
    actual = [a for a in actual if a.strip()]
    memo: dict[tuple[int, int], bool] = {}

    def match(i: int, j: int) -> bool:
        if (i, j) not in memo:
            if i == len(expected):
                memo[i, j] = j == len(actual)
            elif expected[i].strip() == "...":
                memo[i, j] = any(match(i + 1, k) for k in range(j, len(actual) + 1))
            else:
                memo[i, j] = j < len(actual) and _line_matches(expected[i], actual[j]) and match(i + 1, j + 1)
        return memo[i, j]

    return match(0, 0)


def test_output_matching_rules():
    assert output_matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert output_matches(["a", "...", "b"], ["a", "b"])
    assert output_matches(["0 queen ..."], ["0\tqueen\t-0.01"])
    assert not output_matches(["queen"], ["king"])
    assert not output_matches(["a"], ["a", "b"])           # nothing unclaimed may follow
    assert not output_matches(["x...y"], ["xz"])


def _workdir(tmp_path: Path) -> dict[str, str]:
    """A fresh folder that looks like a checkout to the examples, and the environment to run them."""
    for name in ("configs", "examples"):
        (tmp_path / name).symlink_to(ROOT / name)
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
               PYTHONHASHSEED="0")
    return env


@pytest.mark.parametrize("page", [p for p in PAGES if _blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_print_what_the_page_shows(page, tmp_path, monkeypatch):
    env = _workdir(tmp_path)
    monkeypatch.chdir(tmp_path)
    names: dict = {}                          # a page's pycon blocks share their variables
    for language, body, line in _blocks(page):
        where = f"{page.relative_to(ROOT)}:{line}"
        if language == "console":
            for command, expected in _console_steps(body):
                done = subprocess.run(["bash", "-o", "pipefail", "-c", command], cwd=tmp_path, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=300)
                actual = done.stdout.splitlines()
                assert done.returncode == 0, f"{where}: `{command}` exited {done.returncode}:\n{done.stdout}"
                assert output_matches(expected, actual), (
                    f"{where}: `{command}` printed\n{done.stdout}\nwhere the page shows\n" + "\n".join(expected))
        else:
            test = doctest.DocTestParser().get_doctest(body, names, where, str(page), line)
            runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
            out: list[str] = []
            runner.run(test, out=out.append)
            assert runner.failures == 0, f"{where}: the Python example differs:\n" + "".join(out)


def test_every_page_is_in_the_navigation():
    """A page left out of mkdocs.yml's nav would not be reachable from the site (and the strict
    build below turns that into an error as well)."""
    import yaml

    nav = yaml.safe_load((ROOT / "mkdocs.yml").read_text(encoding="utf-8").replace("!!python", "#"))["nav"]

    def pages(node):
        if isinstance(node, str):
            yield node
        elif isinstance(node, list):
            for item in node:
                yield from pages(item)
        elif isinstance(node, dict):
            for value in node.values():
                yield from pages(value)

    listed = set(pages(nav))
    on_disk = {str(p.relative_to(ROOT / "docs")) for p in (ROOT / "docs").rglob("*.md")}
    assert on_disk == listed


def _hook():
    spec = importlib.util.spec_from_file_location("reference_hook", ROOT / "docs" / "hooks" / "reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_config_reference_lists_every_key_with_its_description():
    from seq2seq.config import SCHEMAS

    page = _hook().config_reference(SCHEMAS)
    assert "| `training.learning_rate` | float |" in page
    assert "| `model.decoder.attention` |" in page and '`"bahdanau"`' in page
    assert "| `data.sentencepiece.vocab_size` | int | `8000` | 8 <= x |" in page
    for row in (r for r in page.splitlines() if r.startswith("| `")):
        description = row.rstrip(" |").rsplit(" | ", 1)[1]
        assert description and not description.startswith("|"), f"no description: {row}"


def test_the_cli_reference_lists_every_command():
    from seq2seq.cli import _parser

    page = _hook().cli_reference(_parser())
    for command in ("train", "predict", "evaluate", "serve", "export", "average", "data cmudict", "data sine"):
        assert f"## `seq2seq {command}`" in page
    assert "`--beam-size`" in page and "`--max-batch-size`" in page


def test_the_site_builds_strictly_and_its_config_page_follows_the_schema(tmp_path):
    """`mkdocs build --strict` (a broken link, a page missing from the nav or an unresolved
    docstring reference fails it) of a copy of the project in which one config key's description
    was changed: the generated reference page shows the new description, not the old one."""
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("docs", "seq2seq", "mkdocs.yml", "README.md"):
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, copy / name)
    (copy / "configs").symlink_to("seq2seq/configs")
    schema = copy / "seq2seq" / "config" / "training.py"
    text = schema.read_text(encoding="utf-8")
    old = re.search(r'description="([^"]+)"', text).group(1)
    new = "A description changed by tests/test_docs.py"
    schema.write_text(text.replace(f'description="{old}"', f'description="{new}"', 1), encoding="utf-8")
    env = dict(os.environ, PYTHONPATH=str(copy), NO_MKDOCS_2_WARNING="1")
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
                          cwd=copy, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    html = (tmp_path / "site" / "reference" / "config" / "index.html").read_text(encoding="utf-8")
    assert new in html and old not in html
    assert "seq2seq.api.Seq2Seq" in (tmp_path / "site" / "reference" / "api" / "index.html").read_text()


def _shown_trainings() -> list[tuple[str, str, list[str]]]:
    """(where, config, overrides) of every one-line ``seq2seq train|distill CONFIG ... --set ...``
    in the docs' plain ``bash`` blocks (the tutorials' runs take minutes; their configs and keys
    are checked here, their outputs are a dated measurement on the page)."""
    import shlex

    found = []
    for page in sorted((ROOT / "docs").rglob("*.md")):
        text = page.read_text(encoding="utf-8")
        for block in re.finditer(r"^```bash\n(.*?)^```", text, re.M | re.S):
            first = text.count("\n", 0, block.start()) + 2
            for offset, line in enumerate(block.group(1).splitlines()):
                one_line = line.startswith("seq2seq ") and not line.rstrip().endswith("\\")
                words = shlex.split(line, comments=True) if one_line else []
                if len(words) > 2 and words[1] in ("train", "distill") and words[2].endswith(".yaml"):
                    sets = words[words.index("--set") + 1:] if "--set" in words else []
                    sets = [w for w in sets if "=" in w and not w.startswith("-")]
                    found.append((f"{page.relative_to(ROOT)}:{first + offset}", words[2], sets))
    return found


def test_the_trainings_the_docs_show_name_real_configs_and_keys():
    from seq2seq.config import load_config

    shown = _shown_trainings()
    assert len(shown) >= 6 and any("tutorials/" in where for where, _, _ in shown)
    for where, config, overrides in shown:
        try:
            load_config(ROOT / config, overrides)
        except Exception as e:                      # noqa: BLE001 - the message names the page's line
            pytest.fail(f"{where}: `seq2seq ... {config} --set {' '.join(overrides)}` does not validate: {e}")
