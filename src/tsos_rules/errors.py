"""The project's error types, grouped by what the caller should do about them."""

from __future__ import annotations


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
