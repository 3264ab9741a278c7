"""Interventional TreeSHAP against one baseline row, computed by the ``shap`` library.

Why a baseline row: the attribution the fidelity metrics compare across models shares out
``f(x) − f(baseline)`` over the features. With a single reference row the interventional
("independent") TreeSHAP of Lundberg et al. 2020 ("From local explanations to global
understanding with explainable AI for trees", Nature Machine Intelligence 2:56-67) is exactly
the *baseline Shapley* value of Sundararajan & Najmi 2020 ("The many Shapley values for model
explanation", ICML): the Shapley value of the game ``v(S) = f(x_S, baseline_rest)``. So the
values add up to ``f(x) − f(baseline)`` and a feature whose value equals the baseline's gets
exactly 0 (it is a null player). The path-dependent TreeSHAP the libraries compute natively
instead explains ``f(x)`` against the training data's cover-weighted expectation.

The Shapley values themselves are always computed by library code: CatBoost's own
``ShapValues`` with ``reference_data`` (in :mod:`.baselines`), and ``shap.TreeExplainer(...,
feature_perturbation="interventional")`` for XGBoost and the random forests. This module only
*re-expresses* a fitted ensemble, exactly, as the plain binary threshold trees shap's
custom-model format takes (``{"trees": [{"children_left", ...}]}``):

* XGBoost: shap refuses interventional mode on XGBoost's categorical splits. A categorical split
  (a set of category codes goes right, the rest left, missing the default way) is rewritten as a
  small binary search over threshold splits on the *same* column: the set is a union of runs of
  consecutive codes, each run's interval leads to its own copy of the child subtree, and a
  missing value follows XGBoost's default direction at every node of the search, into a copy of
  the default child. All these nodes split on one feature, so the feature stays one Shapley
  player and the values are the exact feature-level baseline Shapley values. To keep the copies
  few, each tree gets its own order of the category codes (a bijection applied to that column of
  the input for that tree only; the tree's function, hence its Shapley values, is unchanged):
  codes sorted by their membership in the tree's category sets on that column, from the root
  down, so the first set is one run and the others few; codes that cannot reach a node (ruled
  out by a categorical split above it) may go either way there. Numeric splits send ``x < t``
  left where shap sends ``x <= t`` left; comparing float32 inputs (XGBoost compares in float32)
  against the next float32 below ``t`` is the same test.
* Random forest: shap reads scikit-learn trees natively, but its interventional routine rounds
  the float64 thresholds to float32, which routes a float32 input that equals the upper one of
  two adjacent float32 training values the wrong way (measured: additivity off by 1.0 on such
  data). The thresholds are therefore rounded *down* to float32, which keeps scikit-learn's
  ``x <= t`` test exact for float32 inputs; missing values follow ``missing_go_to_left``.

shap's interventional routine indexes a tree's nodes with 16-bit integers (a tree over 32,767
nodes crashes it), so larger trees are split into several trees that add up to the original: the
path to a subtree, with a zero leaf off each path node, followed by the subtree. Baseline Shapley
values are linear in the model, so the sum of the parts' values is the tree's value.
Multiclass models are explained one class at a time (each tree adds to one class), which is
what shap's routine does internally anyway, without its (trees × nodes × classes) value array.
shap's interventional routine works in float32 (its node thresholds and path weights), so the
values add up to ``f(x) − f(baseline)`` to about 1e-7 relative per tree.
"""

from __future__ import annotations

import json
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from mesobench.errors import AttributionUnavailableError

MAX_TREE_SHAP_NODES = 5_000_000
"""Most nodes the trees handed to shap may have in all (one model, all classes).

Re-expressing an XGBoost categorical split copies the subtree below it once per run of
consecutive codes in its category set, so high-cardinality categorical splits nested deep can
multiply a tree's size; above this many nodes (about 0.5 GB in shap's arrays) the conversion
stops with a ``ValueError`` instead of exhausting memory."""

SHAP_TREE_NODE_LIMIT = 32_767
"""Most nodes one tree may have in shap's interventional routine (its node indices are 16-bit);
larger trees are split into parts that add up to them."""

SHAP_EXACT_PATH_FEATURES = 30
"""Most distinct features a root-to-leaf path may split on for shap's interventional routine to
be exact: it computes its Shapley weights 1 / (N · C(N − 1, M)) with 32-bit integer binomial
coefficients, which overflow for N ≥ 31 features on which the row and the baseline part ways
along a path (measured: the values of a 32-feature path off by a factor of 20)."""

_CHUNK_SLOTS = 1 << 21
"""Trees × largest tree size per shap call: shap pads every tree of a call to the largest one."""

_LEFT, _RIGHT = 0, 1


@dataclass(frozen=True, eq=False)
class ShapTree:
    """One single-output binary tree in the form shap's custom-model dict takes.

    ``left``/``right``/``default`` are child indices (-1 at leaves; ``default`` is where a
    missing value goes), a sample goes left iff ``x[feature] <= threshold``; ``threshold`` is
    float32-representable (inputs are float32 values too); ``value`` is the leaf output added to
    output ``output``; ``weight`` is the node cover (shap recomputes it from the baseline).
    ``recode``: ``(feature, lookup)`` pairs, the tree reads category code ``c < len(lookup)`` of
    that input column as ``lookup[c]`` (a permutation of ``range(len(lookup))``).
    """

    left: np.ndarray
    right: np.ndarray
    default: np.ndarray
    feature: np.ndarray
    threshold: np.ndarray
    value: np.ndarray
    weight: np.ndarray
    output: int
    recode: tuple[tuple[int, np.ndarray], ...] = ()

    @property
    def n_nodes(self) -> int:
        return len(self.left)

    def as_shap_dict(self) -> dict[str, np.ndarray]:
        # shap overwrites node_sample_weight in place and rescales values: hand it copies
        return {
            "children_left": self.left,
            "children_right": self.right,
            "children_default": self.default,
            "features": self.feature,
            "thresholds": self.threshold,
            "values": self.value[:, None].copy(),
            "node_sample_weight": self.weight.copy(),
        }

    def group(self) -> tuple:
        """Trees of one group share an output and an input recoding (one shap call)."""
        return (self.output, tuple((f, lookup.tobytes()) for f, lookup in self.recode))


# --------------------------------------------------------------------------------------------
# Running shap
# --------------------------------------------------------------------------------------------


def interventional_values(
    trees: Sequence[ShapTree],
    n_outputs: int,
    X: np.ndarray,
    baseline: np.ndarray,
    target: np.ndarray | None = None,
) -> np.ndarray:
    """shap's interventional TreeSHAP values of the sum of ``trees`` at the rows of X against the
    one row ``baseline`` (both float matrices of float32 values, NaN = missing).

    Returns (n, F, n_outputs): ``values[i, :, k].sum()`` is ``Σ trees_k(X[i]) − Σ
    trees_k(baseline)`` (shap accumulates in float32: about 1e-7 relative per tree). With
    ``target`` (n,) output indices: (n, F), row i's values of output ``target[i]`` only — each
    output's trees then explain only the rows that ask for it, so a C-class model costs one
    pass over the rows instead of C.
    """
    from shap import TreeExplainer

    X = np.ascontiguousarray(X, dtype=np.float64)
    baseline = np.ascontiguousarray(baseline, dtype=np.float64).reshape(1, -1)
    _check_exact(trees, X, baseline)
    values = np.zeros((X.shape[0], X.shape[1], n_outputs))
    groups: dict[tuple, list[ShapTree]] = {}
    for tree in trees:
        groups.setdefault(tree.group(), []).append(tree)
    for group in groups.values():
        k, recode = group[0].output, group[0].recode
        rows = np.arange(len(X)) if target is None else np.flatnonzero(target == k)
        if rows.size == 0:
            continue
        X_k, baseline_k = _recoded(X[rows], recode), _recoded(baseline, recode)
        for chunk in _chunks(sorted(group, key=lambda t: t.n_nodes)):
            model = {"trees": [t.as_shap_dict() for t in chunk], "base_offset": 0.0}
            explainer = TreeExplainer(
                model, data=baseline_k, feature_perturbation="interventional", model_output="raw"
            )
            values[rows, :, k] += explainer.shap_values(X_k, check_additivity=False)
    if target is None:
        return values
    return np.take_along_axis(values, np.asarray(target)[:, None, None], axis=2)[:, :, 0]


def _check_exact(trees: Sequence[ShapTree], X: np.ndarray, baseline: np.ndarray) -> None:
    """ValueError where shap's weights could overflow (:data:`SHAP_EXACT_PATH_FEATURES`): a row
    differing from the baseline in more features than that, and a tree path splitting on more
    distinct features than that (a cheap superset of the cases it gets wrong)."""
    limit = SHAP_EXACT_PATH_FEATURES
    same = np.equal(X, baseline) | (np.isnan(X) & np.isnan(baseline))
    differ = int((~same).sum(axis=1).max(initial=0))
    if differ <= limit:
        return
    deep = [t for t in trees if _path_features_exceed(t, limit)]
    if deep:
        raise AttributionUnavailableError(
            f"interventional TreeSHAP: {len(deep)} of the {len(trees)} trees have a "
            f"root-to-leaf path splitting on more than {limit} distinct features and rows "
            f"differ from the baseline in up to {differ} features; shap's interventional "
            f"routine is exact only up to {limit} such features on a path (its 32-bit "
            "binomial coefficients overflow beyond), so these values could be wrong. Limit "
            f"the tree depth to {limit}, or the baseline's differences, to explain this model"
        )


_DEEP_PATHS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _path_features_exceed(tree: ShapTree, limit: int) -> bool:
    """Whether a root-to-leaf path of ``tree`` splits on more than ``limit`` distinct features."""
    known = _DEEP_PATHS.setdefault(tree, {})
    if limit in known:
        return known[limit]
    depth, level = 0, np.array([0])  # the depth bounds the distinct features: often enough
    while len(level := level[tree.left[level] >= 0]):
        depth += 1
        level = np.concatenate([tree.left[level], tree.right[level]])
    known[limit] = depth > limit and _max_path_features(tree, stop_above=limit) > limit
    return known[limit]


def _max_path_features(tree: ShapTree, stop_above: int) -> int:
    """Most distinct features on a root-to-leaf path (stops once above ``stop_above``)."""
    count: dict[int, int] = {}
    distinct = best = 0
    stack = [(0, False)]
    while stack:
        node, leaving = stack.pop()
        feature = int(tree.feature[node])
        if leaving:
            count[feature] -= 1
            distinct -= count[feature] == 0
        elif tree.left[node] < 0:
            best = max(best, distinct)
            if best > stop_above:
                return best
        else:
            count[feature] = count.get(feature, 0) + 1
            distinct += count[feature] == 1
            stack += [(node, True), (int(tree.right[node]), False), (int(tree.left[node]), False)]
    return best


def _recoded(X: np.ndarray, recode: tuple[tuple[int, np.ndarray], ...]) -> np.ndarray:
    """X with the category codes of the recoded columns read through their lookups."""
    if not recode:
        return X
    X = X.copy()
    for feature, lookup in recode:
        column = X[:, feature]  # a view: assigning to it changes X
        known = ~np.isnan(column) & (column < len(lookup))
        column[known] = lookup[column[known].astype(np.int64)]
    return X


def _chunks(trees: list[ShapTree]) -> list[list[ShapTree]]:
    """Consecutive groups of ``trees`` (sorted by size) whose padded size stays in budget."""
    chunks: list[list[ShapTree]] = []
    current: list[ShapTree] = []
    for tree in trees:
        if current and (len(current) + 1) * tree.n_nodes > _CHUNK_SLOTS:
            chunks.append(current)
            current = []
        current.append(tree)
    if current:
        chunks.append(current)
    return chunks


def _split_tree(tree: ShapTree, limit: int) -> list[ShapTree]:
    """``tree`` as trees of at most ``limit`` nodes that add up to it (``[tree]`` if it fits).

    A part is the path from the root to a subtree, each path node keeping its split (and its
    missing-value direction) with a zero leaf on the side off the path, then the subtree: it
    equals the tree where the path is taken and 0 elsewhere. Every leaf is in exactly one part.
    """
    if tree.n_nodes <= limit:
        return [tree]
    size = _subtree_sizes(tree)
    parts = []
    stack: list[tuple[int, tuple[tuple[int, bool], ...]]] = [(0, ())]
    while stack:
        node, path = stack.pop()
        if size[node] + 2 * len(path) <= limit or tree.left[node] < 0:
            parts.append(_path_part(tree, node, path))
        else:
            stack.append((int(tree.right[node]), (*path, (node, False))))
            stack.append((int(tree.left[node]), (*path, (node, True))))
    return parts


def _preorder(tree: ShapTree, root: int) -> np.ndarray:
    order, stack = [], [root]
    while stack:
        node = stack.pop()
        order.append(node)
        if tree.left[node] >= 0:
            stack.append(int(tree.right[node]))
            stack.append(int(tree.left[node]))
    return np.asarray(order, dtype=np.int64)


def _subtree_sizes(tree: ShapTree) -> np.ndarray:
    size = np.ones(tree.n_nodes, dtype=np.int64)
    for node in _preorder(tree, 0)[::-1]:  # children before parents
        if tree.left[node] >= 0:
            size[node] += size[tree.left[node]] + size[tree.right[node]]
    return size


def _path_part(tree: ShapTree, root: int, path: tuple[tuple[int, bool], ...]) -> ShapTree:
    """The tree that follows ``path`` (zero leaves off it) into the subtree at ``root``."""
    k = len(path)
    sub = _preorder(tree, root)
    new = np.full(tree.n_nodes, -1, dtype=np.int64)
    new[sub] = 2 * k + np.arange(len(sub))

    def remap(children):
        children = children[sub]
        return np.where(children >= 0, new[np.maximum(children, 0)], -1)

    n = 2 * k + len(sub)
    left, right, default = np.full(n, -1), np.full(n, -1), np.full(n, -1)
    left[2 * k :], right[2 * k :], default[2 * k :] = (
        remap(tree.left),
        remap(tree.right),
        remap(tree.default),
    )
    feature = np.full(n, -1, dtype=np.int64)
    threshold, value, weight = np.zeros(n), np.zeros(n), np.zeros(n)
    feature[2 * k :] = tree.feature[sub]
    threshold[2 * k :], value[2 * k :], weight[2 * k :] = (
        tree.threshold[sub],
        tree.value[sub],
        tree.weight[sub],
    )
    for i, (ancestor, went_left) in enumerate(path):
        on, off = (i + 1 if i + 1 < k else 2 * k), k + i
        on_child = tree.left[ancestor] if went_left else tree.right[ancestor]
        off_child = tree.right[ancestor] if went_left else tree.left[ancestor]
        left[i], right[i] = (on, off) if went_left else (off, on)
        default[i] = on if tree.default[ancestor] == on_child else off
        feature[i], threshold[i] = tree.feature[ancestor], tree.threshold[ancestor]
        weight[i], weight[off] = tree.weight[ancestor], tree.weight[off_child]
    return ShapTree(
        left, right, default, feature, threshold, value, weight, tree.output, tree.recode
    )


# --------------------------------------------------------------------------------------------
# Conversion cache (per fitted library model)
# --------------------------------------------------------------------------------------------

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def cached(model: Any, key: tuple, build: Callable[[], list[ShapTree]]) -> list[ShapTree]:
    """``build()``'s trees split to at most :data:`SHAP_TREE_NODE_LIMIT` nodes, remembered for
    the fitted ``model`` (that object) and ``key``: attribution functions call this on every
    batch, and the trees do not change."""
    key = (*key, MAX_TREE_SHAP_NODES, SHAP_TREE_NODE_LIMIT)
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        limit = SHAP_TREE_NODE_LIMIT
        per_model[key] = [part for tree in build() for part in _split_tree(tree, limit)]
    return per_model[key]


def _too_many_nodes(what: str) -> AttributionUnavailableError:
    return AttributionUnavailableError(
        f"interventional TreeSHAP: {what} would need more than MAX_TREE_SHAP_NODES = "
        f"{MAX_TREE_SHAP_NODES:,} tree nodes (categorical splits are re-expressed as threshold "
        "splits with one copy of the subtree below per run of consecutive category codes, "
        "which multiplies for categorical splits nested deep); raise "
        "mesobench.models.tree_shap.MAX_TREE_SHAP_NODES if the memory is there"
    )


def float32_values(X: np.ndarray) -> np.ndarray:
    """X rounded to float32 and back: the values float32 trees compare."""
    return np.asarray(X, dtype=np.float64).astype(np.float32).astype(np.float64)


# --------------------------------------------------------------------------------------------
# Random forest (scikit-learn trees)
# --------------------------------------------------------------------------------------------


def forest_trees(forest: Any, columns: Sequence[int]) -> list[ShapTree]:
    """The forest's trees as one single-output tree per (tree, explained column).

    ``columns``: the value columns explained, output k being ``columns[k]`` (a classifier's
    class probabilities: each tree's leaf class fractions / number of trees; a regressor:
    ``[0]``, leaf mean / number of trees). Thresholds are rounded down to float32.
    """
    if sum(e.tree_.node_count for e in forest.estimators_) > MAX_TREE_SHAP_NODES:
        raise _too_many_nodes("the random forest")
    trees = []
    scale = 1.0 / len(forest.estimators_)
    classifier = hasattr(forest, "classes_")
    for estimator in forest.estimators_:
        tree = estimator.tree_
        total = tree.node_count
        left = tree.children_left.astype(np.int64)
        right = tree.children_right.astype(np.int64)
        go_left = np.asarray(getattr(tree, "missing_go_to_left", np.ones(total)), dtype=bool)
        default = np.where(left < 0, -1, np.where(go_left, left, right))
        value = np.asarray(tree.value[:, 0, :], dtype=np.float64)
        if classifier:
            value = value / np.maximum(value.sum(axis=1, keepdims=True), 1e-300)
        threshold = _float32_floor(tree.threshold)
        weight = tree.weighted_n_node_samples.astype(np.float64)
        feature = tree.feature.astype(np.int64)
        for k, column in enumerate(columns):
            trees.append(
                ShapTree(
                    left, right, default, feature, threshold, value[:, column] * scale, weight, k
                )
            )
    return trees


def _float32_floor(t: np.ndarray) -> np.ndarray:
    """The largest float32 ≤ t: for float32 x, ``x <= t`` iff ``x <= floor32(t)``."""
    t = np.asarray(t, dtype=np.float64)
    f = t.astype(np.float32)
    f = np.where(f.astype(np.float64) > t, np.nextafter(f, np.float32(-np.inf)), f)
    return f.astype(np.float64)


# --------------------------------------------------------------------------------------------
# XGBoost
# --------------------------------------------------------------------------------------------


def xgboost_trees(booster: Any, iteration_range: tuple[int, int]) -> list[ShapTree]:
    """The booster's trees that ``predict`` uses with ``iteration_range`` (``(0, 0)``: all), as
    threshold trees with categorical splits re-expressed; ``output`` is each tree's class.

    Raises ValueError beyond :data:`MAX_TREE_SHAP_NODES` nodes, or for boosters other than
    ``gbtree`` with scalar leaves.
    """
    model = json.loads(bytes(booster.save_raw("json")))
    gbm = model["learner"]["gradient_booster"]
    if gbm.get("name") != "gbtree":
        raise ValueError(f"interventional TreeSHAP supports gbtree boosters, not {gbm.get('name')}")
    gbtree = gbm["model"]
    indptr = gbtree.get("iteration_indptr")
    if indptr is None:  # older models: trees per round = classes × parallel trees
        params = model["learner"]["learner_model_param"]
        per_round = max(1, int(params.get("num_class", "0"))) * int(
            gbtree["gbtree_model_param"].get("num_parallel_tree", "1")
        )
        indptr = list(range(0, len(gbtree["trees"]) + 1, per_round))
    begin, end = iteration_range
    end = end if end > 0 else len(indptr) - 1
    info = gbtree["tree_info"]
    budget = [MAX_TREE_SHAP_NODES]
    trees = []
    for i in range(indptr[begin], indptr[end]):
        tree = gbtree["trees"][i]
        if int(tree["tree_param"].get("size_leaf_vector", "1")) > 1:
            raise ValueError("interventional TreeSHAP does not support vector-leaf XGBoost trees")
        trees.append(_convert_xgboost_tree(tree, int(info[i]), budget))
    return trees


class _Builder:
    """Nodes of one converted tree, appended in order; stops at the shared node budget."""

    def __init__(self, budget: list[int]) -> None:
        self.budget = budget
        self.left: list[int] = []
        self.right: list[int] = []
        self.default: list[int] = []
        self.feature: list[int] = []
        self.threshold: list[float] = []
        self.value: list[float] = []
        self.weight: list[float] = []

    def add(self, feature: int, threshold: float, value: float, weight: float) -> int:
        if self.budget[0] <= 0:
            raise _too_many_nodes("this XGBoost model")
        self.budget[0] -= 1
        for column, item in (
            (self.left, -1),
            (self.right, -1),
            (self.default, -1),
            (self.feature, feature),
            (self.threshold, threshold),
            (self.value, value),
            (self.weight, weight),
        ):
            column.append(item)
        return len(self.left) - 1

    def link(self, node: int, left: int, right: int, default: int) -> None:
        self.left[node], self.right[node], self.default[node] = left, right, default

    def tree(self, output: int, recode: tuple) -> ShapTree:
        ints = [np.asarray(c, dtype=np.int64) for c in (self.left, self.right, self.default)]
        return ShapTree(
            *ints,
            np.asarray(self.feature, dtype=np.int64),
            np.asarray(self.threshold, dtype=np.float64),
            np.asarray(self.value, dtype=np.float64),
            np.asarray(self.weight, dtype=np.float64),
            output,
            recode,
        )


def _code_order(sets: list[np.ndarray]) -> np.ndarray:
    """A lookup code → position putting the codes in few runs for ``sets`` (ordered from the
    root down): codes sorted by membership, first set first (in it before not), then the
    next set, ..., then the code; so the first set is one run starting at 0."""
    n_codes = 1 + max((int(codes.max()) for codes in sets if len(codes)), default=-1)
    member = np.zeros((len(sets), n_codes), dtype=bool)
    for j, codes in enumerate(sets):
        member[j, codes] = True
    order = np.lexsort((np.arange(n_codes), *(~member[::-1])))  # last key sorts first
    lookup = np.empty(n_codes, dtype=np.int64)
    lookup[order] = np.arange(n_codes)
    return lookup


def _intervals(directions: np.ndarray, reachable: np.ndarray):
    """Cut the position axis into intervals of one direction, for the reachable positions only.

    ``directions`` / ``reachable``: per position (the last standing for every code past the
    lookup). Returns the cut points (interval j is ``(cuts[j-1], cuts[j]]``), each interval's
    direction, and each interval's reachable positions.
    """
    known = np.flatnonzero(reachable)
    cuts: list[float] = []
    dirs: list[int] = []
    members: list[np.ndarray] = []
    if len(known) == 0:
        return cuts, dirs, members
    starts = np.flatnonzero(np.r_[True, directions[known][1:] != directions[known][:-1]])
    for start, end in zip(starts, [*starts[1:], len(known)], strict=True):
        if dirs:
            cuts.append(known[start] - 0.5)
        dirs.append(int(directions[known[start]]))
        members.append(known[start:end])
    return cuts, dirs, members


def _convert_xgboost_tree(tree: dict, output: int, budget: list[int]) -> ShapTree:
    if not tree.get("categories_nodes"):
        return _convert_numeric_tree(tree, output, budget)
    lefts, rights = tree["left_children"], tree["right_children"]
    features, default_left = tree["split_indices"], tree["default_left"]
    split_type = tree.get("split_type", [0] * len(lefts))
    conditions = np.asarray(tree["split_conditions"], dtype=np.float32)
    # XGBoost: x < t goes left; shap: x <= t. For float32 x, x < t iff x <= next float32 below t
    below = np.nextafter(conditions, np.float32(-np.inf)).astype(np.float64).tolist()
    leaf_values = conditions.astype(np.float64).tolist()
    cover = [float(h) for h in tree["sum_hessian"]]
    sets: dict[int, np.ndarray] = {}
    segments, sizes = tree.get("categories_segments", []), tree.get("categories_sizes", [])
    for node, start, size in zip(tree.get("categories_nodes", []), segments, sizes, strict=True):
        sets[int(node)] = np.asarray(tree["categories"][start : start + size], dtype=np.int64)
    # per categorical feature: its split nodes from the root down, and the tree's code order
    by_feature: dict[int, list[int]] = {}
    for node in _breadth_first(lefts, rights):
        if node in sets:
            by_feature.setdefault(int(features[node]), []).append(node)
    lookups = {f: _code_order([sets[n] for n in nodes]) for f, nodes in by_feature.items()}
    out = _Builder(budget)

    def emit(i: int, reach: dict[int, np.ndarray]) -> int:
        if lefts[i] == -1:
            return out.add(-1, 0.0, leaf_values[i], cover[i])
        if split_type[i] == 0:
            node = out.add(features[i], below[i], 0.0, cover[i])
            left, right = emit(lefts[i], reach), emit(rights[i], reach)
            out.link(node, left, right, left if default_left[i] else right)
            return node
        return emit_categorical(i, reach)

    def emit_categorical(i: int, reach: dict[int, np.ndarray]) -> int:
        f = int(features[i])
        lookup = lookups[f]
        # positions (the last one: every code past the lookup, never in a set) going right
        goes_right = np.zeros(len(lookup) + 1, dtype=bool)
        goes_right[lookup[sets[i]]] = True
        reachable = reach.get(f, np.ones(len(lookup) + 1, dtype=bool))
        cuts, directions, members = _intervals(goes_right.astype(int), reachable)
        missing = _LEFT if default_left[i] else _RIGHT
        if missing not in directions:  # an interval no code reaches, for missing values only
            cuts, directions = [*cuts, np.inf], [*directions, missing]
            members = [*members, np.empty(0, dtype=np.int64)]

        def chain(lo: int, hi: int) -> int:  # intervals lo..hi; each leaf a copy of a child
            if lo == hi:
                child_reach = np.zeros(len(lookup) + 1, dtype=bool)
                child_reach[members[lo]] = True
                child = lefts[i] if directions[lo] == _LEFT else rights[i]
                return emit(child, {**reach, f: child_reach})
            mid = (lo + hi) // 2
            node = out.add(f, cuts[mid], 0.0, cover[i])
            left, right = chain(lo, mid), chain(mid + 1, hi)
            # missing values go to a side that still holds an interval of their direction
            out.link(node, left, right, left if missing in directions[lo : mid + 1] else right)
            return node

        return chain(0, len(directions) - 1)

    emit(0, {})
    recode = tuple((f, lookups[f]) for f in sorted(lookups))
    return out.tree(output, recode)


def _convert_numeric_tree(tree: dict, output: int, budget: list[int]) -> ShapTree:
    """A tree without categorical splits keeps its node layout: only the threshold moves to
    the next float32 below (``x < t`` as ``x <= t'``) and leaves carry their value. Vectorised,
    as most trees are of this kind (every tree of a numeric-only model)."""
    left = np.asarray(tree["left_children"], dtype=np.int64)
    right = np.asarray(tree["right_children"], dtype=np.int64)
    budget[0] -= len(left)
    if budget[0] < 0:
        raise _too_many_nodes("this XGBoost model")
    leaf = left == -1
    conditions = np.asarray(tree["split_conditions"], dtype=np.float32)
    below = np.nextafter(conditions, np.float32(-np.inf)).astype(np.float64)
    default_left = np.asarray(tree["default_left"], dtype=bool)
    return ShapTree(
        left,
        right,
        np.where(leaf, -1, np.where(default_left, left, right)),
        np.where(leaf, -1, np.asarray(tree["split_indices"], dtype=np.int64)),
        np.where(leaf, 0.0, below),
        np.where(leaf, conditions.astype(np.float64), 0.0),
        np.asarray(tree["sum_hessian"], dtype=np.float64),
        output,
    )


def _breadth_first(lefts: Sequence[int], rights: Sequence[int]) -> list[int]:
    order, frontier = [], [0]
    while frontier:
        order += frontier
        frontier = [c for n in frontier if lefts[n] != -1 for c in (lefts[n], rights[n])]
    return order


def xgboost_categories(booster: Any) -> dict[str, list] | None:
    """The categories of each categorical training column (XGBoost >= 3.1 stores them and
    re-codes the input's categories by value), or None when the booster keeps none."""
    get = getattr(booster, "get_categories", None)
    if get is None:
        return None
    try:
        pairs = get(export_to_arrow=True).to_arrow()
    except TypeError:  # no export_to_arrow option
        return None
    if not pairs:
        return None
    return {name: array.to_pylist() for name, array in pairs if array is not None}


def xgboost_matrix(X: Any, categories: dict[str, list] | None) -> np.ndarray:
    """X as the float matrix XGBoost's trees compare: numbers rounded to float32, a ``category``
    column as its category codes (the training categories' order when the booster stores them,
    as XGBoost re-codes by value; else the column's own codes), missing as NaN."""
    if not isinstance(X, pd.DataFrame):
        return float32_values(X)
    columns = []
    for name in X.columns:
        column = X[name]
        if not isinstance(column.dtype, pd.CategoricalDtype):
            columns.append(float32_values(column.to_numpy(dtype=np.float64, na_value=np.nan)))
            continue
        known = None if categories is None else categories.get(str(name))
        if known is None:
            codes = column.cat.codes.to_numpy()
        else:
            codes = pd.Categorical(column, categories=known).codes
            unknown = (codes < 0) & column.notna().to_numpy()
            if unknown.any():
                raise ValueError(
                    f"column {name!r} holds categories the model was not trained on: "
                    f"{sorted(map(str, pd.unique(column[unknown])))[:5]}"
                )
        columns.append(np.where(codes < 0, np.nan, codes.astype(np.float64)))
    return np.column_stack(columns) if columns else np.empty((len(X), 0))
