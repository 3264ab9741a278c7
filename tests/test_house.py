"""The house rules, checked so they hold: short functions, each helper in its room,
configs that inherit instead of copying."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import mesobench.models
from mesobench.config.paths import conf_dir, repo_root

SRC = repo_root() / "src" / "mesobench"
MAX_FUNCTION_LINES = 80


def _functions(path: Path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            yield node.name, node.end_lineno - first + 1


def test_no_function_is_longer_than_80_lines_docstring_included():
    long = [
        f"{path.relative_to(SRC)}:{name} ({n} lines)"
        for path in sorted(SRC.rglob("*.py"))
        for name, n in _functions(path)
        if n > MAX_FUNCTION_LINES
    ]
    assert long == []


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{alias.name}" for alias in node.names}
    return names


@pytest.mark.parametrize("path", sorted((SRC / "report").glob("*.py")), ids=lambda p: p.name)
def test_the_report_reads_tables_and_needs_neither_mlflow_nor_the_tracker(path):
    imported = _imported_modules(path)
    assert not {m for m in imported if m == "mlflow" or m.startswith("mlflow.")}
    assert not {m for m in imported if m.startswith("mesobench.store.tracking")}


def test_the_models_package_exports_the_benchmarks_models_only():
    assert not {"AlwaysFailsClassifier", "DivergingClassifier", "SlowClassifier"} & set(
        mesobench.models.__all__
    )
    assert not any(
        "ovr_macro_auroc" in _imported_modules(p) or "def ovr_macro_auroc" in p.read_text()
        for p in (SRC / "models").glob("*.py")
    )


@pytest.mark.parametrize("name", ["cuda", "auto"])
def test_device_configs_inherit_the_training_settings(name):
    config = OmegaConf.load(conf_dir() / "device" / f"{name}.yaml")
    assert list(config.defaults) == ["cpu", "_self_"] and set(config) == {"defaults", "name"}
