"""The run config's values checked against their types at the edge, before anything is recorded.

Hydra parses ``fold=abc`` as a string and ``seed=-5`` as an integer; without this check they
reach ``int()``, numpy or a model library and come back as a traceback or as a FAILED run that
says "unexpected". Here every command-line value a run reads is checked once: the runner's own
settings against :data:`RULES` (type and range), a model's ``params`` against the types its
model config file gives them. A bad value is one line naming the key, the value and what is
expected (:class:`~mesobench.errors.ConfigError`, exit code 2 at the command line), and the run
is never claimed in the store.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Mapping
from numbers import Real
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from mesobench.config.expect import BOOLEAN, Expect, integer, integer_or, number
from mesobench.errors import ConfigError

INT0, INT1, POSITIVE = integer(0), integer(1), number(0, strict=True)
SHARE = number(0, maximum=1)
#: The runner's settings (``conf/config.yaml``) that a command line may set, with what they take.
RULES: dict[str, Expect] = {
    "fold": INT0,
    "seed": INT0,
    "folds": INT1,
    "force": BOOLEAN,
    "threads": integer_or("auto", 1),
    "guards.time_limit_s": number(0, strict=True, optional=True),
    "guards.heartbeat_s": POSITIVE,
    "guards.stale_after_s": POSITIVE,
    "validation.fraction": number(0, strict=True, maximum=1),
    "hpo.n_trials": INT0,
    "hpo.timeout_s": number(0, strict=True, optional=True),
    "explanations.sample_size": INT1,
    "fidelity.enabled": BOOLEAN,
    "fidelity.sample_size": integer(1, optional=True),
    "fidelity.sigma": POSITIVE,
    "fidelity.n_neighbors": INT1,
    "fidelity.k_nearest": INT1,
    "fidelity.yeh_noise_std": POSITIVE,
    "fidelity.yeh_n_perturbations": INT1,
    "fidelity.yeh_categorical_removal": SHARE,
    "fidelity.deletion_steps": INT1,
    "fidelity.insertion_steps": INT1,
    "fidelity.faithfulness_sample_size": INT1,
    "fidelity.faithfulness_subset_size": INT1,
    "fidelity.faithfulness_n_subsets": INT1,
    "fidelity.sensitivity_sample_size": INT1,
    "fidelity.sensitivity_radius": POSITIVE,
    "fidelity.sensitivity_n_perturbations": INT1,
    "fidelity.sensitivity_category_redraw": SHARE,
    "preprocessing.max_missing_fraction": SHARE,
    "preprocessing.max_unique_fraction": SHARE,
    "preprocessing.onehot_max_categories": INT1,
}


def _select(plain: Mapping[str, Any], dotted: str) -> tuple[bool, Any]:
    node: Any = plain
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def _refuse(key: str, value: Any, expected: str) -> ConfigError:
    return ConfigError(f"{key}={value!r}: expected {expected}.")


def check_setting(key: str, value: Any) -> None:
    """One value of the setting ``key`` against its rule in :data:`RULES`."""
    if not RULES[key].test(value):
        raise _refuse(key, value, RULES[key].text)


def check_settings(plain: Mapping[str, Any]) -> None:
    """Every value of :data:`RULES` present in the resolved run config ``plain``."""
    for key in RULES:
        present, value = _select(plain, key)
        if present:
            check_setting(key, value)


def _same_type(default: Any, value: Any) -> str | None:
    """What ``value`` should be to match the config file's ``default``; None when it does.

    Only what a default's type cannot leave open is refused: a number where the file has a
    number (an int may stand for a float), a flag where it has a flag, a list where it has a
    list. A string default may take a number (``max_features: sqrt`` or 0.5).
    """
    if default is None or value is None:
        return None
    if isinstance(default, bool):
        return None if isinstance(value, bool) else "true or false"
    if isinstance(default, Real):  # an int default may stand for a float (warmup_epochs: 5)
        ok = isinstance(value, Real) and not isinstance(value, bool)
        return None if ok else "a number"
    if isinstance(default, list | tuple):
        return None if isinstance(value, list | tuple) else "a list"
    return None


def check_model_params(params: Mapping[str, Any], defaults: Mapping[str, Any], source: str):
    """Each of ``params`` that its model config file ``source`` sets has that value's type."""
    for name, value in params.items():
        if name not in defaults:
            continue
        if isinstance(value, Mapping) and isinstance(defaults[name], Mapping):
            check_model_params(value, defaults[name], source)
            continue
        expected = _same_type(defaults[name], value)
        if expected is not None:
            shown = f"{expected}, as {source} sets it ({defaults[name]!r})"
            raise _refuse(f"model.params.{name}", value, shown)


@functools.lru_cache(maxsize=64)
def model_defaults(choice: str | None) -> tuple[Mapping[str, Any], str]:
    """The params of ``conf/model/<choice>.yaml`` (with what it inherits) and the file's name;
    empty for a run without a model config file (a model built in code). Composed once per
    model and process: the sweep callback asks for each swept model twice."""
    from mesobench.config.paths import compose_config, conf_dir

    if not choice or not (conf_dir() / "model" / f"{choice}.yaml").is_file():
        return {}, ""
    params = compose_config(f"model={choice}")["model"].get("params") or {}
    return params, f"conf/model/{choice}.yaml"


def check_run_config(plain: Mapping[str, Any], model_choice: str | None) -> None:
    """The whole boundary check of one run's resolved config."""
    check_settings(plain)
    defaults, source = model_defaults(model_choice or plain.get("model", {}).get("name"))
    check_model_params(plain.get("model", {}).get("params") or {}, defaults, source)


def check_swept_values(config: DictConfig, models: list[str | None]) -> None:
    """Every value of every swept setting (``fold=abc,0``, ``model.params.lr=0.1,x``): a bad one
    refuses the sweep before any job, instead of failing its job after others ran."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from mesobench.protocol.tuning_protocol import command_line_overrides

    task = command_line_overrides(config)
    for override in OverridesParser.create().parse_overrides(task):
        if not override.is_sweep_override():
            continue
        key = override.key_or_group.lstrip("+~")
        values = list(override.sweep_iterator())
        if key in RULES:
            for value in values:
                check_setting(key, value)
        elif key.startswith("model.params."):
            name = key.removeprefix("model.params.")
            for model in models:
                defaults, source = model_defaults(model)
                for value in values:
                    check_model_params({name: value}, defaults, source)


class BoundaryCheck(Callback):
    """Hydra callback: refuse a multirun with a bad value, fixed or swept, before any job
    starts (each job checks its own config again)."""

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from mesobench.protocol.tuning_protocol import sweep_configs

        try:
            models = []
            for model, composed in sweep_configs(config):
                check_run_config(composed, model)
                models.append(model or composed["model"]["name"])
            check_swept_values(config, models)
        except ConfigError as exc:  # Hydra turns a callback's exception into a mere warning
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from exc
