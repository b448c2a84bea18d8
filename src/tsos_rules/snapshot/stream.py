"""Read a snapshot file in passes, one collection at a time, without holding the document.

``snapshot split`` needs every record once to place it and again to write it, but never the
whole document: a first pass (ijson events) finds the top-level keys and reads the small ones
(users, partners, the CRM's exemptions, ``as_of``, unknown keys); then one pass per sharded
collection (ijson's C backend builds one record at a time) structures each record as
``load_snapshot`` does, keeps an outline of it (the ids and names that place it in a shard)
and writes its JSON to a scratch file, from which the shards are written. Errors are
``load_snapshot``'s, in the same order: the first bad record, named, is exit 2.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from array import array
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, Any, NamedTuple

import attrs
import ijson
import orjson

from tsos_rules.model import COLLECTIONS, Snapshot
from tsos_rules.snapshot._fast import make_bulk_unstructure
from tsos_rules.snapshot.document import (
    BULK_STRUCTURE,
    SnapshotError,
    shown,
    snapshot_from_dict,
    structure_record,
)

#: The collections streamed record by record (a sharded snapshot's shard collections).
STREAMED = ("accounts", "leads", "opportunities", "close_date_changes", "activities")
_BOM = b"\xef\xbb\xbf"
_COPY_CHUNK = 1 << 20


class AccountOutline(NamedTuple):
    id: str
    name: str | None


class LeadOutline(NamedTuple):
    id: str
    account_id: str | None
    company: str | None
    converted_opportunity_id: str | None


class DealOutline(NamedTuple):
    id: str
    account_id: str | None
    lead_id: str | None


class ChangeOutline(NamedTuple):
    opportunity_id: str


class ActivityOutline(NamedTuple):
    id: str
    account_id: str | None
    what_id: str | None


def _outline_of(record: Any, collection: str) -> Any:
    if collection == "accounts":
        return AccountOutline(record.id, record.name)
    if collection == "leads":
        return LeadOutline(
            record.id, record.account_id, record.company, record.converted_opportunity_id
        )
    if collection == "opportunities":
        return DealOutline(record.id, record.account_id, record.lead_id)
    if collection == "close_date_changes":
        return ChangeOutline(record.opportunity_id)
    return ActivityOutline(record.id, record.account_id, record.what_id)


@attrs.frozen
class Outline:
    """What the passes kept: the reference data, each streamed record's outline, in file
    order, and where its JSON (as ``snapshot_to_dict`` writes it) lies in the scratch file."""

    #: users, partners, the CRM's exemptions, ``as_of``, unknown keys; no streamed records
    reference: Snapshot
    records: dict[str, list[Any]]
    #: by collection: the scratch offsets of its records, one more than records (the end)
    _bounds: dict[str, array[int]]
    _scratch: int  # the scratch file's descriptor

    @property
    def record_count(self) -> int:
        """As :attr:`Snapshot.record_count` counts the whole snapshot's records."""
        counted = ("accounts", "leads", "opportunities", "activities")
        return self.reference.record_count + sum(len(self.records[c]) for c in counted)

    def record_json(self, collection: str, position: int) -> bytes:
        """The JSON of record ``position`` of ``collection``, as the in-memory split writes it."""
        bounds = self._bounds[collection]
        start = bounds[position]
        return os.pread(self._scratch, bounds[position + 1] - start, start)


def _open_file(path: str) -> IO[bytes]:
    """The file, opened as ``load_snapshot`` opens one (the same errors)."""
    try:
        handle = open(path, "rb")  # noqa: SIM115 (returned to the caller)
    except IsADirectoryError:
        raise SnapshotError(f"{path}: is a directory, not a snapshot file") from None
    except OSError as exc:
        raise SnapshotError(f"{path}: cannot read: {exc.strerror or exc}") from None
    mode = os.fstat(handle.fileno()).st_mode
    if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
        handle.close()
        raise SnapshotError(f"{path}: not a regular file (a device or socket)")
    return handle


@contextmanager
def _seekable(
    source: str, stream: IO[bytes] | None, scratch_dir: str | None
) -> Iterator[IO[bytes]]:
    """A file the passes can each read from its start: the file itself, or a copy of a pipe
    (stdin, a FIFO) in a scratch file."""
    handle = stream if stream is not None else _open_file(source)
    try:
        if stream is None and stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
            yield handle
            return
        with tempfile.TemporaryFile(dir=scratch_dir) as copy:
            shutil.copyfileobj(handle, copy, _COPY_CHUNK)
            copy.flush()  # the passes read it with pread
            yield copy
    finally:
        if stream is None:
            handle.close()


class _Reader:
    """A file read from its start (past a byte order mark) with ``pread``: each pass keeps its
    own position, whatever else reads the open file."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._at = 3 if os.pread(fd, 3, 0) == _BOM else 0

    def read(self, size: int = -1) -> bytes:
        data = os.pread(self._fd, size if size >= 0 else _COPY_CHUNK, self._at)
        self._at += len(data)
        return data


def _dumps(record: Any) -> bytes:
    """A record's JSON as the whole-document split writes it (``sharded._write``)."""
    try:
        return orjson.dumps(record)
    except orjson.JSONEncodeError:  # an integer beyond 64 bits, which orjson cannot write
        return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode()


def _overflows(exc: Exception) -> bool:
    """yajl2_c, ijson's C backend, refuses an integer beyond 64 bits that a load reads exactly."""
    return "integer overflow" in str(exc)


def _invalid(source: str, exc: Exception) -> SnapshotError:
    message = str(exc)
    if "UTF8" in message or "UTF-8" in message:
        return SnapshotError(f"{source}: not UTF-8 text")
    return SnapshotError(f"{source}: not valid JSON: {message}")


_OPEN = frozenset(("start_map", "start_array"))
_CLOSE = frozenset(("end_map", "end_array"))


def _build(events: Iterator[tuple[str, str, Any]], event: str, value: Any) -> Any:
    """The value whose first event is ``event``, built from the events that follow."""
    if event not in _OPEN:
        return value
    builder = ijson.ObjectBuilder()
    builder.event(event, value)
    depth = 1
    for _, inner, inner_value in events:
        builder.event(inner, inner_value)
        if inner in _OPEN:
            depth += 1
        elif inner in _CLOSE:
            depth -= 1
            if not depth:
                break
    return builder.value


def _top_level(fd: int, source: str, parser: Any) -> tuple[dict[str, Any], dict[str, str]]:
    """Pass 1: the top-level keys other than the streamed collections, with their values,
    and for every key the event its value starts with (``start_array``, ``null``, ...). A
    streamed collection that is not a list is built too, to be named in its error."""
    values: dict[str, Any] = {}
    kinds: dict[str, str] = {}
    events = parser.parse(_Reader(fd), use_float=True)
    try:
        first = next(events, None)
        if first is None or first[1] != "start_map":
            document = next(parser.items(_Reader(fd), "", use_float=True), None)
            raise SnapshotError(
                f"{source}: expected a JSON object at the top level, got {shown(document)}"
            )
        for _, event, key in events:
            if event == "end_map":
                break
            if key in kinds:
                # A load keeps the last copy; the collection passes would read both.
                raise SnapshotError(
                    f"{source}: the top-level key {key!r} appears twice; split needs each key once"
                )
            _, event, value = next(events)  # the value of top-level key ``key``
            kinds[key] = event
            if event == "start_array" and key in STREAMED:
                # skipped to its end without a Python step per event: the sentinel is the
                # array's own end (its records' events have longer prefixes)
                deque(iter(events.__next__, (key, "end_array", None)), maxlen=0)
            else:
                values[key] = _build(events, event, value)
        deque(events, maxlen=0)  # trailing data is an error, as for a load
    except ijson.JSONError as exc:
        raise _invalid(source, exc) from None
    return values, kinds


def _stream(
    fd: int,
    source: str,
    collection: str,
    cls: type[Any],
    scratch: IO[bytes],
    parser: Any,
) -> tuple[list[Any], array[int]]:
    """One pass: ``collection``'s records structured (the first bad one raises, named, as in
    ``snapshot_from_dict``), their outlines, and their JSON appended to ``scratch``."""
    structure = BULK_STRUCTURE[cls]
    unstructure = make_bulk_unstructure(cls)
    outlines: list[Any] = []
    bounds = array("q", [scratch.tell()])
    first: dict[str, int] = {}
    duplicate: SnapshotError | None = None
    identified = collection != "close_date_changes"
    try:
        for index, row in enumerate(
            parser.items(_Reader(fd), f"{collection}.item", use_float=True)
        ):
            try:
                record = structure(row)
            except Exception:
                record = structure_record(
                    row, cls, source=source, collection=collection, index=index
                )
            if identified:
                seen = first.setdefault(record.id, index)
                if seen != index:
                    if duplicate is None:  # raised once the collection is read, as a load does
                        duplicate = _duplicate(source, collection, index, record.id, seen)
                    continue
            scratch.write(_dumps(unstructure(record)))
            bounds.append(scratch.tell())
            outlines.append(_outline_of(record, collection))
    except ijson.JSONError as exc:
        raise _invalid(source, exc) from None
    if duplicate is not None:
        raise duplicate
    return outlines, bounds


def _duplicate(
    source: str, collection: str, index: int, record_id: str, seen: int
) -> SnapshotError:
    from tsos_rules.snapshot.document import RecordError

    problem = f"duplicate id: also at {collection}[{seen}]"
    error = RecordError(source, collection, index, record_id, "id", problem)
    return SnapshotError(str(error), [error])


_CLASSES = {plural: cls for plural, _, cls in COLLECTIONS}


@contextmanager
def outline_of(
    source: str,
    *,
    stream: IO[bytes] | None = None,
    scratch_dir: str | os.PathLike[str] | None = None,
) -> Iterator[Outline]:
    """Read snapshot file ``source`` (or ``stream``, a pipe such as stdin, copied to a scratch
    file first) in passes: its :class:`Outline`, valid inside the ``with`` block (the scratch
    file is then removed)."""
    where = str(scratch_dir) if scratch_dir is not None else None
    with (
        _seekable(source, stream, where) as handle,
        tempfile.TemporaryFile(dir=where) as scratch,
    ):
        fd = handle.fileno()
        parser: Any = ijson
        try:
            values, kinds = _top_level(fd, source, parser)
        except SnapshotError as exc:
            if not _overflows(exc):
                raise
            # the pure-Python backend (several times slower) reads such integers exactly
            parser = ijson.get_backend("python")
            values, kinds = _top_level(fd, source, parser)
        # users and partners come first in a load's order of errors; as_of and the CRM's
        # exemptions after every collection
        head = {name: values.get(name) for name in ("users", "partners")}
        snapshot_from_dict(head, source=source)
        records: dict[str, list[Any]] = {}
        bounds: dict[str, array[int]] = {}
        for plural in (p for p, _, _ in COLLECTIONS if p in STREAMED):
            kind = kinds.get(plural, "null")
            if kind not in ("start_array", "null"):
                raise SnapshotError(
                    f"{source}: {plural}: expected a list, got {shown(values.get(plural))}"
                )
            records[plural], bounds[plural] = _stream(
                fd, source, plural, _CLASSES[plural], scratch, parser
            )
        reference, _ = snapshot_from_dict(
            {k: v for k, v in values.items() if k not in STREAMED}, source=source
        )
        scratch.flush()
        # read back with pread (not a map: mapped pages would count as this process's)
        yield Outline(reference, records, bounds, scratch.fileno())
