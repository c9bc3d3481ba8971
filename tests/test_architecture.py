"""The layout holds: no import cycle between the package's modules, inference
without the training baggage, and the config's ``--set`` both ways."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "seq2seq"


def module_imports() -> dict[str, set[str]]:
    """Module name -> the package modules it imports anywhere in its body (lazy imports
    inside functions count: a cycle is a cycle whenever it is taken)."""
    modules = {".".join(p.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__"): p
               for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        deps = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = name.split(".")[:len(name.split(".")) - node.level + is_package]
                    base = ".".join(parts + ([base] if base else []))
                targets = [base] + [f"{base}.{a.name}" for a in node.names]
            else:
                continue
            deps |= {t for t in targets if t in modules and t != name}
        graph[name] = deps
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import cycle as a list of modules (first == last), or [] when there is none."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node):
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            # importing a.b.c runs a/__init__ and a/b/__init__ first: a parent package is
            # not a dependency in the other direction, so edges into ancestors are skipped
            if node.startswith(dep + "."):
                continue
            if state.get(dep) == 1:
                return stack[stack.index(dep):] + [dep]
            if dep not in state and (cycle := visit(dep)):
                return cycle
        stack.pop()
        state[node] = 2
        return []

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return []


def test_the_package_has_no_import_cycle():
    graph = module_imports()
    assert len(graph) > 40 and "seq2seq.config.text" in graph["seq2seq.config"]
    assert find_cycle(graph) == []


def test_the_cycle_finder_finds_a_planted_cycle():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}
    assert find_cycle(graph) == ["a", "b", "c", "a"]
    assert find_cycle({"x.y": {"x"}, "x": {"x.y"}}) == []          # a package importing its own module


def test_inference_imports_no_trainer_plotting_or_forecast_libraries():
    code = ("import sys, seq2seq; seq2seq.Seq2Seq; from seq2seq.forecast import Forecaster; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('matplotlib', 'pandas', 'statsmodels', "
            "'tensorboard') or m in ('seq2seq.training', 'seq2seq.plotting')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert r.stdout.strip() == "[]"


def test_plots_leave_the_matplotlib_backend_alone(tmp_path):
    """Drawing a plot (as training does) must not switch a notebook's backend."""
    code = ("import matplotlib; matplotlib.use('svg'); from seq2seq.plotting import plot_curves; "
            f"plot_curves([{{'split': 'train', 'step': 1, 'loss': 1.0}}], __import__('pathlib').Path({str(tmp_path)!r}) "
            "/ 'c.png', 'wer'); print(matplotlib.get_backend())")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert r.stdout.strip() == "svg" and (tmp_path / "c.png").stat().st_size > 1000


@pytest.mark.parametrize("argv", [["--set", "training.max_steps=7", "data.lowercase=true"],
                                  ["--set", "training.max_steps=7", "--set", "data.lowercase=true"]])
def test_repeated_set_keeps_every_override(tiny_data, tmp_path, argv):
    """``--set a=1 b=2`` and ``--set a=1 --set b=2`` apply both (argparse used to keep only the last)."""
    import yaml

    from seq2seq.cli import _parser
    from seq2seq.config import load_config

    from conftest import make_config

    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(make_config(tiny_data).model_dump()))
    args = _parser().parse_args(["train", str(path), *argv])
    assert args.overrides == ["training.max_steps=7", "data.lowercase=true"]
    config = load_config(path, args.overrides)
    assert config.training.max_steps == 7 and config.data.lowercase is True
