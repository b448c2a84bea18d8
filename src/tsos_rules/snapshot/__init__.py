"""Snapshots ②: the JSON document (docs/contract.md) to and from typed records, fast."""

from tsos_rules.snapshot._memory import bulk_allocation
from tsos_rules.snapshot.document import (
    RecordError,
    SnapshotError,
    load_snapshot,
    record_from_dict,
    snapshot_from_dict,
    snapshot_to_dict,
    structure_record,
)

__all__ = [
    "RecordError",
    "SnapshotError",
    "bulk_allocation",
    "load_snapshot",
    "record_from_dict",
    "snapshot_from_dict",
    "snapshot_to_dict",
    "structure_record",
]
