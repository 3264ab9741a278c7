"""The vocabulary of a run's tags, shared by the code that writes runs (:mod:`mesobench.run`,
:mod:`mesobench.store.tracking`) and the code that reads them back (:mod:`mesobench.aggregate`,
:mod:`mesobench.report`), so the report side needs neither MLflow nor the tracker."""

from __future__ import annotations

from collections.abc import Mapping

RUN_KEY_TAG = "mesobench.run_key"
RUN_KEY_VERSION_TAG = "mesobench.run_key_version"
NOTES_SEPARATOR = " | "
"""Joins a run's notes in its ``notes`` tag; the report splits on it to read them back."""

GIT_COMMIT_TAG = "mlflow.source.git.commit"
"""MLflow's standard tag for the code version; the UI and any MLflow tool read it."""
GIT_DIRTY_TAG = "mesobench.git_dirty"
"""``true`` when the checkout had uncommitted changes under ``tracking.RESULT_PATHS``: the commit
alone does not say which code ran."""


SUITES_TAG = "mesobench.suites"
"""Every experiment (suite) a run belongs to, as ``,a,b,``: the one that made it (tag ``suite``)
and those that reused it instead of rerunning an identical run key."""


def suites_value(names: list[str]) -> str:
    """The :data:`SUITES_TAG` value for ``names`` (delimited, so a LIKE filter is exact)."""
    return "," + ",".join(dict.fromkeys(n for n in names if n)) + ","


def suites_of(tags: Mapping[str, str]) -> list[str]:
    """The experiments a run belongs to: :data:`SUITES_TAG`, else its ``suite`` tag."""
    names = [n for n in str(tags.get(SUITES_TAG) or "").split(",") if n]
    own = tags.get("suite")
    return list(dict.fromkeys([*([own] if own else []), *names]))


PARENT_RUN_TAG = "mlflow.parentRunId"
"""MLflow's tag that nests a run under another in the UI (a sweep's runs under its parent)."""
NOTE_TAG = "mlflow.note.content"
"""MLflow's tag for a run's description (markdown, shown on the run page)."""
SOURCE_NAME_TAG = "mlflow.source.name"
SOURCE_TYPE_TAG = "mlflow.source.type"
USER_TAG = "mlflow.user"
SWEEP_PARENT_TAG = "mesobench.sweep_parent"
"""``true`` on a sweep's parent run. A parent is no benchmark run: it has no run key, and it
names its sweep in :data:`SWEEP_TAG`, not in ``sweep_id``, so audits and reports that select
a sweep's runs by ``sweep_id`` never count it."""
SWEEP_TAG = "mesobench.sweep"

SUMMARY_TAG = "mesobench.summary"
"""Marks a run that holds a report (not a benchmark run); never read back as a benchmark run."""
