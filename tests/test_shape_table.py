"""The committed shape table (results/cc18_shapes/): every model on every CC18 shape either
FINISHED or was refused up front, and the table regenerates from its runs table."""

from __future__ import annotations

import importlib

import pandas as pd
import pytest

from conftest import load_script
from mesobench.config.paths import repo_root

# One xdist worker takes this module's tests: they share a module-scoped fixture, built once.
pytestmark = pytest.mark.xdist_group("shape_table")

COMMITTED = repo_root() / "results" / "cc18_shapes"
UNDONE = ("NOT RUN", "INTERRUPTED")  # not attempted yet / stopped unfinished: rerun the script


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    if not (COMMITTED / "shape_costs.csv").is_file():
        pytest.fail(
            "results/cc18_shapes/shape_costs.csv is missing (mesobench.planning.shape_table)"
        )
    return pd.read_csv(COMMITTED / "shape_costs.csv")


def test_no_model_failed_or_crashed_on_a_shape_it_ran(table):
    sweep = importlib.import_module("mesobench.planning.shape_table")
    models = sweep.plan_config()["shape_models"]
    assert len(table) == 72 * len(models)
    assert set(table["model"]) == set(models)
    assert set(table["status"]) <= {"FINISHED", "REFUSED", *UNDONE}, table[
        ~table["status"].isin(["FINISHED", "REFUSED", *UNDONE])
    ][["task", "model", "status", "reason"]].to_string()
    refused = table[table["status"] == "REFUSED"]
    assert refused["reason"].str.contains("model.limits.").all()
    finished = table[table["status"] == "FINISHED"]
    assert finished[["fit_seconds", "peak_rss_mb", "auroc"]].notna().all().all()


PENDING = int(pd.read_csv(COMMITTED / "shape_costs.csv")["status"].isin(UNDONE).sum())


@pytest.mark.xfail(
    PENDING > 0,
    reason=f"the shape sweep is incomplete: {PENDING} (task, model) pairs not run yet",
    strict=True,
)
def test_every_model_ran_every_shape_or_refused_it(table):
    assert set(table["status"]) <= {"FINISHED", "REFUSED"}


def test_the_table_regenerates_from_its_runs_table(tmp_path, table):
    sweep = importlib.import_module("mesobench.planning.shape_table")
    assert (
        sweep.main(["--from-runs", str(COMMITTED / "shape_runs.csv"), "--out", str(tmp_path)]) == 0
    )
    for name in ("shape_costs.csv", "README.md"):
        assert (tmp_path / name).read_bytes() == (COMMITTED / name).read_bytes(), name


def test_the_cc18_plan_and_the_docs_plan_section_are_current():
    """docs/slurm.md quotes the plan of the whole CC18: generated from the committed shape
    table by scripts/plan_cc18.py, never transcribed."""
    assert load_script("plan_cc18").main(["--check"]) == 0, "run python scripts/plan_cc18.py"
