"""Comparisons within one task over its folds: the correlated t-test against its peers."""

from __future__ import annotations

import baycomp
import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf
from scipy import stats

from mesobench.errors import ConfigError
from mesobench.report.comparisons import ComparisonSettings
from mesobench.report.settings import comparison_settings
from mesobench.report.within_task import compare_within_tasks, correlated_t

RNG = np.random.default_rng(7)
X = 0.80 + 0.02 * RNG.standard_normal(10)
Y = X - 0.015 + 0.01 * RNG.standard_normal(10)


@pytest.mark.parametrize("rope", [0.0, 0.005, 0.02])
@pytest.mark.parametrize("higher_is_better", [True, False])
def test_the_cv_correction_is_baycomps_correlated_t_test(rope, higher_is_better):
    """For the 10 folds of one 10-fold CV, n_test/n_train = 1/9: baycomp's correction."""
    row = correlated_t(X - Y, 1 / 9, rope=rope, higher_is_better=higher_is_better, confidence=0.95)
    # baycomp's left: the first argument better when higher is better
    first, second = (X, Y) if higher_is_better else (-X, -Y)
    probs = baycomp.CorrelatedTTest.probs(first, second, rope=rope, runs=1)
    if rope == 0:
        probs = (probs[0], 0.0, probs[1])
    assert row["p_a_better"] == pytest.approx(probs[0], abs=1e-12)
    assert row["p_rope"] == pytest.approx(probs[1], abs=1e-12)
    assert row["p_b_better"] == pytest.approx(probs[2], abs=1e-12)
    # X beats Y by about 0.015: clear outside a narrow ROPE, mostly inside a wide one
    favoured = row["p_a_better"] if higher_is_better else row["p_b_better"]
    assert favoured > 0.9 if rope < 0.01 else row["p_rope"] > 0.5


def test_independent_replicates_give_the_paired_t_test():
    """Synthetic replicates share no rows (ratio 0): the ordinary paired t-test and interval."""
    row = correlated_t(X - Y, 0.0, rope=0.01, higher_is_better=True, confidence=0.9)
    test = stats.ttest_rel(X, Y)
    interval = test.confidence_interval(0.9)
    assert row["p_t"] == pytest.approx(test.pvalue, rel=1e-10)
    assert (row["ci_low"], row["ci_high"]) == pytest.approx((interval.low, interval.high))
    assert row["n_folds"] == 10 and row["mean_diff"] == pytest.approx(np.mean(X - Y))


def test_the_cv_correction_widens_the_interval():
    plain = correlated_t(X - Y, 0.0, rope=0.0, higher_is_better=True, confidence=0.95)
    cv = correlated_t(X - Y, 1 / 9, rope=0.0, higher_is_better=True, confidence=0.95)
    assert cv["ci_high"] - cv["ci_low"] > plain["ci_high"] - plain["ci_low"]
    assert cv["p_t"] > plain["p_t"]


def test_equal_differences_are_a_point_mass():
    row = correlated_t(np.full(5, -0.3), 0.0, rope=0.01, higher_is_better=False, confidence=0.95)
    assert (row["p_a_better"], row["p_rope"], row["p_b_better"]) == (1.0, 0.0, 0.0)
    assert row["ci_low"] == row["ci_high"] == pytest.approx(-0.3)
    inside = correlated_t(np.full(5, 0.005), 0.0, rope=0.01, higher_is_better=True, confidence=0.9)
    assert inside["p_rope"] == 1.0
    one = correlated_t(np.array([0.1]), 0.0, rope=0.01, higher_is_better=True, confidence=0.9)
    assert np.isnan(one["p_t"]) and one["mean_diff"] == pytest.approx(0.1)


def _runs(scores: dict[str, list[float]], task: str = "synthetic/r3") -> pd.DataFrame:
    rows = [
        {"task": task, "model": m, "fold": k, "status": "FINISHED", "mse": v}
        for m, values in scores.items()
        for k, v in enumerate(values)
    ]
    return pd.DataFrame(rows)


def test_runs_are_paired_by_fold_and_holm_corrected():
    base = [0.50, 0.62, 0.41, 0.55, 0.47, 0.58]
    better = [v - 0.2 + 0.01 * k for k, v in enumerate(base)]
    same = [v + 0.001 * (-1) ** k for k, v in enumerate(base)]
    runs = _runs({"base": base, "better": better, "same": same})
    runs = runs.sample(frac=1.0, random_state=0)  # order must not matter: pairs by fold
    runs.loc[(runs["model"] == "same") & (runs["fold"] == 5), "status"] = "FAILED"
    settings = ComparisonSettings(rope={"mse": 0.01})
    table = compare_within_tasks(
        runs, [("base", "better"), ("base", "same")], {"mse": False}, settings, cv_folds=10
    )
    rows = table.set_index("model_b")
    assert rows.loc["better", "mean_diff"] == pytest.approx(np.mean(np.subtract(base, better)))
    assert rows.loc["better", "verdict"] == "B better"
    assert rows.loc["same", "n_folds"] == 5  # the failed fold leaves the pair
    assert rows.loc["same", "verdict"] == "equivalent within ±0.01"
    assert (table["p_holm"] >= table["p_t"]).all()
    assert rows.loc["better", "p_holm"] == pytest.approx(min(1.0, 2 * rows.loc["better", "p_t"]))


def test_a_pair_on_no_common_task_is_left_out():
    runs = pd.concat([_runs({"a": [1.0, 2.0]}), _runs({"b": [1.0, 2.0]}, task="synthetic/c3")])
    settings = ComparisonSettings(rope={"mse": 0.01})
    assert compare_within_tasks(runs, [("a", "b")], {"mse": False}, settings, 10).empty


def test_the_switch_must_be_a_boolean():
    cfg = OmegaConf.load("conf/aggregate.yaml")
    assert comparison_settings(cfg).within_tasks is False
    cfg.comparisons.within_tasks = "yes"
    with pytest.raises(ConfigError, match="within_tasks"):
        comparison_settings(cfg)
