"""The real config tree composes, and every model config builds its estimator."""

from __future__ import annotations

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from conftest import run_key_of
from mesobench.config import identity
from mesobench.config.paths import conf_dir, register_resolvers
from mesobench.errors import ConfigError
from mesobench.protocol.estimators import build_estimator
from mesobench.runner.progress import planned_jobs

register_resolvers()
MODEL_DIR = conf_dir() / "model"
# options as the command line names them: imn, variants/imn_adamw, ...
MODELS = sorted(
    p.relative_to(MODEL_DIR).with_suffix("").as_posix() for p in MODEL_DIR.rglob("*.yaml")
)


def _compose(*overrides: str, hydra: bool = False):
    with initialize_config_dir(str(conf_dir()), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_config_builds_its_classifier(name):
    cfg = _compose(f"model={name}")
    model = OmegaConf.to_container(cfg.model, resolve=True)
    est = build_estimator(model, "binary", seed=3, device="cpu", threads=1)
    assert est.get_params()["random_state"] == 3
    assert cfg.preprocessing.mode in {"neural", "ordinal", "native"}


def test_a_model_without_regressor_says_so():
    model = OmegaConf.to_container(_compose("model=logreg").model, resolve=True)
    model["regressor"] = None
    with pytest.raises(ConfigError, match="has no regressor"):
        build_estimator(model, "regression", seed=0, device="cpu", threads=1)


def test_a_misspelt_hyperparameter_is_reported():
    model = OmegaConf.to_container(_compose("model=xgboost").model, resolve=True)
    model["params"]["learning_rat"] = 0.1
    with pytest.raises(ConfigError, match="learning_rat"):
        build_estimator(model, "binary", seed=0, device="cpu", threads=1)


def test_quick_suite_plans_tasks_times_folds_times_models():
    cfg = _compose("+experiment=quick", hydra=True)
    assert planned_jobs(cfg) == 8 * 3 * 8  # tasks x folds x models


def test_folds_override_changes_the_suite():
    cfg = _compose("+experiment=quick", "folds=10", "model=xgboost", hydra=True)
    assert planned_jobs(cfg) == 8 * 10
    assert cfg.hydra.sweeper.params.fold == "range(0,10)"


def test_run_key_ignores_where_results_go_but_not_what_is_computed():
    base = run_key_of(_compose("model=xgboost"))
    assert base == run_key_of(
        _compose("model=xgboost", "tracking.uri=sqlite:////x.db", "threads=7")
    )
    assert base != run_key_of(_compose("model=xgboost", "model.params.learning_rate=0.3"))
    assert base != run_key_of(_compose("model=xgboost", "fold=1"))
    assert base != run_key_of(_compose("model=xgboost", "seed=1"))
    assert base != run_key_of(_compose("model=xgboost", "task=diabetes"))
    assert base != run_key_of(_compose("model=xgboost", "hpo.n_trials=5"))


def test_flatten_joins_nested_keys():
    assert identity.flatten({"a": {"b": {"c": 1}}, "d": 2}) == {"a.b.c": 1, "d": 2}


def test_the_parity_suite_is_paper_imn_on_the_reference_folds_seeded_by_fold():
    """+experiment=imn_parity runs what ../shared/reference/ measured: imn, diabetes, 10 folds."""
    cfg = _compose("+experiment=imn_parity", "fold=7", "model.params.optimizer=adamw", hydra=True)
    assert cfg.model.name == "imn" and cfg.model.params.optimizer == "adamw"  # overridable
    assert cfg.seed == 7  # torch.manual_seed(fold), as the reference figures
    params = cfg.hydra.sweeper.params
    assert (params.task, params.fold) == ("diabetes", "range(0,10)")
    assert params.model.split(",")[0] == "imn"  # then its variants (reference rules, AdamW)
    paper = _compose("model=imn").model.params
    assert (paper.optimizer, paper.lr, paper.weight_decay, paper.batch_size, paper.epochs) == (
        "adam",
        0.01,
        0.01,
        64,
        500,
    )


def test_the_boundary_accepts_every_shipped_default():
    """conf/config.yaml's own values pass the boundary rules (a rule that refused a default
    would refuse every run)."""
    from mesobench.config.paths import compose_config
    from mesobench.protocol.boundary import RULES, check_run_config

    plain = compose_config("model=xgboost")
    check_run_config(plain, "xgboost")
    missing = [k for k in RULES if OmegaConf.select(OmegaConf.create(plain), k, default="!") == "!"]
    assert missing == [], "a rule for a key the config does not have"


@pytest.mark.parametrize(
    ("value", "ok"),
    [(0, True), (3, True), (-1, False), (1.5, False), (True, False), ("abc", False), (None, False)],
)
def test_an_integer_rule_takes_integers_in_range_only(value, ok):
    from mesobench.protocol.boundary import RULES

    assert RULES["fold"].accepts(value) is ok


def test_threads_takes_auto_or_a_positive_integer():
    from mesobench.protocol.boundary import RULES

    rule = RULES["threads"]
    assert rule.accepts("auto") and rule.accepts(2)
    assert not rule.accepts(0) and not rule.accepts("many")
    assert "'auto'" in rule.describe()
