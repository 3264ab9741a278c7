"""Assemble the report folder: every table (md/CSV/LaTeX), every plot, and the README page.

:func:`write_report` is the one place that decides what a report contains; it takes the tidy
run table (already read from MLflow) and, optionally, explanation samples and a second sweep
to compare with, so it runs the same on hand-made tables in tests.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mesobench.config.identity import RUN_KEY_VERSION
from mesobench.metrics import registry
from mesobench.report import comparisons as comparisons_mod
from mesobench.report import parity as parity_mod
from mesobench.report import plots, stats, tables, within_task
from mesobench.report import published as published_mod
from mesobench.report.runs import (
    TREATMENTS,
    Treated,
    cells,
    code_versions,
    failures,
    fidelity_gaps,
    fold_summary,
    key_rules,
    latest_per_key,
    metric_columns,
    metric_summary,
    split_key_versions,
    status_counts,
    treat_missing,
)

#: The interpretable-model families of the explanation picture, in panel order. A family is
#: present when a model of the report is named like it (``imn``, ``imn_fast``, ``imn@1a2b3c``).
EXPLAIN_FAMILIES = {"imn": "IMN", "lfr_imn": "LFR-IMN", "nimo": "NIMO"}

#: Infidelity metrics for the accuracy-vs-infidelity plot, in order of preference: the scaled
#: ones are unit-free, so a mean over tasks is meaningful; Yeh's first, since no model trains on
#: it (the LFR infidelity is LFR-IMN's training objective).
INFIDELITY_PREFERENCE = [
    "fidelity/yeh_scaled_infidelity",
    "fidelity/lfr_scaled_infidelity",
    "fidelity/yeh_infidelity",
    "fidelity/lfr_infidelity",
]


@dataclass
class ReportSettings:
    """What the report computes; mirrors ``conf/aggregate.yaml``."""

    metric: str = "auroc"
    higher_is_better: bool | None = None  # None: from mesobench.metrics.registry
    missing: str = "drop_task"  # see mesobench.report.runs.TREATMENTS
    reference: str | None = "imn"  # win/tie/loss against it; absent: see resolve_reference
    tie_tolerance: float | None = None  # None: the metric's ROPE (comparisons.rope)
    alpha: float = 0.05
    infidelity: str | None = None  # None: first of INFIDELITY_PREFERENCE that was logged
    models: list[str] | None = None  # models that should be there (absent ones are "missing")
    explain_top_k: int = 12
    bootstrap: stats.Bootstrap = field(default_factory=stats.Bootstrap)
    # runs of another run-key rule are left out; None: keep all
    key_version: str | None = RUN_KEY_VERSION
    comparisons: comparisons_mod.ComparisonSettings = field(
        default_factory=comparisons_mod.ComparisonSettings
    )
    claims: tuple[comparisons_mod.Claim, ...] = ()
    cv_folds: int = stats.CV_FOLDS  # k of the k-fold CV the task's folds come from
    # the experiment's tuning protocol, printed in the header
    protocol: TuningProtocol | None = None

    def direction(self) -> bool:
        """Whether higher values of the metric are better: the registry's, or the override."""
        return registry.higher_is_better(self.metric, self.higher_is_better)

    def tolerance(self) -> float:
        """The win/tie/loss tie band: ``tie_tolerance``, else the headline metric's ROPE."""
        if self.tie_tolerance is not None:
            return float(self.tie_tolerance)
        return self.comparisons.rope_of(self.metric)


@dataclass(frozen=True)
class TuningProtocol:
    """How an experiment tunes its models (``protocol`` of its config), printed in its report:
    ``default`` (no model tuned) or ``tuned`` (every model searched on one budget), and the
    models exempt from it with the reason the experiment states."""

    name: str
    budget: str = ""
    exempt: dict[str, str] = field(default_factory=dict)

    def lines(self) -> list[str]:
        what = {
            "default": "every model at its configured defaults, none tuned",
            "tuned": f"every model tuned on the same budget ({self.budget})",
        }.get(self.name, self.name)
        text = f"**Tuning protocol: `{self.name}`** — {what}."
        if self.exempt:
            text += " Exempt: " + "; ".join(f"{m} ({why})" for m, why in self.exempt.items())
            text += "."
        return [text, ""]


@dataclass
class Comparison:
    """A second sweep for ``--compare``: its runs and the labels of both sides."""

    runs: pd.DataFrame
    labels: tuple[str, str]


@dataclass
class ExplanationInput:
    """Samples for the explanation picture and where they come from (task, fold, seed)."""

    samples: dict[str, plots.ExplanationSample]
    source: str
    absent: list[str] = field(default_factory=list)  # family names with no model in the report
    row: int | None = None
    klass: str | None = None


def default_infidelity(long: pd.DataFrame) -> str | None:
    """The infidelity metric logged by the most models (ties: INFIDELITY_PREFERENCE order)."""
    present = long[long["metric"].isin(INFIDELITY_PREFERENCE)]
    if present.empty:
        return None
    coverage = present.groupby("metric")["model"].nunique()
    ordered = sorted(coverage.index, key=lambda m: (-coverage[m], INFIDELITY_PREFERENCE.index(m)))
    return ordered[0]


def family_members(models: list[str], family: str) -> list[str]:
    """Models of the report that belong to an explanation family, exact name first."""

    def base(name: str) -> str:
        return name.split("@")[0]

    exact = [m for m in models if base(m) == family]
    prefixed = [m for m in models if base(m).startswith(family + "_") and m not in exact]
    return sorted(exact) + sorted(prefixed)


def choose_explanation_runs(
    runs: pd.DataFrame,
    families: list[str],
    *,
    task: str | None = None,
) -> tuple[dict[str, str], str, list[str]]:
    """Pick one run per family for the explanation picture: same task, fold and seed.

    Only FINISHED runs that ran ``explain()`` (they log ``explain_seconds``, and the runner logs
    the local-weights sample in the same step) qualify. Without ``task``, the task where most
    families have such a run (ties: alphabetical) is used, at its smallest common (fold, seed).
    Returns ``{model: run_id}``, a description of the source, and the families absent.
    """
    done = runs[runs["status"].eq("FINISHED")]
    done = done[done["explain_seconds"].notna()] if "explain_seconds" in done else done.iloc[0:0]
    models = sorted(runs["model"].dropna().unique())
    chosen_models: dict[str, str] = {}
    absent = []
    for family in families:
        members = [m for m in family_members(models, family) if m in set(done["model"])]
        if members:
            chosen_models[family] = members[0]
        else:
            absent.append(family)
    if not chosen_models:
        return {}, "", absent
    candidates = done[done["model"].isin(chosen_models.values())]
    if task is None:
        coverage = candidates.groupby("task")["model"].nunique()
        best = coverage[coverage == coverage.max()]
        task = sorted(best.index)[0]
    on_task = candidates[candidates["task"].eq(task)]
    if on_task.empty:
        return {}, f"task {task}", absent
    pairs = on_task.groupby(["fold", "seed"])["model"].nunique()
    fold, seed = sorted(pairs[pairs == pairs.max()].index)[0]
    picked = on_task[on_task["fold"].eq(fold) & on_task["seed"].eq(seed)]
    picked = picked.sort_values("start_time").groupby("model").tail(1)
    run_ids = dict(zip(picked["model"], picked["run_id"], strict=True))
    source = f"task {task}, fold {int(fold)}, seed {int(seed)}"
    absent += [f for f, m in chosen_models.items() if m not in run_ids]
    return run_ids, source, absent


def resolve_reference(wanted: str | None, models: list[str], ranks: pd.Series) -> tuple[str, str]:
    """The reference model and a sentence on how it was chosen.

    The configured name if present; else the first model of its family (``imn`` → ``imn_fast``);
    else the best-ranked model, said so in the report.
    """
    if wanted and wanted in models:
        return wanted, f"reference: {wanted}"
    members = family_members(models, wanted) if wanted else []
    if members:
        return members[0], f"reference: {members[0]} ({wanted} itself is not in this report)"
    best = str(ranks.index[0])
    why = f"{wanted} is not in this report; " if wanted else ""
    return best, f"reference: {best} ({why}the best average rank)"


def write_report(
    runs: pd.DataFrame,
    out_dir: Path,
    title: str,
    command: str = "python -m mesobench.aggregate",
    settings: ReportSettings | None = None,
    *,
    source: str = "the MLflow store",
    explanations: ExplanationInput | KeptExplanation | None = None,
    comparison: Comparison | None = None,
    selection: str = "",
    parity: parity_mod.ParityReference | None = None,
    published: Published | None = None,
) -> str:
    """Write every table and plot of the report into ``out_dir``; return the README page.

    ``parity``: reference figures to compare the runs with, fold by fold (a section of its own,
    :mod:`mesobench.report.parity`). ``published``: papers' figures beside ours and the
    experiment's acceptance targets (:mod:`mesobench.report.published`).
    """
    s = settings or ReportSettings()
    metric = s.metric
    out_dir.mkdir(parents=True, exist_ok=True)
    _clear_previous_report(out_dir)
    current, n_old_rule = split_key_versions(runs, s.key_version)
    keyed = latest_per_key(current)
    if metric not in keyed:
        keyed = keyed.assign(**{metric: float("nan")})
    models = expected_models(keyed, s.models)
    summary = with_intervals(fold_summary(keyed, metric), keyed, metric, s)
    long = metric_summary(keyed)
    treated = treat_missing(keyed, metric, s.missing, models=models, higher_is_better=s.direction())
    compared = paired_comparisons(treated, long, s)
    lines = _header_lines(keyed, models, title, command, source, selection, n_old_rule)
    lines += s.protocol.lines() if s.protocol is not None else []
    lines += _findings_section(compared, s)
    if published is not None:
        lines += _published_section(keyed, published, out_dir)
    if parity is not None:
        lines += _parity_section(keyed, parity, metric, out_dir)
    lines += _per_task_section(keyed, summary, long, models, s, out_dir)
    if s.comparisons.within_tasks:
        within = within_task_comparisons(keyed, models, s)
        lines += within_task.section(within, s.comparisons, out_dir)
    lines += _across_tasks_section(treated, s, out_dir, compared)
    lines += _fidelity_section(keyed, long, summary, models, metric, s, out_dir)
    lines += _time_section(keyed, out_dir)
    lines += _explanation_section(explanations, s, out_dir)
    lines += _missing_section(keyed, treated, out_dir)
    status = status_counts(keyed) if not keyed.empty else pd.DataFrame()
    lines += ["## Runs per model", "", tables.write_table(status, out_dir, "status")]
    if comparison is not None:
        lines += _compare_section(summary, comparison, metric, s, out_dir)
    page = "\n".join(lines)
    (out_dir / "README.md").write_text(page + "\n" + MARKER + "\n")
    return page


def with_intervals(
    summary: pd.DataFrame, keyed: pd.DataFrame, metric: str, s: ReportSettings
) -> pd.DataFrame:
    """``summary`` (per task and model) with the corrected resampled t interval of the mean over
    the cell's folds (:func:`mesobench.report.stats.corrected_t_cells`)."""
    if summary.empty or metric not in keyed:
        return summary.assign(ci_low=np.nan, ci_high=np.nan)
    done = keyed[keyed["status"].eq("FINISHED")]
    ci = stats.corrected_t_cells(done, metric, s.comparisons.confidence, s.cv_folds)
    ci = ci.rename(columns={"low": "ci_low", "high": "ci_high"})
    return summary.merge(ci, on=["task", "model"], how="left")


def comparison_scores(
    treated: Treated, long: pd.DataFrame, s: ReportSettings
) -> tuple[dict[str, pd.DataFrame], dict[str, bool]]:
    """Per-task scores (tasks × models) of every compared metric, and each metric's direction.

    The headline metric's are the cross-task statistics' own (after ``missing``); another
    metric's are its per-task means over finished runs.
    """
    wanted = list(dict.fromkeys([*s.comparisons.metrics, *(c.metric for c in s.claims)]))
    scores, directions = {}, {}
    for metric in wanted:
        if metric == s.metric:
            table = treated.scores
            directions[metric] = s.direction()
        else:
            part = long[long["metric"].eq(metric)]
            if part.empty:
                continue
            table = part.pivot(index="task", columns="model", values="mean")
            directions[metric] = registry.higher_is_better(metric)
        scores[metric] = table
    return scores, directions


def paired_comparisons(treated: Treated, long: pd.DataFrame, s: ReportSettings) -> pd.DataFrame:
    """The report's paired comparisons (:mod:`mesobench.report.comparisons`): the claims', the
    declared pairs and the ``scope``'s, on every compared metric, Holm-corrected together."""
    scores, directions = comparison_scores(treated, long, s)
    headline = scores.get(s.metric, treated.scores)
    models = list(headline.columns)
    ranks = stats.average_rank(headline.dropna(), s.direction()) if models else pd.Series()
    reference = None
    if models and not ranks.empty:
        reference = resolve_reference(s.reference, models, ranks)[0]
    pairs = comparisons_mod.declared_pairs(models, s.comparisons, s.claims, reference)
    return comparisons_mod.compare(scores, pairs, directions, s.comparisons)


def within_task_comparisons(
    keyed: pd.DataFrame, models: list[str], s: ReportSettings
) -> pd.DataFrame:
    """The pairs of :func:`paired_comparisons` (claims, declared, the ``scope``'s with the
    configured reference) compared within each task over its folds (:mod:`.within_task`)."""
    present = [m for m in models if m in set(keyed["model"])]
    reference = s.reference if s.reference in present else None
    pairs = comparisons_mod.declared_pairs(present, s.comparisons, s.claims, reference)
    wanted = dict.fromkeys([*s.comparisons.metrics, *(c.metric for c in s.claims)])
    directions = {
        m: s.direction() if m == s.metric else registry.higher_is_better(m) for m in wanted
    }
    return within_task.compare_within_tasks(keyed, pairs, directions, s.comparisons, s.cv_folds)


def _findings_section(compared: pd.DataFrame, s: ReportSettings) -> list[str]:
    """The report's opening: one sentence per claim of the experiment, verdict first."""
    if not s.claims:
        return []
    c = s.comparisons
    return [
        "## Findings",
        "",
        "Each claim of the experiment (`aggregate.claims`) with its verdict by the stated rule: "
        f"the Bayesian signed-rank test over tasks (Benavoli et al. 2017) says *A better*, *B "
        f"better* or *equivalent within ±ROPE* when that posterior probability is ≥ "
        f"{c.posterior:g}, else *inconclusive*. Mean difference with its {c.confidence:.0%} "
        "t interval over tasks; Wilcoxon signed-rank p, Holm-corrected across every comparison "
        "of this report. Every pair: [comparisons.md](comparisons.md).",
        "",
        *(comparisons_mod.finding(claim, compared, c.posterior) for claim in s.claims),
        "",
    ]


def _header_lines(
    keyed: pd.DataFrame,
    models: list[str],
    title: str,
    command: str,
    source: str,
    selection: str,
    n_old_rule: int,
) -> list[str]:
    """Title, counts, how to regenerate the page, and which code made the runs."""
    n_done = int(keyed["status"].eq("FINISHED").sum()) if not keyed.empty else 0
    n_tasks = keyed["task"].nunique() if not keyed.empty else 0
    return [
        f"# {title}",
        "",
        f"{len(keyed)} runs ({n_done} finished) of {len(models)} model(s) on {n_tasks} task(s)"
        + (f"; selection: {selection}" if selection else "")
        + ".",
        "",
        f"Regenerated from {source} by `{command}`; from the committed runs table alone: "
        "the same command with `runs=<this folder>/runs.csv`. Each configuration (run key) "
        "counts once: its latest FINISHED run, else its latest run. Tables are also in CSV and "
        "LaTeX (`*.csv`, `*.tex`) beside this page.",
        "",
        *_provenance_lines(keyed, n_old_rule),
    ]


def _per_task_section(
    keyed: pd.DataFrame,
    summary: pd.DataFrame,
    long: pd.DataFrame,
    models: list[str],
    s: ReportSettings,
    out_dir: Path,
) -> list[str]:
    """The metric's mean and interval over folds per (task, model), every metric on its own
    page."""
    metric, confidence, cv_folds = s.metric, s.comparisons.confidence, s.cv_folds
    stem = file_stem(metric)
    cell_table = cells(keyed, metric, models)
    wide = tables.wide_mean_ci(summary, expected=cell_table)
    keyed.to_csv(out_dir / "runs.csv", index=False)
    summary.to_csv(out_dir / f"{stem}_by_task.csv", index=False)
    long.to_csv(out_dir / "metrics_by_task.csv", index=False)
    (out_dir / f"{stem}_by_task.md").write_text(tables.markdown_table(wide))
    (out_dir / f"{stem}_by_task.tex").write_text(tables.latex_table(wide))
    (out_dir / "metrics_by_task.md").write_text(_every_metric_page(long, cell_table))
    lines = [
        f"## {metric}: mean [{confidence:.0%} corrected resampled t interval] over folds, per task",
        "",
        "Intervals: the corrected resampled t interval of the mean over the cell's J folds "
        "(Nadeau & Bengio 2003), mean ± t_{J−1} √((1/J + n_test/n_train) s²): folds of one "
        "cross-validation share training rows, so their scores are correlated and a plain "
        f"or bootstrap interval is too narrow; n_test/n_train = 1/{cv_folds - 1} for the "
        f"{cv_folds}-fold CV of an OpenML task, 0 for synthetic tasks (every replicate draws "
        "fresh data). A cell of one fold has none; the standard deviations are in "
        f"`{stem}_by_task.csv`. (k/n): only k of the n expected runs finished; — : no "
        "finished run. Every other metric per task: [metrics_by_task.md](metrics_by_task.md).",
        "",
        tables.markdown_table(wide) if not wide.empty else "_(no finished runs)_\n",
    ]
    if not summary.empty:
        plots.per_task_scores(summary, metric, out_dir / f"{stem}_by_task.png")
        lines += [f"![{metric} per task]({stem}_by_task.png)", ""]
    return lines


def _across_tasks_section(
    treated: Treated, s: ReportSettings, out_dir: Path, compared: pd.DataFrame
) -> list[str]:
    """Paired comparisons first; then average ranks, normalised scores, the Friedman test (and
    the Nemenyi CD only if it rejects) and the reference's win/tie/loss, over the tasks where
    every model has a result (after ``s.missing``)."""
    metric, hib = s.metric, s.direction()
    scores = treated.scores.dropna(axis=0, how="any")
    treatment_line = (
        f"Incomplete (task, model) cells are treated with `missing: {s.missing}`: "
        f"{TREATMENTS[s.missing]}."
    )
    lines = ["## Across tasks", ""]
    if scores.empty or scores.shape[1] < 2:
        return lines + [
            f"_Cross-task statistics need at least 2 models on at least 1 task where every "
            f"model has a result (after treating missing runs); have {scores.shape[1]} model(s) "
            f"on {len(scores)} task(s)._",
            "",
            treatment_line
            + (
                " Every task was left out (see *Missing and failed runs*): narrow the selection "
                "(`filters.models`, `filters.tasks`) or choose another treatment "
                "(`missing=worst` or `missing=available`)."
                if treated.dropped and scores.empty
                else ""
            ),
            "",
            *_comparisons_section(compared, s, out_dir),
        ]
    ranks = stats.average_rank(scores, hib)
    left_out = (
        f" Left out: {', '.join(f'{t} ({why})' for t, why in treated.dropped.items())}."
        if treated.dropped
        else ""
    )
    lines += [
        f"Over the {len(scores)} task(s) where every model has a result. {treatment_line}"
        + left_out,
        "",
        *_comparisons_section(compared, s, out_dir),
        *_ranking_lines(scores, ranks, metric, hib, out_dir, s.bootstrap),
    ]
    fried = stats.friedman(scores)
    lines += _friedman_section(fried, ranks, scores, s.alpha, out_dir, hib)
    reference, how = resolve_reference(s.reference, list(scores.columns), ranks)
    tolerance = s.tolerance()
    wtl = stats.win_tie_loss(scores, reference, tolerance=tolerance, higher_is_better=hib)
    band = "the tie band `tie_tolerance`" if s.tie_tolerance is not None else "the ROPE"
    return lines + [
        f"### Win / tie / loss of {reference}",
        "",
        f"{how}. Per task, {reference} wins when its {metric} beats the other model's by "
        f"more than {tolerance:g} ({band}), loses when it trails by more, else ties. "
        f"mean_delta: mean over tasks of {reference} − other (> 0 favours {reference}); "
        "wilcoxon_p: two-sided Wilcoxon signed-rank test over tasks; holm_p: Holm-corrected "
        "across the rows of this table.",
        "",
        tables.write_table(wtl, out_dir, "win_tie_loss"),
    ]


def _comparisons_section(compared: pd.DataFrame, s: ReportSettings, out_dir: Path) -> list[str]:
    """The paired comparisons table (``comparisons.csv/md/tex``): the primary statistic."""
    c = s.comparisons
    lines = ["### Paired comparisons", ""]
    if compared.empty:
        return lines + ["_No pair to compare (fewer than two models with results)._", ""]
    compared_metrics = list(compared["metric"].unique())
    ropes = ", ".join(f"{m} ±{c.rope_of(m):g}" for m in compared_metrics)
    no_rope = [m for m in compared_metrics if c.rope_of(m) == 0]
    scope = {
        "declared": "the pairs the experiment declares",
        "reference": "the declared pairs and every model against the reference",
        "all": "every pair of models",
    }[c.scope]
    return lines + [
        f"Pairs compared: {scope} (`comparisons.scope: {c.scope}`), on the per-task means over "
        "folds, over the tasks both models have. mean_diff = A − B in the metric's units with "
        f"its {c.confidence:.0%} Student-t interval over tasks; p_wilcoxon: two-sided Wilcoxon "
        "signed-rank test; p_holm: Holm-corrected across every row of this table; "
        "p_a_better / p_rope / p_b_better: Bayesian signed-rank test (Benavoli et al. 2017, "
        f"`baycomp`, {c.nsamples} posterior samples, seed {c.seed}) with a region of practical "
        f"equivalence of {ropes}; better follows the metric's direction. Verdict: the outcome "
        f"whose posterior probability is ≥ {c.posterior:g}, else inconclusive."
        + (
            f" No ROPE is declared for {', '.join(no_rope)} (`comparisons.rope`): no pair can "
            "be called equivalent on it."
            if no_rope
            else ""
        ),
        "",
        tables.write_table(compared, out_dir, "comparisons", index=False),
    ]


def _ranking_lines(
    scores: pd.DataFrame,
    ranks: pd.Series,
    metric: str,
    hib: bool,
    out_dir: Path,
    boot: stats.Bootstrap,
) -> list[str]:
    """The average-rank table (with normalised and mean scores) and its CSVs."""
    stem = file_stem(metric)
    rank_by_task = stats.rank_matrix(scores, hib)
    normalised = stats.normalised_scores(scores, hib)
    rank_ci = stats.bootstrap_over_tasks(scores, boot, hib)
    mean_ci = stats.bootstrap_over_tasks(scores, boot)
    ranking = pd.DataFrame(
        {
            "average_rank": ranks,
            "rank_low": rank_ci["low"],
            "rank_high": rank_ci["high"],
            f"normalised_{metric}": normalised.mean(axis=0),
            f"mean_{metric}": scores.mean(axis=0),
            "mean_low": mean_ci["low"],
            "mean_high": mean_ci["high"],
        }
    ).loc[ranks.index]
    ranking.index.name = "model"
    rank_by_task.to_csv(out_dir / "ranks_by_task.csv")
    normalised.to_csv(out_dir / f"normalised_{stem}_by_task.csv")
    scores.to_csv(out_dir / f"{stem}_used_for_ranking.csv")
    n_flat = int(normalised.isna().all(axis=1).sum())
    return [
        "### Average rank",
        "",
        f"Rank 1 = best {metric} on a task; tied models share the average of their ranks. "
        f"Normalised {metric}: per task (score − worst) / (best − worst) over the models, "
        "1 = best, averaged over tasks"
        + (f" ({n_flat} task(s) where all models tie are left out of it)" if n_flat else "")
        + f". [low, high]: {boot.confidence:.0%} percentile-bootstrap interval over the tasks "
        f"(resampled with replacement, {boot.n_resamples} times, seed {boot.seed}).",
        "",
        tables.write_table(ranking, out_dir, "average_rank", shown=tables.with_brackets(ranking)),
    ]


def _time_section(keyed: pd.DataFrame, out_dir: Path) -> list[str]:
    time = tables.time_table(keyed)
    lines = ["## Time per run (seconds)", ""]
    if time.empty:
        return lines + ["_(no timings logged)_", ""]
    return lines + [
        "Mean wall-clock seconds per finished run (fit includes any hyperparameter search; "
        "explain = the model's own explain(); fidelity = computing the fidelity metrics), "
        "and the total in hours. Measured under the sweep's load: compare within a sweep.",
        "",
        tables.write_table(time, out_dir, "time", floatfmt=".3f"),
    ]


@dataclass
class Published:
    """Papers' tables to set beside ours, targets to check, and the model that is the ceiling."""

    tables: list[published_mod.PublishedTable]
    targets: list[published_mod.Target]
    ceiling: str | None = None


def _published_section(keyed: pd.DataFrame, pub: Published, out_dir: Path) -> list[str]:
    lines: list[str] = []
    ceiling_text = (
        f" `ceiling`: {pub.ceiling} on the same task and test rows (for prediction metrics the "
        "best any model can reach there: the noise floor, the Bayes rule)."
        if pub.ceiling
        else ""
    )
    if pub.tables:
        lines += [
            "## Published vs reproduced",
            "",
            "Each paper's figures (data: the file named) beside ours: mean ± sd over folds "
            f"(data replicates) of the mapped model config, n = folds finished.{ceiling_text}",
            "",
        ]
        frames = []
        for table in pub.tables:
            frame = published_mod.published_vs_reproduced(keyed, table, pub.ceiling)
            frames.append(frame.assign(paper=table.paper, version=table.version))
            direction = registry.info(table.metric).higher_is_better
            better = {True: "higher is better", False: "lower is better"}.get(direction, "")
            lines += [
                f"### {table.paper}: {table.metric} ({better})",
                "",
                f"Version: {table.version}. Source: {table.source}. File: `{table.path}`.",
                "",
                tables.markdown_table(_published_view(frame), floatfmt=".4g"),
            ]
        pd.concat(frames, ignore_index=True).to_csv(
            out_dir / "published_vs_reproduced.csv", index=False
        )
    if pub.targets:
        checked = published_mod.check_targets(keyed, pub.targets, pub.ceiling)
        lines += [
            "## Acceptance targets",
            "",
            "The experiment's targets (data: `aggregate.targets` of its config), checked on "
            "these runs. Over tasks: the mean over tasks of the per-task fold means (ratios: "
            f"their geometric mean).{ceiling_text}",
            "",
            tables.write_table(checked.set_index("check"), out_dir, "targets", floatfmt=".4g"),
        ]
    return lines


def _published_view(frame: pd.DataFrame) -> pd.DataFrame:
    """The printed columns: reproduced as mean ± sd (n)."""
    shown = frame[["task", "paper_model", "model", "published"]].copy()
    shown["reproduced"] = [
        "—" if n == 0 else (f"{m:.4g} ± {s:.2g} ({n})" if n > 1 else f"{m:.4g} (1)")
        for m, s, n in zip(frame["reproduced"], frame["sd"], frame["n"], strict=True)
    ]
    shown["ceiling"] = [("—" if np.isnan(c) else f"{c:.4g}") for c in frame["ceiling"]]
    return shown.set_index("task")


def expected_models(keyed: pd.DataFrame, listed: list[str] | None) -> list[str]:
    """The report's models: those with runs, plus listed ones that have none (shown missing).

    A listed name counts as present when a configuration of it ran (``imn[optimizer=adamw]``,
    ``imn@1a2b3c``), so a selection by base name never adds a phantom empty column.
    """
    present = set(keyed["model"].dropna()) if not keyed.empty else set()
    bases = {re.split(r"[\[@]", m, maxsplit=1)[0] for m in present}
    absent = {m for m in listed or [] if m not in present and m not in bases}
    return sorted(present | absent) if present else []


def file_stem(metric: str) -> str:
    """The metric's name as a file-name part: ``fidelity/gt_gradient_mae`` → ``fidelity_gt_...``.

    Metric names hold ``/`` (MLflow's namespaces), which would otherwise become folders.
    """
    return metric.replace("/", "_")


#: Last line of a report's README: marks the folder as ours to rewrite.
MARKER = "<!-- written by mesobench.aggregate: files here are replaced on regeneration -->"


def _clear_previous_report(out_dir: Path) -> None:
    """Remove the files of the previous report in ``out_dir`` (only if it wrote them).

    A table or plot that cannot be made any more (a model left, fidelity no longer logged) must
    not linger beside the new report. Only a folder whose README carries :data:`MARKER` is
    cleared, and only its top-level md / csv / tex / png files.
    """
    readme = out_dir / "README.md"
    if not readme.exists() or MARKER not in readme.read_text():
        return
    for pattern in ("*.md", "*.csv", "*.tex", "*.png"):
        for old in out_dir.glob(pattern):
            old.unlink()


def _provenance_lines(keyed: pd.DataFrame, n_old_rule: int) -> list[str]:
    """Which code made the runs (a warning when several commits or uncommitted changes mix),
    and how many runs of an older run-key rule were left out."""
    lines = []
    versions = code_versions(keyed)
    if not versions.empty:
        listed = ", ".join(
            f"`{str(r.git_commit)[:12]}`{' (uncommitted changes)' if r.dirty == 'true' else ''}: "
            f"{r.runs} run(s)"
            for r in versions.itertuples()
        )
        warning = ""
        if versions["git_commit"].nunique() > 1:
            warning = (
                "**Warning: these runs mix code versions**; results may differ for reasons that "
                "are not in their configuration. "
            )
        elif versions["dirty"].eq("true").any():
            warning = (
                "**Warning: runs made with uncommitted changes** to the code or configs; the "
                "commit alone does not identify their code. "
            )
        lines += [f"{warning}Code (`mlflow.source.git.commit`): {listed}.", ""]
    if not keyed.empty:
        rules = key_rules(keyed)
        older = rules.ne(RUN_KEY_VERSION)
        if older.any():
            counts = ", ".join(f"rule {v}: {n}" for v, n in rules[older].value_counts().items())
            lines += [
                f"**Runs of an older run-key rule are included** ({counts}; current rule "
                f"{RUN_KEY_VERSION}): they were made by older code, selected with "
                "`filters.key_version`; rerunning the experiment redoes them under the current "
                "rule.",
                "",
            ]
    if n_old_rule:
        lines += [
            f"{n_old_rule} run(s) keyed by an older run-key rule were left out (they cannot be "
            "matched with current runs of the same configuration); running the same sweep "
            "again redoes them under the current rule.",
            "",
        ]
    return lines


def _every_metric_page(long: pd.DataFrame, cell_table: pd.DataFrame) -> str:
    parts = ["# Every metric: mean ± std over folds, per task", ""]
    for metric in sorted(long["metric"].unique()) if not long.empty else []:
        part = long[long["metric"].eq(metric)]
        parts += [f"## {metric}", "", tables.markdown_table(tables.wide_mean_std(part))]
    return "\n".join(parts)


def _friedman_section(
    fried: stats.Friedman,
    ranks: pd.Series,
    scores: pd.DataFrame,
    alpha: float,
    out_dir: Path,
    hib: bool,
) -> list[str]:
    k, n = scores.shape[1], scores.shape[0]
    lines = ["### Friedman test and Nemenyi critical difference", ""]
    cd = stats.critical_difference(k, n, alpha) if k >= 2 and n >= 1 else math.nan
    if not rejects(fried, alpha):
        cd = math.nan  # no post-hoc test where the omnibus test found nothing
    row = {
        "models (k)": k,
        "tasks (N)": n,
        "friedman_chi2": fried.statistic,
        "friedman_p": fried.pvalue,
        "iman_davenport_F": fried.iman_davenport,
        "iman_davenport_p": fried.iman_davenport_pvalue,
        "alpha": alpha,
        "nemenyi_q": stats.nemenyi_q(k, alpha) if k >= 2 else math.nan,
        "critical_difference": cd,
    }
    frame = pd.DataFrame([row]).astype(float)
    frame[["models (k)", "tasks (N)"]] = frame[["models (k)", "tasks (N)"]].astype(int)
    text = tables.write_table(frame, out_dir, "friedman", index=False)
    if fried.reason and fried.statistic is None:
        lines += [f"Friedman test not computed: {fried.reason}.", ""]
    else:
        verdict = (
            "the models' ranks differ significantly"
            if fried.pvalue is not None and fried.pvalue < alpha
            else "no significant difference among the models"
        )
        lines += [
            f"Friedman χ² = {fried.statistic:.3f} (p = {fried.pvalue:.3g}); Iman–Davenport "
            f"F = {fried.iman_davenport:.3f} (p = {fried.iman_davenport_pvalue:.3g}): "
            f"{verdict} at α = {alpha:g}." + (f" ({fried.reason}.)" if fried.reason else ""),
            "",
        ]
    lines += [text]
    if k < 2:
        return lines
    if not rejects(fried, alpha):
        plots.cd_diagram(
            ranks,
            math.nan,
            out_dir / "ranks.png",
            title="average ranks (Friedman: no difference detected)",
        )
        return lines + [
            f"The Friedman test detected no difference among the models (p > α = {alpha:g} or "
            "not computable), so no post-hoc test is made: the average ranks are shown without "
            "Nemenyi cliques, and no pair is called different on this ground (the paired "
            "comparisons above are the primary statistic).",
            "",
            "![average ranks](ranks.png)",
            "",
        ]
    plots.cd_diagram(ranks, cd, out_dir / "cd_diagram.png", title=f"Nemenyi, α = {alpha:g}")
    return lines + [
        f"The Friedman test rejects at α = {alpha:g}, so the Nemenyi post-hoc test follows. "
        f"CD = q_α √(k(k+1)/6N) = {cd:.3f}: two models whose average ranks differ by "
        "more are significantly different; models joined by a bar are not. "
        + (f"With N = {n} task(s) the test has little power. " if n < 10 else ""),
        "",
        "![critical-difference diagram](cd_diagram.png)",
        "",
    ]


def rejects(fried: stats.Friedman, alpha: float) -> bool:
    """Whether the omnibus Friedman test (χ², scipy) rejects at ``alpha``: the condition for any
    post-hoc comparison of all pairs (Demšar 2006)."""
    return fried.pvalue is not None and math.isfinite(fried.pvalue) and fried.pvalue <= alpha


def _fidelity_section(
    keyed: pd.DataFrame,
    long: pd.DataFrame,
    summary: pd.DataFrame,
    models: list[str],
    metric: str,
    s: ReportSettings,
    out_dir: Path,
) -> list[str]:
    lines = ["## Explanation fidelity", ""]
    fidelity = tables.fidelity_table(long, models)
    lfr = tables.fidelity_table(long, models, tables.LFR_METRICS)
    if fidelity.empty and lfr.empty:
        return lines + [
            "_No run in this selection logged fidelity metrics (`fidelity/*`): no model with "
            "local attributions, or runs older than the fidelity metrics._",
            "",
        ]
    fidelity_long = long[long["metric"].str.startswith("fidelity/")]
    fidelity_long.to_csv(out_dir / "fidelity_by_task.csv", index=False)
    lines += [
        "Mean over tasks of the per-task mean (lower is better except for insertion_auc and "
        "faithfulness_correlation). Every model is scored in one space, the task's raw "
        "features, against one baseline row (training-fold mean / most frequent category), "
        "with attributions per original feature (docs/fidelity.md); no model trains on these "
        "metrics. — : a model with no attributions. The raw yeh_infidelity is in squared "
        "output units and dominated by tasks with large outputs; the scaled one (1 = no better "
        "than a zero attribution) and deletion_auc (< 0 = faithful order) compare across "
        "tasks. Definitions: `mesobench.metrics.fidelity`; per task: `fidelity_by_task.csv`.",
        "",
        tables.write_table(fidelity, out_dir, "fidelity") if not fidelity.empty else "",
    ]
    if not lfr.empty:
        lines += [
            "",
            "The LFR infidelity of the models with local linear explanations (their own input "
            "units). **It is LFR-IMN's training objective**, low partly by construction, so no "
            "conclusion rests on it alone.",
            "",
            tables.write_table(lfr, out_dir, "fidelity_lfr"),
        ]
    have = set(map(tuple, fidelity_long[["task", "model"]].drop_duplicates().to_numpy()))
    gaps = fidelity_gaps(keyed, have)
    if not gaps.empty:
        lines += [
            "",
            "Tasks left out of a model's fidelity means above (its runs finished, but logged no "
            "fidelity metric there), with the reason its runs noted:",
            "",
            *(f"- {g.model} on {g.task}: {g.reason}" for g in gaps.itertuples()),
        ]
        gaps.to_csv(out_dir / "fidelity_gaps.csv", index=False)
    lines += _fidelity_ranks_section(long, s, out_dir)
    infidelity = s.infidelity or default_infidelity(long)
    if infidelity is None or infidelity not in set(long["metric"]):
        return lines + [f"_No `{s.infidelity}` logged: no {metric}-vs-infidelity plot._", ""]
    lines += _trade_off_plot(summary, long, models, metric, infidelity, "infidelity", out_dir)
    if STABILITY_METRIC in set(long["metric"]):
        lines += _trade_off_plot(
            summary, long, models, metric, STABILITY_METRIC, "stability", out_dir
        )
    return lines


STABILITY_METRIC = "fidelity/max_sensitivity"


def _trade_off_plot(
    summary: pd.DataFrame,
    long: pd.DataFrame,
    models: list[str],
    metric: str,
    x_metric: str,
    what: str,
    out_dir: Path,
) -> list[str]:
    """The headline metric against a lower-is-better explanation metric, Pareto front marked."""
    x = long[long["metric"].eq(x_metric)][["task", "model", "mean"]]
    both = summary[["task", "model", "mean"]].merge(x, on=["task", "model"], suffixes=("", "_x"))
    both = both.rename(columns={"mean": "score", "mean_x": "infidelity"})
    without = sorted(set(models) - set(both["model"]))
    name = f"{file_stem(metric)}_vs_{what}.png"
    plots.score_vs_infidelity(both, metric, x_metric, out_dir / name, without)
    return [
        f"{metric} against `{x_metric}` per model (large points: means over tasks; faint: "
        "per task; circled and joined: the Pareto front of the means)."
        + (f" Not shown (no attributions): {', '.join(without)}." if without else ""),
        "",
        f"![{metric} vs {what}]({name})",
        "",
    ]


def _fidelity_ranks_section(long: pd.DataFrame, s: ReportSettings, out_dir: Path) -> list[str]:
    """Every fidelity metric with a direction ranked like the headline metric: average ranks
    with bootstrap intervals over the tasks where every model that logged it has a value, the
    Friedman test and a CD diagram each."""
    rows, images = [], []
    for metric in tables.FIDELITY_METRICS:
        info = registry.METRICS.get(metric)
        if info is None or info.higher_is_better is None or metric not in set(long["metric"]):
            continue
        part = long[long["metric"].eq(metric)]
        scores = part.pivot(index="task", columns="model", values="mean").dropna()
        if scores.shape[1] < 2 or scores.shape[0] < 2:
            continue
        hib = info.higher_is_better
        ranks = stats.average_rank(scores, hib)
        ci = stats.bootstrap_over_tasks(scores, s.bootstrap, hib)
        fried = stats.friedman(scores)
        cd = stats.critical_difference(scores.shape[1], scores.shape[0], s.alpha)
        stem = file_stem(metric)
        if rejects(fried, s.alpha):
            plots.cd_diagram(
                ranks, cd, out_dir / f"cd_diagram_{stem}.png", title=f"{metric}, Nemenyi"
            )
            images.append(f"![CD diagram of {metric}](cd_diagram_{stem}.png)")
        else:
            cd = math.nan  # no post-hoc test where the omnibus test found nothing
        for model, rank in ranks.items():
            rows.append(
                {
                    "metric": metric.removeprefix("fidelity/"),
                    "model": model,
                    "average_rank": rank,
                    "rank_low": ci.loc[model, "low"],
                    "rank_high": ci.loc[model, "high"],
                    "tasks": scores.shape[0],
                    "friedman_p": fried.pvalue,
                    "critical_difference": cd,
                }
            )
    if not rows:
        return []
    ranked = pd.DataFrame(rows).set_index(["metric", "model"])
    return [
        "",
        "### Fidelity ranked",
        "",
        "Each fidelity metric ranked across tasks like the headline metric (rank 1 = most "
        "faithful by that metric's direction; over the tasks where every model that logged it "
        f"has a value). [low, high]: {s.bootstrap.confidence:.0%} bootstrap interval over tasks; "
        "friedman_p: Friedman test over those tasks; where it rejects at "
        f"α = {s.alpha:g}, two models whose average ranks differ by more than "
        "critical_difference (Nemenyi) differ significantly and a CD diagram is drawn; where it "
        "does not, no post-hoc test is made (critical_difference empty).",
        "",
        tables.write_table(ranked, out_dir, "fidelity_ranks", shown=tables.with_brackets(ranked)),
        "",
        *images,
        "",
    ]


@dataclass
class KeptExplanation:
    """The explanation section and picture of the report being regenerated, kept as they were:
    they were drawn from explanation samples in the MLflow store, which a runs table does not
    carry (:func:`kept_explanation`)."""

    lines: list[str]
    picture: bytes


EXPLANATION_HEADER = "## One instance explained"


def kept_explanation(out_dir: Path) -> KeptExplanation | None:
    """The explanation section and ``explanation.png`` of the report in ``out_dir``, if any."""
    readme, png = out_dir / "README.md", out_dir / "explanation.png"
    if not (readme.exists() and png.exists()):
        return None
    text = readme.read_text().split(EXPLANATION_HEADER, 1)
    if len(text) != 2:
        return None
    body = text[1].split("\n## ", 1)[0].strip("\n").splitlines()
    return KeptExplanation(body, png.read_bytes())


def _explanation_section(
    explanations: ExplanationInput | KeptExplanation | None, s: ReportSettings, out_dir: Path
) -> list[str]:
    lines = [EXPLANATION_HEADER, ""]
    if isinstance(explanations, KeptExplanation):
        (out_dir / "explanation.png").write_bytes(explanations.picture)
        kept = [line for line in explanations.lines if not line.startswith("_Kept from")]
        while kept and not kept[0].strip():
            kept.pop(0)
        note = (
            "_Kept from the report made from the MLflow store: a runs table carries no "
            "explanation samples, so this picture is not redrawn._"
        )
        return lines + [note, "", *kept, ""]
    if explanations is None:
        return lines + ["_Explanation picture not requested (`explain.enabled=false`)._", ""]
    for family in explanations.absent:
        label = EXPLAIN_FAMILIES.get(family, family)
        lines.append(
            f"- {label}: no finished run with a local-weights sample in this selection; "
            "its panel is left out."
        )
    if not explanations.samples:
        return lines + ["", "_No model in this report logged local explanations._", ""]
    picture = plots.explanation_picture(
        explanations.samples,
        out_dir / "explanation.png",
        row=explanations.row,
        klass=explanations.klass,
        top_k=s.explain_top_k,
    )
    for note in picture.notes:
        lines.append(f"- {note}")
    if picture.path is None:
        return lines + ["", "_No explanation picture could be drawn._", ""]
    what = f"test row {picture.row}" + (f", class {picture.klass}" if picture.klass else "")
    models = ", ".join(explanations.samples)
    lines += [
        "",
        f"Local linear models of {models} for {what} ({explanations.source}): the weight "
        "each model gives each (preprocessed) feature for this one instance, largest first. "
        "For NIMO, the second row shows its global β next to the instance's modulated "
        "β_j(1 + g_j(x)), each feature's interaction strength, and the interaction map "
        "g_j(x) over the sampled test rows.",
        "",
        "![one instance explained](explanation.png)",
        "",
    ]
    return lines


def _missing_section(keyed: pd.DataFrame, treated, out_dir: Path) -> list[str]:
    lines = ["## Missing and failed runs", ""]
    failed = failures(keyed) if not keyed.empty else pd.DataFrame()
    failed.to_csv(out_dir / "failures.csv", index=False)
    incomplete = treated.incomplete
    tables.write_table(incomplete, out_dir, "missing", index=False)
    if incomplete.empty and failed.empty:
        return lines + ["None: every expected run finished with a result.", ""]
    lines += [
        f"Treatment: `missing: {treated.treatment}` — {TREATMENTS[treated.treatment]}. The "
        "per-task table above shows only what finished; the treatment applies to the "
        "cross-task statistics. Change it in `conf/aggregate.yaml` or with `missing=…`.",
        "",
    ]
    if treated.dropped:
        lines += [
            "Tasks left out of the cross-task statistics: "
            + "; ".join(f"{t} ({why})" for t, why in treated.dropped.items())
            + ".",
            "",
        ]
    if not incomplete.empty:
        lines += [
            "Incomplete cells (finished of expected runs, what happened to the others, and "
            "their treatment):",
            "",
            tables.markdown_table(incomplete, index=False),
        ]
    if not failed.empty:
        shown = failed.assign(error=failed["error"].map(_short_error))
        lines += [
            f"Runs that did not finish ({len(failed)}; full errors in `failures.csv` and each "
            "run's `error.txt` artifact):",
            "",
            tables.markdown_table(shown.drop(columns=["run_id"]), index=False),
        ]
    return lines


def _short_error(value: object) -> str:
    if not isinstance(value, str) or not value:
        return "no error recorded"
    text = " ".join(value.split())
    return text if len(text) <= 200 else text[:199] + "…"


def _parity_section(
    keyed: pd.DataFrame, ref: parity_mod.ParityReference, metric: str, out_dir: Path
) -> list[str]:
    """Ours vs the reference code's figures: a verdict per (model, task), then every fold."""
    models = parity_mod.compared_models(keyed, ref)
    by_fold = pd.concat(
        [parity_mod.parity_by_fold(keyed, ref.figures, m, metric).assign(model=m) for m in models]
        or [pd.DataFrame(columns=["task", "fold", "n_runs", "ours", "reference", "difference"])],
        ignore_index=True,
    )
    summaries = [
        parity_mod.parity_summary(
            by_fold[by_fold["model"] == m], ref.mean_tolerance, ref.fold_tolerance
        ).assign(model=m)
        for m in models
    ]
    summary = pd.concat(summaries, ignore_index=True) if summaries else pd.DataFrame()
    lines = [
        f"## Parity with the {ref.label}",
        "",
        f"Our {metric} against figures obtained by running the {ref.label} on the same folds "
        f"(`{ref.source}`). Ours per fold = mean over the seeds of the finished runs; "
        f"difference = ours − reference. Parity: |mean difference| ≤ {ref.mean_tolerance:g} "
        f"and every fold within ±{ref.fold_tolerance:g}, on every fold of the figures. "
        "Paired tests over folds: paired t-test and Wilcoxon signed-rank (two-sided).",
        "",
    ]
    if summary.empty:
        return lines + ["_(no model to compare)_", ""]
    summary = summary.set_index(["model", "task"])
    lines += [tables.write_table(summary, out_dir, "parity_summary"), ""]
    folds = by_fold.set_index(["model", "task", "fold"])
    lines += [
        "Per fold:",
        "",
        tables.write_table(folds, out_dir, "parity_by_fold"),
        "",
    ]
    if by_fold["ours"].notna().any():
        plots.parity_scatter(by_fold, metric, ref.label, ref.fold_tolerance, out_dir / "parity.png")
        lines += ["![parity per fold](parity.png)", ""]
    return lines


def _compare_section(
    summary: pd.DataFrame,
    comparison: Comparison,
    metric: str,
    s: ReportSettings,
    out_dir: Path,
) -> list[str]:
    a, b = comparison.labels
    other = latest_per_key(split_key_versions(comparison.runs, s.key_version)[0])
    if metric not in other:
        other = other.assign(**{metric: float("nan")})
    other_summary = fold_summary(other, metric)
    table = tables.compare_table(summary, other_summary, (a, b))
    lines = [
        f"## Comparison: {a} vs {b}",
        "",
        f"Per task and model, the mean {metric} over finished runs of each sweep and the "
        f"difference {b} − {a} (— : no finished run in that sweep).",
        "",
        tables.write_table(table, out_dir, "compare"),
    ]
    hib = s.direction()
    for label, frame in ((a, summary), (b, other_summary)):
        means = frame.pivot(index="task", columns="model", values="mean") if len(frame) else None
        if means is not None and means.shape[1] >= 2 and not means.dropna().empty:
            ranks = stats.average_rank(means.dropna(), hib)
            shown = ", ".join(f"{m} {r:.2f}" for m, r in ranks.items())
            lines += [f"- average rank in {label} ({len(means.dropna())} task(s)): {shown}"]
    return lines + [""]


__all__ = [
    "Comparison",
    "ExplanationInput",
    "ReportSettings",
    "choose_explanation_runs",
    "metric_columns",
    "resolve_reference",
    "write_report",
]
