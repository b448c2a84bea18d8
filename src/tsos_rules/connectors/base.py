"""The connector protocol: how the sync job reads a CRM and writes findings back.

A connector maps one CRM onto the snapshot model and back; it never knows what the rules are.
The job calls ``read`` (incremental from a watermark), then ``write`` with an action plan, and
commits state only after ``write`` returned. Every write carries the finding's fingerprint as an
idempotency key, and repairs carry the record version that was read, so a re-run after a crash
never writes twice and never overwrites a newer change.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

import attrs

from tsos_rules.model import Snapshot
from tsos_rules.snapshot.document import RecordError

RecordKey = tuple[str, str]
"""``(record_type, record_id)``, e.g. ``("opportunity", "006xx0000001")``."""


@attrs.frozen
class Capabilities:
    """What a connector can do, so the job plans only actions it can carry out."""

    incremental: bool = True
    tasks: bool = True
    field_updates: bool = False
    conditional_updates: bool = False
    idempotent_upsert: bool = True
    max_batch: int = 200


@attrs.frozen
class ReadResult:
    """One read: the changed records with every related record the facts need.

    ``snapshot`` holds the changed records *and* their related records (a changed deal brings
    its lead, account, partner, owner, close-date history and activities even when those did
    not change). ``changed`` names the records that changed since the watermark and must be
    judged; the others are there only as context. ``versions`` holds each record's version token
    (e.g. ``SystemModstamp``) for optimistic concurrency. ``errors`` lists the records that could
    not be mapped and were skipped.
    """

    snapshot: Snapshot
    changed: frozenset[RecordKey]
    watermark: str | None
    deleted: frozenset[RecordKey] = frozenset()
    versions: Mapping[RecordKey, str] = attrs.field(factory=dict)
    errors: tuple[RecordError, ...] = ()
    full: bool = False
    affected: frozenset[RecordKey] = frozenset()
    """Records that did not change but whose findings may have, because a related record did
    (another deal for the same company, an account whose deal turned channel). The job judges
    them too. Only records whose related records are all in ``snapshot`` belong here."""
    incomplete: frozenset[RecordKey] = frozenset()
    """Records present but not judgeable because a related record is in ``errors``: the job
    neither judges them nor resolves their open findings this run."""
    progress: tuple[int, int] | None = None
    """``(units done, units total)`` after this batch, when the connector knows them."""


class ActionKind(enum.StrEnum):
    CREATE_TASK = "create_task"
    """Open a task for the record's owner describing the finding (idempotent on fingerprint)."""
    CLOSE_TASK = "close_task"
    """Close the task of a finding that resolved. A task that does not exist (never created,
    or deleted by a user) is closed already: answer ALREADY_DONE."""
    UPDATE_FIELDS = "update_fields"
    """Enforce-mode repair: set fields, only if the record is still at ``expected_version``."""


@attrs.frozen
class Action:
    """One write the job wants done. ``fingerprint`` is the idempotency key."""

    kind: ActionKind
    fingerprint: str
    record_type: str
    record_id: str
    owner_id: str | None = None
    subject: str = ""
    description: str = ""
    rule: str = ""
    changes: Mapping[str, Any] = attrs.field(factory=dict)
    expected_version: str | None = None
    crm_id: str | None = None
    """For CLOSE_TASK: the CRM id of the task the job created earlier, when known."""


class ActionStatus(enum.StrEnum):
    WRITTEN = "written"
    """Done now."""
    ALREADY_DONE = "already_done"
    """The idempotency key showed it was done before (a re-run after a crash): nothing written."""
    STALE = "stale"
    """Refused: the record changed since it was read. Reported as skipped, retried next run."""
    FAILED = "failed"
    """The CRM refused it for another reason, given in ``error``."""


@attrs.frozen
class ActionResult:
    fingerprint: str
    kind: ActionKind
    status: ActionStatus
    crm_id: str | None = None
    error: str | None = None


@runtime_checkable
class Connector(Protocol):
    """What every connector implements. Register a factory with
    ``tsos_rules_register_connectors``; the factory takes the ``[connector]`` config table."""

    name: str

    def capabilities(self) -> Capabilities:
        """What this connector can read and write."""
        ...

    def read(self, since: str | None, *, until: dt.datetime | None = None) -> ReadResult:
        """Records changed after watermark ``since`` (all records when None) up to ``until``.

        The returned watermark is what the next run passes as ``since``: no record changed in
        between may be skipped, and none at the boundary may be read twice as new.
        """
        ...

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        """Carry out actions, one result per action in the same order. Never raises for one
        bad item: that item's result says FAILED or STALE and the others go on."""
        ...

    def close(self) -> None:
        """Release connections and files."""
        ...


@runtime_checkable
class BatchReader(Protocol):
    """Optional: a connector that streams a read in self-contained batches, so a sync of a
    million deals runs in bounded memory. The job uses it when present, else ``read``."""

    def read_batches(
        self, since: str | None, *, until: dt.datetime | None = None, batch_size: int = 1000
    ) -> Iterator[ReadResult]:
        """Like ``read``, cut into batches: each batch holds its judged records with all their
        related records. Every batch carries the same final watermark; the job stores it only
        after the last batch, so a run stopped half-way is read again in full."""
        ...


@runtime_checkable
class KeyedReader(Protocol):
    """Optional: a connector that reads the records whose field holds one of some values (a
    partner's deals), so an incremental sync re-judges the readers of a total that moved
    without reading the whole org. Without it the job finds them in a full read."""

    def read_where(
        self, record_type: str, field: str, values: Collection[str], *, batch_size: int = 1000
    ) -> Iterator[ReadResult]:
        """The current records of ``record_type`` whose ``field`` is one of ``values``, as
        ``affected`` (judged, not changed), in self-contained batches like ``read_batches``:
        each with every related record their facts read. ``watermark`` is None."""
        ...


@runtime_checkable
class ReaderStream(Protocol):
    """Optional: a connector that reads the records whose field holds one of some values with
    only the records directly linked to them (account, owner and team, partner), not their
    company groups: the cheap read of an aggregate's readers when the pack names the rules
    that read it (``Aggregate.read_by_rules``), which judge a reader from those alone. Without
    it the job reads them with ``read_where`` (or picks them out of a full read)."""

    def stream_where(
        self, record_type: str, field: str, values: Collection[str], *, page_size: int = 5000
    ) -> Iterator[ReadResult]:
        """The current records of ``record_type`` whose ``field`` (as :func:`field_of` reads
        it) is one of ``values``, as ``affected``, ``page_size`` a result, each result with
        their accounts (and the accounts' partners of record), owners, team members and
        partners; ``watermark`` None. Records that cannot be mapped are in ``errors``."""
        ...


@runtime_checkable
class ReaderIds(Protocol):
    """Optional, beside ``ReaderStream``: the ids of the records whose field holds one of some
    values, without reading them. The job then streams only the readers it has not judged or
    reworded already this run (``stream_where`` by ``id``), not every reader of the key."""

    def ids_where(self, record_type: str, field: str, values: Collection[str]) -> list[str]:
        """The ids of the current records of ``record_type`` whose ``field`` is one of
        ``values`` (as ``stream_where`` matches them), sorted."""
        ...


def field_of(record: Any, field: str) -> Any:
    """What ``read_where`` compares: a record's model attribute ``field``, else its CRM extra
    ``field`` (None when it has neither)."""
    if field in attrs.fields_dict(type(record)):
        return getattr(record, field)
    extra = getattr(record, "extra", None)
    return extra.get(field) if isinstance(extra, Mapping) else None


@runtime_checkable
class RecordStream(Protocol):
    """Optional: a connector that streams the current records of one type alone, without the
    records related to them: the cheap first read of a full sync whose packs total records
    over the org (``Aggregate``). Without it the job reads the org in batches twice."""

    def stream_records(self, record_type: str, *, page_size: int = 5000) -> Iterator[ReadResult]:
        """Every current record of ``record_type``, ``page_size`` a result, in ``snapshot``
        only (none judged; records that cannot be mapped are left out, as a read does)."""
        ...


@runtime_checkable
class ChangedRecordStream(Protocol):
    """Optional: a connector that streams the records of one type changed since a watermark,
    alone: the cheap first read of an incremental sync whose packs total records over the org
    (only a changed record's share of a total can change). Without it the job reads what
    changed, with its company groups, before judging it (and again, when that read is big)."""

    def stream_changed(
        self, record_type: str, since: str, *, page_size: int = 5000
    ) -> Iterator[ReadResult]:
        """The records of ``record_type`` changed after ``since`` (a watermark this connector
        returned), in ``snapshot``, and those deleted since, in ``deleted``; none judged."""
        ...


@runtime_checkable
class RecordLinker(Protocol):
    """Optional: a connector that can link to a record in its CRM's web UI, for the worklist
    and the report (Salesforce: the Lightning record page; HubSpot: the record in the portal)."""

    def record_url(self, record_type: str, record_id: str) -> str | None:
        """The web address of a record (``record_type``: ``opportunity``, ``account``,
        ``lead``, ``activity``), or None when there is none. Called after a read; it must not
        make a request per record."""
        ...


@attrs.frozen
class Problem:
    """One thing a connector's ``check`` found: wrong (``error``: the connector cannot be used
    as configured) or worth knowing (``warning``). ``where`` names the setting, object or field.
    """

    level: str = attrs.field(validator=attrs.validators.in_(("error", "warning")))
    where: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.where}: {self.message}"


@runtime_checkable
class Checkable(Protocol):
    """Optional: a connector that validates its configuration against its CRM, for
    ``tsos-rules connectors check NAME`` (exit 2 when any problem is an ``error``)."""

    def check(self, ladder: Sequence[str]) -> Iterable[Problem]:
        """The problems found, reading the CRM but writing nothing. ``ladder`` is the org's
        stage ladder (``[org] stage_ladder`` names), to flag CRM stages that are not on it."""
        ...
