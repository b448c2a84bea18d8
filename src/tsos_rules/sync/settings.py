"""The sync's settings: the ``[sync]``, ``[state]`` and ``[connector]`` tables, typed.

The tables are read by :mod:`tsos_rules.config` (the one reader, so that every command refuses
the same mistakes when it loads the config); this module turns them into :class:`SyncSettings`.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from tsos_rules.config import (
    DEFAULT_HISTORY_DAYS,
    Config,
    SettingsTable,
    connector_type,
    default_state_path,
    read_state_table,
    read_sync_table,
)
from tsos_rules.errors import ConfigError
from tsos_rules.findings import Severity
from tsos_rules.policy.rollout import Mode, ModePolicy

DEFAULT_BATCH_SIZE = 500


@attrs.frozen
class SyncSettings:
    """The ``[sync]``, ``[state]`` and ``[connector]`` tables, validated; an error names the
    file, the table and the key."""

    mode: Mode = Mode.ANNOTATE
    #: Each rule's mode: ``[rules.rollout]`` over the deprecated ``[sync.rule_modes]``.
    rule_modes: Mapping[str, Mode] = attrs.field(factory=dict)
    #: The overrides that come from ``[sync.rule_modes]`` (errors name that table).
    legacy_rule_modes: frozenset[str] = frozenset()
    batch_size: int = DEFAULT_BATCH_SIZE
    daily_full: bool = True
    include_info: bool = False
    task_min_severity: Severity = Severity.WARN
    write_retries: int = 3
    #: Days of run log and resolved findings kept; older ones are pruned at the end of a sync.
    history_days: int = DEFAULT_HISTORY_DAYS
    state_path: Path = attrs.field(factory=default_state_path)
    connector_type: str = "local"
    connector_settings: Mapping[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_config(cls, config: Config) -> SyncSettings:
        file = config.path
        values = read_sync_table(SettingsTable(config.sync, "sync", file=file))
        if "mode" in values:
            values["mode"] = Mode(values["mode"])
        legacy = values["rule_modes"]
        values["rule_modes"] = {
            rule: Mode(mode) for rule, mode in {**legacy, **config.rollout}.items()
        }
        values["legacy_rule_modes"] = frozenset(legacy) - frozenset(config.rollout)
        state_path = read_state_table(SettingsTable(config.state, "state", file=file))
        if state_path is not None:
            values["state_path"] = state_path
        connector = SettingsTable(config.connector, "connector", file=file)
        return cls(
            connector_type=connector_type(connector),
            connector_settings=dict(connector.data),
            **values,
        )

    @property
    def policy(self) -> ModePolicy:
        sources = {rule: "sync.rule_modes" for rule in self.legacy_rule_modes}
        return ModePolicy(self.mode, self.rule_modes, sources=sources)


def parse_mode(value: Any, where: str) -> Mode:
    """A mode given outside the config (``--mode``), checked like ``[sync] mode``."""
    try:
        return Mode(value)
    except ValueError:
        raise ConfigError(
            f"{where}: expected report, annotate or enforce (or shadow), got {value!r}"
        ) from None
