"""Parity with a reference implementation's figures, fold by fold (mesobench.report.parity)."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from mesobench.errors import ConfigError
from mesobench.report import document
from mesobench.report.parity import (
    ParityReference,
    parity_by_fold,
    parity_summary,
    read_reference,
)

COLS = ["run_key", "model", "task", "fold", "seed", "status", "start_time", "auroc", "error"]


def _figures(values=(0.80, 0.70, 0.90, 0.85)):
    return pd.DataFrame(
        {"task": "diabetes", "fold": range(len(values)), "reference_auroc": list(values)}
    )


def _runs(rows):
    frame = pd.DataFrame(rows, columns=COLS)
    return frame.assign(run_id=frame["run_key"] + "-id")


def _row(model, fold, seed, auroc, status="FINISHED"):
    return (f"{model}-{fold}-{seed}", model, "diabetes", fold, seed, status, 1, auroc, None)


def test_ours_per_fold_is_the_mean_over_seeds_and_a_fold_without_a_run_stays_missing():
    runs = _runs(
        [
            _row("imn", 0, 0, 0.78),
            _row("imn", 0, 1, 0.82),
            _row("imn", 1, 0, 0.75),
            _row("imn", 2, 0, np.nan, status="FAILED"),
            _row("other", 3, 0, 0.99),
        ]
    )
    table = parity_by_fold(runs, _figures(), "imn", "auroc").set_index("fold")
    assert table.loc[0, "ours"] == pytest.approx(0.80)
    assert table.loc[0, "n_runs"] == 2
    assert table.loc[1, "difference"] == pytest.approx(0.05)
    assert np.isnan(table.loc[2, "ours"]) and table.loc[2, "n_runs"] == 0  # failed run
    assert np.isnan(table.loc[3, "ours"])  # another model's run is not ours


def test_parity_holds_when_the_mean_and_every_fold_are_within_tolerance():
    figures = _figures((0.80, 0.70, 0.90, 0.85))
    runs = _runs([_row("imn", k, 0, v) for k, v in enumerate((0.81, 0.69, 0.905, 0.84))])
    summary = parity_summary(parity_by_fold(runs, figures, "imn", "auroc"), 0.01, 0.05)
    (row,) = summary.to_dict("records")
    assert row["folds"] == "4/4"
    assert row["mean_difference"] == pytest.approx((0.01 - 0.01 + 0.005 - 0.01) / 4)
    assert row["max_abs_fold_difference"] == pytest.approx(0.01)
    assert row["parity"] == "yes"
    assert 0 < row["paired_t_p"] <= 1 and 0 < row["wilcoxon_p"] <= 1


def test_a_systematic_gap_fails_parity_and_the_paired_tests_see_it():
    figures = _figures(tuple(np.linspace(0.7, 0.9, 10)))
    shift = 0.08 + 0.01 * np.sin(np.arange(10))  # every fold ~0.08 below the reference
    runs = _runs([_row("imn", k, 0, v) for k, v in enumerate(figures["reference_auroc"] - shift)])
    (row,) = parity_summary(parity_by_fold(runs, figures, "imn", "auroc"), 0.01, 0.05).to_dict(
        "records"
    )
    assert row["parity"] == "no"
    assert row["mean_difference"] == pytest.approx(-shift.mean())
    assert row["paired_t_p"] < 1e-6
    assert row["wilcoxon_p"] < 0.01


def test_one_fold_beyond_the_fold_tolerance_fails_parity_even_with_a_small_mean():
    figures = _figures((0.80, 0.70, 0.90, 0.85))
    runs = _runs([_row("imn", k, 0, v) for k, v in enumerate((0.86, 0.68, 0.88, 0.83))])
    (row,) = parity_summary(parity_by_fold(runs, figures, "imn", "auroc"), 0.01, 0.05).to_dict(
        "records"
    )
    assert abs(row["mean_difference"]) <= 0.01
    assert row["max_abs_fold_difference"] == pytest.approx(0.06)
    assert row["parity"] == "no"


def test_missing_folds_fail_parity():
    runs = _runs([_row("imn", 0, 0, 0.80), _row("imn", 1, 0, 0.70)])
    (row,) = parity_summary(parity_by_fold(runs, _figures(), "imn", "auroc"), 0.01, 0.05).to_dict(
        "records"
    )
    assert row["folds"] == "2/4"
    assert row["parity"] == "no"


def test_read_reference_checks_the_file_and_its_columns(tmp_path):
    path = tmp_path / "ref.csv"
    _figures().assign(task_id=37).to_csv(path, index=False)
    figures = read_reference(path, "auroc")
    assert list(figures.columns) == ["task", "fold", "reference_auroc"]
    with pytest.raises(ConfigError, match="reference_accuracy"):
        read_reference(path, "accuracy")
    with pytest.raises(ConfigError, match="no such file"):
        read_reference(tmp_path / "absent.csv", "auroc")


def test_the_report_has_a_parity_section_table_and_plot(tmp_path):
    runs = _runs([_row("imn", k, 0, v) for k, v in enumerate((0.81, 0.69, 0.905, 0.84))])
    parity = ParityReference(_figures(), source="ref.csv", label="IMN reference code")
    page = document.write_report(runs, tmp_path, "t", parity=parity)
    assert "## Parity with the IMN reference code" in page
    summary = pd.read_csv(tmp_path / "parity_summary.csv")
    assert summary.loc[0, "model"] == "imn" and summary.loc[0, "parity"] == "yes"
    by_fold = pd.read_csv(tmp_path / "parity_by_fold.csv")
    assert len(by_fold) == 4
    assert imread(tmp_path / "parity.png").shape[0] > 100
