"""The committed shape table (results/cc18_shapes/): every model on every CC18 shape either
FINISHED or was refused up front, and the table regenerates from its runs table."""

from __future__ import annotations

import pandas as pd
import pytest

from conftest import load_script
from mesobench.paths import repo_root

COMMITTED = repo_root() / "results" / "cc18_shapes"


@pytest.fixture(scope="module")
def table() -> pd.DataFrame:
    if not (COMMITTED / "shape_costs.csv").is_file():
        pytest.fail("results/cc18_shapes/shape_costs.csv is missing (scripts/shape_sweep.py)")
    return pd.read_csv(COMMITTED / "shape_costs.csv")


def test_every_model_ran_every_shape_or_refused_it_with_a_reason(table):
    sweep = load_script("shape_sweep")
    models = sweep.plan_config()["shape_models"]
    assert len(table) == 72 * len(models)
    assert set(table["model"]) == set(models)
    assert set(table["status"]) <= {"FINISHED", "REFUSED"}, table[
        ~table["status"].isin(["FINISHED", "REFUSED"])
    ][["task", "model", "status", "reason"]].to_string()
    refused = table[table["status"] == "REFUSED"]
    assert refused["reason"].str.contains("model.limits.").all()
    finished = table[table["status"] == "FINISHED"]
    assert finished[["fit_seconds", "peak_rss_mb", "auroc"]].notna().all().all()


def test_the_table_regenerates_from_its_runs_table(tmp_path, table):
    sweep = load_script("shape_sweep")
    assert (
        sweep.main(["--from-runs", str(COMMITTED / "shape_runs.csv"), "--out", str(tmp_path)]) == 0
    )
    assert (tmp_path / "shape_costs.csv").read_bytes() == (
        COMMITTED / "shape_costs.csv"
    ).read_bytes()
