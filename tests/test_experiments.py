"""Experiments as configs: every experiment composes for the runner and the aggregator and takes
its task list from a suite, the paper baselines and the oracle are ordinary models, grid searches
are the generic HPO, and published figures and targets are data the report checks."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from conftest import composed, protocol
from mesobench.config.paths import conf_dir, register_resolvers, repo_root
from mesobench.data import Preprocessor, load_fold
from mesobench.errors import ConfigError
from mesobench.metrics import fidelity
from mesobench.protocol import hpo
from mesobench.protocol.estimators import build_estimator, kind_params
from mesobench.protocol.pipeline import evaluate_fold
from mesobench.report import published
from mesobench.report import settings as report_settings

register_resolvers()
EXPERIMENT_DIR = conf_dir() / "experiment"
SUITE_DIR = conf_dir() / "suite"
EXPERIMENTS = sorted(
    p.relative_to(EXPERIMENT_DIR).with_suffix("").as_posix() for p in EXPERIMENT_DIR.rglob("*.yaml")
)


def test_the_headline_experiments_are_configs():
    wanted = {"quick", "cc18", "imn_benchmark", "lfr_benchmark", "lfr_synthetic", "nimo_synthetic"}
    assert wanted <= set(EXPERIMENTS)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_composes_for_the_runner_and_the_aggregator(name):
    run_cfg = composed(f"+experiment={name}", hydra=True)
    assert run_cfg.suite_name == name
    assert run_cfg.hydra.sweeper.params.task  # it sweeps something
    agg_cfg = report_settings.with_experiment(
        composed(f"+experiment={name}", primary="aggregate"), []
    )
    assert agg_cfg.report == name and agg_cfg.filters.suite == name
    report_settings.settings_from(agg_cfg)  # its metric is known
    report_settings.published_from(agg_cfg)  # its published files and targets read


def _suite_tasks() -> dict[str, str]:
    return {
        p.stem: str(OmegaConf.load(p).hydra.sweeper.params.task)
        for p in sorted(SUITE_DIR.glob("*.yaml"))
    }


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_an_experiment_of_several_tasks_includes_a_suite_instead_of_listing_them(name):
    written = OmegaConf.select(
        OmegaConf.load(EXPERIMENT_DIR / f"{name}.yaml"), "hydra.sweeper.params.task"
    )
    swept = composed(f"+experiment={name}", hydra=True).hydra.sweeper.params.task
    if written is None:
        assert swept in _suite_tasks().values()
    else:
        assert "," not in str(written), f"{name} lists its tasks: write them in conf/suite/"


def test_every_task_list_is_written_once():
    lists = [frozenset(tasks.split(",")) for tasks in _suite_tasks().values()]
    assert len(set(lists)) == len(lists)


def test_the_command_line_wins_over_the_experiments_report_settings():
    overrides = ["+experiment=nimo_synthetic", "metric=mse", "report=mine"]
    cfg = report_settings.with_experiment(composed(*overrides, primary="aggregate"), overrides)
    assert (cfg.metric, cfg.report, cfg.ceiling) == ("mse", "mine", "oracle")
    assert cfg.out_dir.endswith("results/mine")


def test_the_nimo_experiment_tunes_its_models_on_a_grid_and_feeds_raw_features():
    cfg = composed("+experiment=nimo_synthetic", "model=nimo_synthetic")
    tuned = ["nimo_synthetic", "mlp", "imn_synthetic", "lfr_imn_synthetic"]
    assert (cfg.hpo.sampler, list(cfg.hpo.models)) == ("grid", tuned)
    assert cfg.preprocessing.standardise_numeric is False
    assert cfg.seed == cfg.fold
    model = OmegaConf.to_container(cfg.model, resolve=True)
    regressor = build_estimator(model, "regression", seed=0, device="cpu", threads=1)
    classifier = build_estimator(model, "binary", seed=0, device="cpu", threads=1)
    assert (regressor.epochs, regressor.noise_std, regressor.lr) == (2000, 0.0, 0.003)
    assert (classifier.epochs, classifier.noise_std, classifier.lr) == (1000, 0.2, 0.005)
    space = cfg.hpo.space
    assert set(kind_params(space, "regression")) == {"group_penalty"}
    assert set(kind_params(space, "binary")) == {"group_penalty", "noise_std"}


def test_lasso_and_mlp_build_for_both_task_kinds():
    for name in ("lasso", "mlp"):
        model = OmegaConf.to_container(composed(f"model={name}").model, resolve=True)
        for kind in ("regression", "binary"):
            build_estimator(model, kind, seed=0, device="cpu", threads=1)


def _fold(task: str, fold: int = 0):
    cfg = OmegaConf.to_container(composed(f"task={task}").task, resolve=True)
    return load_fold(cfg, fold)


def _run(model_name: str, task: str, *overrides: str):
    cfg = composed(f"model={model_name}", f"task={task}")
    plain = OmegaConf.to_container(cfg, resolve=True)
    data = _fold(task)
    estimator = build_estimator(plain["model"], data.task.kind, seed=0, device="cpu", threads=1)
    settings = protocol(
        f"model={model_name}", f"task={task}", "explanations.enabled=false", *overrides
    )
    return evaluate_fold(data, estimator, replace(settings, use_validation=False), seed=0)


def test_the_oracle_scores_the_noise_floor_and_explains_exactly():
    metrics = _run("oracle", "synthetic/r1").metrics
    assert metrics["mse"] == pytest.approx(0.01, rel=0.35)  # ε ~ N(0, 0.1²), 100 test rows
    assert metrics["fidelity/gt_coef_mae"] < 1e-5  # β̂ at 0 by central differences
    assert metrics["fidelity/gt_gradient_mae"] < 1e-6


def test_the_oracle_on_a_classification_task_is_the_bayes_rule():
    metrics = _run("oracle", "synthetic/c1").metrics
    assert 0.8 <= metrics["accuracy"] <= 0.97 and metrics["auroc"] > 0.9


def test_the_oracle_refuses_a_task_without_a_known_function():
    model = OmegaConf.to_container(composed("model=oracle").model, resolve=True)
    assert model["params"]["generator"] is None  # credit-g has no generator
    oracle = build_estimator(model, "binary", seed=0, device="cpu", threads=1)
    with pytest.raises(ValueError, match="synthetic task with a known f"):
        oracle.fit(np.zeros((4, 2)), [0, 1, 0, 1])


def test_the_lasso_recovers_the_linear_tasks_coefficients_through_the_harness():
    metrics = _run("lasso", "synthetic/linear").metrics
    assert metrics["fidelity/gt_coef_mae"] < 0.05  # β = (−5..4): a Lasso on 200 rows nails it
    assert metrics["mse"] < 0.05


def test_marginal_effect_at_the_origin_is_the_slope_in_raw_units():
    beta, offset, scale = np.array([2.0, -1.0, 0.5]), np.array([0.3, -0.2, 1.0]), 2.0

    def output(X_model):
        return (X_model * scale + offset) @ beta + 1.0  # linear in raw units

    got = fidelity.marginal_effect_at_origin(output, 3, offset=offset, scale=scale)
    np.testing.assert_allclose(got, beta, atol=1e-8)


def test_raw_features_when_standardisation_is_off():
    X = pd.DataFrame({"a": [1.0, 2.0, np.nan, 4.0], "b": [-3.0, 0.0, 3.0, 6.0]})
    out = Preprocessor(mode="neural", standardise_numeric=False).fit_transform(X)
    np.testing.assert_allclose(out, [[1, -3], [2, 0], [0, 3], [4, 6]])
    scaled = Preprocessor(mode="neural").fit_transform(X)
    assert not np.allclose(scaled, out)


def test_weight_l1_in_raw_target_units_is_divided_by_the_target_scale():
    from mesobench.models import IMNRegressor

    X = np.random.default_rng(0).normal(size=(64, 2)).astype(np.float32)
    y = 10.0 * X[:, 0]
    model = IMNRegressor(epochs=1, weight_l1_units="raw", snapshot_ensemble=False).fit(X, y)
    assert model._l1_divisor() == pytest.approx(np.std(y), rel=1e-6)
    assert IMNRegressor(epochs=1).fit(X, y)._l1_divisor() == 1.0


def test_a_grid_search_tries_every_point_once_and_refuses_ranges():
    from sklearn.linear_model import Ridge

    tried = []

    def fit_and_score(candidate):
        tried.append(candidate.alpha)
        return -abs(candidate.alpha - 1.0)

    space = {"alpha": {"type": "categorical", "choices": [0.1, 1.0, 10.0]}}
    result = hpo.search(Ridge(), space, fit_and_score, n_trials=50, seed=0, sampler="grid")
    assert sorted(tried) == [0.1, 1.0, 10.0] and result.best_params == {"alpha": 1.0}
    with pytest.raises(ConfigError, match="categorical"):
        hpo.search(
            Ridge(),
            {"alpha": {"type": "float", "low": 0.1, "high": 1.0}},
            fit_and_score,
            n_trials=3,
            seed=0,
            sampler="grid",
        )


# -- published figures and targets --------------------------------------------------------------


def _runs(rows):
    return pd.DataFrame(
        [dict(status="FINISHED", fold=i, **r) for i, r in enumerate(rows)]
    ).reset_index(drop=True)


RUNS = _runs(
    [
        {"task": "t1", "model": "ours", "mse": 0.02, "accuracy": np.nan},
        {"task": "t1", "model": "ours", "mse": 0.04, "accuracy": np.nan},
        {"task": "t1", "model": "base", "mse": 0.30, "accuracy": np.nan},
        {"task": "t2", "model": "ours", "mse": 0.10, "accuracy": np.nan},
        {"task": "t2", "model": "base", "mse": 0.40, "accuracy": np.nan},
        {"task": "t1", "model": "oracle", "mse": 0.01, "accuracy": np.nan},
        {"task": "c", "model": "ours", "mse": np.nan, "accuracy": 0.86},
        {"task": "c", "model": "oracle", "mse": np.nan, "accuracy": 0.90},
    ]
)


def test_published_figures_sit_beside_the_reproduced_mean_and_the_ceiling(tmp_path):
    path = tmp_path / "paper.yaml"
    path.write_text(
        "paper: P\nversion: v2\nsource: Table 1\n"
        "figures:\n  mse:\n    t1: {Ours: 0.024, Lasso: 3.1}\n"
    )
    (table,) = published.read_published(path, {"Ours": "ours"})
    frame = published.published_vs_reproduced(RUNS, table, ceiling="oracle")
    row = frame.set_index("paper_model").loc["Ours"]
    assert (row["published"], row["reproduced"], row["n"]) == (0.024, pytest.approx(0.03), 2)
    assert row["ceiling"] == pytest.approx(0.01)
    assert frame.set_index("paper_model").loc["Lasso", "n"] == 0  # not mapped: no figure of ours


def test_a_published_file_with_an_unknown_metric_or_missing_field_is_refused(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("paper: P\nversion: v\nsource: s\nfigures:\n  rmsee:\n    t: {A: 1}\n")
    with pytest.raises(ConfigError, match="rmsee"):
        published.read_published(path)
    path.write_text("paper: P\nfigures: {}\n")
    with pytest.raises(ConfigError, match="version"):
        published.read_published(path)


def test_targets_are_checked_per_task_over_tasks_and_against_the_ceiling():
    targets = [
        published.Target(model="ours", metric="mse", task="t1", at_most=0.024),
        published.Target(
            model="base", metric="mse", relative_to="ours", relation="ratio", at_least=5
        ),
        published.Target(model="ours", metric="accuracy", task="c", at_least=0.92),
        published.Target(model="nobody", metric="mse", at_most=1.0),
    ]
    checked = published.check_targets(RUNS, targets, ceiling="oracle")
    assert checked["met"].tolist() == ["no", "yes", "no", "undecided"]
    # ratio over tasks: geometric mean of 0.30/0.03 = 10 and 0.40/0.10 = 4
    assert checked.loc[1, "value"] == pytest.approx(np.sqrt(40))
    assert "unreachable" in checked.loc[2, "note"]  # 0.92 > the oracle's 0.90
    assert "unreachable" not in checked.loc[0, "note"]  # 0.024 ≥ the noise floor 0.01


def test_a_target_with_an_unknown_field_or_no_bound_is_refused():
    with pytest.raises(ConfigError, match="allowed fields"):
        published.Target.from_config({"model": "a", "metric": "mse", "at_mots": 1})
    with pytest.raises(ConfigError, match="at_least"):
        published.Target.from_config({"model": "a", "metric": "mse"})


def test_no_script_fits_a_model():
    """Experiments run through mesobench.run; scripts/ holds tools, not second harnesses."""
    fitting = re.compile(r"\.fit\(|evaluate_fold|build_estimator|mesobench\.models")
    offenders = [
        p.name for p in Path(repo_root(), "scripts").glob("*.py") if fitting.search(p.read_text())
    ]
    assert not offenders, f"scripts that fit models: {offenders}"


# ---- one tuning protocol per comparison ---------------------------------------------------------


def _swept_models(cfg) -> list[str]:
    models = cfg.hydra.sweeper.params.get("model")
    return str(models).split(",") if models else [cfg.model.name]


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_declares_one_tuning_protocol_its_models_keep(name):
    from mesobench.protocol.tuning_protocol import check_tuning_protocol

    cfg = composed(f"+experiment={name}", hydra=True)
    assert cfg.protocol.name in ("default", "tuned"), f"{name} declares no tuning protocol"
    for model in _swept_models(cfg):
        plain = OmegaConf.to_container(
            composed(f"+experiment={name}", f"model={model}"), resolve=True
        )
        check_tuning_protocol(plain)  # raises for a model tuned unlike the others


def test_nimo_synthetic_tunes_imn_and_lfr_imn_on_nimos_budget():
    cfg = composed("+experiment=nimo_synthetic")
    assert cfg.protocol.name == "tuned" and cfg.hpo.sampler == "grid"
    for model in ("nimo_synthetic", "mlp", "imn_synthetic", "lfr_imn_synthetic"):
        plain = OmegaConf.to_container(
            composed("+experiment=nimo_synthetic", f"model={model}"), resolve=True
        )
        space = plain["hpo"]["space"]
        for kind in ("binary", "regression"):
            grid = kind_params(space, kind)
            assert int(np.prod([len(s["choices"]) for s in grid.values()])) == cfg.hpo.n_trials


def _built_params(experiment: str, model: str) -> dict[str, dict]:
    """The constructor parameters a run of ``model`` in ``experiment`` builds, per task kind."""
    plain = OmegaConf.to_container(
        composed(f"+experiment={experiment}", f"model={model}"), resolve=True
    )
    return {
        kind: build_estimator(plain["model"], kind, seed=0, device="cpu", threads=1).get_params()
        for kind in ("regression", "binary")
    }


def test_the_nimo_ablation_switches_one_detail_per_variant_at_fixed_penalties():
    """Each variant differs from nimo_synthetic in one detail (for some task kind) and in
    nothing else; every model runs R3 and C3 on 10 replicates at the same fixed penalties."""
    cfg = composed("+experiment=nimo_ablation", hydra=True)
    params = cfg.hydra.sweeper.params
    assert (params.task, params.fold, cfg.protocol.name) == (
        "synthetic/r3,synthetic/c3",
        "range(0,10)",
        "default",
    )
    models = _swept_models(cfg)
    assert models[0] == "nimo_synthetic" and len(models) == len(set(models))
    variants = {p.stem for p in (conf_dir() / "model" / "variants").glob("nimo_synthetic_*.yaml")}
    assert {m.removeprefix("variants/") for m in models[1:]} == variants
    base = _built_params("nimo_ablation", "nimo_synthetic")
    assert (base["regression"]["group_penalty"], base["regression"]["noise_std"]) == (0.01, 0.0)
    assert (base["binary"]["group_penalty"], base["binary"]["noise_std"]) == (0.03, 0.0)
    for model in models[1:]:
        built = _built_params("nimo_ablation", model)
        changed = {
            kind: {k for k, v in built[kind].items() if v != base[kind][k]} for kind in built
        }
        detail = model.removeprefix("variants/nimo_synthetic_")
        detail = {"full_batch": "batch_size"}.get(detail, detail)  # the former default
        assert set().union(*changed.values()) <= {detail, "ridge"}, model  # ridge: ridge_units
        assert detail in changed["regression"], model


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["protocol.name=default", "hpo.n_trials=5"], "protocol: default, but imn is tuned"),
        (["protocol.name=tuned"], "protocol: tuned, but imn is not tuned"),
        (["protocol.name=tuned", "hpo.n_trials=5", "hpo.models=[xgboost]"], "Add it to hpo.models"),
        (
            ["protocol.name=tuned", "hpo.n_trials=7", "hpo.sampler=grid", "model=imn_synthetic"],
            "grid has 6 point",
        ),
        (["protocol.name=tuned", "+protocol.exempt.imn=''"], "say why"),
        (["protocol.name=fair"], "protocol.name='fair'"),
    ],
)
def test_a_run_that_breaks_its_experiments_protocol_is_refused(overrides, message):
    from mesobench.protocol.tuning_protocol import check_tuning_protocol

    overrides = (
        ["model=imn", *overrides] if not any("model=" in o for o in overrides) else overrides
    )
    plain = OmegaConf.to_container(composed(*overrides), resolve=True)
    with pytest.raises(ConfigError, match=re.escape(message)):
        check_tuning_protocol(plain)


def test_an_exempt_model_is_outside_the_protocol_and_ad_hoc_runs_are_unchecked():
    from mesobench.protocol.tuning_protocol import check_tuning_protocol

    exempt = ["model=oracle", "protocol.name=tuned", "+protocol.exempt.oracle=nothing is fitted"]
    check_tuning_protocol(OmegaConf.to_container(composed(*exempt), resolve=True))
    ad_hoc = ["model=xgboost", "hpo.n_trials=5"]  # protocol.name null: a single ad-hoc run
    check_tuning_protocol(OmegaConf.to_container(composed(*ad_hoc), resolve=True))
