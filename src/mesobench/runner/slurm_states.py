"""submitit's job states from ``squeue`` on a SLURM cluster without accounting.

submitit learns how a job ended from ``sacct``. Without accounting
(``AccountingStorageType=accounting_storage/none``, common on small clusters) sacct fails: submitit
prints "Slurm accounting storage is disabled" and a "Bypassing sacct error" warning on every poll,
and a job that ends without writing its result (``scancel``, a node failure, a time limit) is never
seen to end, so the sweep that waits for it hangs. When accounting is off, :func:`use_squeue`
makes submitit read states from squeue instead (``--states=all`` lists finished jobs for
``MinJobAge``, 300 s by default); a job squeue no longer knows has ended (state :data:`ENDED`).
A job that wrote its result is seen done by submitit through its result file, without any poll.
"""

from __future__ import annotations

import logging
import subprocess
import time
from typing import Any

from submitit.slurm import slurm as submitit_slurm

log = logging.getLogger(__name__)

ENDED = "ENDED"
"""The state of a job that squeue no longer lists: it ended, how is no longer known."""
_FIELDS = "JobID|State|NodeList"
_FORMAT = "%i|%T|%N"  # the same columns as submitit's sacct call
_UNKNOWN_IDS = "Invalid job id specified"  # squeue's answer when none of the ids exists any more


def accounting_enabled(config_text: str) -> bool | None:
    """Whether ``scontrol show config`` output says accounting is on (None: it does not say)."""
    for line in config_text.splitlines():
        key, _, value = line.partition("=")
        if key.strip() == "AccountingStorageType":
            return value.strip() != "accounting_storage/none"
    return None


def cluster_accounting() -> bool | None:
    """Whether the cluster keeps accounting (None: scontrol did not answer)."""
    try:
        proc = subprocess.run(
            ["scontrol", "show", "config"], capture_output=True, text=True, timeout=30
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return accounting_enabled(proc.stdout) if proc.returncode == 0 else None


class SqueueWatcher(submitit_slurm.SlurmInfoWatcher):
    """submitit's watcher of SLURM job states, reading squeue instead of sacct."""

    def _make_command(self) -> list[str] | None:
        to_check = sorted({x.split("_")[0] for x in self._registered - self._finished})
        if not to_check:
            return None
        return [
            "squeue",
            "--noheader",
            "--all",
            "--states=all",
            f"--format={_FORMAT}",
            f"--jobs={','.join(to_check)}",
        ]

    def states(self, squeue_output: str, pending: set[str]) -> dict[str, dict[str, str]]:
        """The jobs' info from squeue's output; ``pending`` ids it does not list have ended.

        An array's own id (``5``) is listed through its tasks (``5_0``, ``5_[1-3]``)."""
        info = self.read_info(f"{_FIELDS}\n{squeue_output}")
        listed = {job_id.split("_")[0] for job_id in info}
        for job_id in pending - set(info):
            if "_" in job_id or job_id not in listed:
                info[job_id] = {"JobID": job_id, "State": ENDED, "NodeList": ""}
        return info

    def update(self) -> None:
        """One squeue call for every job not known to be done (submitit's ``update`` contract)."""
        command = self._make_command()
        if command is None:
            return
        self._num_calls += 1
        pending = self._registered - self._finished
        try:
            proc = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.SubprocessError) as exc:
            proc = subprocess.CompletedProcess(command, 1, "", str(exc))
        if proc.returncode == 0 or _UNKNOWN_IDS in proc.stderr:
            self._info_dict.update(self.states(proc.stdout, pending))
        else:
            log.warning(
                "squeue failed (%s); SLURM job states may be out of date until the next poll",
                proc.stderr.strip()[-300:] or f"exit code {proc.returncode}",
            )
        self._last_status_check = time.time()
        for job_id in pending:
            if self.is_done(job_id, mode="cache"):
                self._finished.add(job_id)


def use_squeue() -> None:
    """From now on, submitit's SLURM jobs (in this process) poll squeue, not sacct."""
    current: Any = submitit_slurm.SlurmJob.watcher
    if not isinstance(current, SqueueWatcher):
        submitit_slurm.SlurmJob.watcher = SqueueWatcher(delay_s=current._delay_s)
