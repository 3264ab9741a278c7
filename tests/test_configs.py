"""The real config tree composes, every model config builds its estimator, and a config with a
parent states only what differs from it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from omegaconf import OmegaConf

from conftest import composed, run_key_of
from mesobench.config import identity
from mesobench.config.paths import conf_dir, register_resolvers
from mesobench.errors import ConfigError
from mesobench.protocol.estimators import build_estimator
from mesobench.runner.progress import planned_jobs

register_resolvers()
CONF = conf_dir()
MODEL_DIR = CONF / "model"
# options as the command line names them: imn, variants/imn_adamw, ...
MODELS = sorted(
    p.relative_to(MODEL_DIR).with_suffix("").as_posix() for p in MODEL_DIR.rglob("*.yaml")
)


@pytest.mark.parametrize("name", MODELS)
def test_every_model_config_builds_its_classifier(name):
    cfg = composed(f"model={name}")
    model = OmegaConf.to_container(cfg.model, resolve=True)
    est = build_estimator(model, "binary", seed=3, device="cpu", threads=1)
    assert est.get_params()["random_state"] == 3
    assert cfg.preprocessing.mode in {"neural", "ordinal", "native"}


def test_a_model_without_regressor_says_so():
    model = OmegaConf.to_container(composed("model=logreg").model, resolve=True)
    model["regressor"] = None
    with pytest.raises(ConfigError, match="has no regressor"):
        build_estimator(model, "regression", seed=0, device="cpu", threads=1)


def test_a_misspelt_hyperparameter_is_reported():
    model = OmegaConf.to_container(composed("model=xgboost").model, resolve=True)
    model["params"]["learning_rat"] = 0.1
    with pytest.raises(ConfigError, match="learning_rat"):
        build_estimator(model, "binary", seed=0, device="cpu", threads=1)


def test_quick_suite_plans_tasks_times_folds_times_models():
    cfg = composed("+experiment=quick", hydra=True)
    assert planned_jobs(cfg) == 8 * 3 * 8  # tasks x folds x models


def test_folds_override_changes_the_suite():
    cfg = composed("+experiment=quick", "folds=10", "model=xgboost", hydra=True)
    assert planned_jobs(cfg) == 8 * 10
    assert cfg.hydra.sweeper.params.fold == "range(0,10)"


def test_run_key_ignores_where_results_go_but_not_what_is_computed():
    base = run_key_of(composed("model=xgboost"))
    assert base == run_key_of(
        composed("model=xgboost", "tracking.uri=sqlite:////x.db", "threads=7")
    )
    assert base != run_key_of(composed("model=xgboost", "model.params.learning_rate=0.3"))
    assert base != run_key_of(composed("model=xgboost", "fold=1"))
    assert base != run_key_of(composed("model=xgboost", "seed=1"))
    assert base != run_key_of(composed("model=xgboost", "task=diabetes"))
    assert base != run_key_of(composed("model=xgboost", "hpo.n_trials=5"))


def test_flatten_joins_nested_keys():
    assert identity.flatten({"a": {"b": {"c": 1}}, "d": 2}) == {"a.b.c": 1, "d": 2}


def test_the_parity_suite_is_paper_imn_on_the_reference_folds_seeded_by_fold():
    """+experiment=imn_parity runs what ../shared/reference/ measured: imn, diabetes, 10 folds."""
    cfg = composed("+experiment=imn_parity", "fold=7", "model.params.optimizer=adamw", hydra=True)
    assert cfg.model.name == "imn" and cfg.model.params.optimizer == "adamw"  # overridable
    assert cfg.seed == 7  # torch.manual_seed(fold), as the reference figures
    params = cfg.hydra.sweeper.params
    assert (params.task, params.fold) == ("diabetes", "range(0,10)")
    assert params.model.split(",")[0] == "imn"  # then its variants (reference rules, AdamW)
    paper = composed("model=imn").model.params
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

    assert RULES["fold"].test(value) is ok


def test_threads_takes_auto_or_a_positive_integer():
    from mesobench.protocol.boundary import RULES

    rule = RULES["threads"]
    assert rule.test("auto") and rule.test(2)
    assert not rule.test(0) and not rule.test("many")
    assert "'auto'" in rule.text


# ---- inheritance: a config with a parent states only what differs --------------------------------
def _parents(path: Path) -> list[Path]:
    """The files of conf/ a config inherits, in order: the plain entries of its defaults list
    (``imn``, ``/model/imn@_here_``, ``/suite/cc18``); not ``_self_``, a group choice
    (``/hpo@_global_.hpo.space: imn``, ``override /model: imn``) or a plugin's config."""
    entries = OmegaConf.load(path).get("defaults") or []
    names = [e.split("@")[0] for e in entries if isinstance(e, str) and e != "_self_"]
    files = [
        CONF / f"{n[1:]}.yaml" if n.startswith("/") else path.parent / f"{n}.yaml" for n in names
    ]
    return [f for f in files if f.is_file()]


def _own(path: Path) -> dict[str, Any]:
    own = OmegaConf.to_container(OmegaConf.load(path), resolve=False)
    own.pop("defaults", None)
    return own


def _inherited(path: Path) -> dict[str, Any]:
    """What a config gets from its parents: each parent over the one before, as it composes."""
    merged = OmegaConf.create()
    for parent in _parents(path):
        merged = OmegaConf.merge(merged, _inherited(parent), _own(parent))
    return OmegaConf.to_container(merged, resolve=False)


def _leaves(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict) or not tree:
        return {prefix: (type(tree), tree)}
    return {k: v for key, sub in tree.items() for k, v in _leaves(sub, f"{prefix}{key}.").items()}


WITH_PARENT = sorted(p.relative_to(CONF).as_posix() for p in CONF.rglob("*.yaml") if _parents(p))


def test_the_inheritance_check_finds_the_configs_it_must_cover():
    found = set(WITH_PARENT)
    assert {f"model/{p.name}" for p in MODEL_DIR.glob("*_example_*.yaml")} <= found
    assert {f"model/variants/{p.name}" for p in (MODEL_DIR / "variants").glob("*.yaml")} <= found
    assert {"model/imn_fast.yaml", "model/lfr_imn.yaml", "device/cuda.yaml"} <= found
    assert {"experiment/cc18.yaml", "experiment/quick.yaml"} <= found  # their suites


@pytest.mark.parametrize("name", WITH_PARENT)
def test_a_config_with_a_parent_states_only_what_differs_from_it(name):
    path = CONF / name
    defaults = list(OmegaConf.load(path).defaults)
    assert "_self_" not in defaults[:-1], "_self_ comes last, so that its own keys win"
    inherited = _leaves(_inherited(path))
    restated = sorted(k for k, v in _leaves(_own(path)).items() if inherited.get(k) == v)
    assert restated == [], f"{name} restates what it inherits"


@pytest.mark.parametrize("name", [n for n in WITH_PARENT if n.startswith("model/")])
def test_a_model_config_composes_to_its_parents_under_its_own_keys(name):
    """The check above reads the defaults list as Hydra composes it."""
    option = name.removeprefix("model/").removesuffix(".yaml")
    model = OmegaConf.to_container(composed(f"model={option}").model, resolve=False)
    path = CONF / name
    assert model == OmegaConf.to_container(
        OmegaConf.merge(_inherited(path), _own(path)), resolve=False
    )


def test_the_example_models_inherit_one_recipe():
    examples = sorted(MODEL_DIR.glob("*_example_*.yaml"))
    assert len(examples) == 4
    assert all(CONF / "recipe" / "lfr_example.yaml" in _parents(p) for p in examples)


@pytest.mark.parametrize(
    ("value", "refused"),
    [(0.5, False), (3, False), ("abc", True), (True, True), (None, False)],
)
def test_a_model_param_keeps_the_kind_of_its_config_default(value, refused):
    """An int default stands for a number (warmup_epochs: 5 takes 0.5); a string never does."""
    from mesobench.errors import ConfigError
    from mesobench.protocol.boundary import check_model_params

    defaults = {"warmup_epochs": 5, "max_features": "sqrt", "early": True}
    check_model_params({"max_features": 0.5, "early": False}, defaults, "conf/model/x.yaml")
    if refused:
        with pytest.raises(ConfigError, match=r"model.params.warmup_epochs=.*expected a number"):
            check_model_params({"warmup_epochs": value}, defaults, "conf/model/x.yaml")
    else:
        check_model_params({"warmup_epochs": value}, defaults, "conf/model/x.yaml")
