"""mesobench.planning.speed (the speed bench): it measures what it says, and judges the targets from its table.

No timing is asserted here (speed targets live in the script's report, not in tests); these
tests check the bookkeeping: a measured cell's fields, the ratios and verdicts, the suite's
wall time read back from MLflow, and an end-to-end run writing its report.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from mlflow.tracking import MlflowClient

from mesobench.planning import speed as bench


def _row(model, epoch_s, device="cpu", n=1000, f=100, c=2, status="ok"):
    return bench.cell_row(
        model, n, f, c, device, status=status, epoch_s=epoch_s, samples_per_s=n / epoch_s
    )


@pytest.mark.slow  # times epochs until they add up to 1.5 s
def test_a_cell_measures_an_epoch_from_the_training_loops_epoch_times():
    # --min-seconds far above what 2 epochs of 300 rows take, even on a loaded machine
    args = bench.parse_args(["--epochs", "3", "--min-seconds", "1.5", "--repeats", "1"])
    row = bench.bench_cell("imn", 300, 6, 3, "cpu", 1, args)
    assert row["status"] == "ok"
    assert (row["model"], row["n"], row["F"], row["C"], row["device"]) == ("imn", 300, 6, 3, "cpu")
    # an epoch of 300 rows takes milliseconds: the fit is extended until the timed epochs
    # (all but the first) add up to about --min-seconds
    assert row["epochs"] > 3
    assert row["epoch_s"] > 0
    assert row["samples_per_s"] == pytest.approx(300 / row["epoch_s"])
    # the epoch time is the median of the timed epochs: at least half of them take that long,
    # and they all lie inside the fit (a per-epoch figure that were the whole fit would not)
    assert row["epoch_s"] * (row["epochs"] - 1) / 2 < row["fit_s"]
    assert row["fit_s"] > 0 and row["predict_s"] > 0 and row["explain_s"] > 0


def test_the_steady_epoch_time_leaves_out_the_first_epoch():
    class Fitted:
        train_result_ = type("R", (), {"epoch_seconds": [5.0, 1.0, 3.0, 2.0]})()

    assert bench.steady_epoch_seconds(Fitted()) == 2.0  # median of 1, 3, 2; not the 5 s


def test_ratios_and_verdicts_follow_the_table():
    table = pd.DataFrame(
        [
            _row("imn", 1.0),
            _row("lfr_imn", 2.0),
            _row("nimo", 6.0),
            _row("imn", 1.0, f=10),
            _row("nimo", 9.0, f=10),  # F = 10 is not judged by the NIMO target
            _row("lfr_imn", 3.0, n=10_000, status="skipped"),
        ]
    )
    ratios = bench.ratio_rows(table)
    at100 = next(r for r in ratios if r["F"] == 100)
    assert at100["lfr_imn"] == pytest.approx(2.0) and at100["nimo"] == pytest.approx(6.0)
    assert np.isnan(at100["tabresnet"])
    verdicts = {what.split(" ")[0]: (value, ok) for what, value, ok in bench.checks(table, ratios)}
    assert verdicts["LFR-IMN"] == ("worst 2.00×", True)
    assert verdicts["NIMO"] == ("worst 6.00×", False)
    assert verdicts["IMN"] == ("not measured", None)  # no GPU cell: neither pass nor fail


def _fake_sweep(uri: str, sweep: str, runs: list[tuple[str, int, int]], suite="quick"):
    client = MlflowClient(uri)
    found = client.get_experiment_by_name("bench")
    experiment = found.experiment_id if found else client.create_experiment("bench")
    t0 = 1_700_000_000  # seconds since the epoch; the runs' times are offsets from it
    for model, start_s, end_s in runs:
        tags = {"suite": suite, "sweep_id": sweep, "model": model}
        run = client.create_run(experiment, start_time=(t0 + start_s) * 1000, tags=tags)
        client.set_terminated(run.info.run_id, "FINISHED", end_time=(t0 + end_s) * 1000)


def test_suite_timing_reads_the_latest_sweep_wall_time_and_concurrency(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    _fake_sweep(uri, "old", [("nimo", 0, 5000)])
    _fake_sweep(uri, "new", [("nimo", 10_000, 10_120), ("imn", 10_000, 10_060)])
    _fake_sweep(uri, "new", [("imn", 10_060, 10_090)])
    lines, wall = bench.suite_timing(uri, "quick")
    assert wall == pytest.approx(120.0)  # the old sweep is not counted
    text = "\n".join(lines)
    assert "Sweep `new`: 3 runs (3 finished), up to 2 at a time" in text
    assert "| nimo | 1 | 120.0 | 2.0 | 57% |" in text
    assert "| imn | 2 | 45.0 | 1.5 | 43% |" in text


def test_suite_timing_without_runs_says_not_measured(tmp_path):
    lines, wall = bench.suite_timing(f"sqlite:///{tmp_path / 'empty.db'}", "quick")
    assert wall is None
    assert "Not measured" in lines[-1] and "make benchmark" in lines[-1]


@pytest.mark.slow  # runs the bench's cells in fresh processes
def test_the_script_writes_its_report_and_table(tmp_path):
    out = tmp_path / "speed.md"
    argv = [
        *("--n", "200", "--features", "5", "--classes", "2", "--models", "imn,nimo"),
        *("--devices", "cpu", "--threads", "1", "--epochs", "3", "--min-seconds", "0.3"),
        *("--out", str(out), "--suite-uri", f"sqlite:///{tmp_path / 'none.db'}"),
    ]
    status = bench.main(argv)
    text = out.read_text()
    table = pd.read_csv(out.with_suffix(".csv"))
    assert list(table["status"]) == ["ok", "ok"]
    assert "| imn | cpu | 200 | 5 | 2 |" in text and "| nimo | cpu | 200 | 5 | 2 |" in text
    assert "1 torch thread(s)" in text and "precision fp32" in text
    # F = 5: no NIMO target applies; no GPU; no suite: nothing can fail
    assert status == 0
