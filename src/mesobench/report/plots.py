"""The report's PNG plots, drawn with matplotlib's object API on the Agg canvas.

No pyplot: figures are built as :class:`matplotlib.figure.Figure` and saved directly, so drawing
a report never touches a global backend or leaks figures in a long-lived process (tests, the
aggregator called from a script). Every function takes plain tables and a path and returns the
path it wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from mesobench.report.stats import cliques, pareto_front

DPI = 150


def _save(fig: Figure, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=DPI, bbox_inches="tight")
    return path


def cd_diagram(average_ranks: pd.Series, cd: float, path: Path, title: str = "") -> Path:
    """Critical-difference diagram (Demšar 2006): average ranks on an axis, best on the left.

    Models joined by a thick bar are within ``cd`` of each other (not significantly different
    under the Nemenyi test); the bar at the top shows the length of CD itself.
    """
    ranks = average_ranks.sort_values(kind="stable")
    k = len(ranks)
    groups = cliques(ranks, cd)
    half = (k + 1) // 2
    left, right = list(ranks.index[:half]), list(ranks.index[half:])[::-1]
    step, bar_step = 0.45, 0.18
    top_gap = 0.3 + bar_step * len(groups)
    depth = top_gap + step * max(len(left), len(right), 1)
    fig = Figure(figsize=(8, 1.6 + 0.9 * depth))
    ax = fig.add_subplot()
    low, high = 1, max(k, 2)
    pad = 0.35 * (high - low) + 0.5
    ax.set_xlim(low - pad, high + pad)
    ax.set_ylim(-depth - 0.2, 1.3)
    ax.axis("off")
    ax.plot([low, high], [0, 0], color="black", lw=1)
    for tick in range(low, high + 1):
        ax.plot([tick, tick], [0, 0.1], color="black", lw=1)
        ax.text(tick, 0.18, str(tick), ha="center", va="bottom", fontsize=9)
    if np.isfinite(cd) and cd > 0:
        ax.plot([low, low + cd], [0.85, 0.85], color="black", lw=1.5)
        for end in (low, low + cd):
            ax.plot([end, end], [0.78, 0.92], color="black", lw=1.5)
        ax.text(low + cd / 2, 0.95, f"CD = {cd:.2f}", ha="center", va="bottom", fontsize=9)
    for i, name in enumerate(left):
        y = -top_gap - step * (i + 0.5)
        r = ranks[name]
        ax.plot([r, r, low - 0.1 * pad], [0, y, y], color="black", lw=0.8)
        ax.text(low - 0.12 * pad, y, f"{name} ({r:.2f})", ha="right", va="center", fontsize=9)
    for i, name in enumerate(right):
        y = -top_gap - step * (i + 0.5)
        r = ranks[name]
        ax.plot([r, r, high + 0.1 * pad], [0, y, y], color="black", lw=0.8)
        ax.text(high + 0.12 * pad, y, f"({r:.2f}) {name}", ha="left", va="center", fontsize=9)
    for j, group in enumerate(groups):
        y = -0.2 - bar_step * j
        lo, hi = ranks[group[0]], ranks[group[-1]]
        ax.plot([lo - 0.03, hi + 0.03], [y, y], color="black", lw=4, solid_capstyle="round")
    if title:
        ax.set_title(title, fontsize=10)
    return _save(fig, path)


def score_vs_infidelity(
    per_task: pd.DataFrame,
    metric: str,
    infidelity: str,
    path: Path,
    no_attributions: list[str] | None = None,
) -> Path:
    """Mean score against mean infidelity per model (large points), per task (faint points).

    ``per_task``: columns ``task, model, score, infidelity`` (per-task means). The trade-off
    the project is about: up and to the left is accurate *and* faithful. The models whose
    means no other model beats on both axes (the Pareto front) are circled and joined.
    """
    fig = Figure(figsize=(6.5, 4.5))
    ax = fig.add_subplot()
    colours = _colours(sorted(per_task["model"].unique()))
    means = per_task.groupby("model")[["infidelity", "score"]].mean()
    front = pareto_front(means, "infidelity", "score")
    log, floor = _log_floor(per_task["infidelity"].to_numpy(dtype=float))
    shown = (lambda v: np.maximum(v, floor)) if log else (lambda v: v)
    for model, rows in per_task.groupby("model"):
        colour = colours[model]
        ax.scatter(shown(rows["infidelity"]), rows["score"], color=colour, alpha=0.25, s=14)
        x, y = shown(means.loc[model, "infidelity"]), means.loc[model, "score"]
        label = f"{model} ({rows['task'].nunique()} task(s))"  # the legend names the points
        ax.scatter([x], [y], color=colour, s=70, edgecolor="black", label=label, zorder=3)
    front = front.assign(infidelity=shown(front["infidelity"]))
    if len(front) > 1:
        ax.plot(front["infidelity"], front["score"], "--", color="black", lw=1, zorder=2)
    ax.scatter(
        front["infidelity"],
        front["score"],
        s=160,
        facecolors="none",
        edgecolors="black",
        linewidths=1.2,
        zorder=4,
        label="Pareto front (means)",
    )
    better = "more stable" if "sensitivity" in infidelity else "more faithful"
    xlabel = f"{infidelity} (lower = {better})"
    if log:
        ax.set_xscale("log")
        if (per_task["infidelity"] < floor).any():
            xlabel += f"; values below {floor:.0e} drawn at it"
    ax.set_xlabel(xlabel)
    ax.set_ylabel(f"{metric} (mean over folds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="best")
    if no_attributions:
        fig.text(
            0.01, -0.02, f"no {infidelity}: " + ", ".join(no_attributions), fontsize=7, ha="left"
        )
    return _save(fig, path)


def _log_floor(values: np.ndarray) -> tuple[bool, float]:
    """Whether to draw the infidelity axis on a log scale, and the floor below which values
    are drawn at it: a model that is exact (0, or 1e-30 in float rounding, such as a linear
    model's own attributions) would otherwise stretch the axis over 30 decades and squeeze the
    others into one corner. Floor: four decades below the largest value."""
    finite = values[np.isfinite(values)]
    positive = finite[finite > 0]
    if not positive.size or positive.max() / max(positive.min(), 1e-300) <= 100:
        return False, 0.0
    if (finite < 0).any():
        return False, 0.0
    return True, float(10.0 ** np.floor(np.log10(positive.max()) - 4))


def per_task_scores(summary: pd.DataFrame, metric: str, path: Path) -> Path:
    """Dot plot of the mean over folds per task (rows) and model (markers), with the interval
    of the mean (``ci_low``/``ci_high``: the corrected resampled t) as error bars, else ± std."""
    with_ci = "ci_low" in summary
    tasks = sorted(summary["task"].unique())
    models = sorted(summary["model"].unique())
    colours = _colours(models)
    fig = Figure(figsize=(7.5, 1.2 + 0.45 * len(tasks)))
    ax = fig.add_subplot()
    offsets = np.linspace(-0.3, 0.3, len(models)) if len(models) > 1 else np.zeros(1)
    for offset, model in zip(offsets, models, strict=True):
        rows = summary[summary["model"].eq(model)].set_index("task").reindex(tasks)
        y = np.arange(len(tasks)) + offset
        if with_ci:
            below = (rows["mean"] - rows["ci_low"]).fillna(0.0).clip(lower=0.0)
            above = (rows["ci_high"] - rows["mean"]).fillna(0.0).clip(lower=0.0)
            xerr = np.vstack([below.to_numpy(), above.to_numpy()])
        else:
            xerr = rows["std"].fillna(0.0)
        ax.errorbar(
            rows["mean"],
            y,
            xerr=xerr,
            fmt="o",
            ms=4,
            capsize=2,
            color=colours[model],
            label=model,
        )
    ax.set_yticks(np.arange(len(tasks)), tasks, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(
        f"{metric}: mean over folds, " + ("95% bootstrap interval" if with_ci else "± std")
    )
    ax.grid(axis="x", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5))
    return _save(fig, path)


@dataclass
class ExplanationSample:
    """What a run logged about its explanations (the runner's artifact contract).

    ``weights``: ``explanations/local_weights_sample.csv`` — columns ``row`` (test-row index),
    ``class`` (multiclass only), one column per model feature, ``intercept``.
    ``description``: ``model/description.json`` if logged; NIMO's holds ``coef`` (β) and
    ``interaction_strength`` (one value per model feature).
    """

    weights: pd.DataFrame
    description: dict | None = None


@dataclass
class ExplanationPicture:
    path: Path | None
    row: int | None = None
    klass: str | None = None
    notes: list[str] = field(default_factory=list)
    interactions: str | None = None  # the model whose interaction panels were drawn


def _feature_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c not in ("row", "class", "intercept")]


def _interaction_ready(
    model: str, sample: ExplanationSample, klass: str | None, notes: list[str]
) -> bool:
    """Whether a model's description carries NIMO's β and interaction strengths for its features.

    β and the strengths are indexed like the sampled weight columns (the model's features in
    order); a description that does not line up is reported, not drawn wrongly.
    """
    description = sample.description
    if not description or "coef" not in description or "interaction_strength" not in description:
        return False
    n_features = len(_feature_columns(sample.weights))
    beta = _coef_for_class(description, klass)
    strength = np.asarray(description["interaction_strength"], dtype=float)
    if len(beta) != n_features or len(strength) != n_features:
        notes.append(
            f"{model}: description has {len(beta)} coefficients for {n_features} sampled "
            "features; interaction panels skipped"
        )
        return False
    return True


def _coef_for_class(description: dict, klass: str | None) -> np.ndarray:
    coef = np.asarray(description["coef"], dtype=float)
    if coef.ndim == 1:
        return coef
    classes = [str(c) for c in description.get("classes", [])]
    index = classes.index(klass) if klass in classes else 0
    return coef[index]


def explanation_picture(
    samples: dict[str, ExplanationSample],
    path: Path,
    *,
    row: int | None = None,
    klass: str | None = None,
    top_k: int = 12,
    title: str = "",
) -> ExplanationPicture:
    """One test instance explained by every model given: its local weights side by side.

    Models are explained on the same preprocessed features (one-hot, standardised), and the
    runner samples the same test rows for every model of a fold and seed, so the weights of
    e.g. IMN and LFR-IMN for one row are directly comparable. The ``top_k`` features with the
    largest weight in any model are shown. A model whose description carries NIMO's ``coef``
    and ``interaction_strength`` gets a second row of panels: its global β against the
    instance's modulated β_j(1 + g_j(x)), the strength of each feature's interactions, and the
    interaction map — the modulation g_j(x) = w_j(x)/β_j − 1 over the sampled test rows.
    """
    notes: list[str] = []
    samples = {m: s for m, s in samples.items() if not s.weights.empty}
    if not samples:
        return ExplanationPicture(None, notes=["no model logged a local-weights sample"])
    rows = set.intersection(*(set(s.weights["row"]) for s in samples.values()))
    if row is None:
        if not rows:
            return ExplanationPicture(None, notes=["the models' samples share no test row"])
        row = int(min(rows))
    multiclass = any("class" in s.weights for s in samples.values())
    if multiclass and klass is None:
        first = next(s.weights for s in samples.values() if "class" in s.weights)
        klass = str(first["class"].iloc[0])
    at_row = _weights_at_row(samples, row, klass, notes)
    if not at_row:
        return ExplanationPicture(None, row, klass, notes + ["no model explains that row"])
    weights = pd.DataFrame(at_row)  # features × models
    order = weights.abs().max(axis=1).sort_values(ascending=False, kind="stable")
    top = list(order.index[:top_k])

    nimo = [m for m in at_row if _interaction_ready(m, samples[m], klass, notes)]
    fig = Figure(figsize=(11, 4.2 + (3.8 if nimo else 0)), layout="constrained")
    grid = fig.add_gridspec(2 if nimo else 1, 3, height_ratios=[1, 0.9] if nimo else [1])
    what = f"test row {row}" + (f", class {klass}" if klass is not None else "")
    _weight_bars(
        fig.add_subplot(grid[0, :]), weights, top, title or f"Local linear models for {what}"
    )
    if nimo:
        model = nimo[0]
        if len(nimo) > 1:
            notes.append(f"interaction panels drawn for {model} only")
        _nimo_panels(fig, grid, model, samples[model], top, row, klass)
    _save(fig, path)
    return ExplanationPicture(path, row, klass, notes, nimo[0] if nimo else None)


def _weights_at_row(
    samples: dict[str, ExplanationSample], row: int, klass: str | None, notes: list[str]
) -> dict[str, pd.Series]:
    """Each model's local weights for test row ``row`` (and class ``klass``), by feature."""
    at_row: dict[str, pd.Series] = {}
    for model, sample in samples.items():
        chosen = sample.weights
        if "class" in chosen:
            chosen = chosen[chosen["class"].astype(str) == str(klass)]
        chosen = chosen[chosen["row"] == row]
        if chosen.empty:
            notes.append(f"{model}: test row {row} is not in its sample; left out")
            continue
        at_row[model] = chosen.iloc[0][_feature_columns(chosen)].astype(float)
    return at_row


def _weight_bars(ax: Any, weights: pd.DataFrame, top: list[str], title: str) -> None:
    """Horizontal bars of the ``top`` features' weights, one colour per model."""
    models = list(weights.columns)
    colours = _colours(models)
    height = 0.8 / len(models)
    y = np.arange(len(top))
    for i, model in enumerate(models):
        ax.barh(
            y + (i - (len(models) - 1) / 2) * height,
            weights.loc[top, model].fillna(0.0),
            height=height,
            color=colours[model],
            label=model,
        )
    ax.set_yticks(y, top, fontsize=8)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.6)
    ax.set_xlabel("local weight w_j(x) (preprocessed feature units)")
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=8, loc="lower right")
    ax.grid(axis="x", alpha=0.3)


def _nimo_panels(
    fig: Figure,
    grid: object,
    model: str,
    sample: ExplanationSample,
    top: list[str],
    row: int,
    klass: str | None,
) -> None:
    description = sample.description or {}
    features = _feature_columns(sample.weights)
    beta = _coef_for_class(description, klass)
    strength = np.asarray(description["interaction_strength"], dtype=float)
    beta_s = pd.Series(beta, index=features)
    strength_s = pd.Series(strength, index=features)
    frame = sample.weights
    if "class" in frame:
        frame = frame[frame["class"].astype(str) == str(klass)]
    at_row = frame[frame["row"] == row].iloc[0][features].astype(float)
    y = np.arange(len(top))

    ax = fig.add_subplot(grid[1, 0])
    ax.barh(y - 0.2, beta_s[top], height=0.4, color="#888888", label="β (global)")
    ax.barh(y + 0.2, at_row[top], height=0.4, color="#d62728", label="β(1+g(x)) at the row")
    ax.set_yticks(y, top, fontsize=7)
    ax.invert_yaxis()
    ax.axvline(0, color="black", lw=0.6)
    ax.set_title(f"{model}: β and its modulation", fontsize=9)
    ax.legend(fontsize=7)

    ax = fig.add_subplot(grid[1, 1])
    ax.barh(y, strength_s[top], color="#9467bd")
    ax.set_yticks(y, [""] * len(top))
    ax.invert_yaxis()
    ax.set_title("interaction strength (‖W1[:, j]‖)", fontsize=9)

    ax = fig.add_subplot(grid[1, 2])
    safe = beta_s[top].where(beta_s[top].abs() > 1e-12)
    modulation = frame[top].astype(float).div(safe, axis=1) - 1.0
    values = modulation.to_numpy(dtype=float).T  # features × sampled rows
    finite = np.abs(values[np.isfinite(values)])
    limit = float(np.quantile(finite, 0.98)) if finite.size else 1.0
    limit = limit if limit > 0 else 1.0
    image = ax.imshow(
        np.ma.masked_invalid(values), aspect="auto", cmap="coolwarm", vmin=-limit, vmax=limit
    )
    ax.set_yticks(y, [""] * len(top))
    if len(frame) <= 12:
        ax.set_xticks(np.arange(len(frame)), [str(r) for r in frame["row"]], fontsize=7)
    ax.set_xlabel("sampled test rows")
    ax.set_title("interaction map g_j(x) = w_j(x)/β_j − 1", fontsize=9)
    fig.colorbar(image, ax=ax, fraction=0.05)


def _colours(models: list[str]) -> dict[str, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if len(models) <= 10 else "tab20"]
    return {m: cmap(i % cmap.N) for i, m in enumerate(models)}


def parity_scatter(by_fold: pd.DataFrame, metric: str, label: str, tolerance: float, path: Path):
    """Ours against the reference, one point per (model, task, fold), on the diagonal = parity.

    The grey band is ±``tolerance`` (the largest fold difference allowed), so a point outside
    it is a fold that breaks parity; each model has its own marker colour.
    """
    both = by_fold.dropna(subset=["ours", "reference"])
    fig = Figure(figsize=(5.2, 5))
    ax = fig.add_subplot()
    values = np.concatenate([both["ours"].to_numpy(float), both["reference"].to_numpy(float)])
    lo, hi = (values.min(), values.max()) if len(values) else (0.0, 1.0)
    pad = 0.05 * (hi - lo) + 1e-3
    line = np.array([lo - pad, hi + pad])
    ax.fill_between(line, line - tolerance, line + tolerance, color="0.9", label=f"±{tolerance:g}")
    ax.plot(line, line, color="0.4", lw=1, ls="--")
    for model, group in both.groupby("model", sort=True):
        ax.scatter(group["reference"], group["ours"], s=22, label=model)
    ax.set_xlim(*line)
    ax.set_ylim(*line)
    ax.set_xlabel(f"{label}: {metric}")
    ax.set_ylabel(f"mesobench: {metric}")
    ax.set_title("Parity per fold (diagonal = equal)", fontsize=10)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return _save(fig, path)


CURVE_PANELS = (
    ("loss", "training loss"),
    ("val_score", "validation score"),
    ("lr", "learning rate"),
)
"""The per-epoch series a curves picture draws; a tree model's round timings alone make none."""


def has_training_curves(curves: dict[str, list[float]]) -> bool:
    return any(curves.get(name) for name, _ in CURVE_PANELS)


def training_curves(curves: dict[str, list[float]], path: Path, title: str = "") -> Path:
    """A fit's per-epoch curves side by side: training loss, validation score (when monitored)
    and learning rate, against the epoch (the run's ``train/*`` step metrics, drawn)."""
    panels = [(name, label) for name, label in CURVE_PANELS if curves.get(name)]
    fig = Figure(figsize=(3.6 * max(1, len(panels)), 3.0), layout="constrained")
    axes = fig.subplots(1, max(1, len(panels)), squeeze=False)[0]
    for ax, (name, label) in zip(axes, panels, strict=False):
        values = curves[name]
        ax.plot(np.arange(1, len(values) + 1), values, lw=1.2)
        ax.set_xlabel("epoch")
        ax.set_title(label, fontsize=9)
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title, fontsize=10)
    return _save(fig, path)
