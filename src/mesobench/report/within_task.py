"""Paired comparisons of two configurations within one task, over its folds.

The comparisons of :mod:`mesobench.report.comparisons` take the task as the unit: right for a
benchmark over many tasks, empty for an ablation on one. An ablation asks whether one switch
changes a model's score *on this task*, and its evidence is the folds (data replicates), paired
by fold: the same training rows for both configurations. For each pair, task and metric:

- the mean paired difference A − B over the folds both have, with the corrected resampled t
  interval (Nadeau & Bengio, *Machine Learning* 52, 2003): d̄ ± t_{J−1} √((1/J + r) s²), where
  r = n_test / n_train (:func:`mesobench.report.stats.test_train_ratio`: 1/(k − 1) for the folds
  of one k-fold CV, which share training rows; 0 for synthetic replicates, drawn afresh);
- the two-sided p of the corrected resampled t-test, Holm-corrected across every row;
- the Bayesian correlated t-test (Corani & Benavoli, *Machine Learning* 100, 2015): the
  posterior of the mean difference is Student t_{J−1}(d̄, (1/J + r) s²), giving P(A better),
  P(within ±ROPE) and P(B better). With r = 1/(J − 1) it is ``baycomp.CorrelatedTTest``
  (``tests/test_report_within_task.py`` checks both agree).

The verdict follows the rule of the cross-task comparisons (:func:`comparisons.verdict`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from mesobench.report import tables
from mesobench.report.comparisons import JUDGED_COLUMNS, ComparisonSettings, judged
from mesobench.report.stats import test_train_ratio

COLUMNS = [
    "task",
    "model_a",
    "model_b",
    "metric",
    "n_folds",
    "mean_a",
    "mean_b",
    "mean_diff",
    "ci_low",
    "ci_high",
    "p_t",
    *JUDGED_COLUMNS,
]
"""The columns of ``comparisons_within_tasks.csv``, in order."""


def correlated_t(
    diff: np.ndarray, ratio: float, *, rope: float, higher_is_better: bool, confidence: float
) -> dict[str, float]:
    """The interval, p and posterior probabilities of the paired differences A − B of one task.

    A posterior of zero spread (every difference equal) is a point mass at the difference: the
    probabilities are then 0 or 1, as ``baycomp`` has them.
    """
    j = diff.size
    mean = float(diff.mean()) if j else math.nan
    row = {"n_folds": j, "mean_diff": mean, "rope": rope}
    row.update(dict.fromkeys(("ci_low", "ci_high", "p_t", "p_a_better", "p_rope", "p_b_better")))
    if j < 2:
        return {k: math.nan if v is None else v for k, v in row.items()}
    scale = math.sqrt((1.0 / j + ratio) * float(diff.var(ddof=1)))
    if scale == 0.0:
        below, above = float(mean < -rope), float(mean > rope)
        row.update(ci_low=mean, ci_high=mean, p_t=1.0 if mean == 0.0 else 0.0)
    else:
        posterior = stats.t(df=j - 1, loc=mean, scale=scale)
        below, above = float(posterior.cdf(-rope)), float(posterior.sf(rope))
        low, high = posterior.interval(confidence)
        row.update(ci_low=float(low), ci_high=float(high))
        row["p_t"] = float(2.0 * stats.t.sf(abs(mean) / scale, j - 1))
    a_better, b_better = (above, below) if higher_is_better else (below, above)
    row.update(p_a_better=a_better, p_b_better=b_better, p_rope=max(0.0, 1.0 - below - above))
    return row


def compare_within_tasks(
    runs: pd.DataFrame,
    pairs: list[tuple[str, str]],
    directions: Mapping[str, bool],
    settings: ComparisonSettings,
    cv_folds: int,
) -> pd.DataFrame:
    """Every pair on every metric of ``directions`` within every task both models ran, paired by
    fold over finished runs (``runs``: one row per run, columns task, model, fold, status and
    the metrics); Holm's correction across all rows. Columns :data:`COLUMNS`."""
    done = runs[runs["status"].eq("FINISHED")]
    rows = []
    for metric, higher in directions.items():
        if metric not in done:
            continue
        cells = done.pivot_table(index=["task", "fold"], columns="model", values=metric)
        for task, table in cells.groupby(level="task", sort=True):
            for a, b in pairs:
                if a not in table or b not in table:
                    continue
                both = table[[a, b]].dropna()
                if both.empty:
                    continue
                x, y = both[a].to_numpy(float), both[b].to_numpy(float)
                row = correlated_t(
                    x - y,
                    test_train_ratio(str(task), cv_folds),
                    rope=settings.rope_of(metric),
                    higher_is_better=higher,
                    confidence=settings.confidence,
                )
                rows.append(
                    {"task": task, "model_a": a, "model_b": b, "metric": metric}
                    | row
                    | {"mean_a": float(x.mean()), "mean_b": float(y.mean())}
                )
    return judged(pd.DataFrame(rows, columns=COLUMNS), "p_t", settings.posterior)


def section(compared: pd.DataFrame, settings: ComparisonSettings, out_dir: Path) -> list[str]:
    """The report's section of within-task comparisons (``comparisons_within_tasks.*``)."""
    lines = ["## Paired comparisons within each task", ""]
    if compared.empty:
        return lines + ["_No pair ran on a common task._", ""]
    c = settings
    ropes = ", ".join(f"{m} ±{c.rope_of(m):g}" for m in compared["metric"].unique())
    return lines + [
        "Each pair on each task, paired by fold (the same training rows for both): "
        f"mean_diff = A − B with its {c.confidence:.0%} corrected resampled t interval "
        "(Nadeau & Bengio 2003; variance factor 1/J + n_test/n_train, n_test/n_train = 0 for "
        "synthetic replicates, 1/(k − 1) for the folds of a k-fold CV); p_t: two-sided corrected "
        "resampled t-test, p_holm: Holm-corrected across every row of this table; "
        "p_a_better / p_rope / p_b_better: the Bayesian correlated t-test (Corani & Benavoli "
        f"2015) with a region of practical equivalence of {ropes}; better follows the metric's "
        f"direction. Verdict: the outcome whose posterior probability is ≥ {c.posterior:g}, "
        "else inconclusive.",
        "",
        tables.write_table(compared, out_dir, "comparisons_within_tasks", index=False),
        "",
    ]
