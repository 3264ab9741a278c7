"""Paired comparisons of two models over tasks, with a verdict by a stated rule.

A comparison between two models is read from their *paired* per-task scores (the mean over a
task's folds), never from two separate intervals: an interval per model over tasks is mostly task
difficulty, and two overlapping ones say little about the difference between the models. For each
declared pair and metric (Benavoli, Corani, Demšar & Zaffalon, *Time for a change: a tutorial for
comparing multiple classifiers through Bayesian analysis*, JMLR 18, 2017):

- the mean paired difference A − B over the tasks both models have, with its Student-t interval;
- the two-sided Wilcoxon signed-rank p (scipy), Holm-corrected across every comparison of the
  report (Holm, *Scand. J. Statist.* 6, 1979), since a report tests many pairs at once;
- the Bayesian signed-rank test with a region of practical equivalence (ROPE) of ±``rope``
  (``baycomp``): P(A better), P(equivalent), P(B better), which sum to 1.

The verdict comes from the posterior alone: ``A better`` / ``B better`` / ``equivalent within
±rope`` when that probability reaches ``posterior`` (0.95 by default), else ``inconclusive``.
"Better" follows the metric's direction (lower is better for an error), ``mean_diff`` stays in
the metric's own units, A − B. Nothing here reads MLflow: inputs are per-task score tables.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import baycomp
import numpy as np
import pandas as pd
from scipy import stats

from mesobench.errors import ConfigError

JUDGED_COLUMNS = ["p_holm", "p_a_better", "p_rope", "p_b_better", "rope", "verdict"]
"""The last columns of every table of comparisons (:func:`judged` fills p_holm and verdict)."""

COLUMNS = [
    "model_a",
    "model_b",
    "metric",
    "n_tasks",
    "mean_diff",
    "ci_low",
    "ci_high",
    "p_wilcoxon",
    *JUDGED_COLUMNS,
]
"""The columns of ``comparisons.csv``, in order."""

A_BETTER, B_BETTER, INCONCLUSIVE = "A better", "B better", "inconclusive"
SCOPES = ("declared", "reference", "all")
EXPECTATIONS = {"a_better": A_BETTER, "b_better": B_BETTER, "equivalent": "equivalent"}


def equivalent(rope: float) -> str:
    """The verdict text of practical equivalence: ``equivalent within ±0.01``."""
    return f"equivalent within ±{rope:g}"


@dataclass(frozen=True)
class Claim:
    """A sentence a report tests: model ``a`` against ``b`` on ``metric``.

    ``expect`` (``a_better`` | ``b_better`` | ``equivalent`` | None) is what the claim asserts;
    with it the finding says whether the verdict supports the claim.
    """

    a: str
    b: str
    metric: str = "auroc"
    text: str = ""
    expect: str | None = None

    @classmethod
    def from_config(cls, entry: Mapping[str, object]) -> Claim:
        unknown = sorted(set(entry) - {"a", "b", "metric", "text", "expect"})
        if unknown or "a" not in entry or "b" not in entry:
            raise ConfigError(
                f"aggregate.claims: each claim is {{a, b, metric, text, expect}} with a and b "
                f"model names; got {dict(entry)!r}"
            )
        expect = entry.get("expect")
        if expect is not None and expect not in EXPECTATIONS:
            raise ConfigError(
                f"aggregate.claims: expect={expect!r}; use one of {sorted(EXPECTATIONS)} or null"
            )
        return cls(
            a=str(entry["a"]),
            b=str(entry["b"]),
            metric=str(entry.get("metric") or "auroc"),
            text=str(entry.get("text") or ""),
            expect=None if expect is None else str(expect),
        )


@dataclass(frozen=True)
class ComparisonSettings:
    """``comparisons.*`` of ``conf/aggregate.yaml``: which pairs, which metrics, the ROPEs and
    the decision rule."""

    pairs: tuple[tuple[str, str], ...] = ()
    scope: str = "reference"  # declared | reference (+ every model vs the reference) | all
    metrics: tuple[str, ...] = ("auroc",)
    rope: Mapping[str, float] = field(default_factory=lambda: {"auroc": 0.01})
    posterior: float = 0.95
    confidence: float = 0.95
    nsamples: int = 50000
    seed: int = 0
    within_tasks: bool = False  # also within each task, over its folds (report/within_task.py)

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ConfigError(f"comparisons.scope={self.scope!r}; use one of {SCOPES}")
        if not 0.5 < self.posterior <= 1.0:
            raise ConfigError(
                f"comparisons.posterior={self.posterior}: expected a value in (0.5, 1]"
            )
        if not 0.0 < self.confidence < 1.0:
            raise ConfigError(f"comparisons.confidence={self.confidence}: expected (0, 1)")
        if any(float(r) < 0 for r in self.rope.values()):
            raise ConfigError(f"comparisons.rope: widths must be >= 0, got {dict(self.rope)}")

    def rope_of(self, metric: str) -> float:
        """The ROPE half-width of ``metric``, 0 when the experiment declares none (then no pair
        can be called equivalent: a width is data of the experiment, never guessed, since 0.01
        is small for AUROC and meaningless for an MSE in target units)."""
        return float(self.rope.get(metric, 0.0))

    def require_rope(self, metric: str, why: str) -> None:
        """Refuse a metric that must have a ROPE (a claim's) but has none."""
        if metric not in self.rope:
            raise ConfigError(
                f"comparisons.rope has no width for {metric!r} (has {sorted(self.rope)}), which "
                f"{why}: add one under aggregate.comparisons.rope in the experiment's config or "
                f"on the command line ('+comparisons.rope.{metric}=0.01')"
            )


def holm(pvalues: Iterable[float]) -> np.ndarray:
    """Holm's step-down adjusted p-values (family-wise error control, any dependence).

    The i-th smallest of m p-values becomes max over j ≤ i of min(1, (m − j + 1) p_(j)), so an
    adjusted p is never below its raw p. NaN p-values (no test possible) are left NaN and do not
    count in m.
    """
    p = np.asarray(list(pvalues), dtype=float)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    if finite.size == 0:
        return adjusted
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    scaled = np.minimum(1.0, (m - np.arange(m)) * p[order])
    adjusted[order] = np.maximum.accumulate(scaled)
    return adjusted


def verdict(p_a: float, p_rope: float, p_b: float, rope: float, threshold: float) -> str:
    """The stated rule: the outcome whose posterior probability reaches ``threshold``."""
    if math.isnan(p_a):
        return INCONCLUSIVE
    if p_a >= threshold:
        return A_BETTER
    if p_b >= threshold:
        return B_BETTER
    if p_rope >= threshold:
        return equivalent(rope)
    return INCONCLUSIVE


def paired(
    a: pd.Series,
    b: pd.Series,
    *,
    higher_is_better: bool,
    rope: float,
    settings: ComparisonSettings,
) -> dict[str, float]:
    """One comparison of per-task scores ``a`` and ``b`` (indexed by task) over the tasks both
    have: the columns of :data:`COLUMNS` from ``n_tasks`` to ``rope`` (``p_holm`` left NaN)."""
    both = pd.concat([a.rename("a"), b.rename("b")], axis=1).dropna()
    n = len(both)
    row = {c: math.nan for c in COLUMNS[3:13]}
    row.update(n_tasks=n, rope=rope)
    if n == 0:
        return row
    x, y = both["a"].to_numpy(dtype=float), both["b"].to_numpy(dtype=float)
    diff = x - y
    row["mean_diff"] = float(diff.mean())
    if n < 2:
        return row
    with warnings.catch_warnings():  # identical differences: zero variance, handled below
        warnings.simplefilter("ignore", RuntimeWarning)
        interval = stats.ttest_rel(x, y).confidence_interval(settings.confidence)
    row["ci_low"], row["ci_high"] = _finite_or(interval.low, diff), _finite_or(interval.high, diff)
    row["p_wilcoxon"] = float(stats.wilcoxon(diff).pvalue) if np.any(diff != 0) else 1.0
    sign = 1.0 if higher_is_better else -1.0  # baycomp's "left" is the first argument better
    probs = baycomp.SignedRankTest.probs(
        sign * x,
        sign * y,
        rope=rope,
        nsamples=settings.nsamples,
        random_state=settings.seed,
    )
    if rope > 0:
        row["p_a_better"], row["p_rope"], row["p_b_better"] = map(float, probs)
    else:
        row["p_a_better"], row["p_b_better"] = map(float, probs)
        row["p_rope"] = 0.0
    return row


def _finite_or(bound: float, diff: np.ndarray) -> float:
    """A t bound, or the common difference itself when every difference is the same (zero
    variance makes scipy's bound NaN although the interval is that single point)."""
    if np.isfinite(bound):
        return float(bound)
    return float(diff[0]) if np.all(diff == diff[0]) else math.nan


def declared_pairs(
    models: list[str],
    settings: ComparisonSettings,
    claims: Iterable[Claim],
    reference: str | None,
) -> list[tuple[str, str]]:
    """The pairs of a report, each once and in order: the claims', the declared ones, then
    (``scope``) every model against the reference or every pair. A pair naming a model without
    runs in this report is skipped (the report lists it as missing)."""
    wanted = [(c.a, c.b) for c in claims] + [tuple(p) for p in settings.pairs]
    if settings.scope == "reference" and reference:
        wanted += [(reference, m) for m in models if m != reference]
    elif settings.scope == "all":
        wanted += [(m, o) for i, m in enumerate(models) for o in models[i + 1 :]]
    seen: set[frozenset[str]] = set()
    pairs = []
    for a, b in wanted:
        key = frozenset((a, b))
        if a == b or key in seen or a not in models or b not in models:
            continue
        seen.add(key)
        pairs.append((a, b))
    return pairs


def compare(
    scores: Mapping[str, pd.DataFrame],
    pairs: list[tuple[str, str]],
    directions: Mapping[str, bool],
    settings: ComparisonSettings,
) -> pd.DataFrame:
    """Every pair on every metric of ``scores`` (``{metric: tasks × models means}``), Holm's
    correction across all rows; columns :data:`COLUMNS`."""
    rows = []
    for metric, table in scores.items():
        rope = settings.rope_of(metric)
        for a, b in pairs:
            if a not in table or b not in table:
                continue
            row = paired(
                table[a],
                table[b],
                higher_is_better=directions[metric],
                rope=rope,
                settings=settings,
            )
            rows.append({"model_a": a, "model_b": b, "metric": metric, **row})
    return judged(pd.DataFrame(rows, columns=COLUMNS), "p_wilcoxon", settings.posterior)


def judged(frame: pd.DataFrame, p_column: str, posterior: float) -> pd.DataFrame:
    """``frame`` with ``p_holm`` (Holm across all its rows, from ``p_column``) and each row's
    ``verdict`` from its posteriors: one rule for every table of comparisons."""
    if frame.empty:
        return frame
    frame["p_holm"] = holm(frame[p_column])
    frame["verdict"] = [
        verdict(r.p_a_better, r.p_rope, r.p_b_better, r.rope, posterior) for r in frame.itertuples()
    ]
    return frame


def find(table: pd.DataFrame, claim: Claim) -> tuple[pd.Series | None, bool]:
    """The comparison row answering ``claim`` and whether it is stored the other way round."""
    for a, b, swapped in ((claim.a, claim.b, False), (claim.b, claim.a, True)):
        hit = table[
            table["model_a"].eq(a) & table["model_b"].eq(b) & table["metric"].eq(claim.metric)
        ]
        if not hit.empty:
            return hit.iloc[0], swapped
    return None, False


def oriented(row: pd.Series, swapped: bool) -> dict[str, float | str]:
    """``row`` as seen from the claim's side (A and B exchanged when ``swapped``)."""
    values = row.to_dict()
    if not swapped:
        return values
    values.update(
        model_a=row["model_b"],
        model_b=row["model_a"],
        mean_diff=-row["mean_diff"],
        ci_low=-row["ci_high"],
        ci_high=-row["ci_low"],
        p_a_better=row["p_b_better"],
        p_b_better=row["p_a_better"],
        verdict={A_BETTER: B_BETTER, B_BETTER: A_BETTER}.get(row["verdict"], row["verdict"]),
    )
    return values


def finding(claim: Claim, table: pd.DataFrame, posterior: float) -> str:
    """One sentence per claim: its verdict by the rule and the numbers behind it."""
    row, swapped = find(table, claim)
    label = f"**{claim.text}**" if claim.text else f"**{claim.a} vs {claim.b}**"
    if row is None:
        return (
            f"- {label} ({claim.a} vs {claim.b}, {claim.metric}): not tested — one of the models "
            "has no result on any task of this report."
        )
    r = oriented(row, swapped)
    a, b = r["model_a"], r["model_b"]
    said = {A_BETTER: f"{a} better", B_BETTER: f"{b} better"}.get(r["verdict"], r["verdict"])
    text = (
        f"- {label} ({a} vs {b}, {claim.metric}, {r['n_tasks']} tasks): **{said}**. Mean "
        f"difference {a} − {b} = {_signed(r['mean_diff'])} [{_signed(r['ci_low'])}, "
        f"{_signed(r['ci_high'])}]; P({a} better) {_p(r['p_a_better'])}, P(equivalent within "
        f"±{r['rope']:g}) {_p(r['p_rope'])}, P({b} better) {_p(r['p_b_better'])}; "
        f"Wilcoxon p {_p(r['p_wilcoxon'])} (Holm {_p(r['p_holm'])})."
    )
    if claim.expect is not None:
        holds = _supports(claim.expect, str(r["verdict"]))
        expected = {"a_better": f"{a} better", "b_better": f"{b} better"}.get(
            claim.expect, f"equivalent within ±{r['rope']:g}"
        )
        text += f" The claim ({expected}) is {holds}."
    return text


def _supports(expect: str, said: str) -> str:
    if said == INCONCLUSIVE:
        return "neither supported nor refuted (inconclusive)"
    wanted = EXPECTATIONS[expect]
    return "supported" if said.startswith(wanted) else "refuted"


def _signed(value: float) -> str:
    return "nan" if value is None or math.isnan(value) else f"{value:+.4f}"


def _p(value: float) -> str:
    """A probability as the sentence states it: ``= 0.012``, ``< 0.001``, or ``—``."""
    if value is None or math.isnan(value):
        return "—"
    return f"= {value:.3f}" if value >= 0.001 else "< 0.001"
