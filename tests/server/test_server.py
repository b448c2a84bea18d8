"""The HTTP service: answers, auth, limits, the decision log and the access log."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from inline_support import AUTH, HUBSPOT_SECRET, TOKEN, pipeline
from tsos_rules.testing import channel_account, channel_deal, deal, snapshot

BODY = {
    "change": {"record_type": "opportunity", "before": None, "after": deal("o1")},
    "context": snapshot(),
    "as_of": "2026-11-24",
}


def refused_body() -> dict[str, Any]:
    before = channel_deal("o1", name="Secret Boeing Deal")
    return {
        "change": {
            "record_type": "opportunity",
            "before": before,
            "after": dict(before, partner_id=None),
        },
        "context": snapshot(accounts=[channel_account("a1")]),
        "as_of": "2026-11-24",
    }


def read_log(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_check_answers_the_contract_shape_and_logs_the_decision(client, tmp_path):
    response = client.post("/v1/check", json=refused_body(), headers=AUTH)
    assert response.status_code == 200
    payload = response.json()
    assert payload["allowed"] is False
    assert {f["reason"] for f in payload["findings"]} >= {"no_partner"}
    assert response.headers["X-Decision-Id"] == payload["decision_id"]
    [entry] = read_log(tmp_path / "decisions.jsonl")
    assert entry["id"] == payload["decision_id"]
    assert entry["allowed"] is False
    assert "tsos.channel-lead-not-direct:no_partner" in entry["blocking"]
    assert entry["packs"] == {"tsos": "1.0"}
    assert len(entry["rules_digest"]) == 16
    assert len(entry["input_sha256"]) == 64
    assert {"time", "record_type", "record_id", "as_of", "adapter"} <= set(entry)
    assert "Secret Boeing Deal" not in (tmp_path / "decisions.jsonl").read_text()


def test_an_allowed_change(client):
    response = client.post("/v1/check", json=BODY, headers=AUTH)
    assert response.status_code == 200
    assert response.json()["allowed"] is True
    assert response.json()["findings"] == []


def test_the_example_pipeline_through_http(client):
    snap = pipeline()
    o1 = snap["opportunities"][0]
    body = {
        "change": {
            "record_type": "opportunity",
            "before": o1,
            "after": dict(o1, close_date="2026-12-22"),
        },
        "context": snap,
    }
    payload = client.post("/v1/check", json=body, headers=AUTH).json()
    assert payload["allowed"] is False
    assert "moved_unapproved" in {f["reason"] for f in payload["findings"]}


# -- authentication -----------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/check", "/v1/salesforce/check", "/v1/admin/reload"])
@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-token-value-123"},
        {"Authorization": f"Bearer {TOKEN}x"},
        {"Authorization": f"Basic {TOKEN}"},
        {"Authorization": TOKEN},
        {"Authorization": "Bearer"},
    ],
)
def test_missing_or_wrong_token_is_401(client, path, headers):
    response = client.post(path, json=BODY, headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


def test_a_token_in_the_query_string_is_not_a_token(client):
    assert client.post(f"/v1/check?token={TOKEN}", json=BODY).status_code == 401


# -- limits ------------------------------------------------------------------------------------


def test_an_oversized_body_is_refused_by_its_declared_length(client, tmp_path):
    big = b'{"change": ' + b" " * (70 * 1024) + b"}"
    response = client.post("/v1/check", content=big, headers=AUTH)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    assert not (tmp_path / "decisions.jsonl").read_text()


def test_an_oversized_streamed_body_is_refused_while_reading(client):
    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(100):
            yield b" " * 1024

    response = client.post("/v1/check", content=chunks(), headers=AUTH)
    assert response.status_code == 413


def test_a_body_that_does_not_arrive_in_time_is_408(make_client):
    slow = make_client(body_timeout_seconds=0.2)

    async def trickle() -> AsyncIterator[bytes]:
        yield b'{"change": '
        await anyio.sleep(2)
        yield b"{}}"

    response = slow.post("/v1/check", content=trickle(), headers=AUTH)
    assert response.status_code == 408


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"", "body"),
        (b"{", "body"),
        (b"\xff\xfe\x00", "body"),
        (b"[1, 2]", "body"),
        (b'{"change": NaN}', "body"),
        (
            b'{"change": {"record_type": "opportunity", "after": {"id": "o1", "amount": 1e999}}}',
            "change.after.amount",
        ),
        (b"[" * 100_00 + b"]" * 100_00, "body"),
        (b"{}", "change"),
        (b'{"change": 5}', "change"),
        (b'{"change": {"record_type": "deal"}}', "change.record_type"),
        (b'{"change": {"record_type": "opportunity"}}', "change.after"),
        (b'{"change": {"record_type": "lead", "after": {"id": 7}}}', "change.after.id"),
        (b'{"change": {"record_type": "lead", "after": {"id": "l"}}, "as_of": "x"}', "as_of"),
        (
            b'{"change": {"record_type": "lead", "after": {"id": "l"}}, "include_info": 1}',
            "include_info",
        ),
        (
            b'{"change": {"record_type": "lead", "after": {"id": "l"}}, "context": {"leads": 3}}',
            "context.leads",
        ),
    ],
)
def test_a_malformed_body_is_400_naming_the_field(client, content, field):
    response = client.post("/v1/check", content=content, headers=AUTH)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["field"] == field
    assert error["message"].startswith(f"{field}: ")


def test_unknown_routes_and_methods_are_not_server_errors(client):
    assert client.get("/v1/check", headers=AUTH).status_code == 405
    assert client.get("/nowhere").status_code == 404


# -- health and the decision log -----------------------------------------------------------------


def test_healthz_reports_the_rules_and_the_log(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    payload = response.json()
    assert payload["status"] == "ok"
    assert payload["decision_log"]["ok"] is True
    assert payload["rules"]["packs"] == {"tsos": "1.0"}
    assert payload["fail_closed"] is True


def test_when_the_log_cannot_be_written_checks_fail_closed_and_healthz_says_so(make_client):
    broken = make_client(decision_log="/dev/full")
    response = broken.post("/v1/check", json=BODY, headers=AUTH)
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "decision_log_unavailable"
    health = broken.get("/healthz")
    assert health.status_code == 503
    assert health.json()["status"] == "degraded"
    assert "No space left" in health.json()["decision_log"]["error"]


def test_fail_open_answers_but_counts_every_unlogged_decision(make_client):
    lenient = make_client(decision_log="/dev/full", decision_log_required=False)
    for _ in range(3):
        assert lenient.post("/v1/check", json=BODY, headers=AUTH).status_code == 200
    health = lenient.get("/healthz").json()
    assert health["status"] == "degraded"
    assert health["decision_log"]["unlogged"] == 3


def test_the_log_recovers_by_itself_once_it_can_be_written_again(make_client, tmp_path):
    blocker = tmp_path / "logs"
    blocker.write_text("a file where the log directory should be")
    recovering = make_client(decision_log=str(blocker / "decisions.jsonl"))
    assert recovering.get("/healthz").status_code == 503
    assert recovering.post("/v1/check", json=BODY, headers=AUTH).status_code == 503
    blocker.unlink()
    assert recovering.post("/v1/check", json=BODY, headers=AUTH).status_code == 200
    assert recovering.get("/healthz").status_code == 200
    assert len(read_log(blocker / "decisions.jsonl")) == 1


# -- the access log never carries a secret or a body ------------------------------------------


def test_no_secret_and_no_body_appears_in_any_log_line(client, all_logs, capsys):
    body = refused_body()
    client.post("/v1/check", json=body, headers=AUTH)
    client.post("/v1/check", json=body, headers={"Authorization": "Bearer wrong-guess-4242"})
    client.post(f"/v1/check?api_key={TOKEN}", json=body)
    client.post(f"/{TOKEN}", json=body)
    client.post(
        "/v1/hubspot/check",
        json={"hs_object_id": "1"},
        headers={"X-HubSpot-Signature-v3": "forged", "X-HubSpot-Request-Timestamp": "1"},
    )
    client.post("/v1/check", content=b"{not json", headers=AUTH)
    client.get("/healthz")
    # Every server-side record (the test's own HTTP client logs its URLs: not ours).
    lines = [
        record.getMessage()
        for record in all_logs.records
        if not record.name.startswith(("httpx", "httpcore"))
    ]
    captured = capsys.readouterr()
    text = "\n".join(lines) + captured.out + captured.err
    for secret in (TOKEN, HUBSPOT_SECRET, "wrong-guess-4242", "Secret Boeing Deal", "forged"):
        assert secret not in text
    access = [json.loads(line) for line in lines if line.startswith('{"event":"request"')]
    assert len(access) == 7
    assert [entry["status"] for entry in access] == [200, 401, 401, 404, 401, 400, 200]
    assert access[3]["path"] == "(unmatched)"
    assert access[0]["decision_id"] and access[0]["adapter"] == "generic"
    assert all("ms" in entry for entry in access)


def test_openapi_describes_every_route_and_every_record_field(client):
    document = client.get("/openapi.json").json()
    assert document["openapi"] == "3.1.0"
    assert set(document["paths"]) == {
        "/v1/check",
        "/v1/hubspot/check",
        "/v1/salesforce/check",
        "/v1/admin/reload",
        "/healthz",
    }
    schemas = document["components"]["schemas"]
    opportunity = schemas["Opportunity"]["properties"]
    assert opportunity["close_date"]["format"] == "date"
    assert opportunity["forecast_category"]["enum"][-1] is None
    assert opportunity["partner_consent"] == {
        "anyOf": [{"$ref": "#/components/schemas/PartnerConsent"}, {"type": "null"}]
    }
    assert schemas["Opportunity"]["required"] == ["id"]
    assert schemas["CloseDateChange"]["required"] == ["opportunity_id"]
    assert "bearer" in document["components"]["securitySchemes"]
