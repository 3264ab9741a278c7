"""Wall time and peak memory of a block of work, measured honestly per run.

``ru_maxrss`` is a process-lifetime peak, useless when one worker process runs many jobs in a
sweep; instead a background thread samples the resident set size (process plus children) while
the block runs, and CUDA's own peak counter is read when a GPU is in use.
"""

from __future__ import annotations

import threading
import time
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import psutil


@dataclass
class Usage:
    seconds: float = 0.0
    peak_rss_mb: float = 0.0
    peak_cuda_mb: float | None = None


def _rss_bytes(proc: psutil.Process) -> int:
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        with suppress(psutil.Error):
            total += child.memory_info().rss
    return total


@contextmanager
def measure(interval_s: float = 0.05, cuda: bool = False):
    """Yield a :class:`Usage` filled in when the block exits (also when it raises)."""
    usage = Usage()
    proc = psutil.Process()
    peak = [_rss_bytes(proc)]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(interval_s):
            try:
                peak[0] = max(peak[0], _rss_bytes(proc))
            except psutil.Error:
                return

    if cuda:
        import torch

        torch.cuda.reset_peak_memory_stats()
    thread = threading.Thread(target=sample, daemon=True, name="mesobench-memory")
    thread.start()
    start = time.perf_counter()
    try:
        yield usage
    finally:
        if cuda:
            import torch

            torch.cuda.synchronize()
        usage.seconds = time.perf_counter() - start
        stop.set()
        thread.join()
        peak[0] = max(peak[0], _rss_bytes(proc))
        usage.peak_rss_mb = peak[0] / 2**20
        if cuda:
            usage.peak_cuda_mb = torch.cuda.max_memory_allocated() / 2**20
