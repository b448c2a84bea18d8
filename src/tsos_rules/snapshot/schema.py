"""JSON Schemas derived from the model's attrs classes: one source for the snapshot's shape.

The shipped ``schemas/snapshot.schema.json`` and the in-line service's OpenAPI document are both
built here, so neither can drift from what the loader accepts: a field's JSON type,
nullability, enumeration and date format come from its annotation.
"""

from __future__ import annotations

import datetime as dt
import enum
import types
import typing
from typing import Any, Final

import attrs

from tsos_rules.model import COLLECTIONS, EXEMPTION_RECORD_TYPES, CrmExemption, PartnerConsent

DATE: Final = {"type": "string", "format": "date", "pattern": r"^\d{4}-\d{2}-\d{2}$"}
DATETIME: Final = {
    "type": "string",
    "format": "date-time",
    "pattern": r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})$",
    "description": "ISO 8601 with an offset, e.g. 2026-11-20T10:00:00+00:00",
}
#: Where named record schemas live: OpenAPI's components, or a JSON Schema's ``$defs``.
OPENAPI_REFS: Final = "#/components/schemas/"
JSON_SCHEMA_REFS: Final = "#/$defs/"

SNAPSHOT_SCHEMA_ID: Final = "https://tsos-rules.dev/schemas/snapshot.schema.json"


def nullable(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema, or JSON null."""
    if "$ref" in schema:
        return {"anyOf": [schema, {"type": "null"}]}
    out = dict(schema)
    kind: str | list[str] = out["type"]
    out["type"] = [kind, "null"] if isinstance(kind, str) else [*kind, "null"]
    if "enum" in out:
        out["enum"] = [*out["enum"], None]
    return out


def schema_for(tp: Any, refs: str = OPENAPI_REFS) -> dict[str, Any]:
    """The JSON schema of one annotation; attrs classes become references under ``refs``."""
    args = typing.get_args(tp)
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        assert len(rest) == 1, tp
        return nullable(schema_for(rest[0], refs))
    if origin is tuple:
        return {"type": "array", "items": schema_for(args[0], refs)}
    if tp is str:
        return {"type": "string"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is dt.datetime:
        return dict(DATETIME)
    if tp is dt.date:
        return dict(DATE)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return {"type": "string", "enum": [member.value for member in tp]}
    if attrs.has(tp):
        return {"$ref": f"{refs}{tp.__name__}"}
    raise TypeError(f"no JSON schema for {tp!r}")


def record_schema(
    cls: type[Any], *, extra: bool = True, refs: str = OPENAPI_REFS
) -> dict[str, Any]:
    """The JSON schema of one model record: its fields, and unknown keys allowed (kept)."""
    properties: dict[str, Any] = {}
    required: list[str] = []
    for field in attrs.fields(cls):
        if field.name == "extra":
            continue
        properties[field.name] = schema_for(field.type, refs)
        if field.default is attrs.NOTHING:
            required.append(field.name)
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    schema["additionalProperties"] = extra
    if cls.__doc__:
        schema["description"] = " ".join(cls.__doc__.split())
    return schema


def snapshot_schema() -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a whole snapshot document (docs/contract.md)."""
    defs = {
        cls.__name__: record_schema(cls, refs=JSON_SCHEMA_REFS)
        for cls in (*(cls for _, _, cls in COLLECTIONS), PartnerConsent, CrmExemption)
    }
    waiver = defs[CrmExemption.__name__]["properties"]
    waiver["record_type"]["enum"] = list(EXEMPTION_RECORD_TYPES)
    waiver["record_id"]["minLength"] = 1
    properties: dict[str, Any] = {"as_of": nullable(dict(DATE))}
    for plural, _, cls in COLLECTIONS:
        properties[plural] = nullable(
            {"type": "array", "items": {"$ref": f"{JSON_SCHEMA_REFS}{cls.__name__}"}}
        )
    properties["exemptions"] = nullable(
        {"type": "array", "items": {"$ref": f"{JSON_SCHEMA_REFS}{CrmExemption.__name__}"}}
    )
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SNAPSHOT_SCHEMA_ID,
        "title": "tsos-rules snapshot",
        "description": (
            "A CRM-neutral picture of the records the rules read. Unknown keys are kept "
            "(available to rules as extra fields), never an error. Ids are unique within "
            "each collection."
        ),
        "type": "object",
        "properties": properties,
        "additionalProperties": True,
        "$defs": defs,
    }


SHIPPED: Final = "schemas/snapshot.schema.json"


def render_snapshot_schema() -> str:
    """The shipped file's text: ``snapshot_schema()`` as indented JSON."""
    import json

    return json.dumps(snapshot_schema(), indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """``python -m tsos_rules.snapshot.schema [--check]``: rewrite (or check) the shipped file."""
    import sys
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / SHIPPED
    args = sys.argv[1:] if argv is None else argv
    if "--check" in args:
        if path.read_text(encoding="utf-8") != render_snapshot_schema():
            print(f"{path} is stale: run 'python -m tsos_rules.snapshot.schema'", file=sys.stderr)
            return 1
        return 0
    path.write_text(render_snapshot_schema(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
