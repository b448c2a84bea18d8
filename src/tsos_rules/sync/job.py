"""The scheduled job: read (incremental or full) → facts → engine → diff → plan → write → commit.

Each batch is written to the CRM *before* its state is committed, and every write carries the
finding's fingerprint as its idempotency key. A run killed anywhere is therefore repaired by the
next run: it reads the same changes again (the watermark moves only when a run completes), finds
the writes already done (``already_done``) and records them; nothing is written twice and no
finding is lost.

The writes are also journalled ahead: committed to the state as pending before they are sent,
settled by the commit that records their outcomes. A killed run can leave a task for a finding
the next run no longer sees (the record was fixed meanwhile, or the killed run's own repair cured
it); the state never heard of that task, so no diff would close it. The next run settles the
entries left pending once it has judged its records: their tasks are adopted by the findings
still open and closed for the others.

Time-dependent rules (past-due next steps, close dates in the past, follow-up windows, the end of
the quarter) change verdicts only when the evaluation date changes, so the first run on a new
date is a full run (``sync.daily_full``); later runs that day judge only what changed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gc
import hashlib
import json
import logging
import sqlite3
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from tsos_rules.config import Config, coerce_config, naming_file
from tsos_rules.connectors.base import (
    Action,
    ActionKind,
    ActionResult,
    ActionStatus,
    BatchReader,
    ChangedRecordStream,
    Connector,
    KeyedReader,
    ReaderIds,
    ReaderStream,
    ReadResult,
    RecordKey,
    RecordLinker,
    RecordStream,
    field_of,
)
from tsos_rules.engine import Engine, ExecutorSpec
from tsos_rules.engine.aggregates import COLLECTIONS, BoundAggregate
from tsos_rules.engine.executors import JudgingSession, open_session
from tsos_rules.errors import (
    ConfigError,
    ConnectorError,
    ExitCode,
    FatalConnectorError,
    RetriableConnectorError,
)
from tsos_rules.facts import FactIndex, RecordFacts
from tsos_rules.findings import Finding, Findings, Severity
from tsos_rules.plugins import collect_report_sections, report_section_plugins
from tsos_rules.policy.exemptions import (
    CONFIG,
    CRM,
    Waivers,
    check_config_rules,
    from_config,
    from_snapshot,
)
from tsos_rules.report.sections import ReportSection, SectionMerge
from tsos_rules.rules.spec import Aggregate, RuleSpec
from tsos_rules.snapshot import bulk_allocation
from tsos_rules.sync import totals
from tsos_rules.sync.bounds import ReaderBounds
from tsos_rules.sync.notify import NotifySettings, notify_run
from tsos_rules.sync.planner import (
    REPAIRS,
    Mode,
    ModePolicy,
    Plan,
    PlannedAction,
    Planner,
    RecordInfo,
    RuleText,
)
from tsos_rules.sync.settings import SyncSettings, parse_mode
from tsos_rules.sync.state import (
    FindingState,
    OwnerTally,
    PendingWrite,
    Push,
    RunLock,
    SeenFinding,
    StateStore,
    lock_path_for,
)
from tsos_rules.sync.state.exemptions import Exemption
from tsos_rules.sync.state.worklist import WorklistQuery
from tsos_rules.sync.summary import Progress, SyncSummary, WorklistPage
from tsos_rules.sync.trend import TREND_RUNS, trend, trend_point

log = logging.getLogger(__name__)


class NullProgress:
    def start(self, *, full: bool, since: str | None) -> None:
        pass

    def batch(self, *, done: int, total: int | None, records: int, findings: int) -> None:
        pass

    def note(self, message: str) -> None:
        log.info("%s", message)

    def stop(self) -> None:
        pass


ConnectorFactory = Callable[[Mapping[str, Any]], Connector]

#: Skipped actions listed one by one in the summary (the rest are only counted).
LISTED_SKIPS = 200
#: A dry run's planned writes listed one by one in the summary (all are counted).
LISTED_PLANNED = 1000
#: Records an incremental read may hold to be judged without being read again (the totals
#: read it first); a bigger one is read again batch by batch.
KEPT_RECORDS = 200_000
#: Attempts at a CRM write (each in its own run) before it is given up as impossible and
#: reported: a write the CRM refuses, or one a stopped run left pending.
SETTLE_ATTEMPTS = 5

Settlement = tuple[
    list[tuple[str, ActionKind]], list[str], list[tuple[str, ActionKind, str | None]]
]
"""What a batch commit does to the journal: entries settled, fingerprints whose entries stay
pending for another attempt, and the entries the CRM refused (with its answer)."""


def make_connector(config: Config, settings: SyncSettings) -> Connector:
    """The configured connector, from the factories plugins registered."""
    from tsos_rules.plugins import collect_connectors, get_plugin_manager

    pm = get_plugin_manager(disabled=config.plugins_disabled)
    factories = collect_connectors(pm)
    factory = factories.get(settings.connector_type)
    if factory is None:
        known = ", ".join(sorted(factories)) or "none"
        raise ConfigError(
            f"connector.type: no connector {settings.connector_type!r} is installed "
            f"(installed: {known})",
            file=config.path,
            table="connector",
            key="type",
        )
    try:
        with naming_file(config.path):
            connector = factory(dict(settings.connector_settings))
    except (ConfigError, ConnectorError):
        raise
    except Exception as exc:
        raise FatalConnectorError(
            f"connector {settings.connector_type!r} could not start: {type(exc).__name__}: {exc}"
        ) from exc
    if not isinstance(connector, Connector):
        raise FatalConnectorError(
            f"connector {settings.connector_type!r}: its factory did not return a Connector"
        )
    return connector


def run_sync(
    config: Config | Mapping[str, Any] | str | Path | None = None,
    *,
    dry_run: bool = False,
    full: bool = False,
    as_of: dt.date | None = None,
    mode: str | None = None,
    progress: Progress | None = None,
    connector: Connector | None = None,
    charts: bool = True,
    worklist: bool = False,
    report: str | None = None,
    what_if_enforce: Sequence[str] = (),
) -> SyncSummary:
    """Run one sync and return its summary. Raises ConfigError (exit 2), ConnectorError
    (exit 3) or LockHeldError (exit 6); the summary's ``exit_code`` covers everything else.
    ``charts=False`` skips the report's open-findings breakdowns (a few seconds at a million
    deals) when neither JSON nor HTML output wants them; ``worklist=True`` fills the summary's
    ``worklist`` (every open finding, for the HTML report). ``report`` is where the caller
    writes the HTML report, named in the ``[notify]`` admin summary. ``what_if_enforce``: rule
    globs a dry run judges as if in ``enforce`` mode (the writes they would add are listed)."""
    cfg = coerce_config(config)
    settings = SyncSettings.from_config(cfg)
    notify = NotifySettings.from_config(cfg)
    if mode is not None:
        settings = attrs.evolve(settings, mode=parse_mode(mode, "--mode"))
    if what_if_enforce and not dry_run:
        raise ConfigError("--what-if-enforce: only with --dry-run (it previews, never writes)")
    with naming_file(cfg.path):  # a pack parameter out of range names the file too
        engine = Engine.from_config(cfg)
        executor = None
        if cfg.engine_executor is not None:
            executor = ExecutorSpec.parse(
                cfg.engine_executor,
                where="engine.executor",
                workers=cfg.engine_workers,
                connect_timeout=cfg.engine_connect_timeout,
            )
    try:
        policy = settings.policy.enforcing(what_if_enforce)
        policy.check_rules(engine.specs)
        with naming_file(cfg.path):
            check_config_rules(cfg.exemptions, engine.specs)
        # The lock comes first: opening the state creates and migrates it, which two first
        # runs must not do at once.
        with RunLock(lock_path_for(settings.state_path)):
            state = StateStore(settings.state_path, dry_run=dry_run)
            try:
                own = connector is None
                crm = connector if connector is not None else make_connector(cfg, settings)
                try:
                    job = _Job(engine, state, crm, settings, progress or NullProgress(), policy)
                    job.executor = executor
                    job.charts = charts
                    job.worklist = worklist
                    job.notify, job.report = notify, report
                    job.config = cfg
                    try:
                        return job.run(dry_run=dry_run, full=full, as_of=as_of)
                    except sqlite3.DatabaseError as exc:  # the connectors convert their own
                        raise state.damaged(exc) from None
                finally:
                    if own:
                        crm.close()
            finally:
                state.close()
    finally:
        engine.close()


class _Job:
    """One run of the sync over one connector and one state file."""

    def __init__(
        self,
        engine: Engine,
        state: StateStore,
        connector: Connector,
        settings: SyncSettings,
        progress: Progress,
        policy: ModePolicy | None = None,
    ) -> None:
        self.engine = engine
        self.state = state
        self.connector = connector
        self.settings = settings
        self.progress = progress
        self.key = connector.name
        self.capabilities = connector.capabilities()
        self.policy = policy if policy is not None else settings.policy
        self.config = Config()
        self.planner = Planner(
            self.policy,
            self.capabilities,
            {
                rule: RuleText(spec.title, spec.doctrine, spec.remediation)
                for rule, spec in engine.specs.items()
            },
            settings.task_min_severity,
        )
        self.summary = SyncSummary()
        self.linker = connector if isinstance(connector, RecordLinker) else None
        self.exemptions: list[Exemption] = []
        #: Whether the state holds CRM-field exemptions (mirroring is skipped when it never did).
        self._crm_seen = False
        self.held: set[RecordKey] = set()
        self._people: set[tuple[str, str]] = set()
        self._bad: dict[tuple[str, str | None, str | None], dict[str, Any]] = {}
        self.run_id = 0
        self.dry_run = False
        self.writes = False
        self.charts = True
        self.worklist = False
        self.notify = NotifySettings()
        self.report: str | None = None
        #: Owners' emails from the snapshot's users (for ``[notify] owner_url_template``).
        self.contacts: dict[str, str] = {}
        #: The packs' aggregates over the whole org (None when no pack declares any).
        self.totals: Mapping[str, Mapping[str, float]] | None = None
        #: Where records are judged (``[engine] executor``); None or local: in this process.
        self.executor: ExecutorSpec | None = None
        self._session: JudgingSession | None = None
        #: The run's totals, the shares to store and the keys whose total moved.
        self._totals: totals.TotalsUpdate | None = None
        #: An incremental read already made for the totals, to judge without reading it again.
        self._reread: list[ReadResult] | None = None
        #: Records judged so far by an incremental run (None in a full run: all of them).
        self._judged: set[RecordKey] | None = None
        #: The report sections' rows so far, merged by plugin and title (set on the summary
        #: once the batches are read).
        self._sections = SectionMerge(report_section_plugins(self.engine.plugin_manager))
        #: Records an incremental run judged again with some rules only (an aggregate's
        #: readers), with those rules.
        self._scoped: dict[RecordKey, set[str]] = {}
        #: How far each key's total can rise before a reader without a finding gets one.
        self._bounds = ReaderBounds(engine.aggregates, engine.specs)

    # -- the run ------------------------------------------------------------------------------

    def run(self, *, dry_run: bool, full: bool, as_of: dt.date | None) -> SyncSummary:
        started = time.monotonic()
        as_of = as_of or self.engine.org.today()
        cursor = self.state.cursor(self.key)
        digest = self._config_digest()
        reasons = []
        if full:
            reasons.append("--full")
        if cursor.watermark is None:
            reasons.append("first run")
        else:
            if cursor.config_digest != digest:
                reasons.append("the configuration changed")
            if self.settings.daily_full and cursor.last_full_as_of != as_of:
                reasons.append(f"first run on {as_of}")
        if not self.capabilities.incremental:
            reasons.append("the connector reads only in full")
        is_full = bool(reasons)
        since = None if is_full else cursor.watermark
        self.dry_run = dry_run
        self.writes = not dry_run and self.policy.writes_anything()
        summary = self.summary
        summary.connector = self.key
        summary.mode = self.settings.mode.value
        summary.what_if_enforce = list(self.policy.forced)
        summary.full = is_full
        summary.dry_run = dry_run
        summary.as_of = as_of.isoformat()
        summary.watermark_from = cursor.watermark
        summary.started_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        self.run_id = self.state.start_run(
            self.key,
            as_of=as_of,
            mode=self.settings.mode.value,
            full=is_full,
            dry_run=dry_run,
            watermark_from=cursor.watermark,
        )
        summary.run_id = self.run_id
        self.state.save_rule_texts(
            self.key,
            {r: (s.title, s.doctrine, s.remediation) for r, s in self.engine.specs.items()},
        )
        self._mirror_config_exemptions()
        self.exemptions = self.state.active_exemptions(self.key, as_of)
        self._crm_seen = any(e.source == CRM for e in self.state.exemptions(self.key))
        self.progress.start(full=is_full, since=since)
        if is_full:
            self.progress.note(f"full run ({', '.join(reasons)})")
        left = len(self.state.pending_writes(self.key, before_run=self.run_id))
        if left:
            if self.writes:
                then = "settled once this run has judged its records"
            elif dry_run and self.policy.writes_anything():
                then = "this dry run shows how they would be settled"
            else:
                then = "kept for the next run that writes to the CRM"
            self.progress.note(f"{left} CRM write(s) left pending by an earlier run: {then}")
        try:
            watermark = cursor.watermark
            if is_full and self.state.defer_finding_indexes():
                self.progress.note(
                    "no findings stored yet: their indexes are built after the batches"
                )
            self._judged = None if is_full else set()
            with bulk_allocation(), self._judging():
                # Automatic collections paused while reading and judging (they walked every
                # live record again and again: 9 % of a full run); see _process_and_collect.
                if self.engine.aggregates:
                    # Packs' totals over a partner or an owner come from the whole org, never
                    # one batch nor only the changed records (see sync/totals.py).
                    self._totals = self._org_totals(since if not is_full else None)
                    self.totals = self._totals.totals
                    self._trust_bounds(is_full)
                kept, self._reread = self._reread, None
                for batch in kept if kept is not None else self._batches(since):
                    watermark = batch.watermark
                    self._process_and_collect(batch, as_of)
                    done, total = batch.progress or (summary.batches, None)
                    self.progress.batch(
                        done=done,
                        total=total,
                        records=summary.records_read,
                        findings=summary.findings_new,
                    )
                if self._totals is not None and self._totals.moved:
                    self._rejudge_readers(self._totals, as_of)
            self.state.build_deferred_indexes()
            summary.sections = self._merged_sections()
            if is_full:
                self._sweep()
            self._recover()
            self._exemptions_settle(as_of)
            summary.watermark_to = watermark
            self._final_counts()
            if self.worklist:
                summary.worklist = worklist_page(self.state, self.key, self.engine.specs)
            summary.exit_code = self._exit_code()
            summary.outcome = "dry_run" if dry_run else "ok"
            summary.duration_s = time.monotonic() - started
            summary.finished_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            if self._totals is not None:
                self.state.save_aggregate_shares(
                    self.key,
                    totals.digest(self.engine.aggregates),
                    self._totals.shares,
                    replace=self._totals.replace,
                )
                self._bounds.save(self.state, self.key, full=is_full)
            pruned = self.state.finish_run(
                self.run_id,
                self.key,
                outcome=summary.outcome,
                exit_code=summary.exit_code,
                counts=self._log_counts(),
                watermark=watermark,
                advance=not dry_run,
                full_as_of=as_of if is_full else None,
                config_digest=digest,
                owners=self._owner_tallies(),
                prune_before=None if dry_run else self._prune_before(),
            )
            summary.pruned = pruned.to_dict() if pruned is not None else None
            if not dry_run and self.notify.enabled:
                summary.notifications = notify_run(
                    self.notify,
                    summary,
                    self.state,
                    self.key,
                    report=self.report,
                    contacts=self.contacts,
                )
        except ConnectorError as exc:
            self._fail("connector_failed", ExitCode.CONNECTOR, str(exc), started)
            raise
        except BaseException as exc:
            self._fail("failed", ExitCode.INPUT, f"{type(exc).__name__}: {exc}", started)
            raise
        finally:
            self.progress.stop()
        return summary

    def _config_digest(self) -> str:
        """What verdicts and writes depend on besides the records: a change forces a full run."""
        engine, settings = self.engine, self.settings
        material = {
            "rules": sorted(engine.specs),
            "parameters": engine.parameters,
            "org": repr(engine.org),
            "mode": settings.mode.value,
            "rule_modes": {k: v.value for k, v in sorted(settings.rule_modes.items())},
            "include_info": settings.include_info,
            "task_min_severity": settings.task_min_severity.value,
            "connector": {k: repr(v) for k, v in sorted(settings.connector_settings.items())},
            "forced": list(self.policy.forced),
        }
        raw = json.dumps(material, sort_keys=True, default=repr).encode()
        return hashlib.sha256(raw).hexdigest()[:16]

    def _fail(self, outcome: str, code: int, error: str, started: float) -> None:
        summary = self.summary
        summary.outcome = outcome
        summary.exit_code = code
        summary.sections = self._merged_sections()
        summary.duration_s = time.monotonic() - started
        if self.dry_run:
            return
        try:
            self.state.finish_run(
                self.run_id,
                self.key,
                outcome=outcome,
                exit_code=code,
                counts=self._log_counts(),
                error=error,
            )
        except Exception as exc:  # the state file itself may be the problem; the error surfaces
            log.warning("could not record the failed run in the state file: %s", exc)

    @contextlib.contextmanager
    def _judging(self) -> Iterator[None]:
        """The configured executor, opened once for the run's batches (local: nothing)."""
        spec = self.executor
        if spec is None or (spec.kind == "local" and spec.partitions <= 1):
            yield
            return
        with open_session(self.engine, spec) as session:
            self._session = session
            try:
                yield
            finally:
                self._session = None

    def _org_totals(self, since: str | None) -> totals.TotalsUpdate:
        """The packs' totals over the whole org: from a full read's shares (``since`` None, or
        no shares stored for these aggregates yet), else from the stored shares brought up to
        date by a read of what changed since ``since`` (only the shares are kept)."""
        bound = self.engine.aggregates
        if since is not None and self.state.aggregate_digest(self.key) == totals.digest(bound):
            read = totals.shares_of(bound, self._changed(since, bound))
            before = self.state.aggregate_shares_of(self.key, read)
            return totals.from_stored(bound, self.state.aggregate_shares(self.key), before, read)
        return totals.from_full_read(
            bound, self._every(sorted({b.aggregate.record_type for b in bound}))
        )

    def _changed(self, since: str, bound: Sequence[BoundAggregate]) -> Iterator[ReadResult]:
        """What changed since ``since``, for the shares: the changed records of the totalled
        types alone when the connector can stream them (the run then reads its batches once,
        however many changed), else the run's own read, kept for judging while it is small."""
        connector = self.connector
        if not isinstance(connector, ChangedRecordStream):
            yield from self._kept(self._batches(since))
            return
        for record_type in sorted({b.aggregate.record_type for b in bound}):
            yield from connector.stream_changed(record_type, since)

    def _every(self, record_types: Sequence[str]) -> Iterator[ReadResult]:
        """Every current record of ``record_types``: streamed alone when the connector can,
        else in a full read's batches (with their related records)."""
        connector = self.connector
        if isinstance(connector, RecordStream):
            for record_type in record_types:
                yield from connector.stream_records(record_type)
        else:
            yield from self._batches(None)

    def _kept(self, batches: Iterable[ReadResult]) -> Iterator[ReadResult]:
        """``batches``, kept for the run's own read while they hold at most
        :data:`KEPT_RECORDS` records (an incremental read's usual size), so what changed is
        not read twice; a bigger read is dropped and read again, never held whole."""
        kept: list[ReadResult] | None = []
        size = 0
        for batch in batches:
            if kept is not None:
                size += batch.snapshot.record_count
                if size <= KEPT_RECORDS:
                    kept.append(batch)
                else:
                    kept = None
            yield batch
        self._reread = kept

    def _rejudge_readers(self, update: totals.TotalsUpdate, as_of: dt.date) -> None:
        """Judge again, this run, the records that read a total that moved (a partner's other
        deals when one commit deal's amount changed): no finding waits for a full run."""
        for item in self.engine.aggregates:
            aggregate = item.aggregate
            keys = update.moved.get(aggregate.name)
            if not keys:
                continue
            rules = self._reader_rules(aggregate)
            if rules is not None and not rules:
                continue  # none of the rules that read it is loaded
            fell = self._bounds.unchanged(
                self._fallen(aggregate, update.fell.get(aggregate.name, frozenset()))
            )
            within = self._bounds.within(
                self.state,
                self.key,
                aggregate.name,
                keys - fell,
                update.totals.get(aggregate.name, {}),
            )
            spared = fell | within
            field, values = aggregate.read_by, sorted(keys - spared)
            if field is None:  # the records adding to a key are the ones reading it
                field = "id"
                values = self.state.aggregate_adders(self.key, aggregate.name, keys)
            else:
                self._bounds.whole(aggregate.name, values)
            self.progress.note(
                f"{aggregate.name}: {len(keys)} total(s) moved; judging again the "
                f"{aggregate.record_type} records that read them"
                + (
                    f" ({_spared_note(len(fell), len(within))}: of their readers, only those "
                    "with an open finding)"
                    if spared
                    else ""
                )
            )
            linked = rules is not None
            column = SCOPE_COLUMNS.get((aggregate.record_type, aggregate.read_by or ""))
            if rules and column and aggregate.restate is not None:
                # first: the readers it rewords are then neither judged nor read by id
                self._restate_holders(item, rules, column, self._bounds.unchanged(keys))
            if values:
                readers = self._readers(
                    aggregate.record_type, field, values, linked=linked, skip=self._done(rules)
                )
                self._judge_readers(item, readers, rules, as_of)
            if spared and rules:
                # the records holding a finding of those rules, less those judged already
                record_type, done = aggregate.record_type, self._done(rules)
                found = self.state.open_finding_records(
                    self.key, record_type, rules, scope=(column, spared) if column else None
                )
                held = [record_id for record_id in found if not done((record_type, record_id))]
                if held:
                    readers = self._readers(record_type, "id", held, linked=True)
                    self._judge_readers(item, readers, rules, as_of, keys=spared)

    def _restate_holders(
        self, item: BoundAggregate, rules: frozenset[str], column: str, keys: frozenset[str]
    ) -> None:
        """The findings of ``rules`` on the readers of ``keys`` (moved totals whose own record
        did not change), reworded by the pack for the new totals (``Aggregate.restate``) and
        committed without reading or judging the readers again: only their totals moved. A
        reader any of whose findings the pack does not restate (one a fallen total clears) is
        left to be read and judged. :data:`RESTATED_KEYS` keys a batch, each committed alone."""
        ordered = sorted(keys)
        for start in range(0, len(ordered), RESTATED_KEYS):
            self._restate_batch(
                item, rules, column, frozenset(ordered[start : start + RESTATED_KEYS])
            )

    def _restate_batch(
        self, item: BoundAggregate, rules: frozenset[str], column: str, keys: frozenset[str]
    ) -> None:
        aggregate, totals_now = item.aggregate, (self.totals or {}).get(item.aggregate.name, {})
        restate, done = aggregate.restate, self._done(rules)
        assert restate is not None
        by_record: dict[RecordKey, list[tuple[FindingState, SeenFinding]]] = {}
        specs = self.engine.specs
        doctrines = {rule: specs[rule].doctrine if rule in specs else "" for rule in rules}
        for state, seen in self.state.open_findings_scoped(
            self.key, aggregate.record_type, doctrines, column, keys
        ):
            by_record.setdefault(state.record_key, []).append((state, seen))
        shares = self.state.aggregate_shares_of(
            self.key, [(aggregate.name, *key) for key in by_record]
        )
        previous: dict[str, FindingState] = {}
        current: dict[str, Finding] = {}
        seen_now: list[SeenFinding] = []
        records: dict[RecordKey, RecordInfo] = {}
        scopes: dict[str, tuple[str | None, str | None]] = {}
        for record_key, found in by_record.items():
            if done(record_key) or record_key in self.held:
                continue
            restated: list[tuple[FindingState, SeenFinding]] = []
            for state, seen in found:
                key = getattr(seen, column)
                mode = self.policy.mode_for(state.rule)
                share = shares.get((aggregate.name, *record_key))
                own = share[1] if share is not None and share[0] == key else 0.0
                finding = None
                if key in keys and not (
                    mode is Mode.ENFORCE and (state.rule, state.reason) in REPAIRS
                ):
                    finding = restate(
                        seen.finding, key, totals_now.get(key, 0.0), own, item.parameters
                    )
                if finding is None or finding.fingerprint != state.fingerprint:
                    break
                now = SeenFinding(
                    finding,
                    seen.owner_id,
                    seen.owner_name,
                    seen.partner_id,
                    seen.partner_name,
                    record_name=seen.record_name,
                    account_id=seen.account_id,
                    account_name=seen.account_name,
                    record_url=seen.record_url,
                    shadow=mode is Mode.SHADOW,
                )
                restated.append((state, now))
            else:
                for state, seen in restated:
                    previous[state.fingerprint] = state
                    current[state.fingerprint] = seen.finding
                    seen_now.append(seen)
                    scopes[state.fingerprint] = (seen.account_id, seen.partner_id)
                    records[record_key] = RecordInfo(
                        *record_key, label=seen.record_name or record_key[1], owner_id=seen.owner_id
                    )
                self._scoped.setdefault(record_key, set()).update(rules)
        if not current:
            return
        self.progress.note(
            f"{aggregate.name}: {len(current)} finding(s) of {len(records)} reader(s) "
            "reworded for the new totals, without reading them again"
        )
        self._commit_verdicts(previous, current, seen_now, records, scopes)

    def _trust_bounds(self, is_full: bool) -> None:
        """Let the stored reader bounds spare readers only in an incremental run after one that
        finished, with the stored shares' totals; else forget them (this run stores anew those
        it learns whole)."""
        if not self._bounds.record_types or self._totals is None:
            return
        trusted = (
            not is_full
            and not self._totals.replace
            and self.state.last_run_finished(self.key, self.run_id)
        )
        self._bounds.trusted = trusted
        if not trusted and not is_full:
            self.state.forget_aggregate_bounds(self.key)

    def _fallen(self, aggregate: Aggregate, fell: frozenset[str]) -> frozenset[str]:
        """The keys whose total fell, when that spares their readers without a finding: the
        pack says its rules flag only more as a total rises, and the last run finished, so
        every such reader was last judged with a total at least the stored one."""
        if not fell or not aggregate.findings_rise_with_total or aggregate.read_by is None:
            return frozenset()
        if not self.state.last_run_finished(self.key, self.run_id):
            return frozenset()
        return fell

    def _judge_readers(
        self,
        item: BoundAggregate,
        readers: Iterable[ReadResult],
        rules: frozenset[str] | None,
        as_of: dt.date,
        *,
        keys: frozenset[str] | None = None,
    ) -> None:
        """Judge the readers in ``readers`` not judged yet this run (with ``keys``, those of
        them whose ``read_by`` field holds one of those keys)."""
        done = self._done(rules)
        for batch in readers:
            fresh = {key for key in _reading(item, batch, keys) if not done(key)}
            if not fresh:
                continue
            batch = attrs.evolve(
                batch, changed=frozenset(), affected=frozenset(fresh), deleted=frozenset()
            )
            self._process_and_collect(batch, as_of, rules=rules)
            for key in fresh if rules is not None else ():
                self._scoped.setdefault(key, set()).update(rules or ())

    def _done(self, rules: frozenset[str] | None) -> Callable[[RecordKey], bool]:
        """Whether a record is judged (or its findings reworded) this run for ``rules``
        already: judged with every rule, or with these (None: every rule)."""
        judged, scoped = self._judged or set(), self._scoped

        def done(key: RecordKey) -> bool:
            return key in judged or (rules is not None and rules <= scoped.get(key, set()))

        return done

    def _reader_rules(self, aggregate: Aggregate) -> frozenset[str] | None:
        """The loaded rules that judge an aggregate's readers again: those it names (maybe
        none loaded), or None (it names none) for every rule."""
        if not aggregate.read_by_rules:
            return None
        return frozenset(aggregate.read_by_rules) & frozenset(self.engine.specs)

    def _readers(
        self,
        record_type: str,
        field: str,
        values: Sequence[str],
        *,
        linked: bool = False,
        skip: Callable[[RecordKey], bool] | None = None,
    ) -> Iterator[ReadResult]:
        """The records of ``record_type`` whose ``field`` holds one of ``values``, in batches:
        with their directly linked records alone when ``linked`` (the rules judging them need
        no more) and the connector can (less those ``skip`` says are done, when it can list
        their ids first), else read by key with their company groups when it can, else picked
        out of a full read."""
        connector = self.connector
        if linked and isinstance(connector, ReaderStream):
            if skip is not None and field != "id" and isinstance(connector, ReaderIds):
                ids = connector.ids_where(record_type, field, values)
                unread = [i for i in ids if not skip((record_type, i))]
                if unread:
                    yield from connector.stream_where(record_type, "id", unread)
                return
            yield from connector.stream_where(record_type, field, values)
            return
        if isinstance(connector, KeyedReader):
            yield from connector.read_where(
                record_type, field, values, batch_size=self.settings.batch_size
            )
            return
        wanted = set(values)
        collection = COLLECTIONS[record_type]
        for batch in self._batches(None):
            mine = {
                (record_type, record.id)
                for record in getattr(batch.snapshot, collection)
                if field_of(record, field) in wanted
            }
            yield attrs.evolve(batch, changed=frozenset(), affected=frozenset(mine))

    def _batches(self, since: str | None) -> Iterator[ReadResult]:
        connector = self.connector
        if isinstance(connector, BatchReader):
            yield from connector.read_batches(since, batch_size=self.settings.batch_size)
        else:
            yield connector.read(since)

    # -- one batch ------------------------------------------------------------------------

    def _process_and_collect(
        self, batch: ReadResult, as_of: dt.date, *, rules: frozenset[str] | None = None
    ) -> None:
        """:meth:`_process`, then a young-generation collection: with automatic collections
        paused for the run, it frees the reference cycles a batch made (a few dozen) batch by
        batch, walking only what was allocated since the last one."""
        self._process(batch, as_of, rules=rules)
        gc.collect(0)

    def _process(
        self, batch: ReadResult, as_of: dt.date, *, rules: frozenset[str] | None = None
    ) -> None:
        """Judge one batch, diff with the state, write and commit. With ``rules`` (an
        aggregate's readers judged again), only those rules judge and only their findings
        can resolve: the other rules' findings on the records are kept as stored."""
        summary = self.summary
        summary.batches += 1
        snapshot = batch.snapshot
        for name in ("accounts", "leads", "opportunities", "activities"):
            n = len(getattr(snapshot, name))
            summary.records_by_type[name] += n
            summary.records_read += n
        for name, people in (("users", snapshot.users), ("partners", snapshot.partners)):
            # the same owners and partners come with many batches: count each once
            fresh = {(name, person.id) for person in people} - self._people
            if name == "users" and self.notify.owner_url_template:
                for person in people:
                    email = _email(person.extra)
                    if email:
                        self.contacts[person.id] = email
            self._people.update(fresh)
            summary.records_by_type[name] += len(fresh)
            summary.records_read += len(fresh)
        summary.records_by_type["close_date_changes"] += len(snapshot.close_date_changes)
        summary.records_read += len(snapshot.close_date_changes)
        summary.records_changed += len(batch.changed)
        summary.records_deleted += len(batch.deleted)
        summary.records_held += len(batch.incomplete)
        self.held.update(batch.incomplete)
        for error in batch.errors:
            self.held.add((error.record_type, error.record_id or ""))
            key = (error.record_type, error.record_id, error.field)
            if key not in self._bad:
                self._bad[key] = {
                    "record_type": error.record_type,
                    "record_id": error.record_id,
                    "field": error.field,
                    "reason": error.problem,
                }
                log.warning(
                    "skipped %s %s: %s: %s",
                    error.record_type,
                    error.record_id or "(no id)",
                    error.field or "record",
                    error.problem,
                )

        self._mirror_crm_exemptions(snapshot, as_of)
        judged_keys = (batch.changed | batch.affected) - batch.incomplete
        if self._judged is not None and rules is None:
            self._judged.update(judged_keys)
            self._bounds.changed(batch.changed | batch.deleted)
        if self._totals is not None:
            self._totals.refresh(self.engine.aggregates, batch)
        index = self.engine.index(snapshot, as_of, totals=self.totals)
        current: dict[str, Finding] = {}
        records: dict[RecordKey, RecordInfo] = {}
        scopes: dict[str, tuple[str | None, str | None]] = {}
        seen: list[SeenFinding] = []
        pushes: list[Push] = []
        judged_opportunities: list[str] = []
        include_info = self.settings.include_info
        bounds, bounded = self._bounds, self._bounds.record_types
        judged = 0
        for facts, verdict in self._verdicts(index, judged_keys, rules):
            judged += 1
            if facts.record_type == "opportunity" and rules is None:
                judged_opportunities.append(facts.record_id)
                pushes.extend(_pushes(facts, index))
            found = [
                finding
                for finding in verdict
                if include_info or finding.severity is not Severity.INFO
            ]
            if facts.record_type in bounded:
                bounds.judged(facts, found)
            if not found:
                continue
            record_key = (facts.record_type, facts.record_id)
            info, owner, partner, account = _describe(facts, index, batch.versions.get(record_key))
            records[record_key] = info
            url = self.linker.record_url(*record_key) if self.linker is not None else None
            for finding in found:
                if finding.fingerprint not in current:
                    current[finding.fingerprint] = finding
                    scopes[finding.fingerprint] = (account[0], partner[0])
                    seen.append(
                        SeenFinding(
                            finding,
                            owner[0],
                            owner[1],
                            partner[0],
                            partner[1],
                            record_name=info.label,
                            account_id=account[0],
                            account_name=account[1],
                            record_url=url,
                            shadow=self.policy.mode_for(finding.rule) is Mode.SHADOW,
                        )
                    )
        summary.records_judged += judged
        if self.charts and rules is None:
            # A scoped batch holds its records without their companies: plugins' sections
            # (which may read those) would differ from a whole read's.
            self._add_sections(index, current)

        previous = self.state.open_findings_for(self.key, judged_keys | batch.deleted, rules=rules)
        self._commit_verdicts(
            previous,
            current,
            seen,
            records,
            scopes,
            deleted=batch.deleted,
            pushes=(judged_opportunities, pushes) if rules is None else None,
        )

    def _commit_verdicts(
        self,
        previous: Mapping[str, FindingState],
        current: Mapping[str, Finding],
        seen: Sequence[SeenFinding],
        records: Mapping[RecordKey, RecordInfo],
        scopes: Mapping[str, tuple[str | None, str | None]],
        *,
        deleted: frozenset[RecordKey] = frozenset(),
        pushes: tuple[Sequence[str], Sequence[Push]] | None = None,
    ) -> None:
        """The findings of judged records against ``previous`` (their open findings stored):
        count what is new and resolved, plan and make the writes, and commit the batch."""
        summary = self.summary
        # In the findings' order (the look-up follows a set's, which varies between runs).
        resolved = sorted(
            (state for fp, state in previous.items() if fp not in current), key=_finding_order
        )
        why = {
            state.fingerprint: "the record was deleted"
            for state in resolved
            if state.record_key in deleted
        }
        pairs = [(finding, previous.get(fp)) for fp, finding in current.items()]
        owners = {s.finding.fingerprint: (s.owner_id, s.owner_name) for s in seen}
        for finding, state in pairs:
            if state is None:
                summary.findings_new += 1
                summary.rule(finding.rule).new += 1
                summary.owner(*owners[finding.fingerprint]).new += 1
        for state in resolved:
            summary.findings_resolved += 1
            summary.rule(state.rule).resolved += 1
            summary.owner(state.owner_id, state.owner_name).resolved += 1
        plan = self.planner.plan(
            pairs, resolved, records, resolution=why, exempt=self._waived(current, scopes)
        )
        results = self._write(plan)
        self.state.commit_batch(
            self.key,
            self.run_id,
            seen=seen,
            resolved=[state.fingerprint for state in resolved],
            results=results,
            pushes=pushes,
            full=self._judged is None,
            **self._settle(plan, results),
        )

    def _add_sections(self, index: FactIndex, current: Mapping[str, Finding]) -> None:
        """Plugins' report sections for this batch, merged into the run's by plugin and title
        (``SectionMerge``: a record read as context by several batches shows once)."""
        pm = self.engine.plugin_manager
        if pm is None:
            return
        found = Findings.collect(current.values(), records=index.snapshot.record_count)
        self._sections.add(collect_report_sections(pm, index, found))

    def _merged_sections(self) -> dict[tuple[str, str], ReportSection]:
        return {(s.plugin, s.title): s for s in self._sections.sections()}

    def _verdicts(
        self, index: FactIndex, keys: frozenset[RecordKey], rules: frozenset[str] | None = None
    ) -> Iterator[tuple[RecordFacts, list[Finding]]]:
        """Each judged record's facts and findings, in judging order, judged here or, with an
        executor, by its workers (the same findings in the same order: the state, the tasks
        and their order do not depend on the executor). With ``rules`` (a few readers of an
        aggregate, judged by a few rules) always here."""
        session = self._session
        if session is None or rules is not None:
            yield from self.engine.judge_each(index, keys, rules=rules)
            return
        by_record: dict[RecordKey, list[Finding]] = {}
        for finding in session.judge(index, only=keys, totals=self.totals or {}):
            by_record.setdefault((finding.record_type, finding.record_id), []).append(finding)
        rank = self.engine.evaluation_rank
        for facts in self._judged_facts(index, keys):
            found = by_record.get((facts.record_type, facts.record_id), [])
            found.sort(key=lambda finding: rank[finding.rule])  # stable: a check's own order
            yield facts, found

    def _judged_facts(self, index: FactIndex, keys: frozenset[RecordKey]) -> Iterator[RecordFacts]:
        snapshot = index.snapshot
        types = self.engine.record_types
        builders: tuple[tuple[str, Sequence[Any], Callable[[Any], RecordFacts]], ...] = (
            ("account", snapshot.accounts, index.account),
            ("activity", snapshot.activities, index.activity),
            ("lead", snapshot.leads, index.lead),
            ("opportunity", snapshot.opportunities, index.opportunity),
        )
        for record_type, records, build in builders:
            if record_type not in types:
                continue
            for record in records:
                if (record_type, record.id) in keys:
                    yield build(record)

    def _write(self, plan: Plan) -> list[tuple[ActionResult, Mapping[str, Any] | None]]:
        summary = self.summary
        for skip in plan.skipped:
            summary.actions[("update_fields", "not_possible")] += 1
            self._list_skip(
                skip.fingerprint, "update_fields", skip.record_type, skip.record_id, skip.reason
            )
        if not plan.actions:
            return []
        if not self.writes:
            for planned in plan.actions:
                summary.actions[(planned.action.kind.value, "planned")] += 1
                if self.dry_run and len(summary.planned_actions) < LISTED_PLANNED:
                    listed = _planned(planned.action, planned.before)
                    if self.policy.forced and self.policy.is_forced(planned.action.rule):
                        listed["what_if"] = True
                    summary.planned_actions.append(listed)
            return []
        # Write-ahead: committed before anything reaches the CRM, settled by the batch's commit.
        self.state.journal(self.key, self.run_id, [planned.action for planned in plan.actions])
        out: list[tuple[ActionResult, Mapping[str, Any] | None]] = []
        size = max(1, self.capabilities.max_batch)
        for start in range(0, len(plan.actions), size):
            chunk = plan.actions[start : start + size]
            results = self._write_chunk(chunk)
            if len(results) != len(chunk):
                raise FatalConnectorError(
                    f"connector {self.key}: write returned {len(results)} results "
                    f"for {len(chunk)} actions"
                )
            for planned, result in zip(chunk, results, strict=True):
                summary.actions[(result.kind.value, result.status.value)] += 1
                if result.status in (ActionStatus.STALE, ActionStatus.FAILED):
                    action = planned.action
                    self._list_skip(
                        action.fingerprint,
                        action.kind.value,
                        action.record_type,
                        action.record_id,
                        f"{result.status.value}: {result.error or ''}".rstrip(": "),
                    )
                out.append((result, planned.changes))
        return out

    def _write_chunk(self, chunk: Sequence[PlannedAction]) -> list[ActionResult]:
        attempts = self.settings.write_retries + 1
        for attempt in range(attempts):
            try:
                return self.connector.write([planned.action for planned in chunk])
            except RetriableConnectorError as exc:
                if attempt + 1 >= attempts:
                    raise
                delay = min(30.0, 0.5 * 2**attempt)
                log.warning("write failed (%s); retrying in %.1f s", exc, delay)
                time.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _list_skip(
        self, fingerprint: str, kind: str, record_type: str, record_id: str, reason: str
    ) -> None:
        if len(self.summary.skipped_actions) < LISTED_SKIPS:
            self.summary.skipped_actions.append(
                {
                    "fingerprint": fingerprint,
                    "kind": kind,
                    "record_type": record_type,
                    "record_id": record_id,
                    "reason": reason,
                }
            )

    # -- end of run -------------------------------------------------------------------------

    def _sweep(self) -> None:
        """After a full read: open findings not seen again are resolved (their record is gone
        or clean), except on records that were skipped or held back this run."""
        exclude = frozenset(self.held)
        for chunk in self.state.unseen_open(self.key, self.run_id, exclude=exclude):
            for state in chunk:
                self.summary.findings_resolved += 1
                self.summary.rule(state.rule).resolved += 1
                self.summary.owner(state.owner_id, state.owner_name).resolved += 1
            why = {s.fingerprint: "the record is gone or no longer judged" for s in chunk}
            plan = self.planner.plan([], chunk, {}, resolution=why)
            results = self._write(plan)
            self.state.commit_batch(
                self.key,
                self.run_id,
                resolved=[s.fingerprint for s in chunk],
                results=results,
                **self._settle(plan, results),
            )

    def _settle(
        self,
        plan: Plan,
        results: Sequence[tuple[ActionResult, Mapping[str, Any] | None]],
        pending: Sequence[PendingWrite] = (),
    ) -> dict[str, Any]:
        """What the commit of a plan's results does to the journal (``commit_batch`` keywords).

        A write the CRM refused (``failed``) stays pending, one more attempt counted, and is
        sent again by the next runs until it is done or has failed ``SETTLE_ATTEMPTS`` times;
        then it is given up: logged as ``abandoned`` and warned about. Everything else is
        settled (a stale repair is retried by the next read of the record). With ``pending``
        (earlier runs' entries this plan settles), a refused write keeps every entry of its
        finding pending."""
        if not self.writes:
            return {}
        keys = [(planned.action.fingerprint, planned.action.kind) for planned in plan.actions]
        keys += [(entry.fingerprint, entry.kind) for entry in pending]
        failed = {
            (result.fingerprint, result.kind): result.error
            for result, _ in results
            if result.status is ActionStatus.FAILED
        }
        if not failed:
            return {"settled": keys}
        failed_fps = {fp for fp, _ in failed}
        tried: dict[str, int] = {}
        for entry in self.state.pending_writes(self.key, fingerprints=failed_fps):
            tried[entry.fingerprint] = max(tried.get(entry.fingerprint, 0), entry.attempts)
        give_up = {fp for fp in failed_fps if tried.get(fp, 0) + 1 >= SETTLE_ATTEMPTS}
        kept = {key for key in keys if key[0] in failed_fps} if pending else set(failed)
        settled = [key for key in dict.fromkeys(keys) if key not in kept]
        actions = {(p.action.fingerprint, p.action.kind): p.action for p in plan.actions}
        abandoned: list[tuple[str, ActionKind, str]] = []
        for key in dict.fromkeys(k for k in keys if k in kept and k[0] in give_up):
            error = failed.get(key) or next(
                (e for (fp, _), e in failed.items() if fp == key[0] and e), None
            )
            why = f"gave up after {SETTLE_ATTEMPTS} attempts: {error or 'refused'}"
            abandoned.append((key[0], key[1], why))
            action = actions.get(key)
            if action is None:
                continue
            self.summary.writes_abandoned += 1
            log.warning(
                "gave up settling a CRM write after %d attempts: %s for finding %s (%s on %s "
                "%s), last answer: %s; check it by hand",
                SETTLE_ATTEMPTS,
                action.kind.value,
                action.fingerprint,
                action.rule,
                action.record_type,
                action.record_id,
                error or "refused",
            )
        retry = sorted(failed_fps - give_up)
        if retry:
            log.warning(
                "%d CRM write(s) refused; they stay pending and the next run sends them again",
                len(retry),
            )
        return {
            "settled": settled,
            "retried": retry,
            "refused": [(fp, kind, error) for (fp, kind), error in failed.items() if fp in retry],
            "abandoned": abandoned,
        }

    def _recover(self) -> None:
        """Send again the writes earlier runs left unfinished (refused by the CRM, or
        journalled by a run that stopped), now that this run has judged its records and
        committed what it found, so each is checked against the current verdict: a task for a
        finding that is open is (re)created, one that may exist for a finding that is not open
        is closed, a refused create for a finding that resolved is dropped, a refused repair is
        sent again while its finding is open. What fails again stays pending, up to
        ``SETTLE_ATTEMPTS`` attempts. A run in ``report`` mode leaves the journal alone; a dry
        run shows the writes as planned."""
        if not self.policy.writes_anything():
            return
        pending = self.state.pending_writes(self.key, before_run=self.run_id)
        if not pending:
            return
        states = self.state.findings_by_fingerprint(self.key, {p.fingerprint for p in pending})
        plan = self.planner.reconcile(pending, states)
        results = self._write(plan)
        self.state.commit_batch(
            self.key, self.run_id, results=results, **self._settle(plan, results, pending)
        )

    def _waived(
        self,
        findings: Mapping[str, Finding],
        scopes: Mapping[str, tuple[str | None, str | None]],
    ) -> dict[str, str]:
        """The findings an active exemption covers (any source: one finding, a record, an
        account or a partner), with the note that closes their task."""
        out: dict[str, str] = {}
        if not self.exemptions:
            return out
        # already the active ones: an index by fingerprint and record, no date filter
        waivers = Waivers([e.policy() for e in self.exemptions], dt.date.min)
        for fp, f in findings.items():
            account_id, partner_id = scopes.get(fp, (None, None))
            exemption = waivers.exemption_for(f, account_id=account_id, partner_id=partner_id)
            if exemption is not None:
                out[fp] = exemption.note()
        return out

    def _mirror_config_exemptions(self) -> None:
        """``[[exemptions]]`` into the state, so sync, ``findings`` and ``exempt list`` see
        them as they see ``exempt add``'s: a new entry is added, an entry gone is revoked (and
        its findings get their task again)."""
        wanted = [_stored(e, CONFIG, self.key) for e in from_config(self.config.exemptions)]
        added, revoked = self.state.mirror_exemptions(self.key, CONFIG, wanted)
        if added or revoked:
            self.progress.note(f"[[exemptions]]: {added} new, {revoked} removed from the config")

    def _mirror_crm_exemptions(self, snapshot: Any, as_of: dt.date) -> None:
        """The CRM-field exemptions of the records this batch read, into the state (a field
        cleared revokes its exemption); a date beyond the maximum is reported, not honoured."""
        rows = getattr(snapshot, "exemptions", ())
        scope = {("opportunity", o.id) for o in snapshot.opportunities}
        scope |= {("lead", lead.id) for lead in snapshot.leads}
        scope |= {("account", a.id) for a in snapshot.accounts}
        if not rows and not self._crm_seen:
            return  # nothing mapped, and nothing mirrored before: no state to touch
        crm = from_snapshot([r.to_row() for r in rows], as_of, self.config.exemption_max_days)
        for problem in crm.problems:
            if problem not in self.summary.exemption_problems:
                self.summary.exemption_problems.append(problem)
                log.warning("CRM exemption not honoured: %s", problem)
        wanted = [_stored(e, CRM, self.key) for e in crm.exemptions]
        added, revoked = self.state.mirror_exemptions(self.key, CRM, wanted, scope=scope)
        self._crm_seen = self._crm_seen or bool(added)
        if added or revoked:
            self.exemptions = self.state.active_exemptions(self.key, as_of)

    def _exemptions_settle(self, as_of: dt.date) -> None:
        """Close the tasks of findings exempted since (their records need not have changed),
        and give back their task to findings whose exemption expired or was revoked."""
        if not self.policy.writes_anything():
            return
        waived = self.state.exempt_open(self.key, as_of)
        notes = {e.id: _exempt_note(e) for e in self.exemptions}
        states = self.state.findings_by_fingerprint(self.key, waived)
        closing = {
            fp: (state, notes.get(waived[fp], "Exempt."))
            for fp, state in states.items()
            if state.has_open_task
        }
        lapsed = self.state.lapsed_exemptions(self.key, as_of)
        reopening = [
            state
            for fp, state in self.state.lapsed_findings(self.key, lapsed).items()
            if fp not in waived
        ]
        plan = self.planner.exemptions(closing, reopening)
        results = self._write(plan)
        self.state.commit_batch(
            self.key, self.run_id, results=results, **self._settle(plan, results)
        )
        if self.writes and lapsed:
            self.state.settle_exemptions(e.id for e in lapsed)

    def _final_counts(self) -> None:
        summary = self.summary
        summary.skipped_records = sorted(
            self._bad.values(), key=lambda e: (e["record_type"], e["record_id"] or "")
        )
        open_by_rule = self.state.open_by_rule_severity(self.key)
        for rule, (severity, n) in open_by_rule.items():
            counts = summary.rule(rule)
            counts.open = n
            counts.severity = severity
        specs = self.engine.specs
        for rule, counts in summary.rules.items():
            if not counts.severity and rule in specs:
                counts.severity = specs[rule].severity.value
        summary.writes_pending = self.state.pending_count(self.key)
        summary.findings_open = sum(n for _, n in open_by_rule.values())
        summary.open_block = self.state.open_count(self.key, severity="block")
        waived = self.state.findings_by_fingerprint(
            self.key, self.state.exempt_open(self.key, dt.date.fromisoformat(summary.as_of))
        )
        for state in waived.values():
            summary.rule(state.rule).open -= 1
            summary.rule(state.rule).exempt += 1
        summary.findings_exempt = len(waived)
        summary.findings_open -= len(waived)
        summary.open_block -= sum(1 for s in waived.values() if s.severity == "block")
        for owner_id, (name, n, blocks) in self.state.open_by_owner(self.key).items():
            owner = summary.owner(owner_id, name)
            owner.open, owner.open_block = n, blocks
        for state in waived.values():
            owner = summary.owner(state.owner_id, state.owner_name)
            owner.open -= 1
            owner.open_block -= int(state.severity == "block")
        summary.findings_shadow = self.state.shadow_count(self.key)
        if not self.charts:
            return
        summary.charts = chart_data(
            self.state,
            self.key,
            trend_point(
                summary.run_id, summary.as_of, summary.started_at, summary.to_dict()["findings"]
            ),
            by_rule=open_by_rule,
        )

    def _owner_tallies(self) -> list[OwnerTally]:
        return [
            OwnerTally(key, c.name, c.new, c.resolved, c.open, c.open_block)
            for key, c in sorted(self.summary.owners.items())
            if c.new or c.resolved or c.open
        ]

    def _prune_before(self) -> dt.datetime | None:
        """Where the retention pass cuts (``[sync] history_days``; 0 keeps everything)."""
        days = self.settings.history_days
        if not days:
            return None
        return dt.datetime.now(dt.UTC) - dt.timedelta(days=days)

    def _exit_code(self) -> int:
        summary = self.summary
        if summary.writes_pending or any(status == "failed" for (_, status) in summary.actions):
            return ExitCode.CONNECTOR
        if summary.skipped_records:
            return ExitCode.SKIPPED
        if summary.open_block:
            return ExitCode.BLOCK
        return ExitCode.OK

    def _log_counts(self) -> dict[str, Any]:
        """What the run log keeps of the summary: the counts (per rule too, for
        ``tsos-rules history``), not the lists."""
        data = self.summary.to_dict()
        data.pop("charts", None)
        data.pop("sections", None)
        data.pop("planned_actions", None)
        data["skipped_actions"] = len(self.summary.skipped_actions)
        return data


Named = tuple[str | None, str | None]


def _email(extra: Mapping[str, Any]) -> str | None:
    """A user's email from their extra fields (``email``, or Salesforce's ``Email``)."""
    for key, value in extra.items():
        if key.casefold() == "email" and isinstance(value, str) and "@" in value:
            return value.strip()
    return None


def _stored(e: Any, source: str, connector: str) -> Exemption:
    """A policy exemption as the state stores it, keyed by its content in its source."""
    key = json.dumps(
        [e.rule, e.record_type, e.record_id, e.account_id, e.partner_id, e.reason,
         e.approver, e.expires.isoformat()],
    )  # fmt: skip
    return Exemption(
        id=0,
        connector=connector,
        fingerprint=None,
        rule=e.rule,
        record_type=e.record_type or "",
        record_id=e.record_id or "",
        reason=e.reason,
        approver=e.approver,
        created_at="",
        expires=e.expires,
        source=source,
        account_id=e.account_id,
        partner_id=e.partner_id,
        source_key=key,
    )


def _exempt_note(exemption: Exemption) -> str:
    return (
        f"Exempt until {exemption.expires.isoformat()} (exemption {exemption.id}, approved by "
        f"{exemption.approver}): {exemption.reason}"
    )


#: For a finding on a record of a type, the state's column holding that record's field
#: (``_describe`` stores them): where a reader's stored findings can be found by its key.
#: Keys (partners) whose readers' findings are reworded and committed together: bounds what
#: one batch holds when a key's total moves for thousands of them.
RESTATED_KEYS = 500

SCOPE_COLUMNS = {
    ("opportunity", "owner_id"): "owner_id",
    ("opportunity", "partner_id"): "partner_id",
    ("opportunity", "account_id"): "account_id",
    ("lead", "owner_id"): "owner_id",
    ("lead", "partner_id"): "partner_id",
    ("account", "partner_of_record_id"): "partner_id",
}


def _describe(
    facts: RecordFacts, index: FactIndex, version: str | None
) -> tuple[RecordInfo, Named, Named, Named]:
    """The planner's view of a record, and its (owner, partner, account) ids and names for
    the worklist and reports."""
    record_type, record_id = facts.record_type, facts.record_id
    owner_id: str | None = None
    partner_id: str | None = None
    account_id: str | None = None
    label = record_id
    info_fields: dict[str, Any] = {}
    if record_type == "opportunity":
        deal = index.opportunities.get(record_id)
        assert deal is not None
        owner_id = deal.owner_id
        account_id = deal.account_id
        account = index.accounts.get(deal.account_id) if deal.account_id else None
        por = account.partner_of_record_id if account else None
        partner_id = deal.partner_id or por
        label = deal.name or record_id
        previous = deal.extra.get("previous_partner_id")
        info_fields = {
            "close_date": deal.close_date.isoformat() if deal.close_date else None,
            "partner_id": deal.partner_id,
            "previous_partner_id": previous if isinstance(previous, str) else None,
            "account_partner_of_record_id": por,
            "active_partner_ids": frozenset(
                pid
                for pid in (previous, por)
                if isinstance(pid, str)
                and pid in index.partners
                and index.partners[pid].status.value == "active"
            ),
        }
    elif record_type == "lead":
        lead = index.leads[record_id]
        owner_id, partner_id = lead.owner_id, lead.partner_id
        label = lead.company or record_id
        converted = getattr(lead, "account_id", None)
        account_id = converted if isinstance(converted, str) else None
    elif record_type == "account":
        account = index.accounts[record_id]
        owner = account.extra.get("owner_id")
        owner_id = owner if isinstance(owner, str) else None
        partner_id = account.partner_of_record_id
        label = account.name or record_id
        account_id = record_id
    else:
        activity = facts.record
        owner_id = getattr(activity, "owner_id", None)
        account_id = getattr(activity, "account_id", None)
        account = index.accounts.get(account_id) if account_id else None
        partner_id = account.partner_of_record_id if account else None
        label = getattr(activity, "subject", None) or record_id
    owner = index.users.get(owner_id) if owner_id else None
    partner = index.partners.get(partner_id) if partner_id else None
    info = RecordInfo(
        record_type=record_type,
        record_id=record_id,
        label=label,
        owner_id=owner_id,
        version=version,
        **info_fields,
    )
    named_account = index.accounts.get(account_id) if account_id else None
    return (
        info,
        (owner_id, owner.name if owner else None),
        (partner_id, partner.name if partner else None),
        (account_id, named_account.name if named_account else None),
    )


def _spared_note(fell: int, within: int) -> str:
    parts = [f"{fell} fell"] if fell else []
    if within:
        parts.append(f"{within} rose no higher than a reader without a finding allows")
    return ", ".join(parts)


def _reading(
    item: BoundAggregate, batch: ReadResult, values: frozenset[str] | None = None
) -> set[RecordKey]:
    """The records ``batch`` judges whose verdict can read ``item`` at all (its ``reads_when``:
    an open deal reads its partner's commit total, a closed one not); with ``values``, only
    those whose ``read_by`` field holds one of them."""
    keys = set(batch.changed | batch.affected)
    reads_when = item.aggregate.reads_when
    if reads_when is None and values is None:
        return keys
    record_type, field = item.aggregate.record_type, item.aggregate.read_by
    return {
        (record_type, record.id)
        for record in getattr(batch.snapshot, COLLECTIONS[record_type])
        if (record_type, record.id) in keys
        and (reads_when is None or reads_when(record, item.parameters))
        and (values is None or field is None or field_of(record, field) in values)
    } | {key for key in keys if key[0] != record_type}


def _pushes(facts: RecordFacts, index: FactIndex) -> Iterable[Push]:
    for move in getattr(facts, "moves", ()):
        change = move.change
        if move.pushed_later and change.changed_at is not None:
            yield Push(
                change.opportunity_id,
                index.org.local_date(change.changed_at),
                move.locked,
                move.approved,
            )


def _planned(action: Action, before: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A dry run's planned write as the summary lists it: what, on which record, for which rule
    (a repair with the values it replaces under ``before``)."""
    listed = {
        "kind": action.kind.value,
        "record_type": action.record_type,
        "record_id": action.record_id,
        "rule": action.rule,
        "subject": action.subject,
        "changes": {key: _jsonable(value) for key, value in action.changes.items()},
    }
    if before is not None:
        listed["before"] = {key: _jsonable(value) for key, value in before.items()}
    return listed


def _jsonable(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def chart_data(
    state: StateStore,
    connector: str,
    current: Mapping[str, Any],
    by_rule: Mapping[str, tuple[str, int]] | None = None,
) -> dict[str, Any]:
    """The report's breakdowns of the open findings (``summary.charts``), with the trend over
    the run log ending at ``current`` (this run's :func:`trend_point`). ``by_rule``: the
    state's ``open_by_rule_severity``, when the caller has it already. The counts by owner and
    by partner are summed from the counts by severity: each is a scan of every open finding."""
    if by_rule is None:
        by_rule = state.open_by_rule_severity(connector)
    by_severity = {by: state.open_counts_by_severity(connector, by) for by in ("owner", "partner")}
    return {
        "by_rule": [
            [k, n] for k, n in sorted(((k, n) for k, (_, n) in by_rule.items()), key=_most)
        ],
        "by_owner": _totals_of(by_severity["owner"]),
        "by_partner": _totals_of(by_severity["partner"]),
        "pushes_by_month": [list(row) for row in state.pushes_by_month(connector)],
        "severity_by_owner": [list(row) for row in by_severity["owner"]],
        "severity_by_partner": [list(row) for row in by_severity["partner"]],
        "trend": trend(state.runs(connector, limit=2 * TREND_RUNS), current),
    }


def _most(item: tuple[str, int]) -> tuple[int, str]:
    """Most findings first, then by key (``open_counts``' order)."""
    return -item[1], item[0]


def _totals_of(rows: Sequence[tuple[str, str, str, int]]) -> list[list[Any]]:
    """``open_counts`` rows (key, label, count) from ``open_counts_by_severity`` rows: the
    counts summed over the severities, the label the greatest, as SQL's ``max`` picks it."""
    labels: dict[str, str] = {}
    counts: dict[str, int] = {}
    for key, label, _, n in rows:
        labels[key] = max(labels.get(key, label), label)
        counts[key] = counts.get(key, 0) + n
    ranked = sorted(counts.items(), key=_most)
    return [[key, labels[key], n] for key, n in ranked]


def worklist_page(state: StateStore, connector: str, specs: Mapping[str, RuleSpec]) -> WorklistPage:
    """Every open, exempt and shadow finding (block first), for the HTML report's worklist."""
    rows = [
        row
        for status in ("open", "exempt", "shadow")
        for row in state.worklist(connector, WorklistQuery(status=status))
    ]
    return WorklistPage(tuple(rows), dict(specs))


def _finding_order(state: FindingState) -> tuple[str, str, str, str]:
    """A stored finding's place in a findings document: record type, record id, rule, reason."""
    return (state.record_type, state.record_id, state.rule, state.reason)
