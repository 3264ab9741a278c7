"""conf/model/*.yaml of the models layer: the shape the runner reads, and classes that take the params."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import get_class
from omegaconf import OmegaConf

from mesobench.config.paths import conf_dir, register_resolvers
from mesobench.models.torch_estimator import TorchEstimator

register_resolvers()

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
OWNED = {
    "logreg": "neural",
    "random_forest": "ordinal",
    "xgboost": "native",
    "catboost": "native",
    "tabresnet": "neural",
    "debug_fail": "neural",
    "debug_diverge": "neural",
    "oracle": "ordinal",
}
# named variants whose params deliberately differ from the class defaults
VARIANTS = {
    "imn_fast",
    "lfr_imn_fast",
    "nimo_synthetic",
    "imn_example_mlp",
    "imn_example_tabresnet",
    "lfr_imn_example_mlp",
    "lfr_imn_example_tabresnet",
}
# every config in conf/model is checked; those not listed above are neural-network models
ALL = sorted(p.stem for p in CONF.glob("*.yaml"))
PREPROCESSING = {name: OWNED.get(name, "neural") for name in ALL}
RUNNER_KNOBS = {"random_state", "device", "n_jobs"}


def _load(name):
    """The model config as the runner composes it (a variant inherits its base's keys)."""
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        cfg = compose("config", overrides=[f"model={name}"])
    return OmegaConf.to_container(cfg.model, resolve=True)


def _plain(value):
    return tuple(value) if isinstance(value, list) else value


@pytest.mark.parametrize("name", ALL)
def test_config_has_the_runner_shape(name):
    cfg = _load(name)
    required = ["name", "preprocessing", "classifier", "regressor", "params"]
    assert [key for key in cfg if key in required] == required
    optional = {
        "use_validation",
        "classifier_params",
        "regressor_params",
        "limits",
        "limits_reason",
    }
    assert set(cfg) <= {*required, *optional}
    assert cfg["name"] == name
    assert cfg["preprocessing"] == PREPROCESSING[name]
    assert (CONF / f"{name}.yaml").read_text().startswith("# ")  # one-line description


@pytest.mark.parametrize("name", ALL)
def test_params_are_constructor_arguments_and_leave_the_runner_knobs_alone(name):
    cfg = _load(name)
    for role in ("classifier", "regressor"):
        if cfg[role] is None:
            continue
        cls = get_class(cfg[role])
        params = {**cfg["params"], **(cfg.get(f"{role}_params") or {})}
        accepted = set(inspect.signature(cls).parameters)
        assert set(params) <= accepted
        assert not set(params) & RUNNER_KNOBS
        estimator = cls(**params, random_state=1, device="cpu")
        defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
        # the config repeats the class defaults, so code and config cannot drift apart silently;
        # named variants (imn_fast) deliberately differ from them
        assert estimator.get_params()["random_state"] == 1
        if isinstance(estimator, TorchEstimator):  # what fit checks first: the config passes
            estimator._checked_settings()
        if name not in VARIANTS:
            assert {k: _plain(defaults[k]) for k in params} == {
                k: _plain(v) for k, v in params.items()
            }
