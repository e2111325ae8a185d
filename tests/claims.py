"""Shared harness: several threads claiming queued jobs until the queue is empty."""

from __future__ import annotations

import threading

from curate import jobs
from curate.config import Settings


def claim_concurrently(settings: Settings, n_jobs: int, prefix: str, threads: int = 4) -> tuple[set[str], list[str]]:
    """(ids submitted, ids claimed in claim order) after ``threads`` workers drained the queue."""
    ids = {jobs.submit(settings, "selection", {"n": i}).id for i in range(n_jobs)}
    claimed: list[str] = []
    lock = threading.Lock()

    def worker(name: str) -> None:
        while (job := jobs.claim(settings, name)) is not None:
            with lock:
                claimed.append(job.id)

    pool = [threading.Thread(target=worker, args=(f"{prefix}:{i}",)) for i in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return ids, claimed
