"""Report tables: how they are computed from the summaries, and how they are written.

Every table is written three ways by :func:`write_table` — markdown (read on GitHub), CSV (read
by programs) and a LaTeX ``tabular`` (pasted into a paper) — from one DataFrame, so the three
never disagree. The LaTeX writer is a small one of our own: pandas' ``to_latex`` would pull in
jinja2 and gives little control over escaping.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

MISSING = "—"

#: The LFR infidelity: defined for local linear models only, and LFR-IMN's training objective,
#: so the report shows it in a table of its own, apart from the metrics every model gets.
LFR_METRICS = ["fidelity/lfr_infidelity", "fidelity/lfr_scaled_infidelity"]

#: Explanation-fidelity metrics, in order (directions in mesobench.metrics.registry; see
#: mesobench.metrics.fidelity). Only the ones some run logged are shown.
FIDELITY_METRICS = [
    *LFR_METRICS,
    "fidelity/yeh_infidelity",
    "fidelity/yeh_scaled_infidelity",
    "fidelity/deletion_auc",
    "fidelity/insertion_auc",
    "fidelity/faithfulness_correlation",
    "fidelity/max_sensitivity",
    "fidelity/avg_sensitivity",
    "fidelity/gt_gradient_mae",
    "fidelity/gt_attribution_mae",
    "fidelity/gt_coef_mae",
]

#: Wall-clock metrics shown in the time table (seconds per run).
TIME_METRICS = ["fit_seconds", "predict_seconds", "explain_seconds", "fidelity_seconds"]


def wide_mean_std(
    summary: pd.DataFrame, digits: int = 4, expected: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Tasks × models table of "mean ± std" strings; "—" where a model has no result.

    With ``expected`` (the cells table) an incomplete cell is marked "(2/3)": 2 of 3 expected
    runs finished — so a reader sees at once which means rest on fewer folds.
    """

    def mean_std(r: pd.Series) -> str:
        std = 0.0 if np.isnan(r["std"]) else r["std"]
        return f"{r['mean']:.{digits}f} ± {std:.{digits}f}"

    return _wide(summary, mean_std, expected)


def _wide(summary: pd.DataFrame, text_of, expected: pd.DataFrame | None) -> pd.DataFrame:
    """Tasks × models of ``text_of(row)``, incomplete cells marked "(k/n)" or "(1 fold)"."""
    if summary.empty:
        return pd.DataFrame()
    counts = {}
    if expected is not None and not expected.empty:
        counts = {
            (t, m): e
            for t, m, e in zip(
                expected["task"], expected["model"], expected["expected"], strict=True
            )
        }

    def cell(r: pd.Series) -> str:
        text = text_of(r)
        wanted = counts.get((r["task"], r["model"]))
        if wanted is not None and r["n_folds"] < wanted:
            text += f" ({int(r['n_folds'])}/{int(wanted)})"
        elif wanted is None and r["n_folds"] == 1:
            text += " (1 fold)"
        return text

    table = summary.assign(cell=summary.apply(cell, axis=1)).pivot(
        index="task", columns="model", values="cell"
    )
    if expected is not None and not expected.empty:
        models = sorted(set(expected["model"]) | set(table.columns))
        table = table.reindex(columns=models)
    return table.fillna(MISSING).sort_index()


def wide_mean_ci(
    summary: pd.DataFrame, digits: int = 4, expected: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Tasks × models table of "mean [low, high]" strings (the bootstrap interval over folds,
    columns ``ci_low``/``ci_high`` of ``summary``); otherwise as :func:`wide_mean_std`."""
    if summary.empty or "ci_low" not in summary:
        return wide_mean_std(summary, digits, expected)

    def interval(r: pd.Series) -> str:
        if np.isnan(r["ci_low"]):
            return f"{r['mean']:.{digits}f}"
        return f"{r['mean']:.{digits}f} [{r['ci_low']:.{digits}f}, {r['ci_high']:.{digits}f}]"

    return _wide(summary, interval, expected)


def with_brackets(frame: pd.DataFrame, digits: int = 3) -> pd.DataFrame:
    """``x``, ``x_low``/``x_high`` → one "x [low, high]" column per interval, for reading:
    pairs named ``rank_low``/``rank_high`` go with ``average_rank``, ``mean_low``/``mean_high``
    with the ``mean_*`` column."""
    shown = frame.copy()
    for prefix in ("rank", "mean"):
        low, high = f"{prefix}_low", f"{prefix}_high"
        if low not in shown:
            continue
        target = (
            "average_rank"
            if prefix == "rank"
            else next(c for c in shown.columns if c.startswith("mean_") and c not in (low, high))
        )
        shown[target] = [
            f"{v:.{digits}f}"
            if np.isnan(lo)
            else f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
            for v, lo, hi in zip(shown[target], shown[low], shown[high], strict=True)
        ]
        shown = shown.drop(columns=[low, high])
    return shown


def per_model_over_tasks(summary: pd.DataFrame, metrics: list[str]) -> pd.DataFrame:
    """Per model, the mean over tasks of the per-task mean of each metric (NaN = never logged).

    Averaging per-task means (not all runs) gives every task the same weight whatever its
    number of folds. ``n_tasks`` counts the tasks where the model logged the first metric.
    """
    present = [m for m in metrics if m in set(summary["metric"])]
    if not present:
        return pd.DataFrame()
    chosen = summary[summary["metric"].isin(present)]
    table = chosen.groupby(["model", "metric"])["mean"].mean().unstack("metric")
    table = table.reindex(columns=present)
    table.insert(0, "n_tasks", chosen.groupby("model")["task"].nunique())
    return table.sort_index()


def fidelity_table(
    summary: pd.DataFrame, models: list[str], metrics: list[str] | None = None
) -> pd.DataFrame:
    """Models × fidelity metrics (mean over tasks); every model listed, NaN if no attributions.

    ``metrics``: default every fidelity metric but the LFR ones (:data:`LFR_METRICS`, which
    only local linear models have); pass those for their own table, of the models that have
    them."""
    if metrics is None:
        metrics = [m for m in FIDELITY_METRICS if m not in LFR_METRICS]
    table = per_model_over_tasks(summary, metrics)
    if table.empty:
        return table
    listed = set(table.index) if set(metrics) <= set(LFR_METRICS) else set(models)
    table = table.reindex(sorted(listed | set(table.index)))
    table["n_tasks"] = table["n_tasks"].fillna(0).astype(int)
    table.columns = [c.removeprefix("fidelity/") for c in table.columns]
    return table


def time_table(runs: pd.DataFrame) -> pd.DataFrame:
    """Per model: mean seconds per finished run of fit / predict / explain / fidelity, and total.

    Wall-clock on whatever machine ran the sweep, under its load: comparable within a sweep,
    not across machines.
    """
    present = [m for m in TIME_METRICS if m in runs]
    if not present or runs.empty:
        return pd.DataFrame()
    done = runs[runs["status"].eq("FINISHED")]
    table = done.groupby("model")[present].mean()
    table.columns = [c.replace("_seconds", "_s") for c in present]
    table["total_h"] = done.groupby("model")[present].sum().sum(axis=1) / 3600.0
    table.insert(0, "runs", done.groupby("model").size())
    return table.sort_index()


def _plain(value: object, floatfmt: str) -> str:
    if value is None:
        return MISSING
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return MISSING
        if np.isinf(value):
            return "∞" if value > 0 else "-∞"
        return format(value, floatfmt)
    return str(value)


def markdown_table(frame: pd.DataFrame, index: bool = True, floatfmt: str = ".4f") -> str:
    """GitHub-flavoured markdown without extra dependencies."""
    if index:
        frame = frame.reset_index()
    if frame.empty:
        return "_(none)_\n"

    def fmt(value: object) -> str:
        return _plain(value, floatfmt).replace("|", "\\|").replace("\n", " ")

    header = "| " + " | ".join(str(c) for c in frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    rows = ["| " + " | ".join(fmt(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join([header, rule, *rows]) + "\n"


_LATEX_SPECIAL = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "±": r"$\pm$",
    "—": "--",
    "∞": r"$\infty$",
    "Δ": r"$\Delta$",
}


def latex_escape(text: str) -> str:
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in text)


def latex_table(frame: pd.DataFrame, index: bool = True, floatfmt: str = ".4f") -> str:
    """A booktabs ``tabular`` (needs ``\\usepackage{booktabs}``); numbers right-aligned."""
    if index:
        frame = frame.reset_index()
    if frame.empty:
        return "% (empty table)\n"
    align = "".join("r" if pd.api.types.is_numeric_dtype(frame[c]) else "l" for c in frame.columns)
    lines = [
        rf"\begin{{tabular}}{{{align}}}",
        r"\toprule",
        " & ".join(latex_escape(str(c)) for c in frame.columns) + r" \\",
        r"\midrule",
    ]
    for row in frame.itertuples(index=False):
        lines.append(" & ".join(latex_escape(_plain(v, floatfmt)) for v in row) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}"]
    return "\n".join(lines) + "\n"


def write_table(
    frame: pd.DataFrame,
    out_dir: Path,
    name: str,
    index: bool = True,
    floatfmt: str = ".4f",
    shown: pd.DataFrame | None = None,
) -> str:
    """Write ``name.md``, ``name.csv`` and ``name.tex``; return the markdown. ``shown``: what
    the markdown and LaTeX show instead of ``frame`` (e.g. "x [low, high]" strings), while the
    CSV keeps the numbers."""
    shown = frame if shown is None else shown
    text = markdown_table(shown, index=index, floatfmt=floatfmt)
    (out_dir / f"{name}.md").write_text(text)
    frame.to_csv(out_dir / f"{name}.csv", index=index)
    (out_dir / f"{name}.tex").write_text(latex_table(shown, index=index, floatfmt=floatfmt))
    return text


def compare_table(
    summary_a: pd.DataFrame, summary_b: pd.DataFrame, labels: tuple[str, str]
) -> pd.DataFrame:
    """Two sweeps side by side: per (task, model) the mean of each and the difference B − A.

    Rows present in only one sweep keep NaN on the other side (and in the difference), so a
    model or task that one sweep lacks stays visible rather than vanishing from the table.
    """
    a, b = labels
    left = summary_a.set_index(["task", "model"])[["mean", "n_folds"]]
    right = summary_b.set_index(["task", "model"])[["mean", "n_folds"]]
    table = left.join(right, how="outer", lsuffix=f" {a}", rsuffix=f" {b}")
    table = table.rename(
        columns={
            "mean" + f" {a}": a,
            "mean" + f" {b}": b,
            f"n_folds {a}": f"folds {a}",
            f"n_folds {b}": f"folds {b}",
        }
    )
    table[f"Δ ({b} − {a})"] = table[b] - table[a]
    return table[[a, b, f"Δ ({b} − {a})", f"folds {a}", f"folds {b}"]].sort_index()
