"""Judge a sharded snapshot on worker processes that each read, index and judge their shards.

The driver reads only the manifest and gives each worker slot a share of the shard files
(balanced by size). Phase 1: each worker reads its shards and the reference file, indexes
them, and returns its share of the packs' aggregates and the company keys of each shard;
the driver reduces the totals and checks no company group lies in two shards. Phase 2: each
worker judges its shards' own records from the index it kept, with the org-wide totals, and,
when asked, returns what the driver would otherwise read the whole snapshot for: the plugins'
report section rows of its shards and the account and partner of each finding's record.

Each slot is a one-worker ``concurrent.futures`` pool (``processes``), or a Dask worker its
tasks are sent to (``dask``), so a worker keeps its index between the phases. A slot whose
worker dies or raises is given a fresh worker that redoes both phases of its shards; a slot
that fails twice fails the run (exit 3) naming its shard files.
A shard that cannot be read fails the run with exit 2 naming the file, record and field.
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import attrs

from tsos_rules.engine.aggregates import BoundAggregate, Partial, Totals, combine, finalize
from tsos_rules.engine.aggregates import partial_totals as _partial_totals
from tsos_rules.engine.executors import auto_workers, failure_cause, fork_context
from tsos_rules.engine.recipe import EngineRecipe, ExecutorSpec
from tsos_rules.errors import ExecutorError, InputError, SnapshotError
from tsos_rules.facts import FactIndex, build_index
from tsos_rules.facts.scope import Scope, scopes_of
from tsos_rules.findings import Finding, FindingList, Findings
from tsos_rules.report.sections import ReportSection, SectionMerge
from tsos_rules.snapshot import bulk_allocation
from tsos_rules.snapshot.sharded import Manifest, Shard, assemble, read_reference, read_shards

if TYPE_CHECKING:
    from tsos_rules.engine.engine import Engine

log = logging.getLogger(__name__)

#: The judged collections and their record types.
_JUDGED = {"account": "accounts", "activity": "activities", "lead": "leads",
           "opportunity": "opportunities"}  # fmt: skip


@attrs.frozen
class ShardWork:
    """One worker slot's part of a run: which shard files it reads, as of which day."""

    run: str
    manifest: Manifest
    numbers: tuple[int, ...]
    as_of: dt.date

    @property
    def files(self) -> str:
        return ", ".join(self.manifest.shards[n].name for n in self.numbers)


#: A reference a shard's record makes to a record the shard does not hold:
#: (record type, id, shard number, the converted lead's id for a "converted" reference).
Need = tuple[str, str, int, str]


@attrs.frozen
class ShardShare:
    """Phase 1's answer: the aggregates' share, each shard's company keys, what it lacks."""

    partial: Partial
    #: by shard number: its own leads', deals' and accounts' company keys, one per line
    keys: dict[int, str]
    needs: tuple[Need, ...]
    #: own records (users and partners aside), as ``Findings.records`` counts them
    records: int


@attrs.frozen
class ShardAsk:
    """What the driver asks each worker for besides findings."""

    #: the plugins' report sections, from the findings at these severities
    sections: bool = False
    include_info: bool = False
    #: each finding's record's account and partner (exemptions scoped to them)
    scopes: bool = False


@attrs.frozen
class ShardVerdict:
    """Phase 2's answer: the shards' findings, the problems found answering other shards'
    needs, and what ``ShardAsk`` asked for."""

    findings: list[Finding]
    problems: list[str]
    #: None when the sections could not be computed here (no plugins in this worker)
    sections: list[ReportSection] | None = None
    scopes: dict[tuple[str, str], Scope] = attrs.field(factory=dict)


@attrs.frozen
class ShardedResult:
    """A sharded run's findings, record count, and what was asked of the workers: the merged
    report sections (None when a section has no row keys, or a worker has no plugins: the
    caller reads the whole snapshot for them) and the findings' records' scopes."""

    findings: list[Finding]
    records: int
    sections: list[ReportSection] | None = None
    scopes: dict[tuple[str, str], Scope] = attrs.field(factory=dict)


# -- in the worker ------------------------------------------------------------------------

#: The shards this worker holds between the phases: (run, shard numbers) -> what it built.
_held: dict[tuple[str, tuple[int, ...]], tuple[FactIndex, dict[str, bytes], list[Shard]]] = {}


def _hold(work: ShardWork, recipe: EngineRecipe) -> tuple[FactIndex, dict[str, bytes], list[Shard]]:
    key = (work.run, work.numbers)
    found = _held.get(key)
    if found is None:
        _held.clear()  # one run's shards at a time
        # Out of the collector's sight, as ``check`` keeps its snapshot (a Dask worker's
        # collector is on: it would walk every record again at each collection).
        with bulk_allocation(keep=True):
            reference = read_reference(work.manifest)
            shards = read_shards(work.manifest, work.numbers)
            snapshot, own = assemble(reference, shards)
            found = _held[key] = (build_index(snapshot, recipe.org, work.as_of), own, shards)
    return found


def _present(shard: Shard, collection: str) -> set[str]:
    return {r.id for part in (shard.records, shard.context) for r in part[collection]}


def _keys_and_needs(index: FactIndex, shard: Shard) -> tuple[str, list[Need]]:
    """A shard's company keys, and the records its own records read that it does not hold."""
    records = shard.records
    # What FactIndex.company_keys_of gives each lead and deal, once per account: the
    # account's key and its name's; a lead on no named account adds its company's name.
    referenced = {r.account_id for c in ("leads", "opportunities") for r in records[c]}
    on = referenced - {None, ""}
    keys = {f"account:{account_id}" for account_id in on}
    keys.update(f"account:{a.id}" for a in records["accounts"])
    named = set()
    for account_id in on:
        account = index.accounts.get(account_id)
        if account is not None and account.name:
            named.add(account_id)
            keys.add(index.name_key(account.name))
    for lead in records["leads"]:
        if lead.account_id not in named and lead.company:
            keys.add(index.name_key(lead.company))
    keys.discard("")
    accounts, leads = _present(shard, "accounts"), _present(shard, "leads")
    deals = {d.id for d in records["opportunities"]}
    n = shard.number
    read: dict[str, set[str]] = {
        "account": (referenced | {a.account_id for a in records["activities"]}) - accounts,
        "lead": {deal.lead_id for deal in records["opportunities"]} - leads,
        "opportunity": (
            {a.what_id for a in records["activities"]}
            | {c.opportunity_id for c in records["close_date_changes"]}
        )
        - deals,
    }
    needs: list[Need] = [
        (kind, record_id, n, "")
        for kind, ids in read.items()
        for record_id in sorted(i for i in ids if i)
    ]
    needs.extend(
        ("converted", lead.converted_opportunity_id, n, lead.id)
        for lead in records["leads"]
        if lead.converted_opportunity_id and lead.converted_opportunity_id not in deals
    )
    return "\n".join(sorted(keys)), needs


def share_task(
    work: ShardWork, recipe: EngineRecipe, bound: Sequence[BoundAggregate]
) -> ShardShare:
    """Phase 1: read and index the shards; their share of the totals, keys and needs."""
    index, own, shards = _hold(work, recipe)
    snapshot = index.snapshot
    mine = {
        record_type: [r for r, flag in zip(getattr(snapshot, c), own[c], strict=True) if flag]
        for record_type, c in _JUDGED.items()
    }
    keys: dict[int, str] = {}
    needs: list[Need] = []
    for shard in shards:
        keys[shard.number], lacking = _keys_and_needs(index, shard)
        needs.extend(lacking)
    return ShardShare(
        _partial_totals(bound, mine), keys, tuple(needs), sum(len(r) for r in mine.values())
    )


def judge_task(
    work: ShardWork,
    recipe: EngineRecipe,
    totals: Totals,
    needs: Sequence[Need],
    ask: ShardAsk | None = None,
) -> ShardVerdict:
    """Phase 2: the shards' findings with the org-wide totals, the problems found answering
    other shards' ``needs`` (a record one of them reads lies in these shards), and what
    ``ask`` asks for."""
    ask = ask or ShardAsk()
    index, own, shards = _hold(work, recipe)
    problems = []
    if needs:
        for shard in shards:
            held = {kind: {r.id for r in shard.records[c]} for kind, c in _JUDGED.items()}
            leads = _present(shard, "leads")
            for kind, record_id, asker, lead in needs:
                if asker == shard.number:
                    continue
                name = shard.file.rsplit("/", 1)[-1]
                asking = work.manifest.shards[asker].name
                if kind == "converted":
                    if record_id in held["opportunity"] and lead not in leads:
                        problems.append(
                            f"lead {lead} ({asking}) converted to opportunity {record_id}, "
                            f"which is in {name} without a copy of the lead"
                        )
                elif record_id in held[kind]:
                    problems.append(
                        f"{kind} {record_id} is in {name}, but records of {asking} read it "
                        "and that shard holds no copy"
                    )
    judged = copy.copy(index)  # the totals are this run's
    judged.totals = totals
    engine = recipe.engine()
    found = FindingList(engine.judge(judged, own))  # pickled by columns, for the driver
    verdict = ShardVerdict(found, problems)
    if ask.sections:
        verdict = attrs.evolve(verdict, sections=_sections(engine, judged, found, own, ask))
    if ask.scopes:
        verdict = attrs.evolve(verdict, scopes=scopes_of(judged, found))
    return verdict


def _sections(
    engine: Engine, index: FactIndex, found: list[Finding], own: dict[str, bytes], ask: ShardAsk
) -> list[ReportSection] | None:
    """The plugins' report sections of these shards, as ``check`` collects them from the
    findings at its severities; None when this worker has no plugins (a Dask worker)."""
    from tsos_rules.engine.engine import filter_severity
    from tsos_rules.plugins import collect_report_sections

    pm = engine.plugin_manager
    if pm is None:
        return None
    records = sum(flags.count(1) for flags in own.values())
    findings = filter_severity(
        Findings.collect(found, records=records), include_info=ask.include_info
    )
    return collect_report_sections(pm, index, findings)


def release_task(run: str) -> None:
    """Forget the shards this worker holds for ``run``."""
    for key in [key for key in _held if key[0] == run]:
        del _held[key]


# -- in the driver ------------------------------------------------------------------------


def balance(sizes: Sequence[int], slots: int) -> list[tuple[int, ...]]:
    """Shard numbers for each of ``slots`` workers, the largest shards first to the least
    loaded worker (each slot gets at least one shard when there are enough)."""
    loads = [0] * slots
    given: list[list[int]] = [[] for _ in range(slots)]
    for number in sorted(range(len(sizes)), key=lambda n: (-sizes[n], n)):
        slot = min(range(slots), key=lambda s: (loads[s], len(given[s]), s))
        loads[slot] += max(sizes[number], 1)
        given[slot].append(number)
    return [tuple(sorted(numbers)) for numbers in given if numbers]


class _Slots:
    """One single-worker process pool per slot: a pinned worker that keeps its shards'
    index between the phases; replaced when its worker dies."""

    def __init__(self, count: int) -> None:
        self.context = fork_context()
        self._pools: list[ProcessPoolExecutor | None] = [None] * count

    def pool(self, slot: int) -> ProcessPoolExecutor:
        pool = self._pools[slot]
        if pool is None:
            pool = self._pools[slot] = ProcessPoolExecutor(max_workers=1, mp_context=self.context)
        return pool

    def renew(self, slot: int) -> None:
        pool = self._pools[slot]
        self._pools[slot] = None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def close(self, run: str = "") -> None:
        """Shut every slot's pool down at once: a worker holding a large index takes a
        moment to exit, and the workers exit side by side rather than one after another."""
        pools = [pool for pool in self._pools if pool is not None]
        self._pools = [None] * len(self._pools)
        if len(pools) < 2:
            for pool in pools:
                pool.shutdown(wait=True, cancel_futures=True)
            return
        with ThreadPoolExecutor(max_workers=len(pools)) as closing:
            list(closing.map(lambda pool: pool.shutdown(wait=True, cancel_futures=True), pools))


class _DaskPool:
    """A Dask worker used as a slot's pinned worker: its tasks go to that worker (another
    one if it has left the cluster; the task then reads the shards again there)."""

    def __init__(self, client: Any, worker: str) -> None:
        self.client = client
        self.worker = worker

    def submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.submit(
            fn, *args, workers=[self.worker], allow_other_workers=True, pure=False
        )


class _DaskSlots:
    """One Dask worker per slot (``client.submit(..., workers=[w])``); a slot whose worker
    failed moves to the live worker with the fewest slots."""

    def __init__(self, client: Any, count: int) -> None:
        self.client = client
        workers = sorted(client.nthreads())
        self._workers = [workers[k % len(workers)] for k in range(count)]

    def pool(self, slot: int) -> _DaskPool:
        return _DaskPool(self.client, self._workers[slot])

    def renew(self, slot: int) -> None:
        alive = sorted(self.client.nthreads()) or [self._workers[slot]]
        others = [w for w in alive if w != self._workers[slot]] or alive
        self._workers[slot] = min(others, key=self._workers.count)

    def close(self, run: str = "") -> None:
        """Drop the run's shards from every worker (the cluster outlives the run)."""
        try:
            self.client.run(release_task, run)
        except Exception as exc:  # a worker gone meanwhile holds nothing any more
            log.debug("could not release shards on every worker: %s", exc)


def _phase(
    slots: _Slots | _DaskSlots,
    works: Sequence[ShardWork],
    failures: list[int],
    fn: Callable[..., Any],
    *args: Any,
    meanwhile: Callable[[], None] | None = None,
) -> list[Any]:
    """``fn(work, *args)`` on every slot; a slot that fails is given a fresh worker (which
    reads its shards again), and a slot's second failure fails the run. ``meanwhile`` is the
    driver's own work, done while the workers run (what it raises fails the run)."""
    futures = [slots.pool(k).submit(fn, work, *args) for k, work in enumerate(works)]
    if meanwhile is not None:
        meanwhile()
    results: dict[int, Any] = {}
    waiting = list(enumerate(futures))
    while waiting:
        retry = []
        for k, future in waiting:
            try:
                results[k] = future.result()
            except InputError:
                raise  # a shard that cannot be read: the same on any worker (exit 2)
            except Exception as exc:
                failures[k] += 1
                if failures[k] >= 2:
                    raise ExecutorError(
                        f"shards {works[k].files} failed twice ({failure_cause(exc)}); no findings "
                        "are reported from a partial run"
                    ) from exc
                log.warning(
                    "shards %s failed (%s); retrying them", works[k].files, failure_cause(exc)
                )
                retry.append(k)
        for k in retry:
            slots.renew(k)
        waiting = [(k, slots.pool(k).submit(fn, works[k], *args)) for k in retry]
    return [results[k] for k in range(len(works))]


def _split_groups(manifest: Manifest, shares: Sequence[ShardShare]) -> None:
    """Exit 2 when a company key is in two shards: a group split over shards cannot be
    judged soundly (its ownership conflicts would be missed). Set operations, not a loop a
    key: it runs on the driver while the workers judge, and at 1M it has a million keys."""
    seen: set[str] = set()
    for number, keys in sorted(n for share in shares for n in share.keys.items()):
        mine = set(keys.split("\n")) if keys else set()
        if not seen.isdisjoint(mine):
            key = min(seen & mine)
            first = min(
                n
                for share in shares
                for n, k in share.keys.items()
                if n < number and key in k.split("\n")
            )
            raise SnapshotError(
                f"{manifest.directory}: company group {key!r} is in both "
                f"{manifest.shards[first].name} and {manifest.shards[number].name}; a company "
                "group belongs to one shard (write shards with: tsos-rules snapshot split)"
            )
        seen |= mine


def judge_sharded(
    engine: Engine,
    manifest: Manifest,
    spec: ExecutorSpec,
    as_of: dt.date,
    ask: ShardAsk | None = None,
) -> ShardedResult:
    """The findings of every shard's own records, the snapshot's record count and what
    ``ask`` asks for, each worker slot reading and judging only its shards."""
    ask = ask or ShardAsk()
    sizes = manifest.sizes()
    reference = read_reference(manifest)
    base = len(reference.users) + len(reference.partners)
    if not sizes:
        return ShardedResult([], base, [] if ask.sections else None)
    if spec.kind == "dask":
        from tsos_rules.engine.executors import _dask_client

        with _dask_client(spec) as client:
            workers = max(1, len(client.nthreads()))
            parts = balance(sizes, min(workers, len(sizes)))
            slots: _Slots | _DaskSlots = _DaskSlots(client, len(parts))
            return _judge(engine, manifest, parts, slots, as_of, base, ask)
    parts = balance(sizes, min(auto_workers(spec.workers), len(sizes)))
    engine.recipe.adopt(engine)  # forked workers inherit the built engine and its plugins
    return _judge(engine, manifest, parts, _Slots(len(parts)), as_of, base, ask)


def _judge(
    engine: Engine,
    manifest: Manifest,
    parts: Sequence[tuple[int, ...]],
    slots: _Slots | _DaskSlots,
    as_of: dt.date,
    base: int,
    ask: ShardAsk,
) -> ShardedResult:
    """Both phases of a run, each slot reading ``parts[slot]``."""
    run = uuid.uuid4().hex
    works = [ShardWork(run, manifest, numbers, as_of) for numbers in parts]
    failures = [0] * len(works)
    try:
        shares: list[ShardShare] = _phase(
            slots, works, failures, share_task, engine.recipe, engine.aggregates
        )
        totals: Totals = {}
        if engine.aggregates:
            totals = finalize(engine.aggregates, combine(s.partial for s in shares))
        needs = [need for share in shares for need in share.needs]
        # The company-key check runs while the workers judge: a split group fails the run
        # before any finding is used (the workers' judging is then wasted, not reported).
        verdicts: list[ShardVerdict] = _phase(
            slots,
            works,
            failures,
            judge_task,
            engine.recipe,
            totals,
            needs,
            ask,
            meanwhile=lambda: _split_groups(manifest, shares),
        )
    finally:
        slots.close(run)
    problems = sorted({problem for verdict in verdicts for problem in verdict.problems})
    if problems:
        raise SnapshotError(f"{manifest.directory}: {problems[0]}")
    findings = [finding for verdict in verdicts for finding in verdict.findings]
    scopes = {key: scope for verdict in verdicts for key, scope in verdict.scopes.items()}
    records = base + sum(share.records for share in shares)
    return ShardedResult(findings, records, _merged(engine, verdicts, ask), scopes)


def _merged(
    engine: Engine, verdicts: Sequence[ShardVerdict], ask: ShardAsk
) -> list[ReportSection] | None:
    """The workers' report sections merged by their row keys; None when a worker could not
    compute them or a section has no row keys (its rows cannot be merged exactly)."""
    if not ask.sections:
        return None
    from tsos_rules.plugins import report_section_plugins

    merge = SectionMerge(report_section_plugins(engine.plugin_manager))
    for verdict in verdicts:
        if verdict.sections is None:
            return None
        merge.add(verdict.sections)
    return merge.sections() if merge.keyed() else None
