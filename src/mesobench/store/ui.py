"""``make ui``: the MLflow UI on a store, with the links that open each experiment's runs table.

    python -m mesobench.store.ui [--store sqlite:///mlflow.db] [--host 127.0.0.1] [--port 5000]

MLflow 3.17's UI does not follow the experiment's kind (``mlflow.experimentKind``, which the
runner sets anyway): a browser opens every experiment on the GenAI overview (traces,
evaluations) unless the link says ``workflowType=machine_learning`` or the browser remembers
that choice from an earlier click on "Model training". So this prints, per experiment, the link
that lands on the runs table, then runs ``mlflow ui`` in the foreground.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from mesobench.config.paths import repo_root

MACHINE_LEARNING = "machine_learning"


def landing_url(base: str, experiment_id: str, workflow_type: str | None = MACHINE_LEARNING):
    """The experiment's page; ``workflow_type=None`` leaves the choice to the UI (GenAI in 3.17)."""
    query = f"?workflowType={workflow_type}" if workflow_type else ""
    return f"{base}/#/experiments/{experiment_id}{query}"


def links(store: str, base: str) -> list[str]:
    """``name: url`` for every experiment of the store (none if it holds no runs yet)."""
    from mesobench.store.tracking import client_for

    experiments = client_for(store).search_experiments()
    return [f"{e.name}: {landing_url(base, e.experiment_id)}" for e in experiments]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--store", default=f"sqlite:///{repo_root() / 'mlflow.db'}")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=5000)
    args = parser.parse_args(argv)
    base = f"http://{args.host}:{args.port}"
    print(f"MLflow UI on {base}; each experiment's runs table:", flush=True)
    for line in links(args.store, base) or ["(no experiment yet: run a sweep first)"]:
        print(f"  {line}", flush=True)
    mlflow = str(Path(sys.executable).parent / "mlflow")
    command = [mlflow, "ui", "--backend-store-uri", args.store]
    os.execv(mlflow, [*command, "--host", args.host, "--port", str(args.port)])


if __name__ == "__main__":
    main()
