"""The shipped snapshot JSON Schema: current with the model, and it agrees with the loader."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

import tsos_rules
from tsos_rules.snapshot.document import SnapshotError, snapshot_from_dict
from tsos_rules.snapshot.schema import main, render_snapshot_schema

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = Path(tsos_rules.__file__).parent / "schemas" / "snapshot.schema.json"


@pytest.fixture(scope="module")
def validator() -> jsonschema.Draft202012Validator:
    schema = json.loads(SHIPPED.read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema, format_checker=jsonschema.FormatChecker())


def test_the_shipped_schema_is_current_with_the_model() -> None:
    assert SHIPPED.read_text(encoding="utf-8") == render_snapshot_schema(), (
        "src/tsos_rules/schemas/snapshot.schema.json is stale: "
        "run 'python -m tsos_rules.snapshot.schema'"
    )
    assert main(["--check"]) == 0


def test_the_example_pipeline_is_valid(validator: jsonschema.Draft202012Validator) -> None:
    document = json.loads((ROOT / "examples" / "pipeline.json").read_text(encoding="utf-8"))
    validator.validate(document)


def test_the_contract_docs_example_is_valid_and_loads(
    validator: jsonschema.Draft202012Validator,
) -> None:
    text = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    block = re.search(r"## Snapshot.*?```json\n(.*?)```", text, re.S)
    assert block is not None, "docs/contract.md has no snapshot example"
    document = json.loads(block.group(1))
    validator.validate(document)
    snapshot_from_dict(document)


@pytest.mark.parametrize(
    "document",
    [
        {"opportunities": [{"id": 7}]},
        {"opportunities": [{"id": "o1", "close_date": "15/12/2026"}]},
        {"opportunities": [{"id": "o1", "forecast_category": "maybe"}]},
        {"users": [{"id": "u1", "role": "boss"}]},
        {"leads": [{"id": "l1", "distributed_at": "yesterday"}]},
        {"opportunities": [{"name": "no id"}]},
        {"as_of": "24 Nov 2026"},
    ],
)
def test_what_the_schema_refuses_the_loader_refuses(
    validator: jsonschema.Draft202012Validator, document: dict[str, Any]
) -> None:
    assert list(validator.iter_errors(document)), document
    with pytest.raises(SnapshotError):
        snapshot_from_dict(document)
