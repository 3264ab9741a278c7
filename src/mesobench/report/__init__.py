"""The reporting end of mesobench: from a tidy table of runs to tables, statistics and plots.

Small modules with one job each, all pure functions of DataFrames (no MLflow), so every rule is
unit-tested on hand-made run tables:

- :mod:`~mesobench.report.runs` — one row per run → per-task cells; missing / failed runs and
  their treatment (drop the task, impute the worst result, or use what finished);
- :mod:`~mesobench.report.stats` — ranks, normalised scores, Friedman + Iman–Davenport, Nemenyi
  critical difference, win / tie / loss against a reference model;
- :mod:`~mesobench.report.tables` — fidelity and time tables; markdown, CSV and LaTeX writers;
- :mod:`~mesobench.report.plots` — CD diagram, score vs infidelity, per-task scores, one
  instance's explanations (IMN vs LFR-IMN weights, NIMO β and its interaction map);
- :mod:`~mesobench.report.document` — assembles the report folder and its README page.

:mod:`mesobench.aggregate` reads the runs from MLflow and hands them to
:func:`~mesobench.report.document.write_report`.
"""

from mesobench.report.runs import (
    TREATMENTS,
    cells,
    failures,
    fold_summary,
    latest_per_key,
    metric_summary,
    status_counts,
    treat_missing,
)
from mesobench.report.stats import (
    average_rank,
    average_ranks,
    critical_difference,
    friedman,
    nemenyi_q,
    normalised_scores,
    rank_matrix,
    win_tie_loss,
)
from mesobench.report.tables import markdown_table, wide_mean_std

__all__ = [
    "TREATMENTS",
    "average_rank",
    "average_ranks",
    "cells",
    "critical_difference",
    "failures",
    "fold_summary",
    "friedman",
    "latest_per_key",
    "markdown_table",
    "metric_summary",
    "nemenyi_q",
    "normalised_scores",
    "rank_matrix",
    "status_counts",
    "treat_missing",
    "wide_mean_std",
    "win_tie_loss",
]
