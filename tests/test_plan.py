"""The cost plan (python -m mesobench.planning.plan): the sweep's jobs as Hydra expands them, their run
keys as the runner records them, refusals, and estimates within 2× of measured fits."""

from __future__ import annotations

import importlib
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli, runs_after, stored_runs
from mesobench.planning import costs, plan
from mesobench.protocol.limits import Shape

MODELS5 = "model=imn,lfr_imn,nimo,xgboost,catboost"


def planned(*overrides: str, store: str, **kwargs) -> plan.Plan:
    return plan.make_plan([*overrides, f"tracking.uri={store}"], **kwargs)


def statuses(p: plan.Plan) -> dict[str, int]:
    return {s: p.count(s) for s in ("finished", "refused", "duplicate", "to_run")}


# -- expansion -------------------------------------------------------------------------------------
def test_cc18_five_models_is_3600_runs_with_nimo_refusing_the_two_widest_shapes(store):
    p = planned("suite=cc18", MODELS5, store=store)
    assert len(p.planned) == 72 * 10 * 5
    refused = {(x.job.model, x.job.task_name) for x in p.planned if x.status == "refused"}
    # NIMO's model.limits.max_cells = 5e7 training cells: only these two CC18 shapes exceed it
    assert refused == {("nimo", "CIFAR_10"), ("nimo", "Devnagari-Script")}
    assert statuses(p) == {"finished": 0, "refused": 20, "duplicate": 0, "to_run": 3580}
    assert {x.job.fold for x in p.planned} == set(range(10))
    assert p.seconds < 60, "3,600 runs must plan in seconds"


def test_experiment_sweep_params_and_command_line_overrides(store):
    quick = planned("+experiment=quick", store=store)
    assert len(quick.planned) == 8 * 3 * 8
    assert len({x.job.model for x in quick.planned}) == 8
    two_folds = planned("+experiment=quick", "folds=2", store=store)
    assert len(two_folds.planned) == 8 * 2 * 8
    # the command line wins over the config's sweeper params (BasicSweeper): one fold, two models
    narrowed = planned("+experiment=quick", "fold=1", "model=logreg,xgboost", store=store)
    assert len(narrowed.planned) == 8 * 1 * 2
    assert {x.job.fold for x in narrowed.planned} == {1}


@pytest.mark.parametrize(
    "overrides",
    [
        ("+experiment=quick", "model=logreg,imn_fast", "seed=0,1"),
        ("+experiment=nimo_synthetic",),  # seed: ${fold}
        ("suite=cc18_shapes", "folds=2", "model=nimo", "threads=1"),
    ],
)
def test_run_keys_equal_a_full_composition_of_each_job(overrides):
    """The plan sets task, fold and seed into one composition per group of jobs; each key must
    be the key of the job's own composition (what the runner hashes)."""
    from hydra import compose
    from omegaconf import OmegaConf

    from mesobench.config import identity

    sweep, jobs, composed_each = plan.build_jobs(list(overrides), cores=2)
    assert composed_each == []
    sample = range(0, len(jobs), max(1, len(jobs) // 7))
    with plan.hydra_context():
        for i in sample:
            cfg = compose("config", overrides=sweep.jobs[i])
            full = identity.run_key(OmegaConf.to_container(cfg, resolve=True))
            assert jobs[i].key == full, sweep.jobs[i]


def test_unknown_names_fail_with_hydras_message(capsys):
    assert plan.main(["model=imn,no_such_model", "task=credit-g"]) == 2
    assert "no_such_model" in capsys.readouterr().err
    assert plan.main(["model=imn", "task=no_such_task,credit-g"]) == 2
    assert "task/no_such_task" in capsys.readouterr().err


# -- cost model --------------------------------------------------------------------------------------
def test_power_law_recovers_exponents_and_keeps_the_prior_when_few_shapes():
    rng = np.random.default_rng(0)
    rows, feats, classes = (rng.integers(lo, hi, 40).astype(float) for lo, hi in
                            [(500, 100_000), (4, 3_000), (2, 30)])  # fmt: skip
    y = 2e-7 * rows**0.9 * feats**0.6 * classes**0.3 * np.exp(rng.normal(0, 0.05, 40))
    law = costs.PowerLaw.fit(rows, feats, classes, y)
    assert law.coef[1:] == pytest.approx((0.9, 0.6, 0.3), abs=0.05)
    few = costs.PowerLaw.fit(rows[:3], feats[:3], classes[:3], y[:3])
    assert few.coef[1:] == (1.0, 1.0, 0.0)


def cost_rows(model: str = "xgboost", n: int = 6) -> pd.DataFrame:
    """A shape table in mesobench.planning.shape_table's columns: per-unit cost ∝ rows × features."""
    rows = []
    for i in range(n):
        n_rows, n_features = 1000 * 2**i, 10 + 5 * i
        train = n_rows - n_rows // 10
        per_unit = 1e-6 * train * n_features
        rows.append(
            dict(task=f"shape/t{i}", model=model, status="FINISHED", n_rows=n_rows,
                 n_features=n_features, n_classes=2, n_fit=int(train * 0.8), threads=1,
                 budget_units=20, fit_seconds=0.5 + 20 * per_unit, seconds_per_unit=per_unit,
                 predict_seconds=0.1, explain_seconds=np.nan, fidelity_seconds=0.1 * (i + 1),
                 peak_rss_mb=500 + 1e-4 * n_rows * n_features)
        )  # fmt: skip
    return pd.DataFrame(rows)


def test_estimate_scales_the_measured_shape_to_the_runs_budget(tmp_path):
    path = tmp_path / "costs.csv"
    cost_rows().to_csv(path, index=False)
    table = costs.CostTable.load(path)
    trees = costs.Budget("params.n_estimators", 20, evaluation_scales=True)
    model = table.costs("xgboost", "XGBoostClassifier", [], trees)
    shape = Shape(1800, 15, 2)  # t1: 2,000 rows, 15 features
    per_unit = 1e-6 * 1800 * 15
    est = model.estimate("t1", shape, units=1000)  # a CC18 name matches its shape-alike
    assert est.source == "measured"
    assert est.fit == pytest.approx(0.5 + 1000 * per_unit)
    # a tree ensemble's evaluation grows like its fit: fixed + per tree × trees
    growth = (0.5 + 1000 * per_unit) / (0.5 + 20 * per_unit)
    assert est.evaluation == pytest.approx((0.1 + 0.2) * growth)
    flat = costs.CostTable.load(path).costs("xgboost", "X", [], costs.Budget("p", 20))
    assert flat.estimate("t1", shape, 1000).evaluation == pytest.approx(0.3)
    # an unmeasured shape: the power law, flagged when far beyond the measured shapes
    inside = model.estimate("other", Shape(9000, 30, 2), units=20)
    assert inside.source == "fitted" and not inside.extrapolated
    assert inside.per_unit == pytest.approx(1e-6 * 9000 * 30, rel=0.3)
    assert model.estimate("huge", Shape(10**6, 3000, 2), units=20).extrapolated


def test_models_without_costs_say_why(tmp_path, store):
    missing = tmp_path / "nothing.csv"
    p = planned("model=logreg", "task=credit-g", costs=missing, store=store)
    assert p.planned[0].estimate is None
    assert "does not exist" in p.planned[0].reason
    path = tmp_path / "costs.csv"
    cost_rows("xgboost").to_csv(path, index=False)
    p = planned("model=catboost,xgboost", "task=credit-g", costs=path, store=store)
    by_model = {x.job.model: x for x in p.planned}
    assert by_model["xgboost"].estimate is not None
    assert "no FINISHED row of catboost" in by_model["catboost"].reason
    out = plan.text(p)
    assert "runs without an estimate: no cost data" in out and "catboost" in out


def test_gpu_hours_only_from_measured_cuda_rows(tmp_path, store):
    path = tmp_path / "costs.csv"
    cost_rows("imn").assign(budget_param="params.epochs").to_csv(path, index=False)
    cpu_only = tmp_path / "speed_cpu.csv"
    speed = pd.DataFrame(
        [dict(model="imn", device="cpu", n=1000, F=10, C=2, status="ok", epoch_s=0.4)]
    )
    speed.to_csv(cpu_only, index=False)
    args = ("model=imn", "task=shape/kc1", "device=cuda")
    p = planned(*args, costs=path, speed=cpu_only, store=store)
    assert p.planned[0].gpu_seconds is None
    assert costs.GPU_HINT in plan.text(p)
    with_cuda = tmp_path / "speed.csv"
    cuda = speed.assign(device="cuda", epoch_s=0.04)
    pd.concat([speed, cuda]).to_csv(with_cuda, index=False)
    p = planned(*args, costs=path, speed=with_cuda, store=store)
    est = p.planned[0].estimate
    expected = (est.fixed + est.evaluation) / p.planned[0].threads + est.per_unit * 500 * 0.1
    assert p.planned[0].gpu_seconds == pytest.approx(expected)
    assert costs.GPU_HINT not in plan.text(p)


# -- against the store and the runner --------------------------------------------------------------
def test_finished_runs_in_the_store_are_counted(tmp_path, store):
    sweep = ("model=logreg", "task=synthetic/c1", "fold=0,1")
    runs_after(*sweep, store=store, tmp_path=tmp_path, multirun=True)
    proc = run_cli(
        "mesobench.planning.plan", "--json", "model=logreg", "task=synthetic/c1", "fold=0,1,2",
        f"tracking.uri={store}", tmp_path=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert (out["runs"], out["finished"], out["to_run"]) == (3, 2, 1)
    recorded = {r.data.tags["mesobench.run_key"] for r in stored_runs(store)}
    finished = {j["run_key"] for j in out["jobs"] if j["status"] == "finished"}
    assert finished == recorded
    # --from-scratch does not read the store: the cost of the whole sweep
    scratch = planned(
        "model=logreg", "task=synthetic/c1", "fold=0,1,2", store=store, from_scratch=True
    )
    assert statuses(scratch)["to_run"] == 3 and "not read" in plan.text(scratch)


ACCEPTANCE = {  # model: (budget key, measured budget, settings of both budgets)
    "imn": ("model.params.epochs", 8, ()),
    "xgboost": ("model.params.n_estimators", 300, ("model.params.early_stopping_rounds=null",)),
    "catboost": ("model.params.iterations", 300, ("model.params.early_stopping_rounds=null",)),
}
WARM_UP = "shape/wdbc"  # a process's first fit pays torch's one-off start (~2 s): not compared
MEASURED = ("shape/phoneme", "shape/spambase")
QUIET = ("threads=1", "tracking.log_pictures=false", "tracking.log_datasets=false")


@pytest.mark.slow
def test_estimates_are_within_2x_of_measured_fits(tmp_path, store):
    """The acceptance check: fit each model at a larger budget, then at the shape sweep's
    reduced one (conf/plan.yaml, with its extra settings) into the shape table that
    mesobench.planning.shape_table makes from the store (the newest run of each task and model: the
    reduced one), and plan the larger runs from that table: each run's estimate (fit + predict
    + explanations + fidelity) and its fit within 2× of the measured seconds."""
    shape_sweep = importlib.import_module("mesobench.planning.shape_table")
    for model, (key, measured, extra) in ACCEPTANCE.items():
        _, reduced = shape_sweep.model_budget(model)
        common = (f"model={model}", f"task={WARM_UP},{','.join(MEASURED)}", *extra, *QUIET)
        for budget in ([f"{key}={measured}"], [f"{k}={v}" for k, v in reduced.items()]):
            runs_after(
                *common, *budget, f"sweep_id={shape_sweep.SWEEP_ID}",
                store=store, tmp_path=tmp_path, multirun=True,
            )  # fmt: skip
    table = shape_sweep.cost_table(shape_sweep.runs_from_store(store))
    costs_csv = tmp_path / "shape_costs.csv"
    table.to_csv(costs_csv, index=False)
    assert (table["status"] == "FINISHED").sum() == 3 * 3

    measured_runs = {r.data.tags["mesobench.run_key"]: r for r in stored_runs(store)}
    estimated, actual, fit_ratios, evaluation_ratios = {}, {}, {}, {}
    for model, (key, measured, extra) in ACCEPTANCE.items():
        p = planned(
            f"model={model}", f"task={','.join(MEASURED)}", f"{key}={measured}", *extra, *QUIET,
            costs=costs_csv, store=store,
        )  # fmt: skip
        for item in p.planned:
            assert item.status == "finished", "the plan's run key is the runner's"
            m = measured_runs[item.job.key].data.metrics
            parts = ("fit_seconds", "predict_seconds", "explain_seconds", "fidelity_seconds")
            pair = (model, item.job.task_name)
            actual[pair] = sum(m.get(k, 0.0) for k in parts)
            estimated[pair] = item.estimate.seconds
            fit_ratios[pair] = item.estimate.fit / m["fit_seconds"]
            evaluation_ratios[pair] = item.estimate.evaluation / max(
                actual[pair] - m["fit_seconds"], 1e-9
            )
    total = sum(estimated.values()) / sum(actual.values())
    report = f"total {total:.2f}; " + ", ".join(
        f"{m} {t}: {estimated[m, t] / actual[m, t]:.2f} of {actual[m, t]:.2f} s "
        f"(fit {fit:.2f}, evaluation {evaluation_ratios[m, t]:.2f})"
        for (m, t), fit in fit_ratios.items()
    )
    print("estimate / measured:", report)
    assert 0.5 <= total <= 2, report
    assert all(0.5 <= estimated[k] / actual[k] <= 2 for k in actual), report
    assert all(0.5 <= ratio <= 2 for ratio in fit_ratios.values()), report


def test_plan_command_prints_runs_and_hours(tmp_path, store):
    path = tmp_path / "costs.csv"
    cost_rows("xgboost").to_csv(path, index=False)
    proc = run_cli(
        "mesobench.planning.plan", "-m", "suite=cc18_offline", "model=xgboost", "folds=2",
        f"tracking.uri={store}", "--costs", str(path), tmp_path=tmp_path,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "24 runs (12 tasks × 2 folds × 1 models" in proc.stdout
    assert "CPU-hours" in proc.stdout and "Wall-clock" in proc.stdout
    assert not Path(store.removeprefix("sqlite:///")).exists(), "the plan creates no store"
