"""Audit a store: is every configuration of a sweep there exactly once?

Counts, over the runs of an experiment (optionally one sweep): configurations (run keys) with a
FINISHED run, keys whose runs all failed, keys with more than one FINISHED run (duplicates, which
the claim protocol must prevent) and runs closed as abandoned (left RUNNING by a dead process).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from mesobench.config.tags import RUN_KEY_TAG
from mesobench.store.runs import experiment_runs


@dataclass
class Integrity:
    keys: int  # distinct configurations seen
    finished: int  # configurations with a FINISHED run
    failed: int  # configurations without one
    duplicated: int  # FINISHED runs beyond the first of their configuration
    abandoned: int  # runs closed because their process died
    running: int  # runs still RUNNING

    def line(self, expected: int) -> str:
        return (
            f"expected / FINISHED / FAILED / duplicated: {expected} / {self.finished} / "
            f"{self.failed} / {self.duplicated}   (abandoned runs closed and redone: "
            f"{self.abandoned}; still running: {self.running})"
        )


def audit(uri: str, experiment: str = "mesobench", sweep_id: str | None = None) -> Integrity:
    query = f"tags.sweep_id = '{sweep_id}'" if sweep_id else ""
    runs = list(experiment_runs(uri, experiment, query))
    runs = [r for r in runs if RUN_KEY_TAG in r.data.tags]  # not a sweep's parent or a report
    keys = {r.data.tags.get(RUN_KEY_TAG) for r in runs}
    finished = Counter(r.data.tags.get(RUN_KEY_TAG) for r in runs if r.info.status == "FINISHED")
    return Integrity(
        keys=len(keys),
        finished=len(finished),
        failed=len(keys - set(finished)),
        duplicated=sum(n - 1 for n in finished.values()),
        abandoned=sum(r.data.tags.get("error_type") == "Stale" for r in runs),
        running=sum(r.info.status == "RUNNING" for r in runs),
    )
