"""What a run says about itself in the MLflow UI: its description and MLflow's standard tags.

MLflow shows ``mlflow.note.content`` as a run's description (markdown) and fills the runs
table's *Source* and *User* columns from ``mlflow.source.*`` and ``mlflow.user``. A run gets its
description when it starts (what runs, and the command that reruns exactly it) and again when it
ends, with its headline metrics or its error.
"""

from __future__ import annotations

import getpass
import os
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from mesobench.config.tags import NOTE_TAG, SOURCE_NAME_TAG, SOURCE_TYPE_TAG, USER_TAG

RUNNER = "python -m mesobench.run"
HEADLINE_METRICS = (
    "auroc",
    "accuracy",
    "log_loss",
    "r2",
    "mse",
    "fidelity/lfr_infidelity",
    "fidelity/yeh_infidelity",
    "fit_seconds",
)
"""Metrics shown in a run's description when it logged them, in this order."""


def user() -> str:
    """The user name MLflow shows (``mlflow.user``); ``unknown`` where the OS has none."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def source_tags() -> dict[str, str]:
    """MLflow's standard source tags: the runner as the source, a SLURM job as a JOB."""
    return {
        SOURCE_NAME_TAG: "mesobench.run",
        SOURCE_TYPE_TAG: "JOB" if os.environ.get("SLURM_JOB_ID") else "LOCAL",
        USER_TAG: user(),
    }


def command_line(overrides: Sequence[str], module: str = RUNNER) -> str:
    """The shell command with these Hydra overrides, quoted so it can be pasted."""
    return " ".join([module, *map(shlex.quote, overrides)])


def describe(tags: Mapping[str, Any], command: str, outcome: str = "") -> str:
    """The run's markdown description: model, task, fold, seed, sweep, the command, results."""
    task_id = f" (OpenML task {tags['task_id']})" if tags.get("task_id") else ""
    lines = [
        f"**{tags['model']}** on **{tags['task']}**{task_id}, fold {tags['fold']}, "
        f"seed {tags['seed']}; sweep `{tags['sweep_id']}`, device `{tags['device']}`.",
        "",
        f"Rerun exactly this run: `{command} force=true`",
    ]
    if outcome:
        lines += ["", outcome]
    return "\n".join(lines)


def results(metrics: Mapping[str, float]) -> str:
    """The headline metrics as a markdown table (those the run logged)."""
    shown = [(name, metrics[name]) for name in HEADLINE_METRICS if name in metrics]
    if not shown:
        return ""
    rows = [f"| {name} | {value:.4g} |" for name, value in shown]
    return "\n".join(["| metric | value |", "| --- | --- |", *rows])


def failure(reason: str) -> str:
    """The description's line for a FAILED run: its reason (the traceback is in error.txt)."""
    return f"**FAILED**: {reason[:1000]}  \n(traceback: the run's `error.txt` artifact)"


def note_tags(tags: Mapping[str, Any], command: str, outcome: str = "") -> dict[str, str]:
    """The tag that sets the description."""
    return {NOTE_TAG: describe(tags, command, outcome)}
