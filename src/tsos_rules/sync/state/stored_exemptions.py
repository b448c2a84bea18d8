"""The exemptions ``tsos-rules exempt add`` stored, read by ``check`` and in-line without
touching the state store: no state file is created, none is migrated, no row is written.

The file is opened read-only (a ``mode=ro`` SQLite URI). It is in WAL mode, so SQLite reads
it through its ``-wal`` and ``-shm`` files, creating them when absent (the folder must be
writable) and leaving them, empty, for the next sync to remove. A missing file, or one from
before the exemption columns, holds no exemption; one that cannot be read (damaged, no
access) is named in one warning and holds none either. In-line reads through
:class:`StoredExemptions`, a cache refreshed at most every ``[serve]
exemptions_refresh_seconds``, so a judged change costs no I/O.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from tsos_rules.policy.exemptions import Exemption
from tsos_rules.sync.state import exemptions as _stored

log = logging.getLogger("tsos_rules.sync")

#: How long in-line reuses what it read (``[serve] exemptions_refresh_seconds``).
REFRESH_SECONDS: Final = 30.0
#: How long a read waits for a sync's write to finish before keeping what it had.
_BUSY_SECONDS: Final = 1.0

Warn = Callable[[str], None]


def _read(path: Path, connector: str, since: dt.date) -> list[Exemption]:
    """The stored active exemptions; raises ``sqlite3.Error`` (or ``ValueError`` for a bad
    date) when the file cannot be read."""
    if not path.is_file():
        return []
    uri = f"{path.resolve().as_uri()}?mode=ro"
    db = sqlite3.connect(uri, uri=True, timeout=_BUSY_SECONDS, isolation_level=None)
    try:
        db.row_factory = sqlite3.Row
        columns = {row["name"] for row in db.execute("PRAGMA table_info(exemptions)")}
        if not columns >= _stored.COLUMNS:
            return []  # a state file from before exemptions (a sync migrates it)
        return [e.policy() for e in _stored.added_active(db, connector, since)]
    finally:
        db.close()


def _unreadable(path: Path, exc: Exception) -> str:
    if _busy(exc):
        return (
            f"{path}: the state file stayed locked for {_BUSY_SECONDS:g} s (a sync is "
            "writing); the exemptions added with 'tsos-rules exempt add' were not read this time"
        )
    return (
        f"{path}: the state file's exemptions cannot be read ({exc}); those added with "
        "'tsos-rules exempt add' are not honoured until it is repaired (see docs/operate.md)"
    )


def _busy(exc: Exception) -> bool:
    return isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc)


def read_active(
    path: Path, connector: str, since: dt.date, *, warn: Warn = log.warning
) -> list[Exemption]:
    """The active ``exempt add`` exemptions of ``connector`` in the state file at ``path``
    holding on ``since`` or later; [] (and one ``warn``, naming the file) when it is unusable."""
    try:
        return _read(path, connector, since)
    except (sqlite3.Error, ValueError) as exc:
        warn(_unreadable(path, exc))
        return []


class StoredExemptions:
    """The stored exemptions of one connector, read again at most every ``refresh_seconds``
    (0: on every call). Thread-safe; a call within the refresh window does no I/O."""

    def __init__(
        self,
        path: Path,
        connector: str,
        *,
        refresh_seconds: float = REFRESH_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        warn: Warn = log.warning,
    ) -> None:
        self.path = path
        self.connector = connector
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._warn = warn
        self._lock = threading.Lock()
        self._held: tuple[Exemption, ...] = ()
        self._fresh_until = -math.inf
        self._warned: str | None = None

    def __call__(self) -> tuple[Exemption, ...]:
        if self._clock() < self._fresh_until:
            return self._held
        with self._lock:
            now = self._clock()
            if now >= self._fresh_until:
                self._held = self._load()
                self._fresh_until = now + self.refresh_seconds
            return self._held

    def _load(self) -> tuple[Exemption, ...]:
        # A day's margin: the judged date is the org's today, which may be local yesterday;
        # the matching drops what has expired on the judged date.
        since = dt.date.today() - dt.timedelta(days=1)
        try:
            found = tuple(_read(self.path, self.connector, since))
        except (sqlite3.Error, ValueError) as exc:
            message = _unreadable(self.path, exc)
            if message != self._warned:  # once, not on every refresh
                self._warned = message
                self._warn(message)
            return self._held if _busy(exc) else ()
        self._warned = None
        return found
