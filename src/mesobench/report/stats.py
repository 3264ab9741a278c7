"""Cross-task statistics on a tasks × models matrix of per-task scores (one number per cell).

The matrix comes from :func:`mesobench.report.runs.treat_missing`, so it has no holes. Methods
follow Demšar (2006), *Statistical Comparisons of Classifiers over Multiple Data Sets*, JMLR 7:
ranks per task with ties averaged, the Friedman test (with the Iman–Davenport F correction) and
the Nemenyi critical difference for the post-hoc comparison of all pairs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from mesobench.report.comparisons import holm


def rank_matrix(scores: pd.DataFrame, higher_is_better: bool = True) -> pd.DataFrame:
    """Rank of every model on every task: 1 = best; tied models share their average rank."""
    values = scores.to_numpy(dtype=float)
    ranked = np.vstack([stats.rankdata(-r if higher_is_better else r) for r in values])
    return pd.DataFrame(ranked.reshape(values.shape), index=scores.index, columns=scores.columns)


def average_rank(scores: pd.DataFrame, higher_is_better: bool = True) -> pd.Series:
    """Mean rank over tasks per model, best (lowest) first."""
    if scores.empty:
        return pd.Series(dtype=float, name="average_rank")
    ranks = rank_matrix(scores, higher_is_better).mean(axis=0)
    return ranks.rename("average_rank").sort_values(kind="stable")


def average_ranks(
    summary: pd.DataFrame, higher_is_better: bool = True
) -> tuple[pd.Series, list[str]]:
    """Average rank over the tasks on which *every* model has a result (long summary input).

    Returns the ranks (best first) and the tasks left out because some model has no result.
    """
    means = summary.pivot(index="task", columns="model", values="mean")
    complete = means.dropna()
    dropped = sorted(set(means.index) - set(complete.index))
    return average_rank(complete, higher_is_better), dropped


def normalised_scores(scores: pd.DataFrame, higher_is_better: bool = True) -> pd.DataFrame:
    """Per task, ``(score − worst) / (best − worst)`` over the models: 1 = best, 0 = worst.

    Makes tasks of different difficulty comparable (an AUROC gap of 0.01 weighs the same on an
    easy and a hard task once scaled by that task's spread). A task where every model scores the
    same carries no information about the ordering and gives NaN (left out of the mean).
    """
    low = scores.min(axis=1)
    high = scores.max(axis=1)
    spread = (high - low).where(high > low)
    scaled = scores.sub(low, axis=0).div(spread, axis=0)
    return scaled if higher_is_better else 1.0 - scaled


@dataclass
class Friedman:
    """Friedman test over N tasks and k models (``None`` fields: not computable, see reason)."""

    k: int
    n: int
    statistic: float | None = None  # χ²_F (scipy: corrected for ties)
    pvalue: float | None = None
    iman_davenport: float | None = None  # F_F = (N−1)χ² / (N(k−1) − χ²), F(k−1, (k−1)(N−1))
    iman_davenport_pvalue: float | None = None
    reason: str = ""


def friedman(scores: pd.DataFrame) -> Friedman:
    """Friedman's χ² over the tasks (rows), with the Iman–Davenport F as Demšar recommends.

    scipy's statistic is corrected for ties; without ties it equals the textbook
    ``12N / (k(k+1)) · (Σ R_j² − k(k+1)²/4)`` on the average ranks R_j. Needs k ≥ 3 models and
    N ≥ 2 tasks; otherwise the result carries the reason instead of numbers.
    """
    n, k = scores.shape
    if k < 3:
        return Friedman(k, n, reason=f"needs at least 3 models (have {k})")
    if n < 2:
        return Friedman(k, n, reason=f"needs at least 2 tasks (have {n})")
    values = scores.to_numpy(dtype=float)
    if np.all(values == values[:, :1]):
        return Friedman(k, n, 0.0, 1.0, 0.0, 1.0, reason="every model ties on every task")
    chi2, p = stats.friedmanchisquare(*values.T)
    chi2 = float(chi2)
    denominator = n * (k - 1) - chi2
    if denominator <= 0:  # perfect agreement of the rankings over all tasks
        f_stat, f_p = math.inf, 0.0
    else:
        f_stat = (n - 1) * chi2 / denominator
        f_p = float(stats.f.sf(f_stat, k - 1, (k - 1) * (n - 1)))
    return Friedman(k, n, chi2, float(p), f_stat, f_p)


def nemenyi_q(k: int, alpha: float = 0.05) -> float:
    """Critical value q_α of the Nemenyi test: the studentized range quantile over √2.

    Reproduces Demšar's table (α = 0.05: k = 2 → 1.960, 3 → 2.343, 5 → 2.728, 10 → 3.164).
    """
    if k < 2:
        raise ValueError("the Nemenyi test compares at least 2 models")
    return float(stats.studentized_range.ppf(1.0 - alpha, k, np.inf) / math.sqrt(2.0))


def critical_difference(k: int, n: int, alpha: float = 0.05) -> float:
    """Nemenyi CD = q_α √(k(k+1) / (6N)): two average ranks further apart differ significantly."""
    return nemenyi_q(k, alpha) * math.sqrt(k * (k + 1) / (6.0 * n))


def cliques(average_ranks: pd.Series, cd: float) -> list[list[str]]:
    """Maximal groups of models whose average ranks all lie within ``cd`` of each other.

    The bars of a CD diagram: models joined by a bar are not significantly different. Groups
    of one model are left out (nothing to join); a group inside a larger one is dropped.
    """
    ordered = average_ranks.sort_values(kind="stable")
    names, values = list(ordered.index), ordered.to_numpy(dtype=float)
    spans = []
    for i in range(len(values)):
        j = i
        while j + 1 < len(values) and values[j + 1] - values[i] < cd:
            j += 1
        if j > i:
            spans.append((i, j))
    maximal = [s for s in spans if not any(o != s and o[0] <= s[0] and s[1] <= o[1] for o in spans)]
    return [names[i : j + 1] for i, j in maximal]


def win_tie_loss(
    scores: pd.DataFrame,
    reference: str,
    *,
    tolerance: float = 0.0,
    higher_is_better: bool = True,
) -> pd.DataFrame:
    """The reference model against every other model, task by task.

    A task is a win for the reference when its score beats the other's by more than
    ``tolerance`` (the report passes the metric's region of practical equivalence, so a
    difference in the 4th decimal is a tie), a loss when it trails by more, else a tie. Also the
    mean difference (reference − other, sign flipped for lower-is-better metrics so that > 0
    favours the reference), the two-sided Wilcoxon signed-rank p-value over tasks (NaN when
    every difference is zero or there are fewer than 2 tasks) and its Holm correction across
    the rows, since one table tests the reference against every other model at once.
    """
    if reference not in scores:
        raise KeyError(f"reference model {reference!r} is not among {list(scores.columns)}")
    sign = 1.0 if higher_is_better else -1.0
    rows = []
    for other in scores.columns:
        if other == reference:
            continue
        delta = sign * (scores[reference] - scores[other])
        pvalue = float("nan")
        if len(delta) >= 2 and (delta != 0).any():
            pvalue = float(stats.wilcoxon(delta.to_numpy(dtype=float)).pvalue)
        rows.append(
            {
                "model": other,
                "wins": int((delta > tolerance).sum()),
                "ties": int((delta.abs() <= tolerance).sum()),
                "losses": int((delta < -tolerance).sum()),
                "mean_delta": float(delta.mean()),
                "wilcoxon_p": pvalue,
            }
        )
    columns = ["model", "wins", "ties", "losses", "mean_delta", "wilcoxon_p"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["holm_p"] = holm(frame["wilcoxon_p"])
    return frame.set_index("model")


@dataclass(frozen=True)
class Bootstrap:
    """Percentile-bootstrap settings (``bootstrap.*`` of ``conf/aggregate.yaml``)."""

    n_resamples: int = 2000
    confidence: float = 0.95
    seed: int = 0

    def bounds(self, samples: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """The lower and upper percentile of ``samples`` along ``axis`` (NaN-aware)."""
        tail = (1.0 - self.confidence) / 2.0 * 100.0
        low, high = np.nanpercentile(samples, [tail, 100.0 - tail], axis=axis)
        return low, high


def bootstrap_over_tasks(
    scores: pd.DataFrame, boot: Bootstrap, higher_is_better: bool | None = None
) -> pd.DataFrame:
    """Intervals per model (columns) from resampling the tasks (rows) with replacement.

    ``higher_is_better=None``: the interval of the mean score over tasks; a bool: of the
    average rank (a task's ranks do not depend on the other tasks, so resampling tasks
    resamples rows of the rank matrix). One draw of task indices serves every model, so the
    intervals of two models come from the same resampled benchmarks. Returns a frame indexed
    by model with ``low`` and ``high``; NaN with fewer than two tasks.
    """
    values = (
        scores.to_numpy(dtype=float)
        if higher_is_better is None
        else rank_matrix(scores, higher_is_better).to_numpy()
    )
    n = values.shape[0]
    if n < 2:
        nan = np.full(values.shape[1], np.nan)
        return pd.DataFrame({"low": nan, "high": nan}, index=scores.columns)
    rows = np.random.default_rng(boot.seed).integers(0, n, size=(boot.n_resamples, n))
    with np.errstate(all="ignore"):
        means = np.nanmean(values[rows], axis=1)  # (B, k)
    low, high = boot.bounds(means)
    return pd.DataFrame({"low": low, "high": high}, index=scores.columns)


CV_FOLDS = 10
"""Folds of the cross-validation a CC18 task's official splits come from (OpenML's 10-fold CV)."""


def test_train_ratio(task: str, cv_folds: int = CV_FOLDS) -> float:
    """n_test / n_train of one fold, the overlap term of the corrected resampled t interval.

    Folds of one k-fold cross-validation share training rows, so their scores are correlated
    and the plain variance of their mean is too small; Nadeau & Bengio (2003) correct it by
    n_test / n_train = 1 / (k − 1). Synthetic tasks and shapes draw every replicate afresh
    (independent training sets): no overlap, ratio 0, the ordinary t interval.
    """
    if task.startswith(("synthetic/", "shape/")):
        return 0.0
    return 1.0 / (cv_folds - 1)


def corrected_t_cells(
    runs: pd.DataFrame,
    value: str,
    confidence: float = 0.95,
    cv_folds: int = CV_FOLDS,
    by: tuple[str, str] = ("task", "model"),
) -> pd.DataFrame:
    """The corrected resampled t interval (Nadeau & Bengio, *Inference for the generalization
    error*, Machine Learning 52, 2003) of the mean of ``value`` over each cell's J runs (folds):

        mean ± t_{J−1} · sqrt((1/J + n_test/n_train) · s²)

    with s² the sample variance over the folds and n_test / n_train from
    :func:`test_train_ratio`. A percentile bootstrap over 3 or 10 correlated folds under-covers
    (3 folds have at most 10 distinct resamples); this interval is wider by the overlap term.
    Columns ``*by``, ``low``, ``high``; NaN for a cell of fewer than two runs.
    """
    done = runs.dropna(subset=[value])
    if done.empty:
        return pd.DataFrame(columns=[*by, "low", "high"])
    grouped = done.groupby(list(by), sort=True)[value].agg(["mean", "var", "count"]).reset_index()
    ratio = grouped[by[0]].map(lambda t: test_train_ratio(str(t), cv_folds))
    j = grouped["count"].to_numpy(dtype=float)
    with np.errstate(all="ignore"):
        scale = np.sqrt((1.0 / j + ratio.to_numpy(dtype=float)) * grouped["var"].to_numpy(float))
        quantile = stats.t.ppf(0.5 + confidence / 2.0, j - 1.0)
    half = np.where(j >= 2, quantile * scale, np.nan)
    mean = grouped["mean"].to_numpy(dtype=float)
    return grouped[list(by)].assign(low=mean - half, high=mean + half)


def pareto_front(points: pd.DataFrame, x: str, y: str) -> pd.DataFrame:
    """The rows not dominated when lower ``x`` and higher ``y`` are better (e.g. infidelity and
    AUROC), sorted by ``x``: no other row is at least as good on both and better on one."""
    ordered = points.dropna(subset=[x, y]).sort_values([x, y], ascending=[True, False])
    keep, best = [], -np.inf
    for label, row in ordered.iterrows():
        if row[y] > best:
            keep.append(label)
            best = row[y]
    return ordered.loc[keep]
