"""Every error tsos-rules raises on purpose, grouped by what the caller should do about it.

- fix the configuration: :class:`ConfigError`;
- fix the document or request: :class:`InputError` (a pack, a snapshot, a change, a signature);
- the CRM failed: :class:`FatalConnectorError` (stop), :class:`RetriableConnectorError` (retry);
- skip one record and report it: :class:`SkippableRecordError`;
- a file tsos-rules keeps is unusable: :class:`StorageError` (the state, the decision log);
- wait for the other run: :class:`LockHeldError`.

A stale write is not an error: the connector answers it with ``ActionStatus.STALE``.
"""

from __future__ import annotations

import enum
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol


class TsosRulesError(Exception):
    """Root of every error tsos-rules raises on purpose."""


# -- fix the configuration --------------------------------------------------------------------


class ConfigError(TsosRulesError):
    """The configuration cannot be used: fix the config file or the arguments.

    Raised by :class:`tsos_rules.config.Settings`, it knows the ``file`` (when there is one),
    the ``table`` (``sync``, ``connector.retry``) and the ``key``, and its message names them
    as ``FILE: TABLE.KEY: problem``.
    """

    def __init__(
        self,
        message: str,
        *,
        file: str | Path | None = None,
        table: str | None = None,
        key: str | None = None,
    ) -> None:
        self.file = None if file is None else str(file)
        self.table = table
        self.key = key
        self.problem = message
        super().__init__(message if self.file is None else f"{self.file}: {message}")

    def in_file(self, file: str | Path | None) -> ConfigError:
        """This error naming ``file`` (unchanged when it already names one, or no file)."""
        if self.file is not None or file is None:
            return self
        return ConfigError(self.problem, file=file, table=self.table, key=self.key)


# -- fix the document or the request ----------------------------------------------------------


class InputError(TsosRulesError):
    """A document (snapshot, change, pack) cannot be used: its message names where and why."""


class PackValidationError(InputError):
    """A rule pack was refused before loading; the message names the rule and the key."""


class RecordProblem(Protocol):
    """Why one record of a document could not be used (see ``snapshot.document.RecordError``)."""

    @property
    def collection(self) -> str: ...

    @property
    def index(self) -> int: ...

    @property
    def record_id(self) -> str | None: ...

    @property
    def field(self) -> str | None: ...

    @property
    def problem(self) -> str: ...


class SnapshotError(InputError):
    """A snapshot document that cannot be used; ``errors`` holds every bad record found."""

    def __init__(self, message: str, errors: Iterable[RecordProblem] = ()) -> None:
        super().__init__(message)
        self.errors = tuple(errors)


class ChangeError(InputError):
    """A change that cannot be judged; ``field`` is the dotted path of the offending value."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


class SignatureProblem(InputError):
    """Why a signed request was refused by its verifier (said in the 401 answer, never a secret)."""


# -- the CRM failed ---------------------------------------------------------------------------


class ConnectorError(TsosRulesError):
    """A CRM connector failed."""


class FatalConnectorError(ConnectorError):
    """The connector cannot go on (bad credentials, missing permission, budget spent)."""


class RetriableConnectorError(ConnectorError):
    """A transient failure: the same call may succeed later."""


class ExecutorError(ConnectorError):
    """A partition failed twice (its worker died, or the Dask cluster cannot be reached): the
    run fails whole with exit 3, never a partial answer."""


# -- skip the record --------------------------------------------------------------------------


class SkippableRecordError(TsosRulesError):
    """One record cannot be used; the run skips it and reports it."""

    def __init__(self, record_type: str, record_id: str, field: str, reason: str) -> None:
        self.record_type = record_type
        self.record_id = record_id
        self.field = field
        self.reason = reason
        super().__init__(f"{record_type} {record_id}: {field}: {reason}")


# -- a file tsos-rules keeps is unusable, or busy -----------------------------------------------


class StorageError(TsosRulesError):
    """A file tsos-rules keeps cannot be used: fix the disk, the permissions or the file."""


class StateError(StorageError):
    """The state file cannot be used (unreadable, not a state file, or from a newer version)."""


class DecisionLogError(StorageError):
    """A decision could not be appended to the in-line service's decision log."""


class LockHeldError(TsosRulesError):
    """Another sync run holds the lock on this state file; this run did nothing: try later."""


# -- deprecated ---------------------------------------------------------------------------


class _StaleRecordError(ConnectorError):
    """Deprecated: a stale write is reported as ``ActionStatus.STALE``, never raised."""


_DEPRECATED = {"StaleRecordError": _StaleRecordError}


def deprecated(name: str) -> type[TsosRulesError] | None:
    """A deprecated error class by name, with its warning (for modules' ``__getattr__``)."""
    cls = _DEPRECATED.get(name)
    if cls is not None:
        warnings.warn(
            f"tsos_rules.{name} is deprecated: a stale write is the per-item result "
            "ActionStatus.STALE (tsos_rules.connectors.base), never an exception",
            DeprecationWarning,
            stacklevel=3,
        )
    return cls


def __getattr__(name: str) -> object:
    cls = deprecated(name)
    if cls is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return cls


# -- exit codes ------------------------------------------------------------------------------


class ExitCode(enum.IntEnum):
    """What a ``tsos-rules`` exit status means; the numbers never change, so scripts can trust
    them. Each member's ``meaning`` (also its ``__doc__``) is the line the sync summary prints.
    ``check`` uses 0-4; ``sync`` adds 5 and 6 (when several apply, 3 wins over 5 over 1)."""

    meaning: str

    def __new__(cls, value: int, meaning: str) -> ExitCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        member.__doc__ = meaning
        return member

    OK = 0, "clean: no block finding is open"
    BLOCK = 1, "block findings are open"
    INPUT = 2, "configuration or input error: nothing was synced"
    CONNECTOR = 3, "connector failure (or CRM writes refused or still pending)"
    INTERNAL = 4, "internal error: a bug (re-run with TSOS_RULES_DEBUG=1 and report it)"
    SKIPPED = 5, "some records could not be read and were skipped"
    LOCKED = 6, "another sync run holds the lock: nothing was done"
