"""The package layout is the architecture: subpackages by concern, imports flowing one way.

Layers, bottom to top (a module may import its own layer and the ones below, never above):
``config`` → ``data`` → ``models``/``metrics`` → ``protocol``/``report`` → ``store`` →
``planning`` → ``runner`` → the entry points :mod:`mesobench.run` and :mod:`mesobench.aggregate`.
``errors`` sits below everything. Only ``store`` talks to MLflow.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "mesobench"
RANK = {
    "errors": 0,
    "config": 0,
    "data": 1,
    "models": 2,
    "metrics": 2,
    "protocol": 3,
    "report": 3,
    "store": 4,
    "planning": 5,
    "runner": 6,
    "run": 7,
    "aggregate": 7,
}
#: Same-layer neighbours that may import each other (explanations are scored by metrics, and
#: the models' training curves use the prediction metrics).
PEERS = {frozenset({"models", "metrics"})}


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def _part(path: Path) -> str:
    return path.relative_to(PACKAGE).with_suffix("").parts[0]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
    return found


def _mesobench_parts(path: Path) -> set[str]:
    parts = {n.split(".")[1] for n in _imports(path) if n.startswith("mesobench.")}
    return parts & set(RANK)


def test_at_most_four_modules_at_the_top_level():
    top = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(top) <= 4, top


def test_every_subpackage_says_what_it_owns():
    for init in PACKAGE.glob("*/__init__.py"):
        doc = ast.get_docstring(ast.parse(init.read_text()))
        assert doc and len(doc) > 80, f"{init.parent.name}/__init__.py needs a docstring"
        assert init.parent.name in RANK, f"{init.parent.name}: give it a layer in RANK"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_flow_one_way(path):
    own = _part(path)
    for other in _mesobench_parts(path) - {own}:
        ok = RANK[other] < RANK[own] or frozenset({own, other}) in PEERS
        assert ok, f"{path.relative_to(PACKAGE)} ({own}) imports mesobench.{other}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_store_talks_to_mlflow(path):
    if _part(path) == "store":
        return
    names = _imports(path)
    assert not {n for n in names if n.split(".")[0] in ("mlflow", "sqlite3")}, path
    assert "MlflowClient(" not in path.read_text(), path


def test_one_module_builds_an_mlflow_client():
    builders = [p for p in _modules() if "MlflowClient(" in p.read_text()]
    assert [p.relative_to(PACKAGE).as_posix() for p in builders] == ["store/tracking.py"]


def test_report_and_protocol_import_without_mlflow():
    """Transitively: with MLflow made unimportable, every report and protocol module loads."""
    names = [
        ".".join(("mesobench", *p.relative_to(PACKAGE).with_suffix("").parts)).removesuffix(
            ".__init__"
        )
        for p in _modules()
        if _part(p) in ("report", "protocol")
    ]
    code = (
        "import sys, importlib\n"
        "sys.modules['mlflow'] = None\n"
        f"for name in {names!r}:\n"
        "    importlib.import_module(name)\n"
        "assert not any(m == 'mlflow' or m.startswith('mlflow.') for m in sys.modules"
        " if sys.modules[m] is not None)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
