"""Where accepted HubSpot signatures are remembered, so a replay inside the window is refused.

:class:`ReplayStore` is a SQLite file (WAL mode, the signature as primary key): every process
that opens the same file shares it, so a replay is refused after a restart and by any other
instance on the same host or shared volume. A claim is one ``INSERT``: of two concurrent
identical requests, in one process or several, exactly one wins. :class:`ReplayCache` is the
in-memory variant (one process only) for a service whose decision log has no directory.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import OrderedDict
from pathlib import Path
from typing import Final, Protocol

__all__ = ["ReplayCache", "ReplayStore", "ReplayStoreError", "Replays"]

#: How often (seconds) expired signatures are deleted from the store.
_PRUNE_EVERY: Final = 30.0


class ReplayStoreError(Exception):
    """The store cannot be read or written: signed requests are refused (never admitted)."""


class Replays(Protocol):
    """Remembers accepted signatures until their window has passed."""

    def claim(self, signature: str, expires_at: float, now: float) -> bool:
        """Remember ``signature``; False when it is remembered already (a replay)."""

    def release(self, signature: str) -> None:
        """Forget ``signature`` (its request got no decision and may be retried)."""


class ReplayStore:
    """Accepted signatures in a SQLite file shared by every instance that opens it."""

    def __init__(self, path: Path, *, busy_timeout: float = 5.0) -> None:
        self.path = path
        self._busy_timeout = busy_timeout
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()
        self._pruned_at = 0.0

    def _connect(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(
                self.path,
                timeout=self._busy_timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            try:
                self._set_up(db)
            except sqlite3.Error:
                db.close()
                raise
            self._db = db
        return self._db

    def _set_up(self, db: sqlite3.Connection) -> None:
        """WAL mode and the table. Instances starting together may find the new file locked
        without SQLite waiting (switching to WAL does not use the busy handler): retry."""
        deadline = time.monotonic() + self._busy_timeout
        while True:
            try:
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
                db.execute(
                    "CREATE TABLE IF NOT EXISTS hubspot_signatures ("
                    " signature TEXT PRIMARY KEY, expires_at REAL NOT NULL) WITHOUT ROWID"
                )
                db.execute(
                    "CREATE INDEX IF NOT EXISTS hubspot_signatures_expiry"
                    " ON hubspot_signatures (expires_at)"
                )
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def claim(self, signature: str, expires_at: float, now: float) -> bool:
        with self._lock:
            try:
                db = self._connect()
                if now - self._pruned_at >= _PRUNE_EVERY:
                    db.execute("DELETE FROM hubspot_signatures WHERE expires_at <= ?", (now,))
                    self._pruned_at = now
                # An expired row (not yet pruned) may be claimed again; a live one may not.
                cursor = db.execute(
                    "INSERT INTO hubspot_signatures (signature, expires_at) VALUES (?, ?)"
                    " ON CONFLICT (signature) DO UPDATE SET expires_at = excluded.expires_at"
                    " WHERE hubspot_signatures.expires_at <= ?",
                    (signature, expires_at, now),
                )
                return cursor.rowcount == 1
            except (sqlite3.Error, OSError) as exc:
                self._drop()
                raise ReplayStoreError(f"{self.path}: {exc}") from None

    def release(self, signature: str) -> None:
        with self._lock:
            try:
                self._connect().execute(
                    "DELETE FROM hubspot_signatures WHERE signature = ?", (signature,)
                )
            except (sqlite3.Error, OSError) as exc:
                self._drop()
                raise ReplayStoreError(f"{self.path}: {exc}") from None

    def __len__(self) -> int:
        with self._lock:
            now = time.time()
            row = self._connect().execute(
                "SELECT count(*) FROM hubspot_signatures WHERE expires_at > ?", (now,)
            )
            return int(row.fetchone()[0])

    def _drop(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def close(self) -> None:
        with self._lock:
            self._drop()


class ReplayCache:
    """Signatures accepted within the timestamp window, in this process's memory; bounded.

    Only entries whose window has passed are dropped; when the cache is full a claim raises
    :class:`ReplayStoreError` (the request is refused) rather than forget a live signature.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def claim(self, signature: str, expires_at: float, now: float) -> bool:
        with self._lock:
            self._expire(now)
            if signature in self._seen:
                return False
            if len(self._seen) >= self._max:
                raise ReplayStoreError("too many signed requests in the last 5 minutes")
            self._seen[signature] = expires_at
            return True

    def release(self, signature: str) -> None:
        with self._lock:
            self._seen.pop(signature, None)

    def _expire(self, now: float) -> None:
        seen = self._seen
        while seen:
            key, expires = next(iter(seen.items()))
            if expires > now:
                break
            del seen[key]

    def __len__(self) -> int:
        return len(self._seen)
