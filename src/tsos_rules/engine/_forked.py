"""Run slices of one job in forked worker processes that share the parent's memory.

Judging a 100k-deal snapshot is CPU-bound Python work over an index that is costly to build and
to pickle. Forked children inherit the built index copy-on-write, judge their slice and send
back only their (small) result. A worker that fails for any reason has its slice redone in the
parent, so the answer never depends on the workers: they can only make it come sooner.

Forking is used only where it is the platform's default way to start processes (Linux) and
only by callers that know the process runs no other threads (the ``check`` command).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import pickle
import sys
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

R = TypeVar("R")


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def can_fork() -> bool:
    """Whether forked workers are safe here: fork is the platform's default start method."""
    return hasattr(os, "fork") and multiprocessing.get_start_method(allow_none=False) == "fork"


def run_slices(work: Callable[[int, int], R], jobs: int) -> list[R]:
    """``[work(0, jobs), ..., work(jobs - 1, jobs)]``, slice 0 in this process, the rest forked.

    ``work(k, n)`` must be a pure function of the parent's state at the call. Results of forked
    slices come back pickled; a slice whose worker fails is redone here, with a warning.
    """
    if jobs <= 1 or not can_fork():
        return [work(k, max(jobs, 1)) for k in range(max(jobs, 1))]
    sys.stdout.flush()
    sys.stderr.flush()
    children: list[tuple[int, int, int]] = []  # (slice, pid, read end of its pipe)
    for k in range(1, jobs):
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker: judge one slice, send it, leave without any teardown
            os.close(read_end)
            status = 1
            try:
                with os.fdopen(write_end, "wb") as out:
                    pickle.dump(work(k, jobs), out, protocol=pickle.HIGHEST_PROTOCOL)
                status = 0
            finally:
                os._exit(status)
        os.close(write_end)
        children.append((k, pid, read_end))
    results: list[R] = [work(0, jobs)]
    for k, pid, read_end in children:
        with os.fdopen(read_end, "rb") as received:
            payload = received.read()
        _, status = os.waitpid(pid, 0)
        if status == 0:
            try:
                results.append(pickle.loads(payload))
                continue
            except Exception as exc:  # a truncated or corrupt answer: redo the slice
                log.warning("worker %d of %d sent an unreadable result (%s)", k, jobs, exc)
        else:
            code = os.waitstatus_to_exitcode(status)
            log.warning("worker %d of %d failed (exit %d); judging its slice here", k, jobs, code)
        results.append(work(k, jobs))
    return results
