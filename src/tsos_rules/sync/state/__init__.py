"""The sync job's state store (SQLite): watermarks, every finding's lifecycle, and the run log.

Schema changes are numbered migrations recorded in ``PRAGMA user_version``: an older state file
is upgraded in place, a newer one is refused rather than misread. A run holds an OS file lock
(``flock``) next to the state file, which the kernel releases when the process dies, even by
``kill -9``, so a crashed run can never leave the job locked.

Writes are journalled ahead: before a batch's actions go to the CRM they are committed here as
*pending* (``pending_writes``), and the commit that records their outcomes settles them. Entries
still pending at the start of a run were left by a run that died between the two; the job
settles them against what the new run finds (see ``sync.job._Job._recover``).

``store`` holds :class:`StateStore` and its records, ``lock`` the run lock, ``migrations`` the
schema.
"""

from tsos_rules.errors import LockHeldError, StateError
from tsos_rules.sync.state.lock import RunLock
from tsos_rules.sync.state.migrations import MIGRATIONS, SCHEMA_VERSION
from tsos_rules.sync.state.store import (
    Cursor,
    FindingState,
    OwnerTally,
    PendingWrite,
    Pruned,
    Push,
    SeenFinding,
    StateStore,
    lock_path_for,
)

__all__ = [
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "Cursor",
    "FindingState",
    "LockHeldError",
    "OwnerTally",
    "PendingWrite",
    "Pruned",
    "Push",
    "RunLock",
    "SeenFinding",
    "StateError",
    "StateStore",
    "lock_path_for",
]
