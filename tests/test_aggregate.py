"""The aggregator against a real (throw-away) MLflow store filled with hand-made runs."""

import json
import re
import shlex

import pandas as pd
import pytest
from hydra import compose, initialize_config_dir
from mlflow.tracking import MlflowClient

from conftest import run_cli
from mesobench import aggregate
from mesobench.config.identity import RUN_KEY_VERSION
from mesobench.config.paths import conf_dir, repo_root
from mesobench.config.tags import GIT_COMMIT_TAG, GIT_DIRTY_TAG, RUN_KEY_TAG, RUN_KEY_VERSION_TAG
from mesobench.errors import MesobenchError
from mesobench.report import runs_table
from mesobench.report.labels import label_models
from mesobench.report.runs_table import RunFilter
from mesobench.store import runs as stored
from mesobench.store.tracking import Tracker

FEATURES = ["f0", "f1", "f2"]
# per (model, task): AUROC of fold 0 and fold 1 in sweep "A"
SCORES = {
    ("imn", "t1"): (0.90, 0.92),
    ("imn", "t2"): (0.80, None),  # fold 1 FAILED
    ("nimo", "t1"): (0.85, 0.87),
    ("nimo", "t2"): (0.82, 0.84),
    ("xgboost", "t1"): (0.88, 0.88),
    ("xgboost", "t2"): (0.70, 0.72),
}


def _make_run(client, exp_id, model, task, fold, auroc, sweep, device="cpu", **extra_tags):
    tags = {
        RUN_KEY_TAG: f"{sweep}-{model}-{task}-{fold}",
        RUN_KEY_VERSION_TAG: RUN_KEY_VERSION,
        GIT_COMMIT_TAG: "a" * 40,
        GIT_DIRTY_TAG: "false",
        "model": model,
        "task": task,
        "fold": str(fold),
        "seed": "0",
        "suite": "unit",
        "sweep_id": sweep,
        "config_hash": f"hash-{model}",
        "device": device,
        **extra_tags,
    }
    run = client.create_run(exp_id, tags={k: v for k, v in tags.items() if v is not None})
    run_id = run.info.run_id
    if auroc is None:
        client.set_tag(run_id, "error", "DivergenceError: loss is NaN at epoch 7")
        client.set_tag(run_id, "error_type", "DivergenceError")
        client.set_terminated(run_id, "FAILED")
        return
    metrics = {"auroc": auroc, "fit_seconds": 2.0, "predict_seconds": 0.1}
    if model != "xgboost":
        metrics |= {"explain_seconds": 0.01, "fidelity/lfr_scaled_infidelity": 0.5 - auroc / 4}
        sample = pd.DataFrame(
            {"row": [0, 4], **{f: [0.1 * i, -0.2 * i] for i, f in enumerate(FEATURES)}}
        ).assign(intercept=0.0)
        client.log_text(run_id, sample.to_csv(index=False), stored.WEIGHTS_ARTIFACT)
    if model == "nimo":
        description = {"coef": [0.5, -1.0, 0.2], "interaction_strength": [0.1, 0.9, 0.0]}
        client.log_text(run_id, json.dumps(description), stored.DESCRIPTION_ARTIFACT)
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    client.set_terminated(run_id, "FINISHED")


@pytest.fixture
def filled(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    tracker = Tracker(uri, "mesobench", str(tmp_path / "artifacts"))
    client = tracker.client
    for (model, task), values in SCORES.items():
        for fold, auroc in enumerate(values):
            _make_run(client, tracker.experiment_id, model, task, fold, auroc, "A")
    for task, values in (("t1", (0.91, 0.93)), ("t2", (0.75, 0.77))):
        for fold, auroc in enumerate(values):
            _make_run(client, tracker.experiment_id, "xgboost", task, fold, auroc, "B", "cuda")
    return tmp_path, uri


def _cfg(tmp_path, uri, *overrides):
    with initialize_config_dir(config_dir=str(conf_dir()), version_base="1.3"):
        return compose(
            config_name="aggregate",
            overrides=[
                f"tracking.uri={uri}",
                f"tracking.artifact_location={tmp_path / 'artifacts'}",
                f"out_dir={tmp_path / 'report'}",
                *overrides,
            ],
        )


def test_the_report_of_a_store_with_a_failed_run_and_a_summary_run(filled):
    tmp_path, uri = filled
    page = aggregate.aggregate(_cfg(tmp_path, uri, "filters.sweep_id=A", "missing=worst"))
    out = tmp_path / "report"
    # the failed run is named, with its error and its treatment
    missing = pd.read_csv(out / "missing.csv")
    (row,) = missing.to_dict("records")
    assert (row["task"], row["model"]) == ("t2", "imn")
    assert "DivergenceError: loss is NaN" in row["problems"]
    assert "imputed with the worst result (0.7200)" in row["treatment"]
    assert "DivergenceError" in page.split("## Missing and failed runs")[1]
    # ranks with imn's t2 fold 1 imputed by xgboost's 0.72: t1 imn .91 nimo .86 xgb .88
    # → 1, 3, 2; t2 imn .76 nimo .83 xgb .71 → 2, 1, 3
    ranks = pd.read_csv(out / "average_rank.csv").set_index("model")["average_rank"]
    assert ranks.to_dict() == pytest.approx({"imn": 1.5, "nimo": 2.0, "xgboost": 2.5})
    wtl = pd.read_csv(out / "win_tie_loss.csv").set_index("model")
    assert wtl.loc["nimo", ["wins", "losses"]].tolist() == [1, 1]
    assert wtl.loc["xgboost", ["wins", "losses"]].tolist() == [2, 0]
    assert "reference: imn" in page
    # the explanation picture came from the logged artifacts, with NIMO's interaction panels
    assert (out / "explanation.png").stat().st_size > 1000
    assert "LFR-IMN: no finished run" in page
    assert "For NIMO, the second row" in page
    # the files are on a summary run, which is never read back as a benchmark run
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("mesobench")
    (summary,) = client.search_runs([exp.experiment_id], "tags.`mesobench.summary` = 'true'")
    logged = {a.path for a in client.list_artifacts(summary.info.run_id)}
    assert {"README.md", "average_rank.csv", "comparisons.csv", "explanation.png"} <= logged
    assert summary.data.metrics["rank/imn"] == pytest.approx(1.5)
    runs = stored.load_runs(uri, "mesobench")
    assert summary.info.run_id not in set(runs["run_id"])
    assert len(runs) == len(SCORES) * 2 + 4


def test_runs_of_an_older_key_rule_are_left_out_and_mixed_code_is_flagged(filled):
    tmp_path, uri = filled
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.get_experiment_by_name("mesobench").experiment_id
    # the same cell made under run-key rule 1 (no version tag) would count fold 0 twice
    _make_run(
        client, exp_id, "imn", "t1", 0, 0.10, "A", **{RUN_KEY_VERSION_TAG: None, RUN_KEY_TAG: "v1"}
    )
    page = aggregate.aggregate(_cfg(tmp_path, uri, "filters.sweep_id=A"))
    auroc = pd.read_csv(tmp_path / "report" / "auroc_by_task.csv").set_index(["task", "model"])
    assert auroc.loc[("t1", "imn"), "mean"] == pytest.approx(0.91)
    assert auroc.loc[("t1", "imn"), "n_folds"] == 2
    assert "1 run(s) keyed by an older run-key rule were left out" in page
    aggregate.aggregate(_cfg(tmp_path, uri, "filters.sweep_id=A", "filters.key_version=any"))
    mixed = pd.read_csv(tmp_path / "report" / "auroc_by_task.csv").set_index(["task", "model"])
    assert mixed.loc[("t1", "imn"), "n_folds"] == 3  # what `current` protects against
    assert "mix code versions" not in page
    assert f"`{'a' * 12}`: {len(SCORES) * 2} run(s)" in page

    _make_run(client, exp_id, "nimo", "t3", 0, 0.80, "A", **{GIT_COMMIT_TAG: "b" * 40})
    page = aggregate.aggregate(_cfg(tmp_path, uri, "filters.sweep_id=A"))
    assert "**Warning: these runs mix code versions**" in page
    assert f"`{'b' * 12}`: 1 run(s)" in page


COMPARE_A_WITH_B = (
    "filters.sweep_id=A",
    "compare.sweep_id=B",
    "filters.models=[xgboost]",
    "summary_run=false",
    "explain.enabled=false",
)


def test_tag_filters_and_compare_two_sweeps(filled):
    tmp_path, uri = filled
    only_cuda = stored.load_runs(uri, "mesobench", RunFilter(tags={"device": "cuda"}))
    assert set(only_cuda["sweep_id"]) == {"B"}
    either = stored.load_runs(uri, "mesobench", RunFilter(tags={"device": ["cuda", "cpu"]}))
    assert len(either) == len(SCORES) * 2 + 4

    cfg = _cfg(tmp_path, uri, *COMPARE_A_WITH_B)
    page = aggregate.aggregate(cfg)
    table = pd.read_csv(tmp_path / "report" / "compare.csv").set_index(["task", "model"])
    assert table.loc[("t1", "xgboost"), "A"] == pytest.approx(0.88)
    assert table.loc[("t1", "xgboost"), "B"] == pytest.approx(0.92)
    assert table.loc[("t2", "xgboost"), "Δ (B − A)"] == pytest.approx(0.05)
    assert "## Comparison: A vs B" in page
    assert "selection: sweep_id=A; models=xgboost" in page


def test_the_compared_sweep_also_leaves_out_runs_of_an_older_key_rule(filled):
    tmp_path, uri = filled
    client = MlflowClient(tracking_uri=uri)
    exp_id = client.get_experiment_by_name("mesobench").experiment_id
    old_rule = {RUN_KEY_VERSION_TAG: None, RUN_KEY_TAG: "v1"}
    _make_run(client, exp_id, "xgboost", "t1", 0, 0.10, "B", "cuda", **old_rule)
    cfg = _cfg(tmp_path, uri, *COMPARE_A_WITH_B)
    aggregate.aggregate(cfg)
    table = pd.read_csv(tmp_path / "report" / "compare.csv").set_index(["task", "model"])
    assert table.loc[("t1", "xgboost"), "B"] == pytest.approx(0.92)


def test_configurations_of_one_model_are_named_by_what_differs():
    import json

    from mesobench.report.runs_table import CONFIG_COLUMN

    def config(**params):
        base = {"model.params.lr": "0.01", "model.params.optimizer": "adam"}
        return json.dumps({**base, **{f"model.params.{k}": v for k, v in params.items()}})

    runs = pd.DataFrame(
        {
            "model": ["imn", "imn", "imn", "imn", "xgboost"],
            "config_hash": ["h1", "h1", "h2", "h3", "hx"],
            CONFIG_COLUMN: [config(), config(), config(optimizer="adamw"), config(lr="0.1"), "{}"],
        }
    )
    labelled = label_models(runs)["model"].tolist()
    assert labelled == ["imn", "imn", "imn[optimizer=adamw]", "imn[lr=0.1]", "xgboost"]
    # without recorded params the hash tells configurations apart
    labelled = label_models(runs.drop(columns=CONFIG_COLUMN))["model"].tolist()
    assert labelled[2:4] == ["imn@h2", "imn@h3"] and labelled[0] == "imn@h1"


def test_an_unknown_metric_stops_the_aggregator_naming_it(filled):
    tmp_path, uri = filled
    proc = run_cli(
        "mesobench.aggregate",
        f"tracking.uri={uri}",
        f"out_dir={tmp_path / 'report'}",
        "metric=no_such_metric",
        tmp_path=tmp_path,
    )
    assert proc.returncode != 0
    said = proc.stdout + proc.stderr
    assert "unknown metric 'no_such_metric'" in said
    assert "fidelity/deletion_auc" in said  # the known ones are listed
    assert not (tmp_path / "report").exists()


def test_deletion_auc_ranks_lower_values_first(filled):
    tmp_path, uri = filled
    client = MlflowClient(tracking_uri=uri)
    for run in client.search_runs([client.get_experiment_by_name("mesobench").experiment_id]):
        client.log_metric(
            run.info.run_id,
            "fidelity/deletion_auc",
            {"imn": -0.4, "nimo": 0.1}.get(run.data.tags.get("model"), 0.0),
        )
    aggregate.aggregate(
        _cfg(
            tmp_path,
            uri,
            "filters.sweep_id=A",
            "filters.models=[imn,nimo]",
            "metric=fidelity/deletion_auc",
        )
    )
    ranks = pd.read_csv(tmp_path / "report" / "average_rank.csv").set_index("model")
    assert ranks["average_rank"].to_dict() == {"imn": 1.0, "nimo": 2.0}


def test_a_report_regenerates_from_its_runs_table_without_a_store(filled):
    tmp_path, uri = filled
    aggregate.aggregate(_cfg(tmp_path, uri, "filters.sweep_id=A", "summary_run=false"))
    first = tmp_path / "report"
    again = tmp_path / "again"
    aggregate.aggregate(
        _cfg(
            tmp_path,
            "sqlite:////nonexistent/no-store.db",  # never opened
            f"runs={first / 'runs.csv'}",
            "filters.sweep_id=A",
            f"out_dir={again}",
        )
    )
    tables = sorted(p.name for p in first.glob("*.csv"))
    assert "average_rank.csv" in tables and "auroc_by_task.csv" in tables
    for name in tables:
        assert (again / name).read_bytes() == (first / name).read_bytes(), name
    # filters work on the table's columns; the raw model name survives variant naming
    only_imn = runs_table.read_runs_table(first / "runs.csv", RunFilter(models=["imn"]))
    assert set(only_imn["model"]) == {"imn"}
    # Parquet as well as CSV
    table = runs_table.read_runs_table(first / "runs.csv")
    table.to_parquet(tmp_path / "runs.parquet")
    parquet = tmp_path / "from_parquet"
    aggregate.aggregate(
        _cfg(tmp_path, uri, f"runs={tmp_path / 'runs.parquet'}", f"out_dir={parquet}")
    )
    assert (parquet / "auroc_by_task.csv").read_bytes() == (
        first / "auroc_by_task.csv"
    ).read_bytes()


def test_the_committed_quick_report_regenerates_from_its_runs_table(tmp_path):
    committed = repo_root() / "results" / "quick"
    out = tmp_path / "regen"
    proc = run_cli(
        "mesobench.aggregate",
        f"runs={committed / 'runs.csv'}",
        "filters.suite=quick",
        "report=regen",
        f"out_dir={out}",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    for name in ("auroc_by_task.csv", "average_rank.csv", "metrics_by_task.csv"):
        assert (out / name).read_bytes() == (committed / name).read_bytes(), name


EXPERIMENT_REPORTS = [
    d.name
    for d in sorted((repo_root() / "results").iterdir())
    if (d / "targets.csv").is_file() or (d / "published_vs_reproduced.csv").is_file()
]


@pytest.mark.parametrize("report", EXPERIMENT_REPORTS)
def test_an_experiments_report_regenerates_from_its_runs_table(report, tmp_path):
    """Replays the command a committed experiment report names on its first lines, on its runs
    table: the published-vs-reproduced and target tables come back byte for byte."""
    committed = repo_root() / "results" / report
    page = (committed / "README.md").read_text()
    command = re.search(r"by `python -m mesobench\.aggregate([^`]*)`", page).group(1)
    args = [a for a in shlex.split(command) if not a.startswith(("runs=", "out_dir="))]
    out = tmp_path / "regen"
    proc = run_cli(
        "mesobench.aggregate",
        *args,
        f"runs={committed / 'runs.csv'}",
        f"out_dir={out}",
        tmp_path=tmp_path,
    )
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    names = [n for n in ("published_vs_reproduced.csv", "targets.csv") if (committed / n).is_file()]
    for name in names:
        assert (out / name).read_bytes() == (committed / name).read_bytes(), name


def test_a_runs_table_that_is_not_one_is_refused(tmp_path):
    bad = tmp_path / "runs.csv"
    pd.DataFrame({"model": ["x"]}).to_csv(bad, index=False)
    with pytest.raises(MesobenchError, match="is not a runs table: it lacks the columns"):
        runs_table.read_runs_table(bad)
    with pytest.raises(MesobenchError, match="does not exist"):
        runs_table.read_runs_table(tmp_path / "missing.csv")


def test_configurations_are_told_apart_within_one_run_key_rule():
    """A run of an older rule lacks the newer knobs; it must not rename the current runs."""
    old = json.dumps({"model.params.lr": "0.1"})
    new = json.dumps({"model.params.lr": "0.1", "preprocessing.standardise_numeric": "True"})
    runs = pd.DataFrame(
        {
            "model": ["imn", "imn", "imn"],
            "config_hash": ["a", "b", "c"],
            "key_version": ["2", RUN_KEY_VERSION, RUN_KEY_VERSION],
            "configuration": [old, new, new.replace("0.1", "0.5")],
        }
    )
    labels = label_models(runs)["model"].tolist()
    assert labels == ["imn", "imn[lr=0.1]", "imn[lr=0.5]"]


def test_the_settings_of_a_search_that_did_not_run_do_not_name_a_configuration():
    """A variant config without a search space beside its base with one (hpo off in both)."""
    base = {"model.params.lr": "0.1", "hpo.n_trials": "0"}
    with_space = {**base, "hpo.space.params.lr.type": "float"}
    runs = pd.DataFrame(
        {
            "model": ["imn", "imn"],
            "config_hash": ["a", "b"],
            "configuration": [json.dumps(with_space), json.dumps({**base, "model.params.lr": "1"})],
        }
    )
    assert label_models(runs)["model"].tolist() == ["imn[lr=0.1]", "imn[lr=1]"]


def test_a_model_label_becomes_a_valid_metric_name():
    assert stored._metric_name("catboost[sampler=tpe,x=None]") == "catboost_sampler_tpe_x_None_"


def test_what_the_fidelity_metrics_scored_does_not_name_a_configuration():
    """The raw feature space's width is logged per run (it differs by task): an outcome, so a
    configuration first seen on diabetes (8 features) is not named by it."""
    base = {"model.params.lr": "0.1", "fidelity.enabled": "True"}
    runs = pd.DataFrame(
        {
            "model": ["lfr", "lfr", "lfr"],
            "config_hash": ["a", "b", "c"],
            "configuration": [
                json.dumps({**base, "fidelity.n_features": "8", "fidelity.n_categorical": "0"}),
                json.dumps({**base, "fidelity.n_features": "4", "model.params.lr": "1"}),
                json.dumps({**base, "fidelity.n_features": "4", "model.params.lr": "2"}),
            ],
        }
    )
    labels = label_models(runs)["model"].tolist()
    assert labels == ["lfr[lr=0.1]", "lfr[lr=1]", "lfr[lr=2]"]


def test_settings_per_task_kind_name_a_configuration_once():
    """A variant that sets lr for regression and classification alike is ``[lr=0.001]``, and
    one that differs in a regression-only setting is named by it: the runner logs both as
    model.regressor_params.* / model.classifier_params.* (the configuration keeps them)."""
    from mesobench.report.labels import configuration

    def params(**over):
        base = {
            "model.params.sine_size": "128",
            "model.regressor_params.lr": "0.003",
            "model.classifier_params.lr": "0.005",
            "model.regressor_params.noise_std": "0.0",
            "model.name": "nimo_synthetic",  # not a setting: left out
        }
        return configuration({**base, **over})

    runs = pd.DataFrame(
        {
            "model": ["nimo_synthetic"] * 3,
            "config_hash": ["a", "b", "c"],
            "configuration": [
                params(),
                params(
                    **{"model.regressor_params.lr": "0.001"},
                    **{"model.classifier_params.lr": "0.001"},
                ),
                params(**{"model.regressor_params.noise_std": "0.2"}),
            ],
        }
    )
    labels = label_models(runs)["model"].tolist()
    assert labels == ["nimo_synthetic", "nimo_synthetic[lr=0.001]", "nimo_synthetic[noise_std=0.2]"]
