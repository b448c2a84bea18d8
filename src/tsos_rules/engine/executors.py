"""Judge a snapshot's partitions on a process pool or a Dask cluster, as a map and a reduce.

1. Each record is given a partition by company group (:mod:`.partitions`). Forked workers
   (``processes`` on Linux) inherit the driver's whole index and judge their partition's own
   records straight from it; other workers receive each partition's own cut snapshot.
2. Map: each partition's share of the packs' aggregates; reduce: the exact org-wide totals.
3. Map: each partition judged with those totals (broadcast), by an engine its worker builds
   from the driver engine's recipe. The findings are the same as judging in one process.

A partition whose task fails (its worker died, or it raised) is retried once; a partition that
fails twice fails the run with :class:`ExecutorError` (exit 3) naming it: never a partial
answer presented as whole. A Dask scheduler that cannot be reached within
``[engine] connect_timeout`` seconds is exit 3 too.
"""

from __future__ import annotations

import copy
import datetime as dt
import gc
import logging
import multiprocessing
import sys
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from contextlib import contextmanager
from multiprocessing.context import BaseContext
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from tsos_rules.engine.aggregates import BoundAggregate, Partial, Totals, combine, finalize
from tsos_rules.engine.aggregates import partial_totals as _partial_totals
from tsos_rules.engine.partitions import (
    JUDGED,
    MAX_PARTITIONS,
    Partition,
    assign_owners,
    cut,
    shared_partitions,
)
from tsos_rules.engine.recipe import EngineRecipe, ExecutorSpec, available_cpus
from tsos_rules.errors import ConfigError, ExecutorError
from tsos_rules.facts import FactIndex, build_index
from tsos_rules.findings import Finding, FindingList

if TYPE_CHECKING:
    from tsos_rules.engine.engine import Engine

log = logging.getLogger(__name__)

#: Workers when none are asked for: one per CPU, at most this many. Judging is under half of
#: a ``check``; a third worker saves little and each holds its partitions in memory.
MAX_AUTO_WORKERS = 2


def auto_workers(workers: int) -> int:
    return workers if workers > 0 else max(1, min(available_cpus(), MAX_AUTO_WORKERS))


# -- the tasks (module-level, so workers import them by name) -----------------------------


def partial_task(partition: Partition, bound: Sequence[BoundAggregate]) -> Partial:
    """One partition's share of the aggregates, over its own records only."""
    records = {record_type: partition.own_records(c) for c, record_type in JUDGED}
    return _partial_totals(bound, records)


def judge_task(
    partition: Partition, recipe: EngineRecipe, totals: Totals, as_of: dt.date
) -> list[Finding]:
    """One partition's findings, judged with the org-wide totals: from the whole index when
    the partition shares it (a forked worker), else from an index of its own snapshot."""
    engine = recipe.engine()
    if partition.index is not None:
        index = copy.copy(partition.index)  # the totals are this task's, not the driver's
    else:
        index = build_index(partition.snapshot, recipe.org, as_of)
    index.totals = totals
    return FindingList(engine.judge(index, partition.own))  # pickled by columns, for the driver


# -- the executors ------------------------------------------------------------------------


class _Runner(Protocol):
    def map(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        """``[fn(partition, *args) for partition in partitions]``, or ExecutorError."""
        ...


#: Failures that say the task's worker died (or left the cluster), not that the task raised.
_WORKER_DIED = frozenset({"BrokenProcessPool", "KilledWorker", "FutureCancelledError"})


def failure_cause(exc: BaseException) -> str:
    if type(exc).__name__ in _WORKER_DIED:
        return f"its worker died: {type(exc).__name__}"
    return f"{type(exc).__name__}: {exc}"


def _failed(partition: Partition, total: int, exc: BaseException) -> ExecutorError:
    return ExecutorError(
        f"partition {partition.number + 1} of {total} ({partition.size:,} records) failed "
        f"twice ({failure_cause(exc)}); no findings are reported from a partial run"
    )


def _retrying(partition: Partition, exc: BaseException) -> None:
    log.warning("partition %d failed (%s); retrying it", partition.number + 1, failure_cause(exc))


#: The partitions of the run in progress, which forked workers inherit (set before the pool
#: forks) instead of receiving each partition pickled: pickling them cost more than judging.
#: Each is a mask over the driver's whole index, which the workers inherit with them.
_inherited: Sequence[Partition] = ()


def _on_inherited(fn: Callable[..., Any], at: int, *args: Any) -> Any:
    """``fn`` on the ``at``-th partition this forked worker inherited."""
    return fn(_inherited[at], *args)


def fork_context() -> BaseContext | None:
    """Fork where it is safe and cheap (Linux); elsewhere partitions travel pickled."""
    return multiprocessing.get_context("fork") if sys.platform == "linux" else None


class _Pool:
    """A ``concurrent.futures`` process pool, started at the first task (after the partitions
    are cut, so forked workers inherit them) and replaced once a dead worker has broken it (a
    broken pool refuses every later task)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.context = fork_context()
        self._pool: ProcessPoolExecutor | None = None
        self._froze = False

    def fresh(self, workers: int) -> ProcessPoolExecutor:
        if self.context is not None and gc.isenabled() and not gc.get_freeze_count():
            # Out of the collector's sight before forking: a collection in a worker would
            # otherwise walk (and write to, so copy) every object it inherited. (Python's
            # gc.freeze docs; ``check`` pauses the collector anyway.)
            gc.freeze()
            self._froze = True
        return ProcessPoolExecutor(max_workers=workers, mp_context=self.context)

    @property
    def pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            self._pool = self.fresh(self.workers)
        return self._pool

    def renew(self) -> None:
        self.close()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None
        if self._froze:
            gc.unfreeze()
            self._froze = False


class _Processes:
    """Partitions on a process pool. A dead worker fails every task its pool held, so failed
    partitions are retried each alone in a one-worker pool (up to ``workers`` at a time): a
    partition that kills its worker again fails only itself, and is named."""

    def __init__(self, pool: _Pool, partitions: Sequence[Partition]) -> None:
        global _inherited
        self.pool = pool
        self.partitions = partitions
        if pool.context is not None:
            # workers forked for an earlier batch hold its partitions: fork afresh for these
            pool.close()
            _inherited = partitions

    def _submit(
        self, pool: ProcessPoolExecutor, at: int, fn: Callable[..., Any], args: Sequence[Any]
    ) -> Future[Any]:
        if self.pool.context is not None:
            return pool.submit(_on_inherited, fn, at, *args)
        return pool.submit(fn, self.partitions[at], *args)

    def map(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        futures = [self._submit(self.pool.pool, at, fn, args) for at in range(len(self.partitions))]
        results: dict[int, Any] = {}
        failed: list[tuple[int, Exception]] = []
        for at, future in enumerate(futures):
            try:
                results[at] = future.result()
            except Exception as exc:
                _retrying(self.partitions[at], exc)
                failed.append((at, exc))
        if any(isinstance(exc, BrokenProcessPool) for _, exc in failed):
            self.pool.renew()
        for start in range(0, len(failed), self.pool.workers):
            results.update(self._retry_alone(failed[start : start + self.pool.workers], fn, args))
        return [results[at] for at in range(len(self.partitions))]

    def _retry_alone(
        self, failed: Sequence[tuple[int, Exception]], fn: Callable[..., Any], args: Sequence[Any]
    ) -> dict[int, Any]:
        pools = [self.pool.fresh(1) for _ in failed]  # a crash hits only its own pool
        try:
            futures = [
                self._submit(pool, at, fn, args)
                for pool, (at, _) in zip(pools, failed, strict=True)
            ]
            results: dict[int, Any] = {}
            for (at, first), future in zip(failed, futures, strict=True):
                try:
                    results[at] = future.result()
                except Exception as exc:
                    raise _failed(self.partitions[at], len(self.partitions), exc) from first
            return results
        finally:
            for pool in pools:
                pool.shutdown(wait=True, cancel_futures=True)


#: How long the driver waits for an idle Dask worker (a dead one's replacement) before it
#: gives a partition to a busy one.
IDLE_WORKER_WAIT = 10.0
#: Times a partition may lose its input to another partition's dead worker (not counted as
#: its own failure) before the run fails anyway.
MAX_LOST_INPUTS = 3
#: Tries to send a partition or the shared data to the workers (one may die meanwhile).
SCATTER_ATTEMPTS = 3


class _Dask:
    """Partitions on a ``dask.distributed`` cluster, scattered once, retried by this driver.

    Each task goes to an idle worker, one at a time (judging holds the GIL; a second thread
    would not help), preferring a partition that worker already holds (moving one costs about
    what judging it does). A worker that dies fails only the partition it was judging: that
    one is retried once, and failing twice fails the run. A partition whose copy was lost with
    another partition's worker is scattered again without counting against it.
    """

    def __init__(self, client: Any, partitions: Sequence[Partition]) -> None:
        self.client = client
        self.partitions = partitions
        # hash=False: naming a partition by its content would cost as much as sending it
        self.scattered: list[Any] = client.scatter(list(partitions), hash=False)
        who_has = client.who_has(self.scattered)
        #: the worker holding each partition's copy, by position
        self.holder: dict[int, str] = {
            at: holders[0]
            for at, copy in enumerate(self.scattered)
            if (holders := list(who_has.get(copy.key) or ()))
        }

    def _scatter(self, value: Any, *, broadcast: bool = False, worker: str | None = None) -> Any:
        """``value`` on the cluster; a worker dying as it receives it means trying again."""
        where = [worker] if worker else None
        for attempt in range(SCATTER_ATTEMPTS):
            try:
                return self.client.scatter([value], broadcast=broadcast, workers=where, hash=False)[
                    0
                ]
            except OSError as exc:  # distributed's CommClosedError: the worker died meanwhile
                if attempt + 1 == SCATTER_ATTEMPTS:
                    raise ExecutorError(
                        f"cannot send data to the Dask cluster's workers "
                        f"({type(exc).__name__}: {exc})"
                    ) from exc
                where = None
                time.sleep(0.2 * (attempt + 1))
        raise AssertionError("unreachable")

    def _share(self, args: Sequence[Any]) -> list[Any]:
        return [self._scatter(arg, broadcast=True) for arg in args]

    def _idle_worker(self, busy: Collection[str]) -> str | None:
        """A worker judging none of our partitions; after a wait, the least busy one (None:
        the cluster has no worker at the moment, the scheduler places the task)."""
        deadline = time.monotonic() + IDLE_WORKER_WAIT
        while True:
            workers: list[str] = list(self.client.nthreads())
            idle = [worker for worker in workers if worker not in busy]
            if idle:
                return idle[0]
            if time.monotonic() > deadline:
                return min(workers, key=list(busy).count) if workers else None
            time.sleep(0.05)

    def map(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        from distributed import as_completed

        client = self.client
        shared = self._share(args)
        count = len(self.partitions)
        waiting = deque(range(count))
        failures, lost = [0] * count, [0] * count
        on: dict[Any, tuple[int, str | None]] = {}  # future: (partition, worker)
        running = as_completed()  # type: ignore[no-untyped-call]

        def pick(worker: str | None) -> int:
            """A waiting partition, one ``worker`` holds if any."""
            for position, at in enumerate(waiting):
                if worker and self.holder.get(at) == worker:
                    del waiting[position]
                    return at
            return waiting.popleft()

        def submit(worker: str | None) -> None:
            nonlocal shared
            if worker is None:
                worker = self._idle_worker([where for _, where in on.values() if where])
            at = pick(worker)
            if any(copy.status != "finished" for copy in shared):
                shared = self._share(args)  # every worker holding them died
            if self.scattered[at].status != "finished":
                self.scattered[at] = self._scatter(self.partitions[at], worker=worker)
                if worker:
                    self.holder[at] = worker
            future = client.submit(
                fn,
                self.scattered[at],
                *shared,
                pure=False,
                workers=[worker] if worker else None,
                allow_other_workers=True,
            )
            on[future] = (at, worker)
            running.add(future)  # type: ignore[no-untyped-call]

        for worker in list(client.nthreads()) or [None]:
            if waiting:
                submit(worker)
        results: dict[int, Any] = {}
        for future in running:
            at, worker = on.pop(future)
            try:
                results[at] = future.result()
            except Exception as exc:
                if type(exc).__name__ == "FutureCancelledError" and lost[at] < MAX_LOST_INPUTS:
                    lost[at] += 1  # its copy died with another partition's worker
                else:
                    failures[at] += 1
                    if failures[at] >= 2 or lost[at] >= MAX_LOST_INPUTS:
                        client.cancel(list(on))
                        raise _failed(self.partitions[at], count, exc) from exc
                _retrying(self.partitions[at], exc)
                waiting.appendleft(at)
                worker = None  # it may have died: the next idle one
            if waiting:
                submit(worker)
        return [results[at] for at in range(count)]


class _InProcess:
    """Partitions judged one after the other here: the reduce without a pool (tests, checks)."""

    def __init__(self, partitions: Sequence[Partition]) -> None:
        self.partitions = partitions

    def map(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        return [fn(partition, *args) for partition in self.partitions]


@contextmanager
def _session(
    spec: ExecutorSpec, engine: Engine
) -> Iterator[tuple[Callable[[Sequence[Partition]], _Runner], int, bool]]:
    """A way to run partitions on ``spec``, how many workers it has, and whether they inherit
    the driver's index (forked workers: partitions are masks over it, nothing is cut)."""
    if spec.kind == "local":
        engine.recipe.adopt(engine)
        yield _InProcess, 1, False
        return
    if spec.kind == "processes":
        engine.recipe.adopt(engine)  # forked workers inherit the built engine
        global _inherited
        pool = _Pool(auto_workers(spec.workers))
        try:
            yield (
                (lambda partitions: _Processes(pool, partitions)),
                pool.workers,
                (pool.context is not None),
            )
        finally:
            pool.close()
            _inherited = ()
        return
    with _dask_client(spec) as client:
        workers = max(1, len(client.nthreads()))
        yield (lambda partitions: _Dask(client, partitions)), workers, False


@contextmanager
def _dask_client(spec: ExecutorSpec) -> Iterator[Any]:
    """A client of the cluster at ``spec.address``, or of a new LocalCluster on 127.0.0.1."""
    try:
        import dask
        from distributed import Client, LocalCluster
    except ImportError as exc:
        raise ExecutorError(
            "the dask executor needs dask.distributed: pip install 'tsos-rules[dask]'"
        ) from exc
    if spec.address:
        with _connected(Client, spec) as client:
            yield client
        return
    # The driver retries a failed partition once (_Dask); the scheduler reschedules none, so
    # a partition whose worker dies twice is tried exactly twice.
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        # Worker processes talk TCP on the loopback only; threads use in-process transport.
        where = {"host": "127.0.0.1"} if spec.cluster_processes else {}
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=auto_workers(spec.workers),
            threads_per_worker=1,
            processes=spec.cluster_processes,
            dashboard_address=None,
            # The scheduler still serves its health routes over HTTP: on a free loopback port,
            # never 8787 on every interface (a busy 8787 made distributed retry and leak a socket)
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
            silence_logs=logging.CRITICAL,  # this driver names each failure and retry itself
            **where,
        )
        with cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
            yield client


@contextmanager
def _connected(client_type: Callable[..., Any], spec: ExecutorSpec) -> Iterator[Any]:
    """A client of the scheduler at ``spec.address``, or ExecutorError (exit 3) once
    ``spec.connect_timeout`` seconds have passed without reaching it."""
    where = f"executor dask={spec.address}"
    try:
        client = client_type(spec.address, timeout=spec.connect_timeout)
    except ValueError as exc:  # an address distributed cannot parse, e.g. an unknown scheme
        raise ConfigError(f"{where}: not a Dask scheduler address ({exc})") from exc
    except Exception as exc:  # refused, timed out, unknown host: OSError and kin
        raise ExecutorError(
            f"{where}: cannot reach the Dask scheduler within {spec.connect_timeout:g} s "
            f"({type(exc).__name__}: {exc}); [engine] connect_timeout sets the wait"
        ) from exc
    with client:
        try:
            client.wait_for_workers(1, timeout=spec.connect_timeout)
        except TimeoutError as exc:
            raise ExecutorError(
                f"{where}: no worker joined the Dask cluster within {spec.connect_timeout:g} s "
                "(start workers with: dask worker ADDRESS --nthreads 1)"
            ) from exc
        yield client


class JudgingSession:
    """An executor opened once (a process pool, a Dask client) that judges many indexes in
    turn: a sync's read batches share one pool instead of starting one per batch."""

    def __init__(
        self,
        engine: Engine,
        spec: ExecutorSpec,
        runner_for: Callable[[Sequence[Partition]], _Runner],
        workers: int,
        shares_index: bool = False,
    ) -> None:
        self.engine = engine
        self.spec = spec
        self._runner_for = runner_for
        self.workers = workers
        #: workers inherit the driver's index: partitions are masks over it, not cut snapshots
        self.shares_index = shares_index

    def judge(
        self,
        index: FactIndex,
        *,
        only: AbstractSet[tuple[str, str]] | None = None,
        totals: Mapping[str, Mapping[str, float]] | None = None,
    ) -> list[Finding]:
        """The findings of the judged records of ``index`` (only the ``(record type, id)``
        keys in ``only`` when given, the others being context), partitions judged on the
        session's executor. ``totals`` are the packs' aggregates when known (a sync's
        org-wide pre-read); else they are reduced over the partitions, which must then hold
        the whole org. Two partitions per worker, so one slow partition does not leave the
        others idle."""
        engine = self.engine
        count = min(self.spec.partitions or 2 * self.workers, MAX_PARTITIONS)
        ownership = assign_owners(index, count)
        if self.shares_index:
            index.company_conflicts  # noqa: B018 -- built once here, not in each forked worker
            partitions = shared_partitions(index, ownership)
        else:
            partitions = cut(index, ownership)
        if only is not None:
            partitions = [_restrict(p, only) for p in partitions]
        partitions = [p for p in partitions if p.size]
        if not partitions:
            return []
        runner = self._runner_for(partitions)
        if totals is None:
            totals = {}
            if engine.aggregates:
                shares = runner.map(partial_task, engine.aggregates)
                totals = finalize(engine.aggregates, combine(shares))
        parts = runner.map(judge_task, engine.recipe, totals, index.as_of)
        return [finding for part in parts for finding in part]


def _restrict(partition: Partition, only: AbstractSet[tuple[str, str]]) -> Partition:
    """The partition with only the records named in ``only`` judged; the rest is context."""
    masks: dict[str, bytes] = {}
    for collection, record_type in JUDGED:
        records = getattr(partition.snapshot, collection)
        mask = partition.own[collection]
        masks[collection] = bytes(
            1 if mine and (record_type, record.id) in only else 0
            for record, mine in zip(records, mask, strict=True)
        )
    return attrs.evolve(partition, own=masks)


@contextmanager
def open_session(engine: Engine, spec: ExecutorSpec) -> Iterator[JudgingSession]:
    """A :class:`JudgingSession` on ``spec``, its pool or cluster released on exit."""
    with _session(spec, engine) as (runner_for, workers, shares_index):
        yield JudgingSession(engine, spec, runner_for, workers, shares_index)


def judge_partitioned(engine: Engine, index: FactIndex, spec: ExecutorSpec) -> list[Finding]:
    """The findings of every judged record of ``index``, partitions judged on ``spec``."""
    with open_session(engine, spec) as session:
        return session.judge(index)
