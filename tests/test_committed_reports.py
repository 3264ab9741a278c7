"""What every committed report must satisfy, checked on the files themselves: its comparisons are
coherent (Holm never lowers a p-value, the three posterior probabilities sum to 1, each verdict
follows the rule) and it draws no post-hoc CD diagram where the Friedman test found nothing."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mesobench.config.paths import repo_root
from mesobench.report import comparisons as cmp

RESULTS = repo_root() / "results"
REPORTS = sorted(p.parent for p in RESULTS.rglob("README.md") if (p.parent / "runs.csv").exists())
COMPARED = [r for r in REPORTS if (r / "comparisons.csv").exists()]


def _name(path) -> str:
    return str(path.relative_to(RESULTS))


def test_every_experiment_report_has_paired_comparisons():
    assert COMPARED, "no committed report has comparisons.csv"
    for name in ("quick", "imn_benchmark", "lfr_benchmark", "nimo_synthetic"):
        assert RESULTS / name in COMPARED, name


def _assert_judged_coherently(table: pd.DataFrame, p_column: str) -> None:
    """Holm never lowers a p-value, the three posteriors sum to 1, verdicts follow the rule."""
    tested = table.dropna(subset=[p_column])
    assert (tested["p_holm"] >= tested[p_column] - 1e-12).all()
    probs = table.dropna(subset=["p_a_better"])
    total = probs[["p_a_better", "p_rope", "p_b_better"]].sum(axis=1)
    assert np.allclose(total, 1.0, atol=1e-9)
    for row in table.itertuples():
        expected = cmp.verdict(row.p_a_better, row.p_rope, row.p_b_better, row.rope, 0.95)
        assert row.verdict == expected, row


@pytest.mark.parametrize("report", COMPARED, ids=_name)
def test_comparisons_are_coherent(report):
    table = pd.read_csv(report / "comparisons.csv")
    assert list(table.columns) == cmp.COLUMNS
    _assert_judged_coherently(table, "p_wilcoxon")


@pytest.mark.parametrize("report", [r for r in REPORTS if (r / "friedman.csv").exists()], ids=_name)
def test_no_cd_diagram_where_the_friedman_test_does_not_reject(report):
    friedman = pd.read_csv(report / "friedman.csv").iloc[0]
    if not friedman["friedman_p"] <= friedman["alpha"]:
        assert not (report / "cd_diagram.png").exists()
    ranks = report / "fidelity_ranks.csv"
    if ranks.exists():
        for metric, group in pd.read_csv(ranks).groupby("metric"):
            if not group["friedman_p"].iloc[0] <= friedman["alpha"]:
                assert not (report / f"cd_diagram_fidelity_{metric}.png").exists(), metric


WITHIN = [r for r in REPORTS if (r / "comparisons_within_tasks.csv").exists()]


@pytest.mark.parametrize("report", WITHIN, ids=_name)
def test_comparisons_within_tasks_are_coherent(report):
    from mesobench.report import within_task

    table = pd.read_csv(report / "comparisons_within_tasks.csv")
    assert list(table.columns) == within_task.COLUMNS
    assert np.allclose(table["mean_diff"], table["mean_a"] - table["mean_b"], atol=1e-9)
    _assert_judged_coherently(table, "p_t")
