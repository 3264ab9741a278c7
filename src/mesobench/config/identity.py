"""A run's identity: which settings make its result, hashed into its run key.

The run key is the hash of the whole resolved run config minus :data:`BOOKKEEPING_KEYS`, the
settings that cannot change a result (where runs are stored, labels, guards, thread count ...).
Nothing here talks to MLflow, so the aggregator and the tests use it without a store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any


def _canonical(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))


def stable_hash(obj: Any, length: int = 16) -> str:
    return hashlib.sha256(_canonical(obj).encode()).hexdigest()[:length]


RUN_KEY_VERSION = "5"
"""Version of the run-key rule, logged as tag ``mesobench.run_key_version``. Version 1 hashed a
hand-picked list of sections (model, preprocessing, validation, task, fold, seed, device); version
2 hashes the whole resolved config minus :data:`BOOKKEEPING_KEYS`; version 3 is version 2 with
the knobs of the experiments (``preprocessing.standardise_numeric``, ``hpo.sampler``,
``hpo.models``); version 4 adds the settings of the insertion, faithfulness-correlation and
stability metrics (``fidelity.faithfulness_*``, ``fidelity.sensitivity_*``); version 5 scores
every model in the raw feature space with one baseline row (``fidelity.numeric_baseline``,
``fidelity.categorical_baseline``, ``fidelity.yeh_categorical_removal``,
``fidelity.sensitivity_category_redraw``; docs/fidelity.md). Runs of another
version are redone by the runner (their keys differ) and left out by the aggregator, never
mixed.

Adding a knob to ``conf/config.yaml`` changes every run key (the knob is hashed), so the runs
made before it would show up in a report as a second configuration of each model. The version
therefore moves with the config's keys: ``tests/test_run_key.py`` fails when
:func:`schema_fingerprint` of the composed config differs from :data:`SCHEMA_FINGERPRINT`,
saying to bump the version and record the new fingerprint."""

SCHEMA_FINGERPRINT = "9b152c13ac96fd8d"
""":func:`schema_fingerprint` of the config this :data:`RUN_KEY_VERSION` was declared for."""

BOOKKEEPING_KEYS: tuple[str, ...] = (
    "tracking",  # where runs are stored, not what they compute
    "force",  # rerun even if FINISHED
    "suite_name",  # labels of a sweep
    "sweep_id",
    "folds",  # how many folds a suite sweeps; the run's own `fold` is hashed
    "threads",  # CPU threads per run (results equal up to float summation order)
    "guards",  # time limit, heartbeat, stale-claim detection
    "data.openml_cache_dir",  # where the cached data lies
    "data.offline",  # whether the OpenML server may be asked
    "artifacts.save_model",  # whether the fitted model is also saved
    "aggregate",  # an experiment's report settings (read by mesobench.aggregate, not the runner)
    "protocol",  # a check of the experiment's tuning (the tuning itself is hashed: hpo_settings)
    "model.limits",  # shapes a model refuses up front (mesobench.protocol.limits); an allowed run is unchanged
    "model.limits_reason",
)
"""Dotted config keys (a key covers everything below it) that do not change a run's result and
so stay out of its run key. Every other key of the composed config is hashed: a new knob enters
the key without anyone having to remember it (``tests/test_run_key.py`` checks both ways)."""

INACTIVE_SECTIONS: dict[str, tuple[str, Any]] = {
    "hpo": ("n_trials", 0),
    "gamma_search": ("enabled", False),
    "fidelity": ("enabled", False),
    "explanations": ("enabled", False),
}
"""Sections reduced to their switch while it is off (``{section: (switch, off value)}``): the
settings of a search that does not run cannot change a result, and editing them (e.g. a model's
``conf/hpo/`` search space) must not redo every run made without a search."""

CONTEXT_KEYS = ("task", "fold", "seed")
"""What places a run in the benchmark grid; the rest of its identity is its *configuration*."""


def _drop(tree: dict[str, Any], dotted: str) -> None:
    head, _, rest = dotted.partition(".")
    if head not in tree:
        return
    if not rest:
        del tree[head]
    elif isinstance(tree[head], dict):
        _drop(tree[head], rest)


def schema_fingerprint(plain: Mapping[str, Any]) -> str:
    """A hash of the config's hashed key paths, model, task and search space aside (those differ
    between models and tasks by design): it changes when a knob is added to or removed from the
    runner's config."""
    identity = run_identity(plain)
    for key in ("model", "task", "hpo.space"):
        _drop(identity, key)

    def paths(tree: Any, prefix: str = "") -> list[str]:
        if not isinstance(tree, dict):
            return [prefix]
        return [p for k, v in tree.items() for p in paths(v, f"{prefix}{k}.")]

    return stable_hash(sorted(paths(identity)))


def hpo_settings(plain: Mapping[str, Any]) -> dict[str, Any]:
    """The run's ``hpo`` section, or ``{"n_trials": 0}`` when the search does not apply to its
    model (``hpo.models`` lists others): one sweep can tune some of its models only."""
    section = dict(plain.get("hpo") or {})
    models = section.get("models")
    name = (plain.get("model") or {}).get("name")
    if models is not None and name not in list(models):
        return {"n_trials": 0}
    return section


def run_identity(plain: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a resolved run config (``OmegaConf.to_container(cfg, resolve=True)``) that
    decides its result: everything but :data:`BOOKKEEPING_KEYS`, inactive sections reduced to
    their switch (:data:`INACTIVE_SECTIONS`)."""
    identity = json.loads(_canonical(plain))  # a deep, JSON-typed copy
    identity.pop("hydra", None)
    if "hpo" in identity:
        identity["hpo"] = json.loads(_canonical(hpo_settings(plain)))
    for key in BOOKKEEPING_KEYS:
        _drop(identity, key)
    for section, (switch, off) in INACTIVE_SECTIONS.items():
        values = identity.get(section)
        if isinstance(values, dict) and (values.get(switch) or off) == off:
            identity[section] = {switch: off}
    return identity


def run_key(plain: Mapping[str, Any]) -> str:
    """The identity of a run: a hash of its :func:`run_identity` and the rule's version (a
    bumped version redoes every run). A FINISHED key is skipped."""
    return stable_hash([RUN_KEY_VERSION, run_identity(plain)], length=32)


def without_task(cfg: Any) -> dict[str, Any]:
    """The resolved config with the task section emptied before resolution, for
    :func:`config_hash`: a setting interpolated from the task (the oracle's
    ``generator: ${oc.select:task.generator,null}``) then does not split one configuration into
    one per task. Falls back to the plain resolution when something needs the task itself."""
    from omegaconf import OmegaConf

    masked = cfg.copy()
    OmegaConf.update(masked, "task", {}, merge=False, force_add=True)
    try:
        return OmegaConf.to_container(masked, resolve=True)
    except Exception:  # an interpolation that needs a task field: no masking possible
        return OmegaConf.to_container(cfg, resolve=True)


def config_hash(plain: Mapping[str, Any]) -> str:
    """Identifies a run's configuration: its identity without task, fold and seed.

    Runs on different tasks and folds with the same model settings, preprocessing, protocol,
    fidelity settings and device settings share it; the aggregator names configurations of one
    model by what differs between them (``logreg[sigma=0.5]``) instead of averaging them.
    """
    identity = run_identity(plain)
    for key in CONTEXT_KEYS:
        identity.pop(key, None)
    return stable_hash(identity)


def flatten(cfg: Mapping, prefix: str = "") -> dict[str, Any]:
    """``{"model": {"params": {"lr": 0.1}}}`` → ``{"model.params.lr": 0.1}``."""
    out: dict[str, Any] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out
