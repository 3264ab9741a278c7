"""conf/model/*.yaml of the models layer: the shape the runner reads, and classes that take the params."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from hydra.utils import get_class
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf" / "model"
OWNED = {
    "logreg": "neural",
    "random_forest": "ordinal",
    "xgboost": "native",
    "catboost": "native",
    "tabresnet": "neural",
    "debug_fail": "neural",
    "debug_diverge": "neural",
}
VARIANTS = {"imn_fast", "lfr_imn_fast"}
# every config in conf/model is checked; those not listed above are neural-network models
ALL = sorted(p.stem for p in CONF.glob("*.yaml"))
PREPROCESSING = {name: OWNED.get(name, "neural") for name in ALL}
RUNNER_KNOBS = {"random_state", "device", "n_jobs"}


def _load(name):
    return OmegaConf.to_container(OmegaConf.load(CONF / f"{name}.yaml"))


@pytest.mark.parametrize("name", ALL)
def test_config_has_the_runner_shape(name):
    cfg = _load(name)
    required = ["name", "preprocessing", "classifier", "regressor", "params"]
    assert [key for key in cfg if key in required] == required
    assert set(cfg) <= {*required, "use_validation"}
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
        accepted = set(inspect.signature(cls).parameters)
        assert set(cfg["params"]) <= accepted
        assert not set(cfg["params"]) & RUNNER_KNOBS
        estimator = cls(**cfg["params"], random_state=1, device="cpu")
        defaults = {k: p.default for k, p in inspect.signature(cls).parameters.items()}
        # the config repeats the class defaults, so code and config cannot drift apart silently;
        # named variants (imn_fast) deliberately differ from them
        assert estimator.get_params()["random_state"] == 1
        if name not in VARIANTS:
            assert {k: defaults[k] for k in cfg["params"]} == cfg["params"]
