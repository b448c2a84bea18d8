"""The OpenAPI 3.1 document of the in-line service, generated from the model it validates with.

Record schemas come from :mod:`tsos_rules.snapshot.schema` (derived from the attrs classes the
loader structures into), so the document cannot drift from what ``/v1/check`` accepts.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any, Final

from tsos_rules.connectors.inline import InlineAdapter
from tsos_rules.model import COLLECTIONS, EXEMPTION_RECORD_TYPES, CrmExemption, PartnerConsent
from tsos_rules.snapshot.change import NUMBER_LIMIT, RECORD_TYPES
from tsos_rules.snapshot.schema import DATE, DATETIME, OPENAPI_REFS, nullable, record_schema


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"{OPENAPI_REFS}{name}"}


def _error_response(text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": _ref("Error")}}}


def _decision_response() -> dict[str, Any]:
    return {
        "description": "The verdict: allowed is false exactly when a finding is a block.",
        "content": {"application/json": {"schema": _ref("Decision")}},
    }


def _check_responses(auth: str) -> dict[str, Any]:
    return {
        "200": _decision_response(),
        "400": _error_response("A malformed body; error.field names the offending field."),
        "401": _error_response(auth),
        "408": _error_response("The body did not arrive within the body timeout."),
        "413": _error_response("The body is larger than the configured limit."),
        "503": _error_response(
            "The decision could not be written to the decision log (fail closed)."
        ),
    }


#: Years 2 to 9998: the loader refuses 1 and 9999 (a time-zone shift would overflow them).
_YEAR: Final = r"(000[2-9]|00[1-9]\d|0[1-9]\d{2}|[1-8]\d{3}|9[0-8]\d{2}|99[0-8]\d|999[0-8])"
_IN_RANGE: Final = {
    DATE["pattern"]: "^" + _YEAR + DATE["pattern"].removeprefix(r"^\d{4}"),
    DATETIME["pattern"]: "^"
    + _YEAR
    + DATETIME["pattern"]
    .removeprefix(r"^\d{4}")
    .replace(r"[+-]\d{2}:?\d{2}", r"[+-]([01]\d|2[0-3]):?[0-5]\d"),
}


def _years_in_range(node: Any) -> None:
    """Every date and timestamp pattern in the document limited to what the server takes:
    years 2 to 9998, offsets under 24 hours."""
    if isinstance(node, dict):
        pattern = node.get("pattern")
        if isinstance(pattern, str) and pattern in _IN_RANGE:
            node["pattern"] = _IN_RANGE[pattern]
        for child in node.values():
            _years_in_range(child)
    elif isinstance(node, list):
        for child in node:
            _years_in_range(child)


def _bounded(schema: dict[str, Any]) -> dict[str, Any]:
    """A record schema whose number fields say the server's bound (NUMBER_LIMIT)."""
    for prop in schema.get("properties", {}).values():
        kinds = prop.get("type")
        if kinds == "number" or (isinstance(kinds, list) and "number" in kinds):
            prop["minimum"] = -NUMBER_LIMIT
            prop["maximum"] = NUMBER_LIMIT
    return schema


def _adapter_path(adapter: InlineAdapter) -> dict[str, Any]:
    """``POST /v1/<name>/check`` of one in-line adapter."""
    operation: dict[str, Any] = {
        "operationId": adapter.operation_id or f"check-{adapter.name}",
        "summary": adapter.summary or f"Judge a change sent by {adapter.name}.",
        "security": [*({name: []} for name in adapter.security_schemes), {"bearer": []}],
    }
    if adapter.request_schema is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _ref(adapter.request_schema)}},
        }
    operation["responses"] = _check_responses(adapter.unauthorized)
    return {"post": operation}


def build_openapi(
    *, max_body_bytes: int, version: str, adapters: Sequence[InlineAdapter] = ()
) -> dict[str, Any]:
    """The service's OpenAPI document, with a path for each registered in-line adapter."""
    schemas: dict[str, Any] = {}
    for _, _, cls in COLLECTIONS:
        schemas[cls.__name__] = _bounded(record_schema(cls))
    schemas["PartnerConsent"] = record_schema(PartnerConsent)
    schemas["CrmExemption"] = _bounded(record_schema(CrmExemption))
    waiver = schemas["CrmExemption"]["properties"]
    waiver["record_type"]["enum"] = list(EXEMPTION_RECORD_TYPES)
    waiver["record_id"]["minLength"] = 1
    opportunity = schemas["Opportunity"]
    opportunity["properties"]["close_date_approved_by"] = {
        "type": ["string", "null"],
        "description": (
            "In-line only: who approved this change's close-date move. It counts only when set "
            "by this change (it differs from the before record's value)."
        ),
    }
    schemas["Context"] = {
        "type": "object",
        "description": (
            "A subset of a snapshot: the records related to the change. Ids are unique within "
            "each collection (a repeated id is a 400 naming both positions)."
        ),
        "properties": {
            "as_of": nullable(dict(DATE)),
            **{
                plural: {"type": ["array", "null"], "items": _ref(cls.__name__)}
                for plural, _, cls in COLLECTIONS
            },
            "exemptions": {
                "type": ["array", "null"],
                "items": _ref("CrmExemption"),
                "description": (
                    "Waivers held in a CRM field on the records (optional): a finding they "
                    "cover is listed as exempt and does not refuse the change."
                ),
            },
        },
        "additionalProperties": True,
    }
    variants = []
    for record_type, (cls, _) in RECORD_TYPES.items():
        name = f"{cls.__name__}Change"
        schemas[name] = {
            "type": "object",
            "required": ["record_type"],
            "properties": {
                "record_type": {"type": "string", "enum": [record_type]},
                "before": nullable(_ref(cls.__name__)),
                "after": nullable(_ref(cls.__name__)),
            },
            # Not both null (or absent): a change with neither record is about nothing.
            "anyOf": [
                {"required": [side], "properties": {side: {"type": "object"}}}
                for side in ("before", "after")
            ],
            "description": (
                "before null: a create; after null: a delete; not both null (a 400). When both "
                "are given they carry the same id."
            ),
        }
        variants.append(_ref(name))
    schemas["Change"] = {"oneOf": variants}
    schemas["CheckRequest"] = {
        "type": "object",
        "required": ["change"],
        "properties": {
            "change": _ref("Change"),
            "context": nullable(_ref("Context")),
            "as_of": nullable(dict(DATE)),
            "include_info": {"type": "boolean", "default": False},
        },
    }
    schemas["Finding"] = {
        "type": "object",
        "required": [
            "rule",
            "severity",
            "record_type",
            "record_id",
            "reason",
            "message",
            "doctrine",
        ],
        "properties": {
            "rule": {"type": "string"},
            "severity": {"type": "string", "enum": ["block", "warn", "info"]},
            "record_type": {"type": "string"},
            "record_id": {"type": "string"},
            "reason": {"type": "string"},
            "message": {"type": "string"},
            "doctrine": {"type": "string"},
            "details": {"type": "object"},
            "status": {
                "type": "string",
                "enum": ["exempt", "shadow"],
                "description": (
                    "Present when the finding does not count: exempt (an exemption waives it) "
                    "or shadow (its rule is in shadow mode). Neither refuses the change."
                ),
            },
            "exemption": _ref("ExemptionRef"),
        },
    }
    schemas["ExemptionRef"] = {
        "type": "object",
        "required": ["id", "source", "reason", "approver", "expires"],
        "properties": {
            "id": {"type": "string"},
            "source": {"type": "string", "enum": ["state", "config", "crm"]},
            "reason": {"type": "string"},
            "approver": {"type": "string"},
            "expires": dict(DATE),
        },
    }
    schemas["Waived"] = {
        "type": "object",
        "required": ["rule", "reason", "severity", "status"],
        "properties": {
            "rule": {"type": "string"},
            "reason": {"type": "string"},
            "severity": {"type": "string", "enum": ["block", "warn", "info"]},
            "status": {"type": "string", "enum": ["exempt", "shadow"]},
            "exemption": _ref("ExemptionRef"),
        },
    }
    schemas["Decision"] = {
        "type": "object",
        "required": ["allowed", "findings", "decision_id"],
        "properties": {
            "allowed": {"type": "boolean"},
            "findings": {"type": "array", "items": _ref("Finding")},
            "exempt": {
                "type": "array",
                "items": _ref("Waived"),
                "description": "The findings an exemption waives (present when any).",
            },
            "shadow": {
                "type": "array",
                "items": _ref("Waived"),
                "description": "The findings of rules in shadow mode (present when any).",
            },
            "decision_id": {"type": "string", "description": "The decision log entry's id."},
            "message": {
                "type": "string",
                "description": "The block findings' messages in one line (CRM adapters only).",
            },
        },
    }
    schemas["Error"] = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "field": {"type": ["string", "null"]},
                },
            }
        },
    }
    schemas["Health"] = {
        "type": "object",
        "properties": {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "decision_log": {"type": "object"},
            "rules": {"type": "object"},
        },
    }
    for adapter in adapters:
        schemas.update(copy.deepcopy(dict(adapter.schemas)))
    _years_in_range(schemas)
    bearer = "Missing or wrong bearer token."
    body_note = f" Bodies larger than {max_body_bytes} bytes are refused with 413."
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tsos-rules in-line check",
            "version": version,
            "description": (
                "Judge one CRM change before it is saved, by the rules a sync uses." + body_note
            ),
        },
        "paths": {
            "/v1/check": {
                "post": {
                    "operationId": "check",
                    "summary": "Judge one change (docs/contract.md's body).",
                    "security": [{"bearer": []}],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _ref("CheckRequest")}},
                    },
                    "responses": _check_responses(bearer),
                }
            },
            **{adapter.path: _adapter_path(adapter) for adapter in adapters},
            "/v1/admin/reload": {
                "post": {
                    "operationId": "reload",
                    "summary": "Reload the rules; a pack or config that fails validation is "
                    "refused and the old rules keep serving.",
                    "security": [{"bearer": []}],
                    "responses": {
                        "200": {"description": "Reloaded.", "content": {"application/json": {}}},
                        "401": _error_response(bearer),
                        "422": _error_response("Refused: the old rules keep serving."),
                    },
                }
            },
            "/healthz": {
                "get": {
                    "operationId": "health",
                    "summary": "Liveness, the decision log's state and the rules loaded.",
                    "security": [],
                    "responses": {
                        "200": {
                            "description": "Healthy.",
                            "content": {"application/json": {"schema": _ref("Health")}},
                        },
                        "503": {
                            "description": "Degraded: the decision log cannot be written.",
                            "content": {"application/json": {"schema": _ref("Health")}},
                        },
                    },
                }
            },
        },
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                **{
                    name: scheme
                    for adapter in adapters
                    for name, scheme in adapter.security_schemes.items()
                },
            },
        },
    }
