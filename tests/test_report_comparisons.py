"""Paired comparisons: Holm's correction, the t interval, Wilcoxon, the Bayesian signed-rank test
with a ROPE and the verdict rule, on score tables whose answers are known."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from mesobench.errors import ConfigError
from mesobench.report import comparisons as cmp

TASKS = [f"t{i}" for i in range(12)]
SETTINGS = cmp.ComparisonSettings(nsamples=20000, seed=0)


def _scores(**columns):
    return pd.DataFrame(columns, index=pd.Index(TASKS[: len(next(iter(columns.values())))]))


def test_holm_multiplies_the_ordered_p_values_and_keeps_them_monotone():
    adjusted = cmp.holm([0.01, 0.04, 0.03, 0.005])
    # ordered 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → max-accumulated
    assert adjusted.tolist() == pytest.approx([0.03, 0.06, 0.06, 0.02])
    with_nan = cmp.holm([0.5, math.nan, 0.01])
    assert with_nan[0] == pytest.approx(0.5) and math.isnan(with_nan[1])
    assert with_nan[2] == pytest.approx(0.02)  # m = 2: the NaN is not a test
    assert cmp.holm([0.9, 0.8]).tolist() == [1.0, 1.0]  # 0.8·2 capped at 1, then monotone


def test_a_paired_comparison_reports_the_t_interval_and_wilcoxon_of_the_differences():
    rng = np.random.default_rng(0)
    b = rng.uniform(0.7, 0.95, 12)
    a = b + rng.normal(0.004, 0.006, 12)
    row = cmp.paired(
        pd.Series(a), pd.Series(b), higher_is_better=True, rope=0.01, settings=SETTINGS
    )
    diff = a - b
    half = stats.t.ppf(0.975, 11) * diff.std(ddof=1) / math.sqrt(12)
    assert row["n_tasks"] == 12 and row["mean_diff"] == pytest.approx(diff.mean())
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(
        (diff.mean() - half, diff.mean() + half)
    )
    assert row["p_wilcoxon"] == pytest.approx(stats.wilcoxon(diff).pvalue)
    total = row["p_a_better"] + row["p_rope"] + row["p_b_better"]
    assert total == pytest.approx(1.0, abs=1e-12)


def _dirichlet_signed_rank(x, y, rope, prior=0.5, n=20000, seed=1):
    """Benavoli et al.'s Bayesian signed-rank posterior written out directly (vectorised): a
    Dirichlet process over the differences z = x − y with a pseudo-observation 0 of weight
    ``prior``; P(x better) = Σ_ij w_i w_j [z_i + z_j > 2·rope]."""
    z = np.concatenate([[0.0], np.asarray(x) - np.asarray(y)])
    sums = z[:, None] + z[None, :]
    alpha = np.concatenate([[prior], np.ones(len(x))])
    w = np.random.default_rng(seed).dirichlet(alpha, n)
    pairs = np.einsum("ni,nj->nij", w, w)
    better = (pairs * (sums > 2 * rope)).sum((1, 2))
    worse = (pairs * (sums < -2 * rope)).sum((1, 2))
    same = 1 - better - worse
    winner = np.argmax(np.stack([better, same, worse], 1), 1)
    return np.bincount(winner, minlength=3) / n


@pytest.mark.parametrize("shift", [0.03, 0.002, -0.03, 0.008])
def test_the_bayesian_signed_rank_test_agrees_with_the_posterior_written_out(shift):
    rng = np.random.default_rng(7)
    b = rng.uniform(0.7, 0.95, 10)
    a = b + shift + rng.normal(0, 0.006, 10)
    row = cmp.paired(
        pd.Series(a), pd.Series(b), higher_is_better=True, rope=0.01, settings=SETTINGS
    )
    expected = _dirichlet_signed_rank(a, b, 0.01)
    got = [row["p_a_better"], row["p_rope"], row["p_b_better"]]
    assert got == pytest.approx(expected.tolist(), abs=0.015)  # two Monte Carlo estimates


def test_better_follows_the_metric_direction():
    rng = np.random.default_rng(1)
    b = rng.uniform(0.1, 0.3, 12)
    a = b + 0.05  # a has the larger value on every task
    high = cmp.paired(
        pd.Series(a), pd.Series(b), higher_is_better=True, rope=0.01, settings=SETTINGS
    )
    low = cmp.paired(
        pd.Series(a), pd.Series(b), higher_is_better=False, rope=0.01, settings=SETTINGS
    )
    assert high["p_a_better"] > 0.99 and low["p_b_better"] > 0.99  # an error: larger is worse
    assert high["mean_diff"] == low["mean_diff"] == pytest.approx(0.05)  # A − B in units


def test_the_verdict_rule_names_the_outcome_whose_posterior_reaches_the_threshold():
    assert cmp.verdict(0.96, 0.04, 0.0, 0.01, 0.95) == cmp.A_BETTER
    assert cmp.verdict(0.0, 0.02, 0.98, 0.01, 0.95) == cmp.B_BETTER
    assert cmp.verdict(0.01, 0.97, 0.02, 0.01, 0.95) == "equivalent within ±0.01"
    assert cmp.verdict(0.5, 0.4, 0.1, 0.01, 0.95) == cmp.INCONCLUSIVE
    assert cmp.verdict(math.nan, math.nan, math.nan, 0.01, 0.95) == cmp.INCONCLUSIVE


def test_compare_tests_every_pair_on_every_metric_and_corrects_across_all_rows():
    rng = np.random.default_rng(2)
    base = rng.uniform(0.7, 0.95, 12)
    auroc = _scores(a=base + 0.03, b=base, c=base + 0.03 + rng.normal(0, 0.001, 12))
    loss = _scores(a=1 - base, b=1.2 - base, c=1 - base)
    settings = cmp.ComparisonSettings(
        rope={"auroc": 0.01, "log_loss": 0.05}, nsamples=20000, metrics=("auroc", "log_loss")
    )
    pairs = cmp.declared_pairs(["a", "b", "c"], settings, [], reference="a")
    assert pairs == [("a", "b"), ("a", "c")]
    table = cmp.compare(
        {"auroc": auroc, "log_loss": loss}, pairs, {"auroc": True, "log_loss": False}, settings
    )
    assert list(table.columns) == cmp.COLUMNS and len(table) == 4
    assert (table["p_holm"] >= table["p_wilcoxon"]).all()
    assert table["p_holm"].tolist() == pytest.approx(cmp.holm(table["p_wilcoxon"]).tolist())
    sums = table[["p_a_better", "p_rope", "p_b_better"]].sum(axis=1)
    assert np.allclose(sums, 1.0, atol=1e-12)
    verdicts = table.set_index(["model_b", "metric"])["verdict"]
    assert verdicts[("b", "auroc")] == cmp.A_BETTER  # +0.03 on every task
    assert verdicts[("c", "auroc")] == "equivalent within ±0.01"  # ±0.001
    assert verdicts[("b", "log_loss")] == cmp.A_BETTER  # 0.2 less loss on every task
    assert verdicts[("c", "log_loss")] == "equivalent within ±0.05"  # identical


def test_a_comparison_uses_the_tasks_both_models_have():
    a = pd.Series([0.9, 0.8, np.nan, 0.7], index=TASKS[:4])
    b = pd.Series([0.85, np.nan, 0.6, 0.65], index=TASKS[:4])
    row = cmp.paired(a, b, higher_is_better=True, rope=0.01, settings=SETTINGS)
    assert row["n_tasks"] == 2 and row["mean_diff"] == pytest.approx(0.05)
    one = cmp.paired(a[:1], b[:1], higher_is_better=True, rope=0.01, settings=SETTINGS)
    assert one["n_tasks"] == 1 and math.isnan(one["p_wilcoxon"])  # nothing to test on one task


def test_pairs_come_from_claims_then_declared_then_the_scope_each_once():
    settings = cmp.ComparisonSettings(pairs=(("b", "c"), ("c", "b"), ("a", "zz")), scope="all")
    claims = [cmp.Claim(a="c", b="a")]
    pairs = cmp.declared_pairs(["a", "b", "c"], settings, claims, reference="a")
    assert pairs == [("c", "a"), ("b", "c"), ("a", "b")]  # zz has no runs: skipped
    declared = cmp.ComparisonSettings(pairs=(("b", "c"),), scope="declared")
    assert cmp.declared_pairs(["a", "b", "c"], declared, [], reference="a") == [("b", "c")]


def test_a_finding_states_the_verdict_and_its_numbers_from_the_claims_side():
    rng = np.random.default_rng(4)
    base = rng.uniform(0.7, 0.95, 12)
    scores = {"auroc": _scores(imn=base - 0.02, catboost=base)}
    settings = cmp.ComparisonSettings(nsamples=20000)
    table = cmp.compare(scores, [("imn", "catboost")], {"auroc": True}, settings)
    claim = cmp.Claim(a="catboost", b="imn", text="CatBoost beats IMN", expect="a_better")
    text = cmp.finding(claim, table, 0.95)
    row = table.iloc[0]
    assert "**catboost better**" in text and "catboost − imn = +0.0200" in text
    assert (
        f"P(catboost better) = {row['p_b_better']:.3f}" in text
        or "P(catboost better) < 0.001" in text
    )
    assert "is supported" in text
    refuted = cmp.finding(cmp.Claim(a="imn", b="catboost", expect="equivalent"), table, 0.95)
    assert "is refuted" in refuted
    missing = cmp.finding(cmp.Claim(a="imn", b="xgboost"), table, 0.95)
    assert "not tested" in missing


def test_claims_and_settings_are_checked_at_the_edge():
    with pytest.raises(ConfigError, match="expect"):
        cmp.Claim.from_config({"a": "x", "b": "y", "expect": "better"})
    with pytest.raises(ConfigError, match="a and b"):
        cmp.Claim.from_config({"a": "x"})
    with pytest.raises(ConfigError, match="scope"):
        cmp.ComparisonSettings(scope="everything")
    with pytest.raises(ConfigError, match="mse"):
        cmp.ComparisonSettings().require_rope("mse", "a claim tests")
    assert cmp.ComparisonSettings().rope_of("mse") == 0.0  # no ROPE: never "equivalent"
