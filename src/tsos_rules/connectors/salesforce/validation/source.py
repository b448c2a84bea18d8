"""What the compilers read: the same ``[org]``, ``[packs]`` and ``[connector]`` tables a sync uses.

Only the mapping parts of ``[connector]`` are read (fields, stages, values, users, approvals,
the waiver fields of ``exemptions``),
so validation rules can be generated from a config without credentials.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from tsos_rules.config import Config, SettingsTable
from tsos_rules.connectors.salesforce.mapping import FieldMapping
from tsos_rules.connectors.salesforce.settings import ApprovalSettings
from tsos_rules.connectors.salesforce.validation.exemptions import ExemptionFields
from tsos_rules.engine import Engine
from tsos_rules.errors import ConfigError
from tsos_rules.org import OrgProfile
from tsos_rules.rules.spec import RuleSpec


@attrs.frozen
class ValidationSource:
    """The org profile, the field mapping, the approval field and the enabled tsos rules."""

    org: OrgProfile
    mapping: FieldMapping
    specs: Mapping[str, RuleSpec]
    parameters: Mapping[str, Any]
    approval_field: str | None = None
    approval_source: str | None = None
    #: ``[connector.exemptions]``: the deal's own waiver fields (None = not mapped).
    exemptions: ExemptionFields | None = None

    @classmethod
    def from_config(cls, config: Config) -> ValidationSource:
        connector = SettingsTable(config.connector, "connector")
        kind = connector.string("type", "salesforce")
        if kind != "salesforce":
            raise ConfigError(
                f"connector.type: validation rules are generated for 'salesforce', got {kind!r}"
            )
        mapping = FieldMapping.parse(
            connector.table("fields"),
            connector.table("stages"),
            connector.table("lead_statuses"),
            connector.table("values"),
            connector.table("extra_fields"),
            connector.table("users"),
        )
        approvals = ApprovalSettings.parse(connector.table("approvals"))
        exemptions = ExemptionFields.parse(connector.table("exemptions"), config.exemption_max_days)
        engine = Engine.from_config(config)
        try:
            specs = {rule_id: spec for rule_id, spec in engine.specs.items()}
            parameters = dict(engine.parameters.get("tsos", {}))
        finally:
            engine.close()
        return cls(
            org=config.org,
            mapping=mapping,
            specs=specs,
            parameters=parameters,
            approval_field=approvals.field if approvals.source == "field" else None,
            approval_source=approvals.source,
            exemptions=exemptions,
        )

    def field(self, key: str) -> str | None:
        """The Salesforce field of a doctrine field, or None when the mapping switches it off."""
        return self.mapping.sf(key)
