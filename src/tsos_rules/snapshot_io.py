"""Deprecated: moved to :mod:`tsos_rules.snapshot` (kept for one release)."""

import warnings

from tsos_rules.snapshot.document import *  # noqa: F403
from tsos_rules.snapshot.document import (
    RecordError,
    SnapshotError,
    load_snapshot,
    record_from_dict,
    snapshot_from_dict,
    snapshot_to_dict,
    structure_record,
)

warnings.warn(
    "tsos_rules.snapshot_io is deprecated; import from tsos_rules.snapshot",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = [
    "RecordError",
    "SnapshotError",
    "load_snapshot",
    "record_from_dict",
    "snapshot_from_dict",
    "snapshot_to_dict",
    "structure_record",
]


def __getattr__(name: str) -> object:
    """``CONVERTER``, built on first use (:func:`tsos_rules.snapshot.document.converter`)."""
    if name == "CONVERTER":
        from tsos_rules.snapshot.document import converter

        return converter()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
