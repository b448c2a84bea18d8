"""Judge a snapshot's partitions on a process pool or a Dask cluster, as a map and a reduce.

1. The snapshot is cut into partitions by company group (:mod:`.partitions`).
2. Map: each partition's share of the packs' aggregates; reduce: the exact org-wide totals.
3. Map: each partition judged with those totals (broadcast), by an engine its worker builds
   from the driver engine's recipe. The findings are the same as judging in one process.

A partition whose task fails (its worker died, or it raised) is retried once; a partition that
fails twice fails the run with :class:`ExecutorError` (exit 3) naming it: never a partial
answer presented as whole.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Protocol

from tsos_rules.engine.aggregates import BoundAggregate, Partial, Totals, combine, finalize
from tsos_rules.engine.aggregates import partial_totals as _partial_totals
from tsos_rules.engine.partitions import JUDGED, Partition, partition_index
from tsos_rules.engine.recipe import EngineRecipe, ExecutorSpec
from tsos_rules.errors import ExecutorError
from tsos_rules.facts import FactIndex, build_index
from tsos_rules.findings import Finding

if TYPE_CHECKING:
    from tsos_rules.engine.engine import Engine

log = logging.getLogger(__name__)

#: Workers when none are asked for: one per CPU, at most this many. Judging is under half of
#: a ``check``; a third worker saves little and each holds its partitions in memory.
MAX_AUTO_WORKERS = 2


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


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
    """One partition's findings, judged with the org-wide totals."""
    engine = recipe.engine()
    index = build_index(partition.snapshot, recipe.org, as_of)
    index.totals = totals
    return engine.judge(index, partition.own)


# -- the executors ------------------------------------------------------------------------


class _Runner(Protocol):
    def map(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        """``[fn(partition, *args) for partition in partitions]``, or ExecutorError."""
        ...


def _failed(partition: Partition, total: int, exc: BaseException) -> ExecutorError:
    return ExecutorError(
        f"partition {partition.number + 1} of {total} ({partition.size:,} records) failed "
        f"twice ({type(exc).__name__}: {exc}); no findings are reported from a partial run"
    )


class _Processes:
    """A ``concurrent.futures`` process pool; a failed partition is retried in a fresh pool."""

    def __init__(self, pool: ProcessPoolExecutor, partitions: Sequence[Partition]) -> None:
        self.pool = pool
        self.partitions = partitions

    def map(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        futures: list[Future[Any]] = [self.pool.submit(fn, p, *args) for p in self.partitions]
        results: list[Any] = []
        for partition, future in zip(self.partitions, futures, strict=True):
            try:
                results.append(future.result())
            except Exception as exc:
                log.warning("partition %d failed (%s); retrying it", partition.number + 1, exc)
                results.append(self._retry(partition, exc, fn, *args))
        return results

    def _retry(
        self, partition: Partition, first: Exception, fn: Callable[..., Any], *args: Any
    ) -> Any:
        with ProcessPoolExecutor(max_workers=1) as alone:  # its own pool: a crash hits only it
            try:
                return alone.submit(fn, partition, *args).result()
            except Exception as exc:
                raise _failed(partition, len(self.partitions), exc) from first


class _Dask:
    """A ``dask.distributed`` client: partitions scattered once, tasks retried once."""

    def __init__(self, client: Any, partitions: Sequence[Partition]) -> None:
        self.client = client
        self.partitions = partitions
        self.scattered = client.scatter(list(partitions))

    def map(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        client = self.client
        shared = [client.scatter([arg], broadcast=True)[0] for arg in args]
        futures = [
            client.submit(fn, part, *shared, pure=False, retries=1) for part in self.scattered
        ]
        results: list[Any] = []
        for partition, future in zip(self.partitions, futures, strict=True):
            try:
                results.append(future.result())
            except Exception as exc:
                for other in futures:
                    other.cancel()
                raise _failed(partition, len(self.partitions), exc) from exc
        return results


class _InProcess:
    """Partitions judged one after the other here: the reduce without a pool (tests, checks)."""

    def __init__(self, partitions: Sequence[Partition]) -> None:
        self.partitions = partitions

    def map(self, fn: Callable[..., Any], *args: Any) -> list[Any]:
        return [fn(partition, *args) for partition in self.partitions]


@contextmanager
def _session(
    spec: ExecutorSpec, engine: Engine
) -> Iterator[tuple[Callable[[Sequence[Partition]], _Runner], int]]:
    """A way to run partitions on ``spec``, and how many workers it has."""
    if spec.kind == "local":
        engine.recipe.adopt(engine)
        yield _InProcess, 1
        return
    if spec.kind == "processes":
        engine.recipe.adopt(engine)  # forked workers inherit the built engine
        workers = auto_workers(spec.workers)
        with ProcessPoolExecutor(max_workers=workers) as pool:
            yield (lambda partitions: _Processes(pool, partitions)), workers
        return
    with _dask_client(spec) as client:
        workers = max(1, len(client.scheduler_info().get("workers", {})))
        yield (lambda partitions: _Dask(client, partitions)), workers


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
        try:
            client = Client(spec.address, timeout="20s")  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError) as exc:
            raise ExecutorError(
                f"executor dask={spec.address}: cannot reach the Dask scheduler ({exc})"
            ) from exc
        with client:
            yield client
        return
    # A worker that dies has its task rescheduled once; dying twice fails that partition.
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        # Worker processes talk TCP on the loopback only; threads use in-process transport.
        where = {"host": "127.0.0.1"} if spec.cluster_processes else {}
        cluster = LocalCluster(  # type: ignore[no-untyped-call]
            n_workers=auto_workers(spec.workers),
            threads_per_worker=1,
            processes=spec.cluster_processes,
            dashboard_address=None,
            **where,
        )
        with cluster, Client(cluster) as client:  # type: ignore[no-untyped-call]
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
    ) -> None:
        self.engine = engine
        self.spec = spec
        self._runner_for = runner_for
        self.workers = workers

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
        count = self.spec.partitions or 2 * self.workers
        partitions = partition_index(index, count)
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
    return Partition(partition.number, partition.snapshot, masks)


@contextmanager
def open_session(engine: Engine, spec: ExecutorSpec) -> Iterator[JudgingSession]:
    """A :class:`JudgingSession` on ``spec``, its pool or cluster released on exit."""
    with _session(spec, engine) as (runner_for, workers):
        yield JudgingSession(engine, spec, runner_for, workers)


def judge_partitioned(engine: Engine, index: FactIndex, spec: ExecutorSpec) -> list[Finding]:
    """The findings of every judged record of ``index``, partitions judged on ``spec``."""
    with open_session(engine, spec) as session:
        return session.judge(index)
