"""Stress the tracking store: many tiny runs in parallel, optionally killed and resumed.

    python scripts/stress_sweep.py                       # 200 runs, 4 workers
    python scripts/stress_sweep.py --kill                # kill -9 the sweep at a random moment,
                                                         # then rerun the same command
Prints ``expected / FINISHED / FAILED / duplicated`` and exits non-zero unless it reads
``N / N / 0 / 0``. Each run is the `debug_slow` model (a sleep, then class frequencies) on the
synthetic `c1` task, so the load is on the store and the sweep machinery, not on training.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mesobench.store.integrity import audit


def sweep_command(store: str, sweep_dir: Path, runs: int, workers: int, seconds: float):
    folds = 5
    if runs % folds:
        raise SystemExit(f"--runs must be a multiple of {folds}")
    return [
        sys.executable,
        "-m",
        "mesobench.run",
        "-m",
        "model=debug_slow",
        f"model.params.seconds={seconds}",
        "task=synthetic/c1",
        f"fold=range(0,{folds})",
        f"seed=range(0,{runs // folds})",
        "hydra/launcher=joblib",
        f"hydra.launcher.n_jobs={workers}",
        f"tracking.uri={store}",
        f"tracking.artifact_location={sweep_dir / 'artifacts'}",
        f"hydra.sweep.dir={sweep_dir}",
        "sweep_id=stress",
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=0.2, help="duration of each run's fit")
    parser.add_argument("--kill", action="store_true", help="kill -9 the first attempt midway")
    parser.add_argument(
        "--kill-after",
        type=int,
        default=None,
        help="kill once this many runs finished (default: a random number below half)",
    )
    parser.add_argument("--dir", type=Path, default=None, help="work dir (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=None, help="seed of the random kill moment")
    args = parser.parse_args(argv)

    work = args.dir or Path(tempfile.mkdtemp(prefix="mesobench-stress-"))
    work.mkdir(parents=True, exist_ok=True)
    store = f"sqlite:///{work / 'mlflow.db'}"
    cmd = sweep_command(store, work / "sweep", args.runs, args.workers, args.seconds)
    log = open(work / "sweep.log", "w")  # noqa: SIM115 -- closed at exit
    print(f"work dir {work}")
    started = time.perf_counter()
    if args.kill:
        rng = random.Random(args.seed)
        after = args.kill_after if args.kill_after is not None else rng.randint(1, args.runs // 2)
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        done = 0
        while proc.poll() is None and done < after:
            time.sleep(0.5)
            if (work / "mlflow.db").exists():
                done = audit(store, sweep_id="stress").finished
        time.sleep(rng.uniform(0.0, 2.0))  # land at a random point inside the next runs
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the sweep and all its workers, like a crash
            proc.wait()
            mid = audit(store, sweep_id="stress")
            print(f"killed the sweep (kill -9) after {after}+ runs: {mid.line(args.runs)}")
        else:
            print("the sweep finished before the kill; nothing was killed")
    rc = subprocess.call(cmd, stdout=log, stderr=subprocess.STDOUT)
    elapsed = time.perf_counter() - started
    result = audit(store, sweep_id="stress")
    print(result.line(args.runs))
    print(f"sweep exit code {rc}, {elapsed:.0f}s in all, {args.workers} workers")
    ok = (
        rc == 0
        and result.finished == args.runs
        and result.failed == 0
        and result.duplicated == 0
        and result.running == 0
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
