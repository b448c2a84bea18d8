"""Issue 14 item 3: values that used to make a 500 (and a stack trace) are 400s naming the field.

Each case is the reproduction: a HubSpot timestamp of non-ASCII digits, a 400-digit integer or
a number beyond a float's range in a numeric field, a lone surrogate in a text field (it used
to fail *after* the decision was logged). None may reach the decision log or log a traceback.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import pytest
from test_salesforce import OPPORTUNITY, RELATED

from inline_support import AUTH, HUBSPOT_DEAL
from tsos_rules.testing import deal, snapshot

HUGE = "1" * 400


def generic(after: str) -> bytes:
    """A /v1/check body whose ``after`` record is given as raw JSON text."""
    change = '{"record_type":"opportunity","before":null,"after":' + after + "}"
    context = json.dumps(snapshot())
    return ('{"change":' + change + ',"context":' + context + ',"as_of":"2026-11-24"}').encode()


def deal_text(**raw: str) -> str:
    """``deal("o1")`` as JSON text with some fields replaced by raw JSON text."""
    fields = {k: json.dumps(v) for k, v in deal("o1").items()}
    fields.update(raw)
    return "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"


def hubspot(**raw: str) -> bytes:
    fields = {k: json.dumps(v) for k, v in HUBSPOT_DEAL.items()}
    fields.update(raw)
    return ("{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}").encode()


def salesforce(**raw: str) -> bytes:
    fields = {k: json.dumps(v) for k, v in OPPORTUNITY.items()}
    fields.update(raw)
    after = "{" + ",".join(f'"{k}":{v}' for k, v in fields.items()) + "}"
    return ('{"before":null,"after":' + after + ',"related":' + json.dumps(RELATED) + "}").encode()


CASES = [
    ("/v1/check", generic(deal_text(amount=HUGE)), "change.after.amount"),
    ("/v1/check", generic(deal_text(amount="-" + HUGE)), "change.after.amount"),
    ("/v1/check", generic(deal_text(amount="1e400")), "change.after.amount"),
    ("/v1/check", generic(deal_text(probability=HUGE)), "change.after.probability"),
    ("/v1/check", generic(deal_text(name='"\\ud800"')), "change.after.name"),
    ("/v1/check", generic(deal_text(id='"o\\udfff1"')), "change.after.id"),
    ("/v1/check", generic(deal_text(**{"\\ud800": "1"})), "change.after"),
    ("/v1/hubspot/check", hubspot(amount=HUGE), "amount"),
    ("/v1/hubspot/check", hubspot(amount="1e400"), "amount"),
    ("/v1/hubspot/check", hubspot(hs_deal_stage_probability=HUGE), "hs_deal_stage_probability"),
    ("/v1/hubspot/check", hubspot(closedate=HUGE), "closedate"),
    ("/v1/hubspot/check", hubspot(dealname='"\\ud800"'), "dealname"),
    ("/v1/salesforce/check", salesforce(Amount=HUGE), "after.Amount"),
    ("/v1/salesforce/check", salesforce(Probability="1e400"), "after.Probability"),
    ("/v1/salesforce/check", salesforce(Name='"\\udbff"'), "after.Name"),
]


def tracebacks(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]


@pytest.mark.parametrize(("route", "body", "field"), CASES)
def test_a_malformed_value_is_a_400_naming_its_field_and_never_logged(
    client, all_logs, tmp_path: Path, route: str, body: bytes, field: str
) -> None:
    response = client.post(route, content=body, headers=AUTH)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == field, error
    assert tracebacks(all_logs) == []
    decisions = tmp_path / "decisions.jsonl"
    assert not decisions.exists() or decisions.read_text() == ""


def test_a_valid_surrogate_pair_is_still_text(client, tmp_path: Path) -> None:
    """An escaped emoji (a surrogate *pair*) is valid JSON text and stays accepted."""
    body = generic(deal_text(name='"Fleet \\ud83d\\ude9a"'))
    response = client.post("/v1/check", content=body, headers=AUTH)
    assert response.status_code == 200, response.text
    assert json.loads((tmp_path / "decisions.jsonl").read_text())["record_id"] == "o1"


def test_an_ordinary_large_amount_is_still_judged(client) -> None:
    body = generic(deal_text(amount="123456789012345678901234567890"))
    assert client.post("/v1/check", content=body, headers=AUTH).status_code == 200


def test_the_decision_log_never_fails_on_text(tmp_path: Path) -> None:
    """Text that cannot be UTF-8 encoded is escaped, not a failed (or half) write."""
    from tsos_rules.server.decision_log import DecisionLog

    log = DecisionLog(tmp_path / "d.jsonl")
    entry: dict[str, Any] = {"id": "x", "record_id": "o\ud8001", "name": "Zoë"}
    log.write(entry)
    log.close()
    assert json.loads((tmp_path / "d.jsonl").read_text()) == entry
    assert log.ok


@pytest.mark.parametrize("length", ["²", "١٢", "12\u00a0"])
def test_a_content_length_of_non_ascii_digits_is_a_400(client, all_logs, length: str) -> None:
    """Starlette decodes headers as latin-1: ``²`` passes ``isdigit()`` and fails ``int()``."""
    response = _raw_request(client, [(b"content-length", length.encode("latin-1", "replace"))])
    assert response["status"] == 400
    assert tracebacks(all_logs) == []


def _raw_request(client: Any, headers: list[tuple[bytes, bytes]]) -> dict[str, Any]:
    """Drive the ASGI app with raw header bytes (no HTTP client would send these)."""
    sent: dict[str, Any] = {}
    body = generic(deal_text())
    headers = [(b"authorization", AUTH["Authorization"].encode()), *headers]

    async def call() -> None:
        async def receive() -> dict[str, Any]:
            return {"type": "http.request", "body": body, "more_body": False}

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "http.response.start":
                sent["status"] = message["status"]

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/v1/check",
            "raw_path": b"/v1/check",
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("testserver", 80),
        }
        await client.app(scope, receive, send)

    client.portal.call(call)
    return sent
