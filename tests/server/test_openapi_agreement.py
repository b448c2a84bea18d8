"""Issue 14 item 4: the OpenAPI document and the server agree (schemathesis, in-process).

schemathesis reads ``/openapi.json`` from the ASGI app itself and drives every operation:
bodies the document allows (positive) and bodies it forbids (negative). Every answer must be
no 5xx, a status and a body the document declares, ``/v1/check`` must accept what the
document allows and refuse what it forbids. The two disagreements the campaign found are
pinned first: ``before`` and ``after`` both null (refused, and now forbidden by the schema),
and a wrongly typed ``close_date_approved_by`` (forbidden, and now refused).
"""

from __future__ import annotations

import os
from typing import Any

import jsonschema
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    negative_data_rejection,
    not_a_server_error,
    positive_data_acceptance,
    response_schema_conformance,
    status_code_conformance,
)

from inline_support import AUTH
from tsos_rules.testing import deal

EXAMPLES = int(os.environ.get("TSOS_SCHEMA_EXAMPLES", "40"))
BOUNDED = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=list(HealthCheck),
)
ALWAYS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture
def schema(client):
    return schemathesis.openapi.from_asgi("/openapi.json", client.app)


def _validator(document: dict[str, Any], name: str) -> jsonschema.Draft202012Validator:
    """A validator for one component schema of the document (its $refs resolved)."""
    root = {**document, "$ref": f"#/components/schemas/{name}"}
    return jsonschema.Draft202012Validator(root)


def _change(before: Any, after: Any) -> dict[str, Any]:
    return {
        "change": {"record_type": "opportunity", "before": before, "after": after},
        "as_of": "2026-11-24",
    }


@pytest.mark.parametrize(
    "body",
    [
        _change(None, None),
        {"change": {"record_type": "lead"}},
        {"change": {"record_type": "opportunity", "before": None}},
        _change(None, {**deal("o1"), "close_date_approved_by": 7}),
        _change({**deal("o1"), "close_date_approved_by": ["u1"]}, deal("o1")),
        {
            **_change(None, deal("o1")),
            "context": {"opportunities": [{**deal("o2"), "close_date_approved_by": True}]},
        },
    ],
)
def test_what_the_document_forbids_is_refused_and_the_other_way_round(client, body):
    document = client.get("/openapi.json").json()
    assert not _validator(document, "CheckRequest").is_valid(body)
    response = client.post("/v1/check", json=body, headers=AUTH)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["field"]


@pytest.mark.parametrize(
    "body",
    [
        _change(None, deal("o1")),
        _change(deal("o1"), None),
        _change(deal("o1"), {**deal("o1"), "close_date_approved_by": "u9"}),
        _change({**deal("o1"), "close_date_approved_by": None}, deal("o1")),
    ],
)
def test_what_the_document_allows_is_accepted(client, body):
    document = client.get("/openapi.json").json()
    _validator(document, "CheckRequest").validate(body)
    assert client.post("/v1/check", json=body, headers=AUTH).status_code == 200


def _operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


def _coherent(case: Any) -> Any:
    """What JSON Schema cannot say: a change's two records share an id; ids are unique within
    each context collection. Only these are made true; everything else is as generated."""
    body = case.body
    change = body.get("change") if isinstance(body, dict) else None
    if isinstance(change, dict):
        before, after = change.get("before"), change.get("after")
        if isinstance(before, dict) and isinstance(after, dict) and "id" in before:
            after["id"] = before["id"]
    context = body.get("context") if isinstance(body, dict) else None
    if isinstance(context, dict):
        for key, rows in context.items():
            if isinstance(rows, list):
                unique = {row.get("id"): row for row in rows if isinstance(row, dict)}
                context[key] = list(unique.values())
    return case


def _positive_run(operation: Any) -> Any:
    checks = list(ALWAYS)
    strategy = operation.as_strategy(GenerationMode.POSITIVE)
    if operation.path == "/v1/check":
        checks.append(positive_data_acceptance)
        strategy = strategy.map(_coherent)

    @BOUNDED
    @given(case=strategy)
    def run(case: Any) -> None:
        case.call_and_validate(headers=dict(AUTH), checks=checks)

    return run


def test_schemathesis_every_operation_with_bodies_the_document_allows(schema):
    operations = _operations(schema)
    assert {op.path for op in operations} >= {"/v1/check", "/v1/hubspot/check", "/healthz"}
    for operation in operations:
        _positive_run(operation)()


def test_schemathesis_check_refuses_bodies_the_document_forbids(schema):
    operation = schema["/v1/check"]["POST"]

    @BOUNDED
    @given(
        case=operation.as_strategy(GenerationMode.NEGATIVE),
        token=st.just(dict(AUTH)),
    )
    def run(case: Any, token: dict[str, str]) -> None:
        case.call_and_validate(headers=token, checks=[*ALWAYS, negative_data_rejection])

    run()
