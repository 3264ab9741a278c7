"""Names for the configurations of one model in a report: ``imn[optimizer=adamw]``.

A run records the params that make its configuration (:func:`configuration`, the runs table's
``configuration`` column); a report that shows several configurations of one model names each
by the settings that tell it apart, so a reader sees *what* differs, not a hash.
"""

from __future__ import annotations

import json
from typing import Any

import pandas as pd

from mesobench.config.identity import INACTIVE_SECTIONS, flatten
from mesobench.config.paths import compose_config, conf_dir
from mesobench.report.runs import key_rules
from mesobench.report.runs_table import CONFIG_COLUMN, MODEL_NAME_COLUMN

#: Param prefixes of the settings that make up a run's configuration.
CONFIG_PREFIXES = (
    "model.params.",
    "model.regressor_params.",  # a model's settings for one task kind, over its params
    "model.classifier_params.",
    "preprocessing.",
    "device.",
    "validation.",
    "fidelity.",
    "explanations.",
    "hpo.",
    "gamma_search.",
)


#: Params the runner logs about a run's *outcome* under a config prefix (what the fidelity metrics
#: scored, what a search chose): not settings, so never part of a configuration's name.
OUTCOME_PARAM_PREFIXES = (
    "fidelity.n_points",
    "fidelity.attribution",
    "fidelity.n_features",  # and n_features_perturbed: the raw feature space's width
    "fidelity.n_categorical",
    "hpo.best.",
    "hpo.trials_run",
    "gamma_search.chosen_",
)


def configuration(params: dict[str, str]) -> str:
    """The run params that make up its configuration (model, preprocessing, device), as JSON."""
    chosen = {
        k: v
        for k, v in params.items()
        if k.startswith(CONFIG_PREFIXES) and not k.startswith(OUTCOME_PARAM_PREFIXES)
    }
    return json.dumps(chosen, sort_keys=True)


def label_models(runs: pd.DataFrame) -> pd.DataFrame:
    """Tell apart configurations of one model by what differs: ``imn[optimizer=adamw]``.

    When a model was run with several configurations (``config_hash``), each is named by its
    settings that differ from ``conf/model/<model>.yaml`` (so the config file's settings keep
    the plain name), and for settings not in that file from the most common value among them
    (a setting whose values tie is shown on every configuration); where that
    does not give distinct names (no recorded params), the hash tells them apart instead:
    ``xgboost@1a2b3c``.
    """
    if runs.empty:
        return runs
    runs = runs.copy()
    if MODEL_NAME_COLUMN not in runs or runs[MODEL_NAME_COLUMN].isna().all():
        runs[MODEL_NAME_COLUMN] = runs["model"]
    labels = {}
    # configurations are told apart within one run-key rule: runs of an older rule (left out of
    # reports by default) lack the newer knobs and would otherwise name every current run
    for (model, _), group in runs.assign(_rule=key_rules(runs)).groupby(["model", "_rule"]):
        configs = group.drop_duplicates("config_hash").set_index("config_hash")
        if len(configs) > 1:
            labels.update(_variant_labels(model, configs))
    runs["model"] = [
        labels.get((m, h), m) for m, h in zip(runs["model"], runs["config_hash"], strict=True)
    ]
    return runs


def _strict_mode(values: list[Any]) -> Any:
    """The most frequent value, or a sentinel when several tie (then every config shows it)."""
    counts = pd.Series([json.dumps(v) for v in values]).value_counts()
    if len(counts) > 1 and counts.iloc[0] == counts.iloc[1]:
        return object()
    return json.loads(counts.index[0])


def _config_defaults(model: str) -> dict[str, str]:
    """``conf/model/<model>.yaml``'s params, and its settings per task kind, (with those it
    inherits) as the runner logs them (``model.params.k``, ``model.regressor_params.k``: str).

    Variants are named by what differs from these, so ``lfr_imn`` in a report is the
    configuration of ``conf/model/lfr_imn.yaml`` whenever it ran. Empty for a model without a
    config file (renamed, or a store made elsewhere): then the commonest values are the base.
    """
    if not (conf_dir() / "model" / f"{model}.yaml").is_file():
        return {}
    section = compose_config(f"model={model}")["model"]
    flat = {
        k: v
        for part in ("params", "regressor_params", "classifier_params")
        for k, v in flatten(section.get(part) or {}, f"model.{part}.").items()
    }
    return {k: "None" if v is None else str(v) for k, v in flat.items()}


def _active_settings(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` without the settings of sections that were switched off
    (:data:`~mesobench.config.identity.INACTIVE_SECTIONS`, as the run key ignores them): the search
    space of a search that did not run cannot tell two configurations apart."""
    dropped = tuple(
        f"{section}."
        for section, (switch, value) in INACTIVE_SECTIONS.items()
        if str(params.get(f"{section}.{switch}")) == str(value)
    )
    switches = {f"{section}.{switch}" for section, (switch, _) in INACTIVE_SECTIONS.items()}
    return {
        k: v
        for k, v in params.items()
        if (k in switches or not k.startswith(dropped)) and not k.startswith(OUTCOME_PARAM_PREFIXES)
    }


def _variant_labels(model: str, configs: pd.DataFrame) -> dict[tuple[str, str], str]:
    """``{(model, config_hash): label}`` for the configurations (one row per hash) of a model."""
    raw = configs[CONFIG_COLUMN] if CONFIG_COLUMN in configs else pd.Series(index=configs.index)
    parsed = {
        h: _active_settings(json.loads(c) if isinstance(c, str) and c else {})
        for h, c in raw.items()
    }
    keys = sorted(set().union(*parsed.values()))
    modal = {k: _strict_mode([p.get(k) for p in parsed.values()]) for k in keys}
    modal.update({k: v for k, v in _config_defaults(model).items() if k in modal})
    labels = {}
    for h, p in parsed.items():
        # a setting shared by both task kinds (lr for regression and classification) shows once
        diff = list(
            dict.fromkeys(f"{k.split('.')[-1]}={p.get(k)}" for k in keys if p.get(k) != modal[k])
        )
        labels[(model, h)] = f"{model}[{','.join(diff)}]" if diff else model
    if not keys or len(set(labels.values())) < len(labels):
        return {(model, h): f"{model}@{str(h)[:6]}" for h in configs.index}
    return labels
