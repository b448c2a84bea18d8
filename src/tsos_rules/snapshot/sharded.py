"""A sharded snapshot: one snapshot as a directory of JSON files (docs/contract.md).

``manifest.json`` names a reference file (users, partners, the CRM's exemptions, unknown
top-level keys) and shard files, each a snapshot document holding whole company groups
(accounts, leads, deals, close-date changes, activities). A shard may carry a top-level
``sharded`` object: ``positions`` (each record's place in the whole snapshot, so a reader
rebuilds its order exactly) and ``context`` (copies of records of other shards its own records
read, such as a deal's source lead). Workers each read only their own shards and the reference.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import IO, Any

import attrs
import orjson

from tsos_rules.model import Snapshot
from tsos_rules.snapshot.document import (
    FieldProblem,
    SnapshotError,
    decode_document,
    max_snapshot_bytes,
    read_path,
    shown,
    snapshot_from_dict,
    structure_date,
)

FORMAT = "tsos-rules/sharded-snapshot"
VERSION = 1
MANIFEST = "manifest.json"
#: The collections shards hold, in document order; the reference file holds the others.
SHARDED = ("accounts", "leads", "opportunities", "close_date_changes", "activities")
#: The collections only the reference file holds.
REFERENCE = ("users", "partners", "exemptions")
#: A shard's top-level key for its layout (positions and context records).
LAYOUT = "sharded"
#: Collections whose records have ids (close-date changes have none).
_IDENTIFIED = ("accounts", "leads", "opportunities", "activities")
#: Sort keys of records without a position: after every positioned one, in file order.
_UNPLACED = 1 << 62
_SHARD_STRIDE = 1 << 40


@attrs.frozen
class Manifest:
    """A sharded snapshot's directory, its ``as_of``, reference file and shard files."""

    directory: Path
    as_of: dt.date | None
    reference: Path
    shards: tuple[Path, ...]

    @property
    def path(self) -> Path:
        return self.directory / MANIFEST

    def sizes(self) -> list[int]:
        """Each shard file's size in bytes (0 when it cannot be read: reading names it)."""
        out = []
        for shard in self.shards:
            try:
                out.append(shard.stat().st_size)
            except OSError:
                out.append(0)
        return out


def is_sharded(path: str | os.PathLike[str]) -> bool:
    """True when ``path`` is a directory (a sharded snapshot, or an error naming it)."""
    return Path(path).is_dir()


def _load_json(path: Path) -> tuple[Any, dict[str, list[Any]]]:
    """A file of the directory, read as ``load_snapshot`` reads one: its parsed JSON less the
    collections already read into records (``decode_document``), and those records."""
    text = read_path(path, max_snapshot_bytes()).removeprefix(b"\xef\xbb\xbf")
    data, structured = decode_document(text, str(path))
    return data, structured or {}


def _file_in(directory: Path, name: Any, where: str) -> Path:
    """A file named in the manifest: a plain relative name inside the directory."""
    if type(name) is not str or not name or name.startswith("/") or "\\" in name:
        raise SnapshotError(
            f"{where}: expected a file name inside the directory, got {shown(name)}"
        )
    if any(part in ("", ".", "..") for part in name.split("/")):
        raise SnapshotError(f"{where}: expected a file name inside the directory, got {name!r}")
    return directory / name


def read_manifest(directory: str | os.PathLike[str]) -> Manifest:
    """The directory's ``manifest.json``, checked; errors name the file and the key."""
    root = Path(directory)
    path = root / MANIFEST
    if not path.is_file():
        raise SnapshotError(f"{root}: is a directory without {MANIFEST}, not a sharded snapshot")
    data, _ = _load_json(path)
    if type(data) is not dict:
        raise SnapshotError(f"{path}: expected a JSON object at the top level, got {shown(data)}")
    if data.get("format") != FORMAT:
        raise SnapshotError(f"{path}: format: expected {FORMAT!r}, got {shown(data.get('format'))}")
    if data.get("version") != VERSION:
        raise SnapshotError(
            f"{path}: version: expected {VERSION}, got {shown(data.get('version'))}"
        )
    as_of = data.get("as_of")
    if as_of is not None:
        try:
            as_of = structure_date(as_of, dt.date)
        except FieldProblem as exc:
            raise SnapshotError(f"{path}: as_of: {exc}") from None
    reference = _file_in(root, data.get("reference"), f"{path}: reference")
    shards = data.get("shards")
    if type(shards) is not list:
        raise SnapshotError(f"{path}: shards: expected a list of file names, got {shown(shards)}")
    files = tuple(_file_in(root, name, f"{path}: shards[{i}]") for i, name in enumerate(shards))
    seen: dict[Path, int] = {}
    for i, file in enumerate(files):
        if file in seen or file == reference:
            raise SnapshotError(f"{path}: shards[{i}]: {file.name} is named twice")
        seen[file] = i
    return Manifest(root, as_of, reference, files)


def read_reference(manifest: Manifest) -> Snapshot:
    """The reference file: users, partners, the CRM's exemptions and unknown top-level keys."""
    source = str(manifest.reference)
    data, structured = _load_json(manifest.reference)
    if type(data) is dict:
        for name in SHARDED:
            if data.get(name) or structured.get(name):
                raise SnapshotError(f"{source}: {name}: belongs in the shard files, not here")
    snapshot, _ = snapshot_from_dict(data, source=source, structured=structured)
    return attrs.evolve(snapshot, as_of=manifest.as_of or snapshot.as_of)


@attrs.frozen
class Shard:
    """One shard file read: its own records, their positions, and its context copies."""

    file: str
    number: int
    #: by collection: the shard's own records
    records: Mapping[str, tuple[Any, ...]]
    #: by collection: each own record's sort key (its place in the whole snapshot)
    keys: Mapping[str, list[int]]
    context: Mapping[str, tuple[Any, ...]]
    context_keys: Mapping[str, list[int]]


def _positions(value: Any, count: int, where: str) -> list[int] | None:
    if value is None:
        return None
    if type(value) is not list or len(value) != count:
        raise SnapshotError(f"{where}: expected a list of {count} positions, got {shown(value)}")
    if not all(type(p) is int and 0 <= p < _UNPLACED for p in value):
        bad = next(p for p in value if not (type(p) is int and 0 <= p < _UNPLACED))
        raise SnapshotError(f"{where}: expected positions (whole numbers from 0), got {shown(bad)}")
    return value


def _keys(given: list[int] | None, number: int, count: int) -> list[int]:
    if given is not None:
        return given
    start = _UNPLACED + number * _SHARD_STRIDE
    return list(range(start, start + count))


def read_shard(path: Path, number: int) -> Shard:
    """Shard file ``number``, checked; errors name the file, the record and the field."""
    source = str(path)
    data, structured = _load_json(path)
    if type(data) is not dict:
        raise SnapshotError(f"{source}: expected a JSON object at the top level, got {shown(data)}")
    for name in REFERENCE:
        if data.get(name) or structured.get(name):
            raise SnapshotError(f"{source}: {name}: belongs in the reference file, not a shard")
    layout = data.pop(LAYOUT, None) or {}
    if type(layout) is not dict:
        raise SnapshotError(f"{source}: {LAYOUT}: expected an object, got {shown(layout)}")
    own, _ = snapshot_from_dict(data, source=source, structured=structured)
    context_rows = layout.get("context") or {}
    if type(context_rows) is not dict:
        raise SnapshotError(f"{source}: {LAYOUT}.context: expected an object")
    context, _ = snapshot_from_dict(
        {name: context_rows.get(name, []) for name in SHARDED}, source=f"{source}: {LAYOUT}.context"
    )
    positions = layout.get("positions") or {}
    context_positions = layout.get("context_positions") or {}
    if type(positions) is not dict or type(context_positions) is not dict:
        raise SnapshotError(f"{source}: {LAYOUT}: positions: expected an object")
    records, keys, extra, extra_keys = {}, {}, {}, {}
    for name in SHARDED:
        records[name] = getattr(own, name)
        given = _positions(
            positions.get(name), len(records[name]), f"{source}: {LAYOUT}.positions.{name}"
        )
        keys[name] = _keys(given, number, len(records[name]))
        extra[name] = getattr(context, name)
        given = _positions(
            context_positions.get(name),
            len(extra[name]),
            f"{source}: {LAYOUT}.context_positions.{name}",
        )
        extra_keys[name] = _keys(given, number, len(extra[name]))
    return Shard(source, number, records, keys, extra, extra_keys)


def read_shards(manifest: Manifest, numbers: Sequence[int]) -> list[Shard]:
    return [read_shard(manifest.shards[n], n) for n in numbers]


def assemble(
    reference: Snapshot, shards: Sequence[Shard], *, with_context: bool = True
) -> tuple[Snapshot, dict[str, bytes]]:
    """One snapshot of the reference and ``shards`` (their records in the whole snapshot's
    order), and by collection one byte per record: 1 for a shard's own record, 0 for a
    context copy. An id two of the shards own is an error naming both files."""
    values: dict[str, Any] = {}
    own: dict[str, bytes] = {}
    for name in SHARDED:
        keys: list[int] = []
        records: list[Any] = []
        owner: dict[str, str] = {}
        for shard in shards:
            part = shard.records[name]
            if name in _IDENTIFIED:
                for record in part:
                    first = owner.setdefault(record.id, shard.file)
                    if first is not shard.file:
                        raise SnapshotError(
                            f"{shard.file}: {name}: id {record.id} is also in {first}; a record "
                            "belongs to one shard"
                        )
            keys.extend(shard.keys[name])
            records.extend(part)
        mine = len(records)
        if with_context and name in _IDENTIFIED:
            for shard in shards:
                for record, key in zip(shard.context[name], shard.context_keys[name], strict=True):
                    if record.id not in owner:
                        owner[record.id] = shard.file
                        keys.append(key)
                        records.append(record)
        flags = bytearray(b"\x01" * mine + b"\x00" * (len(records) - mine))
        if any(a > b for a, b in pairwise(keys)):
            order = sorted(range(len(keys)), key=keys.__getitem__)  # runs: timsort merges them
            records = list(map(records.__getitem__, order))
            flags = bytearray(map(flags.__getitem__, order))
        values[name] = tuple(records)
        own[name] = bytes(flags)
    snapshot = attrs.evolve(reference, **values)
    return snapshot, own


def load_sharded(directory: str | os.PathLike[str]) -> Snapshot:
    """The whole snapshot of a sharded directory, records in their original order."""
    manifest = read_manifest(directory)
    reference = read_reference(manifest)
    shards = read_shards(manifest, range(len(manifest.shards)))
    snapshot, _ = assemble(reference, shards)
    return snapshot


@attrs.frozen
class ShardLayout:
    """Which records of a whole snapshot one shard file holds, by collection: the positions
    of its own records and of its context copies (both ascending)."""

    own: Mapping[str, Sequence[int]]
    context: Mapping[str, Sequence[int]]


def shard_name(number: int) -> str:
    return f"shard-{number:04d}.json"


def _write(path: Path, document: Any) -> None:
    partial = path.with_name(path.name + ".partial")
    try:
        encoded = orjson.dumps(document)
    except orjson.JSONEncodeError:
        # An integer beyond 64 bits (the loader reads it exactly; orjson writes none).
        encoded = json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()
    partial.write_bytes(encoded)
    partial.replace(path)


def _prepare(root: Path) -> None:
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise SnapshotError(f"{root}: exists and is not an empty directory")
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SnapshotError(f"{root}: cannot create: {exc.strerror or exc}") from None


def _write_reference(root: Path, snapshot: Snapshot) -> None:
    from tsos_rules.snapshot.document import snapshot_to_dict

    empty: dict[str, Any] = dict.fromkeys(SHARDED, ())
    reference = snapshot_to_dict(attrs.evolve(snapshot, **empty))
    reference.pop("as_of", None)
    for name in SHARDED:
        reference.pop(name, None)
    _write(root / "reference.json", reference)


def _write_manifest(root: Path, as_of: dt.date | None, names: Sequence[str]) -> Manifest:
    manifest = {
        "format": FORMAT,
        "version": VERSION,
        "as_of": as_of.isoformat() if as_of else None,
        "reference": "reference.json",
        "shards": list(names),
    }
    _write(root / MANIFEST, manifest)
    return read_manifest(root)


def write_sharded(
    directory: str | os.PathLike[str], snapshot: Snapshot, layouts: Sequence[ShardLayout]
) -> Manifest:
    """Write ``snapshot`` as a sharded directory (created; it must be absent or empty), one
    shard file per layout; the manifest is written last, so a reader never sees half of one."""
    from tsos_rules.snapshot.document import CONVERTER

    root = Path(directory)
    _prepare(root)
    unstructure = CONVERTER.unstructure
    _write_reference(root, snapshot)
    names = []
    for number, layout in enumerate(layouts):
        document: dict[str, Any] = {}
        for name in SHARDED:
            records = getattr(snapshot, name)
            document[name] = [unstructure(records[i]) for i in layout.own.get(name, ())]
        document[LAYOUT] = {
            "positions": {name: list(layout.own.get(name, ())) for name in SHARDED},
            "context": {
                name: [unstructure(getattr(snapshot, name)[i]) for i in positions]
                for name, positions in layout.context.items()
                if positions
            },
            "context_positions": {
                name: list(positions) for name, positions in layout.context.items() if positions
            },
        }
        names.append(shard_name(number))
        _write(root / names[-1], document)
    return _write_manifest(root, snapshot.as_of, names)


def _write_records(out: IO[bytes], name: str, records: Iterable[bytes]) -> None:
    out.write(orjson.dumps(name) + b":[")
    for k, record in enumerate(records):
        if k:
            out.write(b",")
        out.write(record)
    out.write(b"]")


def write_sharded_json(
    directory: str | os.PathLike[str],
    reference: Snapshot,
    layouts: Sequence[ShardLayout],
    record_json: Callable[[str, int], bytes],
) -> Manifest:
    """:func:`write_sharded` from the records' JSON (``record_json(collection, position)``,
    as ``snapshot_to_dict`` writes a record) instead of a snapshot in memory: the same bytes,
    each shard written as it is assembled. ``reference``: the snapshot without its sharded
    collections."""
    root = Path(directory)
    _prepare(root)
    _write_reference(root, reference)
    names = []
    for number, layout in enumerate(layouts):
        names.append(shard_name(number))
        path = root / names[-1]
        partial = path.with_name(path.name + ".partial")
        context = [(name, positions) for name, positions in layout.context.items() if positions]
        with open(partial, "wb") as out:
            out.write(b"{")
            for name in SHARDED:
                _write_records(out, name, (record_json(name, i) for i in layout.own.get(name, ())))
                out.write(b",")
            out.write(orjson.dumps(LAYOUT) + b':{"positions":')
            out.write(orjson.dumps({name: list(layout.own.get(name, ())) for name in SHARDED}))
            out.write(b',"context":{')
            for k, (name, positions) in enumerate(context):
                if k:
                    out.write(b",")
                _write_records(out, name, (record_json(name, i) for i in positions))
            out.write(b'},"context_positions":')
            out.write(orjson.dumps({name: list(positions) for name, positions in context}))
            out.write(b"}}")
        partial.replace(path)
    return _write_manifest(root, reference.as_of, names)
