"""The aggregation step on small hand-made run tables with known answers."""

import numpy as np
import pandas as pd
import pytest

from mesobench import report


def _runs(rows):
    cols = ["run_key", "model", "task", "fold", "seed", "status", "start_time", "auroc", "error"]
    return pd.DataFrame(rows, columns=cols).assign(run_id=lambda d: d["run_key"] + "-id")


def test_a_rerun_that_finished_replaces_the_failed_attempt():
    runs = _runs(
        [
            ("k1", "a", "t", 0, 0, "FAILED", 1, np.nan, "boom"),
            ("k1", "a", "t", 0, 0, "FINISHED", 2, 0.9, None),
            ("k2", "a", "t", 1, 0, "FAILED", 3, np.nan, "boom"),
        ]
    )
    latest = report.latest_per_key(runs).set_index("run_key")
    assert latest.loc["k1", "status"] == "FINISHED"
    assert latest.loc["k2", "status"] == "FAILED"


def test_mean_std_over_folds():
    runs = _runs(
        [
            ("k1", "a", "t", 0, 0, "FINISHED", 1, 0.8, None),
            ("k2", "a", "t", 1, 0, "FINISHED", 1, 0.9, None),
            ("k3", "a", "t", 2, 0, "FAILED", 1, np.nan, "x"),
        ]
    )
    s = report.fold_summary(runs, "auroc").iloc[0]
    assert s["mean"] == pytest.approx(0.85)
    assert s["std"] == pytest.approx(np.std([0.8, 0.9], ddof=1))
    assert s["n_folds"] == 2


def test_average_rank_averages_ties_and_drops_incomplete_tasks():
    summary = pd.DataFrame(
        {
            "task": ["t1", "t1", "t1", "t2", "t2", "t2", "t3", "t3"],
            "model": ["a", "b", "c", "a", "b", "c", "a", "b"],
            "mean": [0.9, 0.8, 0.7, 0.8, 0.8, 0.9, 0.5, 0.6],
            "std": 0.0,
            "n_folds": 3,
        }
    )
    ranks, dropped = report.average_ranks(summary)
    # t1: a=1 b=2 c=3; t2: c=1, a=b=2.5 → a 1.75, b 2.25, c 2.0; t3 has no c → dropped
    assert ranks.to_dict() == {"a": 1.75, "c": 2.0, "b": 2.25}
    assert dropped == ["t3"]


def test_status_counts_per_model():
    runs = _runs(
        [
            ("k1", "a", "t", 0, 0, "FINISHED", 1, 0.8, None),
            ("k2", "a", "t", 1, 0, "FAILED", 1, np.nan, "x"),
            ("k3", "b", "t", 0, 0, "FINISHED", 1, 0.7, None),
        ]
    )
    counts = report.status_counts(runs)
    assert counts.loc["a", "finished"] == 1 and counts.loc["a", "failed"] == 1
    assert counts.loc["b", "failed"] == 0


def test_markdown_table_escapes_pipes():
    text = report.markdown_table(pd.DataFrame({"x": ["a|b"]}), index=False)
    assert "a\\|b" in text


def test_fidelity_gaps_list_a_task_a_scoring_model_skipped_with_the_runs_reason():
    runs = pd.DataFrame(
        {
            "task": ["kr", "kr", "letter", "letter", "kr"],
            "model": ["xgb", "rf", "xgb", "rf", "imn"],
            "status": ["FINISHED"] * 4 + ["FAILED"],
            "notes": [
                "fidelity: no numeric feature to perturb; Yeh / deletion skipped | other note",
                "fidelity: random_forest has no attributions",
                None,
                None,
                None,
            ],
        }
    )
    have = {("letter", "xgb"), ("letter", "imn")}
    gaps = report.runs.fidelity_gaps(runs, have)
    # rf logs no fidelity anywhere (a model without attributions, not a gap); imn's kr run failed
    assert gaps.to_dict("records") == [
        {
            "task": "kr",
            "model": "xgb",
            "reason": "fidelity: no numeric feature to perturb; Yeh / deletion skipped",
        }
    ]


def test_fidelity_gaps_without_a_note_say_so():
    runs = pd.DataFrame(
        {"task": ["a", "b"], "model": ["m", "m"], "status": ["FINISHED"] * 2, "notes": [None] * 2}
    )
    gaps = report.runs.fidelity_gaps(runs, {("a", "m")})
    assert list(gaps["reason"]) == ["no fidelity metric logged and no note saying why"]
