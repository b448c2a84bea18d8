"""The worklist's JSON for the page: safe inside a <script> element, compact, links only http(s)."""

from __future__ import annotations

import json

from tsos_rules.engine import Engine
from tsos_rules.report.worklist_data import safe_link, script_json, worklist_payload
from tsos_rules.sync.state.worklist import WorklistRow
from tsos_rules.sync.summary import WorklistPage


def _row(i: int, owner: str | None, **kw: object) -> WorklistRow:
    fields: dict[str, object] = {
        "fingerprint": f"fp{i}",
        "status": "open",
        "rule": "tsos.close-date-locked",
        "severity": "block",
        "reason": "moved_unapproved",
        "record_type": "opportunity",
        "record_id": f"o{i}",
        "record_name": f"Deal {i}",
        "owner": owner,
        "partner": None,
        "account": "Boeing",
        "first_seen": "2026-11-01",
        "age_days": 23,
        "message": "m",
        "remedy": "",
        "url": None,
    }
    fields.update(kw)
    return WorklistRow(**fields)  # type: ignore[arg-type]


def test_script_json_cannot_end_its_script_element_and_reads_back_the_same() -> None:
    tricky = {
        "m": "</script><script>alert(1)</script> <!-- & \u2028 \u2029 </SCRIPT >",
        "n": ["<b>", "a>b", "&amp;"],
    }
    text = script_json(tricky)
    assert "<" not in text and ">" not in text and "&" not in text
    assert "\u2028" not in text and "\u2029" not in text
    assert json.loads(text) == tricky


def test_only_http_links_are_kept() -> None:
    assert safe_link("https://acme.my.salesforce.com/lightning/r/Opportunity/006/view") == (
        "https://acme.my.salesforce.com/lightning/r/Opportunity/006/view"
    )
    assert safe_link("http://127.0.0.1:8080/x") == "http://127.0.0.1:8080/x"
    for bad in ("javascript:alert(1)", "JAVASCRIPT:alert(1)", "data:text/html,x", "//x", "", None):
        assert safe_link(bad) == ""


def test_names_are_listed_once_and_rows_refer_to_them() -> None:
    specs = Engine.from_config(None).specs
    rows = [_row(i, "Ray" if i % 2 else "Mia") for i in range(1, 5)]
    rows.append(_row(5, None, status="exempt", exemption_id=7, url="javascript:x()"))
    payload = worklist_payload(WorklistPage(tuple(rows), specs), as_of="2026-11-24")
    assert payload is not None
    fields = {name: i for i, name in enumerate(payload["fields"])}
    assert payload["owners"] == ["Ray", "Mia"] and payload["accounts"] == ["Boeing"]
    [rule] = payload["rules"]
    assert rule["id"] == "tsos.close-date-locked" and rule["title"] == "Lock down the close date"
    assert rule["reasons"]["moved_unapproved"] == (
        "A locked deal's close date moved without approval"
    )
    assert rule["remedy"] and rule["doctrine"].startswith("Lock down date")
    last = payload["rows"][-1]
    assert last[fields["owner"]] == -1 and last[fields["url"]] == ""
    assert payload["statuses"][last[fields["status"]]] == "exempt"
    assert last[fields["exemption_id"]] == 7
    assert [r[fields["owner"]] for r in payload["rows"][:4]] == [0, 1, 0, 1]
    assert worklist_payload(None, as_of="2026-11-24") is None
