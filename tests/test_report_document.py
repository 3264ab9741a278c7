"""Missing / failed runs and their treatment, the plots, and the report folder as a whole."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread
from scipy.stats import t as stats_t

from mesobench.config.paths import repo_root
from mesobench.metrics import registry
from mesobench.report import cells, document, plots, treat_missing
from mesobench.report.runs_table import NON_METRICS

COLS = ["run_key", "model", "task", "fold", "seed", "status", "start_time", "auroc", "error"]

# Three models, two tasks, two folds; c fails fold 1 of t2 (DivergenceError).
# t1: a .9/.9 b .8/.8 c .7/.7      t2: a .6/.8 b .7/.7 c .9/FAILED
ROWS = [
    ("a-t1-0", "a", "t1", 0, 0, "FINISHED", 1, 0.9, None),
    ("a-t1-1", "a", "t1", 1, 0, "FINISHED", 1, 0.9, None),
    ("b-t1-0", "b", "t1", 0, 0, "FINISHED", 1, 0.8, None),
    ("b-t1-1", "b", "t1", 1, 0, "FINISHED", 1, 0.8, None),
    ("c-t1-0", "c", "t1", 0, 0, "FINISHED", 1, 0.7, None),
    ("c-t1-1", "c", "t1", 1, 0, "FINISHED", 1, 0.7, None),
    ("a-t2-0", "a", "t2", 0, 0, "FINISHED", 1, 0.6, None),
    ("a-t2-1", "a", "t2", 1, 0, "FINISHED", 1, 0.8, None),
    ("b-t2-0", "b", "t2", 0, 0, "FINISHED", 1, 0.7, None),
    ("b-t2-1", "b", "t2", 1, 0, "FINISHED", 1, 0.7, None),
    ("c-t2-0", "c", "t2", 0, 0, "FINISHED", 1, 0.9, None),
    ("c-t2-1", "c", "t2", 1, 0, "FAILED", 1, np.nan, "DivergenceError: loss is NaN at epoch 3"),
]


def _runs(rows=ROWS):
    return pd.DataFrame(rows, columns=COLS).assign(run_id=lambda d: d["run_key"] + "-id")


def test_cells_name_every_missing_run_and_its_reason():
    table = cells(_runs(), "auroc", models=["a", "b", "c", "ghost"]).set_index(["task", "model"])
    assert table.loc[("t2", "c"), "finished"] == 1
    assert table.loc[("t2", "c"), "expected"] == 2
    assert "fold 1: FAILED (DivergenceError: loss is NaN" in table.loc[("t2", "c"), "problems"]
    assert table.loc[("t1", "ghost"), "problems"] == "folds 0, 1: no run"
    assert table.loc[("t1", "a"), "complete"]


def test_drop_task_removes_the_incomplete_task_and_says_so():
    treated = treat_missing(_runs(), "auroc", "drop_task")
    assert list(treated.scores.index) == ["t1"]
    assert treated.dropped == {"t2": "incomplete: c"}
    (row,) = treated.incomplete.to_dict("records")
    assert (row["task"], row["model"]) == ("t2", "c")
    assert "dropped" in row["treatment"]


def test_a_task_whose_finished_runs_lack_the_metric_is_dropped_for_that_reason():
    # t3's runs finished but report no auroc (say, a regression task in a classification report)
    rows = [*ROWS, ("a-t3-0", "a", "t3", 0, 0, "FINISHED", 1, np.nan, None)]
    treated = treat_missing(_runs(rows), "auroc", "drop_task")
    assert treated.dropped["t3"] == "no model has the metric"


def test_worst_imputes_the_missing_fold_with_the_worst_result_of_that_fold():
    treated = treat_missing(_runs(), "auroc", "worst")
    # c's missing t2 fold 1 becomes min(a .8, b .7) = .7 → c's t2 mean (.9 + .7) / 2
    assert treated.scores.loc["t2", "c"] == pytest.approx(0.8)
    assert treated.scores.loc["t2", "a"] == pytest.approx(0.7)
    assert treated.dropped == {}
    assert "imputed with the worst result (0.7000)" in treated.incomplete.iloc[0]["treatment"]


def test_worst_for_a_lower_is_better_metric_takes_the_largest():
    treated = treat_missing(_runs(), "auroc", "worst", higher_is_better=False)
    assert treated.scores.loc["t2", "c"] == pytest.approx((0.9 + 0.8) / 2)


def test_available_uses_finished_runs_and_drops_a_task_with_an_empty_cell():
    treated = treat_missing(_runs(), "auroc", "available")
    assert treated.scores.loc["t2", "c"] == pytest.approx(0.9)
    assert "1 finished run(s) only" in treated.incomplete.iloc[0]["treatment"]
    with_ghost = treat_missing(_runs(), "auroc", "available", models=["a", "b", "c", "ghost"])
    assert with_ghost.scores.empty
    assert set(with_ghost.dropped) == {"t1", "t2"}


def test_an_unknown_treatment_is_refused():
    with pytest.raises(ValueError, match="drop_task"):
        treat_missing(_runs(), "auroc", "ignore")


def _assert_png(path):
    assert path.exists() and path.stat().st_size > 1000
    image = imread(path)
    assert image.shape[0] > 50 and image.shape[1] > 50
    assert image.std() > 0.01  # something was drawn, not a blank canvas


def test_cd_diagram_renders(tmp_path):
    ranks = pd.Series({"imn": 1.4, "xgboost": 2.1, "catboost": 2.3, "logreg": 4.2})
    _assert_png(plots.cd_diagram(ranks, 1.2, tmp_path / "cd.png"))


def test_per_task_and_infidelity_plots_render(tmp_path):
    summary = pd.DataFrame(
        {
            "task": ["t1", "t1", "t2", "t2"],
            "model": ["a", "b", "a", "b"],
            "mean": [0.9, 0.8, 0.7, 0.75],
            "std": [0.01, np.nan, 0.02, 0.03],
        }
    )
    _assert_png(plots.per_task_scores(summary, "auroc", tmp_path / "tasks.png"))
    both = summary.rename(columns={"mean": "score"}).assign(infidelity=[0.1, 0.5, 0.2, 0.4])
    path = plots.score_vs_infidelity(both, "auroc", "lfr_scaled", tmp_path / "x.png", ["rf"])
    _assert_png(path)


def test_an_exact_model_does_not_stretch_the_log_axis_of_the_infidelity_plot():
    # a linear model's own attributions score 1e-30: drawn at a floor four decades below the
    # largest value instead of 30 decades away from the others
    values = np.array([1e-30, 2.0, 0.05, 0.4])
    log, floor = plots._log_floor(values)
    assert log and floor == pytest.approx(1e-4)
    assert plots._log_floor(np.array([0.1, 0.5, 0.2])) == (False, 0.0)  # within two decades


def _sample(rng, features, rows, scale=1.0):
    frame = pd.DataFrame(rng.normal(scale=scale, size=(len(rows), len(features))), columns=features)
    frame.insert(0, "row", rows)
    frame["intercept"] = 0.1
    return frame


def test_explanation_picture_with_nimo_interaction_map(tmp_path):
    rng = np.random.default_rng(0)
    features = [f"x{j}" for j in range(6)]
    rows = [3, 8, 11, 20]
    beta = np.array([1.0, -0.5, 0.0, 2.0, 0.3, -1.0])
    nimo_weights = _sample(rng, features, rows)
    nimo_weights[features] = beta * (1 + 0.2 * rng.normal(size=(len(rows), len(features))))
    samples = {
        "imn": plots.ExplanationSample(_sample(rng, features, rows)),
        "lfr_imn": plots.ExplanationSample(_sample(rng, features, rows[1:])),
        "nimo": plots.ExplanationSample(
            nimo_weights,
            {"coef": beta.tolist(), "interaction_strength": rng.uniform(size=6).tolist()},
        ),
    }
    picture = plots.explanation_picture(samples, tmp_path / "explain.png", top_k=4)
    assert picture.row == 8  # the first test row every sample holds
    assert picture.interactions == "nimo"
    _assert_png(picture.path)


def test_explanation_picture_multiclass_picks_a_class_and_skips_misaligned_nimo(tmp_path):
    rng = np.random.default_rng(1)
    features = ["a", "b", "c"]
    frame = pd.concat([_sample(rng, features, [0, 1]).assign(**{"class": k}) for k in "xy"])
    description = {"coef": [[1, 2], [3, 4]], "interaction_strength": [1, 1], "classes": ["x", "y"]}
    picture = plots.explanation_picture(
        {
            "imn": plots.ExplanationSample(frame),
            "nimo": plots.ExplanationSample(frame, description),
        },
        tmp_path / "e.png",
        klass="y",
    )
    assert picture.klass == "y"
    assert picture.interactions is None
    assert any("interaction panels skipped" in n for n in picture.notes)
    _assert_png(picture.path)


def test_choose_explanation_runs_takes_one_run_per_family_on_a_shared_fold():
    runs = pd.DataFrame(
        {
            "run_id": ["r1", "r2", "r3", "r4"],
            "model": ["imn_fast", "nimo", "nimo", "xgboost"],
            "task": ["t1", "t1", "t2", "t1"],
            "fold": [1, 1, 0, 1],
            "seed": [0, 0, 0, 0],
            "status": "FINISHED",
            "start_time": 1,
            "explain_seconds": [0.1, 0.1, 0.1, np.nan],
        }
    )
    run_ids, source, absent = document.choose_explanation_runs(runs, ["imn", "lfr_imn", "nimo"])
    assert run_ids == {"imn_fast": "r1", "nimo": "r2"}
    assert source == "task t1, fold 1, seed 0"
    assert absent == ["lfr_imn"]


def test_the_report_lists_a_failed_run_with_its_treatment(tmp_path):
    runs = _runs().assign(fit_seconds=1.5, predict_seconds=0.1)
    runs.loc[runs["model"].eq("a"), "fidelity/lfr_scaled_infidelity"] = 0.3
    runs.loc[runs["model"].eq("b"), "fidelity/lfr_scaled_infidelity"] = 0.6
    runs.loc[runs["model"].isin(["a", "b"]), "fidelity/yeh_scaled_infidelity"] = 0.2
    settings = document.ReportSettings(missing="worst", reference="a")
    page = document.write_report(runs, tmp_path, "test report", "python -m x", settings)

    section = page.split("## Missing and failed runs")[1]
    assert "DivergenceError: loss is NaN" in section
    assert "`missing: worst`" in section
    assert "imputed with the worst result (0.7000)" in section
    # t1: a 1, b 2, c 3; t2 with c imputed to .8 and a = b = .7: c 1, a 2.5, b 2.5
    ranks = pd.read_csv(tmp_path / "average_rank.csv").set_index("model")["average_rank"]
    assert ranks.to_dict() == pytest.approx({"a": 1.75, "b": 2.25, "c": 2.0})
    wtl = pd.read_csv(tmp_path / "win_tie_loss.csv").set_index("model")
    assert wtl.loc["b", ["wins", "ties", "losses"]].tolist() == [1, 1, 0]
    assert wtl.loc["c", ["wins", "ties", "losses"]].tolist() == [1, 0, 1]
    for name in ("auroc_by_task", "average_rank", "win_tie_loss", "friedman", "missing", "time"):
        for ext in ("md", "csv", "tex"):
            assert (tmp_path / f"{name}.{ext}").stat().st_size > 0, f"{name}.{ext}"
    assert "\\begin{tabular}" in (tmp_path / "average_rank.tex").read_text()
    for png in ("ranks.png", "auroc_by_task.png", "auroc_vs_infidelity.png"):
        _assert_png(tmp_path / png)
    # two tasks: the Friedman test cannot reject, so no post-hoc CD diagram, ranks only
    assert not (tmp_path / "cd_diagram.png").exists() and "no post-hoc test" in page
    fidelity = pd.read_csv(tmp_path / "fidelity.csv").set_index("model")
    assert np.isnan(fidelity.loc["c", "yeh_scaled_infidelity"])  # no attributions: shown as —
    assert "| c | 0 | — |" in (tmp_path / "fidelity.md").read_text()
    assert "lfr_scaled_infidelity" not in fidelity  # LFR-IMN's objective: a table of its own
    lfr = pd.read_csv(tmp_path / "fidelity_lfr.csv").set_index("model")
    assert sorted(lfr.index) == ["a", "b"] and "training objective" in page
    assert "python -m x" in page


def test_the_default_treatment_drops_the_task_and_the_report_says_so(tmp_path):
    page = document.write_report(_runs(), tmp_path, "t", settings=document.ReportSettings())
    assert "Left out: t2 (incomplete: c)" in page
    assert "`missing: drop_task`" in page
    # one task left: Friedman needs 2
    assert "needs at least 2 tasks" in page
    assert "reference: a (imn is not in this report; the best average rank)" in page


def test_the_reference_falls_back_to_its_family():
    ranks = pd.Series({"xgboost": 1.0, "imn_fast": 2.0})
    assert document.resolve_reference("imn", ["imn_fast", "xgboost"], ranks)[0] == "imn_fast"
    assert document.resolve_reference("imn", ["imn", "imn_fast"], ranks)[0] == "imn"


def test_regenerating_a_report_removes_files_it_no_longer_writes(tmp_path):
    runs = _runs().assign(**{"fidelity/deletion_auc": -0.2})
    document.write_report(runs, tmp_path, "t")
    assert (tmp_path / "fidelity.md").exists()
    (tmp_path / "notes.txt").write_text("kept: not a report file type")
    document.write_report(_runs(), tmp_path, "t")
    assert not (tmp_path / "fidelity.md").exists()
    assert (tmp_path / "notes.txt").exists()
    assert (tmp_path / "README.md").read_text().rstrip().endswith(document.MARKER)


@pytest.mark.parametrize(
    ("metric", "up"),
    [
        ("auroc", True),
        ("accuracy", True),
        ("mse", False),
        ("log_loss", False),
        ("fidelity/gt_gradient_mae", False),
        ("fidelity/lfr_scaled_infidelity", False),
        ("fidelity/deletion_auc", False),
        ("fit_seconds", False),
        ("r2", True),
    ],
)
def test_metric_direction_comes_from_the_registry(metric, up):
    assert registry.higher_is_better(metric) is up
    assert registry.higher_is_better(metric, override=not up) is (not up)


def test_an_unknown_metric_is_refused_with_the_known_ones_unless_its_direction_is_given():
    with pytest.raises(registry.UnknownMetricError, match="'no_such_metric'.*known metrics.*auroc"):
        registry.higher_is_better("no_such_metric")
    assert registry.higher_is_better("no_such_metric", override=False) is False
    with pytest.raises(registry.UnknownMetricError, match="no better direction"):
        registry.higher_is_better("gamma_search/chosen_gamma")


def test_every_metric_the_runner_logs_is_registered():
    """The metrics of the committed quick and synthetic reports (made by the runner)."""
    logged = set()
    for path in repo_root().glob("results/**/runs.csv"):
        logged |= set(pd.read_csv(path, nrows=1).columns)
    known = set(registry.METRICS) | NON_METRICS | {"configuration"}
    assert logged - known == set()


def test_a_metric_name_with_a_slash_writes_files_not_folders(tmp_path):
    runs = _runs().rename(columns={"auroc": "fidelity/gt_gradient_mae"})
    settings = document.ReportSettings(metric="fidelity/gt_gradient_mae")
    document.write_report(runs, tmp_path, "t", settings=settings)
    assert (tmp_path / "fidelity_gt_gradient_mae_by_task.csv").is_file()
    ranks = pd.read_csv(tmp_path / "average_rank.csv").set_index("model")["average_rank"]
    assert ranks["c"] < ranks["a"]  # lower error ranks first: c has the lowest on t1


def test_a_report_shows_corrected_intervals_and_ranks_fidelity_with_a_cd_diagram(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for t, task in enumerate(["t1", "t2", "t3", "t4"]):
        for model, base, infid in (("a", 0.9, 0.1), ("b", 0.8, 0.3), ("c", 0.7, 0.2)):
            for fold in range(3):
                rows.append(
                    {
                        "run_key": f"{model}-{task}-{fold}",
                        "run_id": f"{model}-{task}-{fold}-id",
                        "model": model,
                        "task": task,
                        "fold": fold,
                        "seed": 0,
                        "status": "FINISHED",
                        "start_time": 1,
                        "auroc": base - 0.01 * t + rng.normal(0, 0.01),
                        "fidelity/yeh_scaled_infidelity": infid + rng.normal(0, 0.01),
                        "fidelity/max_sensitivity": 2 * infid + rng.normal(0, 0.01),
                        "error": None,
                    }
                )
    settings = document.ReportSettings(reference="a", key_version=None)
    page = document.write_report(pd.DataFrame(rows), tmp_path, "t", settings=settings)
    assert "mean [95% corrected resampled t interval] over folds" in page
    cells = pd.read_csv(tmp_path / "auroc_by_task.csv").set_index(["task", "model"])
    cell = cells.loc[("t1", "a")]  # 3 folds of a 10-fold CV: half-width t_2 √((1/3 + 1/9) s²)
    half = stats_t.ppf(0.975, 2) * np.sqrt((1 / 3 + 1 / 9) * cell["std"] ** 2)
    assert cell["ci_high"] - cell["mean"] == pytest.approx(half, rel=1e-12)
    assert "### Paired comparisons" in page and (tmp_path / "comparisons.csv").is_file()
    ranking = pd.read_csv(tmp_path / "average_rank.csv").set_index("model")
    assert (
        ranking.loc["a", "rank_low"]
        <= ranking.loc["a", "average_rank"]
        <= ranking.loc["a", "rank_high"]
    )
    assert "| a | 1.000 [1.000, 1.000] |" in (tmp_path / "average_rank.md").read_text()
    ranked = pd.read_csv(tmp_path / "fidelity_ranks.csv").set_index(["metric", "model"])
    assert ranked.loc[("yeh_scaled_infidelity", "a"), "average_rank"] == 1.0  # lowest infidelity
    assert (tmp_path / "cd_diagram_fidelity_yeh_scaled_infidelity.png").exists()
    assert "### Fidelity ranked" in page
    assert (tmp_path / "auroc_vs_stability.png").exists()  # accuracy against stability
    assert "![auroc vs stability](auroc_vs_stability.png)" in page


def test_regenerating_from_a_runs_table_keeps_the_explanation_picture_and_its_text(tmp_path):
    (tmp_path / "README.md").write_text(
        f"# old\n\n{document.EXPLANATION_HEADER}\n\nLocal linear models of imn for test row 3."
        f"\n\n![one instance explained](explanation.png)\n\n## Missing and failed runs\n\n"
        f"{document.MARKER}\n"
    )
    (tmp_path / "explanation.png").write_bytes(b"\x89PNG old picture")
    kept = document.kept_explanation(tmp_path)
    settings = document.ReportSettings(reference="a", key_version=None)
    for _ in range(2):  # twice: the page does not grow
        page = document.write_report(_runs(), tmp_path, "t", settings=settings, explanations=kept)
        kept = document.kept_explanation(tmp_path)
    assert (tmp_path / "explanation.png").read_bytes() == b"\x89PNG old picture"
    section = page.split(document.EXPLANATION_HEADER)[1].split("\n## ")[0]
    assert section.count("_Kept from the report made from the MLflow store") == 1
    assert "Local linear models of imn for test row 3." in section
    assert document.kept_explanation(tmp_path / "nowhere") is None
