"""The decision log: one JSON line per decision, appended with a single ``write`` call.

An entry holds the decision id, the time, the rule versions (pack versions and a digest of the
rules, parameters and org profile), the SHA-256 of the request body, the record judged and the
verdict. It never holds the body itself (CRM data) nor any header.

It never drops an entry silently. When an append fails (disk full, file gone read-only,
directory removed) :meth:`DecisionLog.write` raises :class:`DecisionLogError`; the service then
answers 503 for the decision (``decision_log_required = true``, the default) or answers and
counts the decision as unlogged; either way ``/healthz`` reports the failure until an append
succeeds again. The next write after a failure reopens the file, so log rotation by rename
(or ``SIGHUP``, which reopens it) and a repaired disk both recover without a restart.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tsos_rules.errors import DecisionLogError as DecisionLogError


class DecisionLog:
    """Append-only JSON lines; ``fsync`` per entry when asked (durable, slower)."""

    def __init__(self, path: Path, *, fsync: bool = False) -> None:
        self.path = path
        self.fsync = fsync
        self._fd: int | None = None
        self._lock = threading.Lock()
        self.written = 0
        self.unlogged = 0
        self.last_error: str | None = None
        self.failed_at: str | None = None
        try:
            self._open()
        except OSError as exc:
            self._fail(exc)

    @property
    def ok(self) -> bool:
        return self.last_error is None

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self._fd = fd
        return fd

    def _fail(self, exc: OSError) -> None:
        self.last_error = f"{type(exc).__name__}: {exc.strerror or exc}"
        self.failed_at = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.close(self._fd)
            self._fd = None

    def write(self, entry: Mapping[str, Any]) -> None:
        """Append one entry or raise DecisionLogError (and mark the log unhealthy)."""
        line = _line(entry)
        with self._lock:
            try:
                fd = self._fd if self._fd is not None else self._open()
                written = os.write(fd, line)
                if written != len(line):
                    raise OSError(0, f"short write ({written} of {len(line)} bytes)")
                if self.fsync:
                    os.fsync(fd)
            except OSError as exc:
                self._fail(exc)
                raise DecisionLogError(self.last_error or "write failed") from None
            self.written += 1
            self.last_error = None
            self.failed_at = None

    def count_unlogged(self) -> None:
        with self._lock:
            self.unlogged += 1

    def reopen(self) -> None:
        """Close and reopen the file (after rotation); a failure is reported, not raised."""
        with self._lock:
            if self._fd is not None:
                with contextlib.suppress(OSError):
                    os.close(self._fd)
                self._fd = None
            try:
                self._open()
            except OSError as exc:
                self._fail(exc)

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None

    def status(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "path": str(self.path),
            "written": self.written,
            "unlogged": self.unlogged,
            "error": self.last_error,
            "failing_since": self.failed_at,
        }


def _line(entry: Mapping[str, Any]) -> bytes:
    """One JSON line in UTF-8; text UTF-8 cannot hold (a lone surrogate) is written escaped."""
    text = json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n"
    try:
        return text.encode()
    except UnicodeEncodeError:
        return (json.dumps(entry, separators=(",", ":")) + "\n").encode()
