"""Cross-task statistics on hand-made score matrices whose answers are worked out by hand."""

import math

import numpy as np
import pandas as pd
import pytest
from scipy.stats import chi2

from mesobench.report import stats

# 4 tasks × 3 models, no ties. Ranks per task (1 = best AUROC):
#   t1: a 1, b 2, c 3   t2: a 2, b 1, c 3   t3: a 1, b 3, c 2   t4: a 1, b 2, c 3
# average ranks: a 1.25, b 2.0, c 2.75
SCORES = pd.DataFrame(
    {"a": [0.9, 0.8, 0.9, 0.95], "b": [0.8, 0.9, 0.7, 0.85], "c": [0.7, 0.7, 0.8, 0.75]},
    index=pd.Index(["t1", "t2", "t3", "t4"], name="task"),
)


def test_average_rank_of_a_known_matrix_best_first():
    ranks = stats.average_rank(SCORES)
    assert list(ranks.index) == ["a", "b", "c"]
    assert ranks.to_dict() == pytest.approx({"a": 1.25, "b": 2.0, "c": 2.75})


def test_ranks_average_ties_and_follow_the_metric_direction():
    scores = pd.DataFrame({"a": [0.8], "b": [0.8], "c": [0.9]}, index=["t"])
    assert stats.rank_matrix(scores).iloc[0].tolist() == [2.5, 2.5, 1.0]
    # lower is better (e.g. log loss): c's 0.9 is now the worst
    assert stats.rank_matrix(scores, higher_is_better=False).iloc[0].tolist() == [1.5, 1.5, 3.0]


def test_friedman_statistic_matches_the_textbook_formula():
    n, k = SCORES.shape
    r = np.array([1.25, 2.0, 2.75])
    by_hand = 12 * n / (k * (k + 1)) * (np.sum(r**2) - k * (k + 1) ** 2 / 4)
    assert by_hand == pytest.approx(4.5)
    result = stats.friedman(SCORES)
    assert result.statistic == pytest.approx(4.5)
    assert result.pvalue == pytest.approx(chi2.sf(4.5, k - 1))  # = exp(-2.25) for 2 dof
    assert result.pvalue == pytest.approx(math.exp(-2.25))
    # Iman–Davenport: (N−1)χ² / (N(k−1) − χ²) = 3 · 4.5 / (8 − 4.5)
    assert result.iman_davenport == pytest.approx(13.5 / 3.5)


def test_friedman_corrects_for_ties():
    scores = SCORES.copy()
    scores.loc["t2"] = [0.8, 0.8, 0.7]  # a and b tie on t2: ranks 1.5, 1.5, 3
    n, k = scores.shape
    r = np.array([(1 + 1.5 + 1 + 1) / 4, (2 + 1.5 + 3 + 2) / 4, (3 + 3 + 2 + 3) / 4])
    raw = 12 * n / (k * (k + 1)) * (np.sum(r**2) - k * (k + 1) ** 2 / 4)
    correction = 1 - (2**3 - 2) / (n * k * (k**2 - 1))  # one tie group of size 2
    assert stats.friedman(scores).statistic == pytest.approx(raw / correction)


def test_friedman_says_why_it_cannot_be_computed():
    assert stats.friedman(SCORES[["a", "b"]]).statistic is None
    assert "3 models" in stats.friedman(SCORES[["a", "b"]]).reason
    assert "2 tasks" in stats.friedman(SCORES.iloc[:1]).reason


@pytest.mark.parametrize(
    ("k", "q"), [(2, 1.960), (3, 2.343), (4, 2.569), (5, 2.728), (6, 2.850), (10, 3.164)]
)
def test_nemenyi_critical_values_match_demsar_2006(k, q):
    assert stats.nemenyi_q(k, 0.05) == pytest.approx(q, abs=1e-3)  # table: 3 decimals


def test_nemenyi_alpha_010_matches_demsar_2006():
    assert stats.nemenyi_q(5, 0.10) == pytest.approx(2.459, abs=1e-3)


def test_critical_difference_formula():
    # k = 5, N = 8: 2.728 · √(5·6 / 48)
    assert stats.critical_difference(5, 8) == pytest.approx(2.7278 * math.sqrt(30 / 48), abs=1e-3)


def test_cliques_join_models_within_the_critical_difference():
    ranks = pd.Series({"a": 1.0, "b": 1.5, "c": 2.4, "d": 4.0})
    # cd 1.5: {a, b, c} (2.4 − 1.0 < 1.5), {c, d}? 4.0 − 2.4 = 1.6 ≥ 1.5 → no; {b, c} ⊂ {a, b, c}
    assert stats.cliques(ranks, 1.5) == [["a", "b", "c"]]
    assert stats.cliques(ranks, 1.7) == [["a", "b", "c"], ["c", "d"]]
    assert stats.cliques(ranks, 0.1) == []


def test_win_tie_loss_against_a_reference():
    scores = pd.DataFrame(
        {"ref": [0.90, 0.80, 0.70, 0.60], "x": [0.85, 0.80, 0.75, 0.6005]},
        index=["t1", "t2", "t3", "t4"],
    )
    exact = stats.win_tie_loss(scores, "ref").loc["x"]
    assert (exact["wins"], exact["ties"], exact["losses"]) == (1, 1, 2)
    tolerant = stats.win_tie_loss(scores, "ref", tolerance=0.001).loc["x"]
    assert (tolerant["wins"], tolerant["ties"], tolerant["losses"]) == (1, 2, 1)
    assert tolerant["mean_delta"] == pytest.approx((0.05 + 0 - 0.05 - 0.0005) / 4)
    # lower-is-better: the same numbers are now losses for the reference where it is higher
    flipped = stats.win_tie_loss(scores, "ref", higher_is_better=False).loc["x"]
    assert (flipped["wins"], flipped["losses"]) == (2, 1)
    # a difference inside a ROPE of 0.01 is a tie, not a win decided in the 4th decimal
    roped = stats.win_tie_loss(scores, "ref", tolerance=0.01).loc["x"]
    assert (roped["wins"], roped["ties"], roped["losses"]) == (1, 2, 1)


def test_win_tie_loss_corrects_its_p_values_for_the_models_it_tests():
    rng = np.random.default_rng(3)
    ref = rng.uniform(0.7, 0.9, 12)
    scores = pd.DataFrame(
        {"ref": ref, "x": ref - 0.02, "y": ref + rng.normal(0, 0.01, 12), "z": ref - 0.005},
        index=[f"t{i}" for i in range(12)],
    )
    wtl = stats.win_tie_loss(scores, "ref")
    assert (wtl["holm_p"] >= wtl["wilcoxon_p"]).all()
    smallest = wtl["wilcoxon_p"].idxmin()
    assert wtl.loc[smallest, "holm_p"] == pytest.approx(
        min(1.0, 3 * wtl.loc[smallest, "wilcoxon_p"])
    )


def test_win_tie_loss_needs_the_reference_in_the_table():
    with pytest.raises(KeyError, match="imn"):
        stats.win_tie_loss(SCORES, "imn")


def test_normalised_scores_span_zero_to_one_per_task_and_skip_flat_tasks():
    scores = pd.DataFrame({"a": [0.9, 0.5], "b": [0.8, 0.5], "c": [0.7, 0.5]}, index=["t1", "t2"])
    norm = stats.normalised_scores(scores)
    assert norm.loc["t1"].tolist() == pytest.approx([1.0, 0.5, 0.0])
    assert norm.loc["t2"].isna().all()  # every model ties: no information
    lower = stats.normalised_scores(scores, higher_is_better=False)
    assert lower.loc["t1"].tolist() == pytest.approx([0.0, 0.5, 1.0])


# ---- bootstrap intervals and the Pareto front ---------------------------------------------------


def test_bootstrap_over_tasks_brackets_the_mean_and_the_average_rank():
    rng = np.random.default_rng(0)
    scores = pd.DataFrame(
        {"a": 0.8 + rng.normal(0, 0.02, 30), "b": 0.7 + rng.normal(0, 0.02, 30)},
        index=[f"t{i}" for i in range(30)],
    )
    boot = stats.Bootstrap(n_resamples=500, seed=1)
    mean_ci = stats.bootstrap_over_tasks(scores, boot)
    for model in scores:
        assert mean_ci.loc[model, "low"] < scores[model].mean() < mean_ci.loc[model, "high"]
    assert mean_ci.loc["b", "high"] < mean_ci.loc["a", "low"]  # clearly apart
    rank_ci = stats.bootstrap_over_tasks(scores, boot, higher_is_better=True)
    assert (rank_ci.loc["a", "low"], rank_ci.loc["a", "high"]) == (1.0, 1.0)  # a always wins
    again = stats.bootstrap_over_tasks(scores, boot)
    pd.testing.assert_frame_equal(mean_ci, again)  # seeded


def test_corrected_t_cells_widen_the_interval_by_the_cross_validation_overlap():
    runs = pd.DataFrame(
        {
            "task": ["t"] * 5 + ["u"] + ["synthetic/r1"] * 5,
            "model": ["m"] * 11,
            "auroc": [0.70, 0.72, 0.74, 0.76, 0.78, 0.9, 0.70, 0.72, 0.74, 0.76, 0.78],
        }
    )
    ci = stats.corrected_t_cells(runs, "auroc", 0.95, cv_folds=10).set_index("task")
    s2 = np.var([0.70, 0.72, 0.74, 0.76, 0.78], ddof=1)  # 0.0004 · 2.5
    t4 = 2.7764451051977987  # t_{0.975, 4}
    corrected = t4 * math.sqrt((1 / 5 + 1 / 9) * s2)  # Nadeau & Bengio: 1/J + n_test/n_train
    plain = t4 * math.sqrt(s2 / 5)  # independent replicates: the ordinary t interval
    assert ci.loc["t", "high"] - 0.74 == pytest.approx(corrected, rel=1e-12)
    assert ci.loc["t", "low"] == pytest.approx(0.74 - corrected, rel=1e-12)
    assert ci.loc["synthetic/r1", "high"] - 0.74 == pytest.approx(plain, rel=1e-12)
    assert corrected > plain
    assert np.isnan(ci.loc["u", "low"]) and np.isnan(ci.loc["u", "high"])  # one fold: none


def test_the_corrected_interval_covers_the_mean_more_often_than_the_bootstrap_on_folds():
    """Coverage on correlated folds (a shared component per repetition, as cross-validation
    folds share training rows): the corrected interval is wider than the plain one."""
    rng = np.random.default_rng(0)
    truth, hits_corrected, hits_plain = 0.8, 0, 0
    for _ in range(400):
        shared = rng.normal(0, 0.01)  # the training data common to every fold
        scores = truth + shared + rng.normal(0, 0.02, 3)
        runs = pd.DataFrame({"task": "t", "model": "m", "auroc": scores})
        low, high = stats.corrected_t_cells(runs, "auroc", 0.95).iloc[0][["low", "high"]]
        hits_corrected += low <= truth <= high
        plain = stats.corrected_t_cells(runs.assign(task="synthetic/t"), "auroc", 0.95).iloc[0]
        hits_plain += plain["low"] <= truth <= plain["high"]
    assert hits_corrected > hits_plain


def test_the_pareto_front_keeps_the_models_no_other_beats_on_both_axes():
    points = pd.DataFrame(
        {"infidelity": [0.1, 0.2, 0.3, 0.15], "score": [0.80, 0.90, 0.85, 0.79]},
        index=["faithful", "accurate", "dominated", "also_dominated"],
    )
    front = stats.pareto_front(points, "infidelity", "score")
    assert list(front.index) == ["faithful", "accurate"]
