"""The project's error types, grouped by what the caller should do about them."""

from __future__ import annotations

import enum


class TsosRulesError(Exception):
    """Root of every error tsos-rules raises on purpose."""


class ConfigError(TsosRulesError):
    """The configuration cannot be used: fix the config file or the arguments."""


class InputError(TsosRulesError):
    """A document (snapshot, change, pack) cannot be used: its message names where and why."""


class PackValidationError(InputError):
    """A rule pack was refused before loading; the message names the rule and the key."""


class ConnectorError(TsosRulesError):
    """A CRM connector failed."""


class FatalConnectorError(ConnectorError):
    """The connector cannot go on (bad credentials, missing permission, budget spent)."""


class RetriableConnectorError(ConnectorError):
    """A transient failure: the same call may succeed later."""


class StaleRecordError(ConnectorError):
    """A write was refused because the record changed since it was read."""


class SkippableRecordError(TsosRulesError):
    """One record cannot be used; the run skips it and reports it."""

    def __init__(self, record_type: str, record_id: str, field: str, reason: str) -> None:
        self.record_type = record_type
        self.record_id = record_id
        self.field = field
        self.reason = reason
        super().__init__(f"{record_type} {record_id}: {field}: {reason}")


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
    CONNECTOR = 3, "connector failure (or the CRM refused some writes)"
    INTERNAL = 4, "internal error: a bug (re-run with TSOS_RULES_DEBUG=1 and report it)"
    SKIPPED = 5, "some records could not be read and were skipped"
    LOCKED = 6, "another sync run holds the lock: nothing was done"
