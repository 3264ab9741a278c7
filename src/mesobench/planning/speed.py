"""Training and inference speed of the torch models on fixed shapes → ``results/speed.md``.

    python -m mesobench.planning.speed                          # full grid, cpu (+ cuda when present)
    python -m mesobench.planning.speed --n 1000 --features 10,100 --classes 2 --devices cpu
    python -m mesobench.planning.speed --devices cuda --precision bf16 --compile    # GPU options

For every shape (n rows, F features, C classes; Gaussian features, labels from a random linear
rule) and model (``conf/model/<name>.yaml`` as shipped, so the paper settings: IMN and LFR-IMN at
batch 64, NIMO and TabResNet at 256; only ``epochs`` is changed and early stopping is off), it
measures:

* **per-epoch time** and **samples/s per epoch**: one fit of ``--epochs`` epochs; per epoch =
  the median of the training loop's own epoch wall times (``train_result_.epoch_seconds``)
  after the first epoch, which pays one-off costs. What a fit pays once outside the epochs
  (setting up, neighbour search, NIMO's final β refit, snapshot copies) is not in it, so the
  figure is the steady-state cost of an epoch. (Not the difference of two fits of different
  lengths: NIMO's β refit runs a data-dependent number of IRLS iterations, which biased that
  difference by up to a quarter of an epoch.) When the measured epochs add up to less than
  ``--min-seconds``, the fit is repeated with more epochs;
* **fit time** of that fit (everything included);
* **predict** (``predict_proba`` on min(n, 10k) rows) and **explain** time (``explain`` for
  IMN / LFR-IMN / NIMO, gradient × input for TabResNet; the same rows);
* **peak memory**: resident set size above the process's level before the cell (cpu), or CUDA's
  peak allocated memory (cuda), during the first fit (with ``--repeats``, the fit is repeated
  and the fastest kept: the smallest per-epoch median and fit time; the memory is the first's).

A cell whose fit is predicted (from the same model at the previous n, linearly in n) to
take longer than ``--budget-s`` is skipped and reported as such, with the estimate, instead of
being run; nothing is extrapolated into the table. The page ends with the ratios the speed issue
sets targets for (LFR-IMN / IMN ≤ 2.2 per epoch, NIMO / IMN ≤ 5 per epoch at F = 100, IMN at
n = 100k, F = 100 ≥ 1M samples/s on a GPU) and the machine it ran on. Results are also written
as ``results/speed.csv``.

Exit status: 0 when every target that could be measured holds, 1 otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import torch

from mesobench.config.paths import compose_config, repo_root
from mesobench.metrics import scoring
from mesobench.protocol.estimators import DeviceSettings, build_estimator
from mesobench.protocol.resources import measure

REPO = repo_root()

MODELS = ("imn", "lfr_imn", "nimo", "tabresnet")
PREDICT_ROWS = 10_000
LFR_TARGET, NIMO_TARGET, GPU_TARGET = 2.2, 5.0, 1_000_000.0
SUITE_TARGET_MIN = 30


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", default="1000,10000,100000", help="rows (default: %(default)s)")
    p.add_argument("--features", default="10,100,500", help="F (default: %(default)s)")
    p.add_argument("--classes", default="2,10", help="C (default: %(default)s)")
    p.add_argument("--models", default=",".join(MODELS), help="model configs (%(default)s)")
    p.add_argument(
        "--devices",
        default="auto",
        help="cpu, cuda, or auto = cpu plus cuda when torch sees a GPU (default: %(default)s)",
    )
    p.add_argument(
        "--epochs",
        type=int,
        default=4,
        help="epochs per fit; the first is not timed as an epoch (default: %(default)s)",
    )
    p.add_argument(
        "--budget-s",
        type=float,
        default=120.0,
        help="skip a cell whose fit is predicted to take longer (default: %(default)s)",
    )
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: all)")
    p.add_argument("--precision", default="fp32", help="device.precision: fp32 | bf16")
    p.add_argument("--compile", action="store_true", help="device.compile: torch.compile the step")
    p.add_argument(
        "--batch-size-scale", type=int, default=1, help="device.batch_size_scale (default: 1)"
    )
    p.add_argument(
        "--min-seconds",
        type=float,
        default=2.0,
        help="fit more epochs when the timed epochs take less in all (default: %(default)s)",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--repeats",
        type=int,
        default=1,
        help="fit this many times and keep the fastest (default: %(default)s)",
    )
    p.add_argument(
        "--suite-uri",
        default=f"sqlite:///{REPO / 'mlflow.db'}",
        help="MLflow store holding the latest `make benchmark` sweep (default: the repo's)",
    )
    p.add_argument(
        "--suite", default="quick", help="suite whose latest sweep is timed (%(default)s)"
    )
    p.add_argument("--cell", default=None, help=argparse.SUPPRESS)  # internal: one cell, JSON out
    p.add_argument("--out", default=str(REPO / "results" / "speed.md"))
    return p.parse_args(argv)


def ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def devices(spec: str) -> list[str]:
    if spec == "auto":
        return ["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]
    return [d.strip() for d in spec.split(",") if d.strip()]


def make_data(n: int, f: int, c: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Standard-normal features and labels from a random linear rule (all C classes present)."""
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, f)).astype(np.float32)
    scores = X @ rng.standard_normal((f, c)) + rng.gumbel(size=(n, c))
    y = np.argmax(scores, axis=1)
    y[:c] = np.arange(c)  # every class occurs, whatever the draw
    return X, y


def model_config(name: str, epochs: int, args: argparse.Namespace) -> dict:
    cfg = compose_config(f"model={name}")["model"]
    params = cfg.setdefault("params", {})
    params["epochs"] = epochs
    params["verbose"] = False
    params.pop("early_stopping_patience", None)  # no eval_set is given: runs every epoch
    return cfg


def device_settings(args: argparse.Namespace) -> DeviceSettings:
    """The GPU settings of ``conf/device/*.yaml``, as the runner applies them."""
    return DeviceSettings.from_config(
        {
            "precision": args.precision,
            "compile": bool(args.compile),
            "batch_size_scale": args.batch_size_scale,
        }
    )


def fit_seconds(cfg: dict, X, y, device: str, threads: int, seed: int, settings=None):
    est = build_estimator(
        cfg, "classification", seed=seed, device=device, threads=threads, settings=settings
    )
    with measure(cuda=device.startswith("cuda")) as usage:
        est.fit(X, y)
    return est, usage


def explain_call(est, X):
    if scoring.attribution_method(est) == "local_linear":
        return est.explain(X)
    return est.input_gradients(X)


def cell_row(name: str, n: int, f: int, c: int, device: str, **values) -> dict:
    """One row of the results table: the cell's coordinates, then what was measured."""
    return {"model": name, "device": device, "n": n, "F": f, "C": c, **values}


def steady_epoch_seconds(est) -> float:
    """Median wall time of the epochs after the first (``train_result_.epoch_seconds``)."""
    seconds = est.train_result_.epoch_seconds
    return float(np.median(seconds[1:] if len(seconds) > 1 else seconds))


def bench_cell(name, n, f, c, device, threads, args) -> dict:
    """Measure one cell (in a fresh process, see :func:`run_cell`)."""
    settings = device_settings(args)
    X, y = make_data(n, f, c, args.seed)
    warm_X, warm_y = make_data(2 * f + 64, f, c, args.seed + 1)  # NIMO: over-determined
    fit_seconds(model_config(name, 1, args), warm_X, warm_y, device, threads, args.seed, settings)
    base_rss = psutil.Process().memory_info().rss / 2**20

    def fastest_fit(epochs: int):
        """``(model, fit seconds, epoch seconds, usage)``: the quickest of ``--repeats``
        identical fits (the least disturbed by other load; fit and epoch time each their
        smallest) and the first fit's usage, whose memory peak is the one taken from the clean
        baseline; slower fits' models are dropped before the next fit."""
        best, seconds, per_epoch, first = None, np.inf, np.inf, None
        for _ in range(args.repeats):
            model, usage = fit_seconds(
                model_config(name, epochs, args), X, y, device, threads, args.seed, settings
            )
            first = first or usage
            per_epoch = min(per_epoch, steady_epoch_seconds(model))
            if usage.seconds < seconds:
                best, seconds = model, usage.seconds
            model = None
        return best, seconds, per_epoch, first

    epochs = max(2, args.epochs)
    est, fit_s, per_epoch, usage = fastest_fit(epochs)
    if per_epoch * (epochs - 1) < args.min_seconds:
        # a few epochs of a small shape take milliseconds: time more of them
        more = max(2 * (epochs - 1), int(np.ceil(args.min_seconds / max(per_epoch, 1e-4))))
        epochs = 1 + min(200, more)
        est = None  # not kept while the longer fit's memory is measured
        est, fit_s, per_epoch, usage = fastest_fit(epochs)
    rows = X[: min(n, PREDICT_ROWS)]
    cuda = device.startswith("cuda")
    with measure(cuda=cuda) as pred:
        est.predict_proba(rows)
    with measure(cuda=cuda) as expl:
        explain_call(est, rows)
    peak = usage.peak_cuda_mb if cuda else usage.peak_rss_mb - base_rss
    return cell_row(
        name,
        n,
        f,
        c,
        device,
        status="ok",
        epoch_s=per_epoch,
        samples_per_s=n / per_epoch,
        epochs=epochs,
        fit_s=fit_s,
        predict_s=pred.seconds,
        explain_s=expl.seconds,
        peak_mb=peak,
    )


def run_cell(name, n, f, c, device, threads, argv: list[str]) -> dict:
    """:func:`bench_cell` in a child process: clean memory, no caches from earlier cells."""
    cmd = [sys.executable, __file__, *argv, "--cell", f"{name},{n},{f},{c},{device},{threads}"]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-1:] or ["?"]
        return cell_row(name, n, f, c, device, status=f"error: {tail[0][:120]}", estimate_s=np.nan)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def estimate(done: list[dict], name, n, f, c, device) -> float | None:
    """Long-fit seconds predicted from the same model/F/C/device at the largest smaller n."""
    prior = [
        r
        for r in done
        if (r["model"], r["F"], r["C"], r["device"]) == (name, f, c, device) and r["n"] < n
    ]
    if not prior:
        return None
    last = max(prior, key=lambda r: r["n"])
    seconds = last["fit_s"] if last["status"] == "ok" else last["estimate_s"]
    return seconds * n / last["n"]


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    text = (
        f"{cpu}, {cores} cores available, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM; "
        f"Python {platform.python_version()}, torch {torch.__version__}"
    )
    if torch.cuda.is_available():
        text += f"; GPU {torch.cuda.get_device_name(0)}"
    return text


def fmt(value: float, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return "—"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def ratio_rows(table: pd.DataFrame) -> list[dict]:
    """LFR-IMN / IMN and NIMO / IMN per-epoch cost at every shape both ran."""
    ok = table[table["status"] == "ok"].set_index(["device", "n", "F", "C", "model"])["epoch_s"]
    out = []
    for (device, n, f, c), group in ok.groupby(level=[0, 1, 2, 3]):
        per = group.droplevel([0, 1, 2, 3])
        if "imn" not in per:
            continue
        row = {"device": device, "n": n, "F": f, "C": c}
        for other in ("lfr_imn", "nimo", "tabresnet"):
            row[other] = per[other] / per["imn"] if other in per else np.nan
        out.append(row)
    return out


def checks(table: pd.DataFrame, ratios: list[dict]) -> list[tuple[str, str, bool | None]]:
    r = pd.DataFrame(ratios)
    out: list[tuple[str, str, bool | None]] = []
    if not r.empty and r["lfr_imn"].notna().any():
        worst = r["lfr_imn"].max()
        out.append(
            (f"LFR-IMN ≤ {LFR_TARGET}× IMN per epoch", f"worst {worst:.2f}×", worst <= LFR_TARGET)
        )
    at100 = r[(r["F"] == 100)] if not r.empty else r
    if not at100.empty and at100["nimo"].notna().any():
        worst = at100["nimo"].max()
        out.append(
            (
                f"NIMO ≤ {NIMO_TARGET:g}× IMN per epoch at F = 100",
                f"worst {worst:.2f}×",
                worst <= NIMO_TARGET,
            )
        )
    gpu = table[
        (table["model"] == "imn")
        & table["device"].str.startswith("cuda")
        & (table["n"] == 100_000)
        & (table["F"] == 100)
        & (table["status"] == "ok")
    ]
    if gpu.empty:
        out.append(("IMN ≥ 1M samples/s at n = 100k, F = 100 on a GPU", "not measured", None))
    else:
        best = gpu["samples_per_s"].min()
        out.append(("IMN ≥ 1M samples/s at n = 100k, F = 100 on a GPU", fmt(best), best >= 1e6))
    return out


def suite_timing(uri: str, suite: str) -> tuple[list[str], float | None]:
    """Markdown lines on the latest sweep of ``suite`` in the store, and its wall time (s).

    Wall time = end of its last run − start of its first (Hydra's start-up and the report are
    not included); per model: runs, mean and total run seconds, and their share. Runs of one
    sweep share the tag ``sweep_id``; the latest sweep is the one with the latest run.
    """
    from mesobench.store.runs import suite_runs

    header = [f"## The {suite} suite (`make benchmark`), per model", ""]
    try:
        runs = suite_runs(uri, suite)
    except Exception as exc:  # no store yet, or not reachable: say so, do not fail the bench
        return [*header, f"Not measured: cannot read {uri} ({exc})."], None
    if runs.empty or runs["sweep_id"].isna().all():
        return [*header, f"Not measured: no `{suite}` runs in {uri}; run `make benchmark`."], None
    sweep = runs.sort_values("start_time")["sweep_id"].iloc[-1]
    runs = runs[(runs["sweep_id"] == sweep) & runs["end_time"].notna()].copy()
    runs["seconds"] = (runs["end_time"] - runs["start_time"]).dt.total_seconds()
    wall = (runs["end_time"].max() - runs["start_time"].min()).total_seconds()
    events = sorted(
        [(t, 1) for t in runs["start_time"]] + [(t, -1) for t in runs["end_time"]],
        key=lambda e: (e[0], e[1]),
    )
    concurrency = max(np.cumsum([e[1] for e in events]))
    total = runs["seconds"].sum()
    lines = [
        *header,
        f"Sweep `{sweep}`: {len(runs)} runs ({(runs['status'] == 'FINISHED').sum()} finished), "
        f"up to {concurrency} at a time; **wall time {wall / 60:.1f} min** (first run's start "
        f"to last run's end) for {total / 60:.1f} min of run time. Read from {uri}.",
        "",
        "| model | runs | mean s per run | total min | share of run time |",
        "|---|---|---|---|---|",
    ]
    by_model = runs.groupby("model")["seconds"].agg(["count", "mean", "sum"])
    for model, row in by_model.sort_values("sum", ascending=False).iterrows():
        lines.append(
            f"| {model} | {int(row['count'])} | {row['mean']:.1f} | {row['sum'] / 60:.1f} | "
            f"{row['sum'] / total:.0%} |"
        )
    return lines, wall


def write_report(table: pd.DataFrame, args: argparse.Namespace, threads: int, path: Path) -> bool:
    ratios = ratio_rows(table)
    verdicts = checks(table, ratios)
    suite_lines, suite_wall = suite_timing(args.suite_uri, args.suite)
    verdicts.append(
        (
            f"{args.suite} suite ≤ {SUITE_TARGET_MIN} min wall on this machine",
            "not measured" if suite_wall is None else f"{suite_wall / 60:.1f} min",
            None if suite_wall is None else suite_wall <= SUITE_TARGET_MIN * 60,
        )
    )
    lines = [
        "# Speed of the torch models",
        "",
        f"Generated {dt.datetime.now(dt.timezone.utc):%Y-%m-%d %H:%M} UTC by "
        f"`python -m mesobench.planning.speed {' '.join(sys.argv[1:])}`.",
        "",
        f"Machine: {machine()}; {threads} torch thread(s); device settings: precision "
        f"{args.precision}, compile {bool(args.compile)}, batch_size_scale "
        f"{args.batch_size_scale}.",
        "",
        "Models as in `conf/model/<name>.yaml` (paper settings), epochs changed only. Per epoch "
        f"= the median wall time of epochs 2..E of a fit of E = {args.epochs} epochs (more "
        "when those take under "
        f"{args.min_seconds:g} s; the table's `epochs`), as the training loop timed them; each "
        f"cell the fastest of {args.repeats} fit(s); fit = that fit, everything included; "
        f"predict / explain on min(n, {PREDICT_ROWS:,}) rows; peak memory "
        "= RSS above the level before the cell (cpu) or CUDA peak allocated (cuda) during the "
        "first fit. Cells "
        f"predicted to need more than {args.budget_s:g} s are skipped, with the estimate.",
        "",
        "## Targets",
        "",
        "| target | measured | holds |",
        "|---|---|---|",
    ]
    for what, value, ok in verdicts:
        lines.append(f"| {what} | {value} | {'—' if ok is None else 'yes' if ok else 'NO'} |")
    lines += [
        "",
        "## Cost per epoch relative to IMN (same shape and device)",
        "",
        "| device | n | F | C | LFR-IMN / IMN | NIMO / IMN | TabResNet / IMN |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in ratios:
        lines.append(
            f"| {r['device']} | {r['n']:,} | {r['F']} | {r['C']} | {fmt(r['lfr_imn'])} | "
            f"{fmt(r['nimo'])} | {fmt(r['tabresnet'])} |"
        )
    lines += [
        "",
        "## Measurements",
        "",
        "| model | device | n | F | C | s/epoch | samples/s | fit s | predict s | explain s | "
        "peak MB |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in table.to_dict("records"):
        if r["status"] != "ok":
            lines.append(
                f"| {r['model']} | {r['device']} | {r['n']:,} | {r['F']} | {r['C']} | "
                f"{r['status']}"
                + (f" (est. fit {fmt(r['estimate_s'])} s)" if r["status"] == "skipped" else "")
                + " | | | | | |"
            )
            continue
        lines.append(
            f"| {r['model']} | {r['device']} | {r['n']:,} | {r['F']} | {r['C']} | "
            f"{fmt(r['epoch_s'])} | {fmt(r['samples_per_s'])} | {fmt(r['fit_s'])} | "
            f"{fmt(r['predict_s'])} | {fmt(r['explain_s'])} | {fmt(r['peak_mb'])} |"
        )
    lines += ["", *suite_lines]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return all(ok is not False for _, _, ok in verdicts)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.epochs < 2:
        raise SystemExit("--epochs must be at least 2 (the first epoch is not timed as one)")
    threads = args.threads or torch.get_num_threads()
    torch.set_num_threads(threads)
    if args.cell:  # child process: measure one cell, print it as JSON
        name, n, f, c, device, _ = args.cell.split(",")
        print(json.dumps(bench_cell(name, int(n), int(f), int(c), device, threads, args)))
        return 0
    child_argv = [a for a in (argv if argv is not None else sys.argv[1:])]
    done: list[dict] = []
    for device in devices(args.devices):
        for n in sorted(ints(args.n)):
            for f in ints(args.features):
                for c in ints(args.classes):
                    for name in args.models.split(","):
                        guess = estimate(done, name, n, f, c, device)
                        label = f"{name:10s} {device:5s} n={n:<7d} F={f:<4d} C={c:<3d}"
                        if guess is not None and guess > args.budget_s:
                            print(f"{label} skipped (estimated {guess:.0f} s)", flush=True)
                            done.append(
                                cell_row(name, n, f, c, device, status="skipped", estimate_s=guess)
                            )
                            continue
                        started = time.perf_counter()
                        row = run_cell(name, n, f, c, device, threads, child_argv)
                        done.append(row)
                        if row["status"] != "ok":
                            print(f"{label} {row['status']}", flush=True)
                            continue
                        print(
                            f"{label} {row['epoch_s']:.3f} s/epoch "
                            f"{row['samples_per_s']:,.0f} samples/s "
                            f"({time.perf_counter() - started:.0f} s)",
                            flush=True,
                        )
    table = pd.DataFrame(done)
    out = Path(args.out)
    table.to_csv(out.with_suffix(".csv"), index=False)
    ok = write_report(table, args, threads, out)
    print(f"wrote {out}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
