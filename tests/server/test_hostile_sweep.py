"""Issue 14 item 3's sweep: hostile JSON against every route the app registers.

Each valid body (one per check route) has each of its values replaced, one at a time, by each
hostile value (lone surrogates, huge integers, numbers beyond a float, ~1,000 levels of nesting,
non-UTF-8 text); whole bodies add NaN/Infinity literals, duplicate keys, non-UTF-8 bytes and
wrong content types. Every answer is 200, 400, 401 or 413, a 400 names a field, and no log
record is an ERROR or carries a traceback. ``/v1/hubspot/check`` is also driven with a valid
HubSpot v3 signature over each hostile body, so the body reaches the adapter unauthenticated.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from test_salesforce import OPPORTUNITY, RELATED
from tsos_rules_hubspot.inline import hubspot_signature_v3

from inline_support import AUTH, HUBSPOT_DEAL, HUBSPOT_SECRET
from tsos_rules.testing import deal, snapshot

NOW = 1_790_000_000.0
ALLOWED = {200, 400, 401, 413}
DEEP = 1_000

#: A hostile value, as raw JSON text (some are not expressible as a Python value).
HOSTILE = [
    '"\\ud800"',
    '"a\\udfffb"',
    '"\\udbff\\udbff"',
    "1" * 400,
    "-" + "9" * 400,
    "1e400",
    "-1e400",
    "1.7976931348623157e308",
    "4.9e-324",
    str(2**64),
    "[" * DEEP + "]" * DEEP,
    '{"a":' * DEEP + "1" + "}" * DEEP,
    "[" * 90 + "1" + "]" * 90,
    '{"\\ud800":1}',
    '"' + "x" * 5000 + '"',
    '""',
    "-0.0",
    "true",
    "{}",
    "[]",
]

#: Whole bodies: not JSON, not UTF-8, or JSON Python accepts and the standard does not.
WHOLE = [
    b'{"change": NaN}',
    b'{"change": {"record_type": "opportunity", "after": {"id": "o1", "amount": Infinity}}}',
    b'{"change": -Infinity}',
    b'{"hs_object_id": "1", "amount": NaN}',
    b'{"change": 1, "change": {"record_type": "opportunity", "after": {"id": "o1"}}}',
    b'{"hs_object_id": "1", "hs_object_id": "2", "amount": "1", "amount": "x"}',
    b'{"after": {"Id": "1"}, "after": null}',
    b"\xff\xfe{\x00}\x00",
    b'{"hs_object_id": "\xed\xa0\x80"}',
    b'{"hs_object_id": "\xc3\x28"}',
    b"\xef\xbb\xbf{}",
    b"[" * 100_000 + b"]" * 100_000,
    b"[" * DEEP + b"]" * DEEP,
    b'"\\ud800"',
    b"1" * 5000,
    b"",
    b"null",
]

CONTENT_TYPES = [
    "application/json",
    "text/plain",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "application/json; charset=utf-16",
]


def raw(value: Any) -> str:
    return json.dumps(value)


def leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every position in a JSON value (objects' values and lists' items, nested ones too)."""
    yield path
    if isinstance(value, dict):
        for key, child in value.items():
            yield from leaves(child, (*path, key))
    elif isinstance(value, list):
        for index, child in enumerate(value[:2]):
            yield from leaves(child, (*path, index))


def replaced(value: Any, path: tuple[Any, ...], text: str) -> str:
    """``value`` as JSON text with the item at ``path`` replaced by the raw JSON ``text``."""
    if not path:
        return text
    head, rest = path[0], path[1:]
    if isinstance(value, dict):
        items = [
            f"{raw(k)}:{replaced(v, rest, text) if k == head else raw(v)}" for k, v in value.items()
        ]
        return "{" + ",".join(items) + "}"
    items = [replaced(v, rest, text) if i == head else raw(v) for i, v in enumerate(value)]
    return "[" + ",".join(items) + "]"


def valid_bodies() -> dict[str, Any]:
    context = snapshot()
    context["opportunities"] = context.get("opportunities", [])[:1]
    return {
        "/v1/check": {
            "change": {"record_type": "opportunity", "before": deal("o1"), "after": deal("o1")},
            "context": context,
            "as_of": "2026-11-24",
            "include_info": True,
        },
        "/v1/hubspot/check": {**HUBSPOT_DEAL, "before": {"amount": "100"}},
        "/v1/salesforce/check": {"before": OPPORTUNITY, "after": OPPORTUNITY, "related": RELATED},
    }


def mutations() -> Iterator[tuple[str, bytes]]:
    for route, body in valid_bodies().items():
        for path in leaves(body):
            for text in HOSTILE:
                yield route, replaced(body, path, text).encode()


def signed(body: bytes, serial: int) -> dict[str, str]:
    timestamp = str(int(NOW * 1000) - serial)
    uri = "http://testserver/v1/hubspot/check"
    return {
        "X-HubSpot-Request-Timestamp": timestamp,
        "X-HubSpot-Signature-v3": hubspot_signature_v3(
            HUBSPOT_SECRET, "POST", uri, body, timestamp
        ),
    }


@pytest.fixture
def app(make_client, all_logs):
    return make_client(app_kwargs={"clock": lambda: NOW}), all_logs


def _bad_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        f"{r.levelname} {r.name}: {r.getMessage()[:200]}"
        for r in caplog.records
        if r.levelno >= logging.ERROR or r.exc_info
    ]


def _check(response: Any, what: str) -> None:
    assert response.status_code in ALLOWED, f"{what}: {response.status_code} {response.text[:300]}"
    if response.status_code == 400:
        assert response.json()["error"]["field"], f"{what}: {response.text[:300]}"


def test_every_route_answers_hostile_json_without_a_server_error(app):
    client, caplog = app
    registered = {route.path: route.methods for route in client.app.routes}
    posts = [path for path, methods in registered.items() if "POST" in methods]
    gets = [path for path, methods in registered.items() if "GET" in methods]
    assert {"/v1/check", "/v1/hubspot/check", "/v1/salesforce/check"} <= set(posts)
    bodies = list(mutations())
    assert len(bodies) > 1_000
    serial = 0
    for route, body in bodies:
        _check(client.post(route, content=body, headers=AUTH), f"{route} {body[:120]!r}")
        if route == "/v1/hubspot/check":
            serial += 1
            headers = signed(body, serial)
            _check(client.post(route, content=body, headers=headers), f"signed {body[:120]!r}")
    for path in posts:
        for body in WHOLE:
            for content_type in CONTENT_TYPES:
                headers = {**AUTH, "Content-Type": content_type}
                _check(client.post(path, content=body, headers=headers), f"{path} {body[:60]!r}")
            if path == "/v1/hubspot/check":
                serial += 1
                response = client.post(path, content=body, headers=signed(body, serial))
                _check(response, f"signed {body[:60]!r}")
    for path in gets:
        assert client.get(path, headers=AUTH).status_code == 200
    assert _bad_records(caplog) == []
