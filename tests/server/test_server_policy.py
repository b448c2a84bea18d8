"""``/v1/check`` answers with the policy's additive fields: an exempt block is allowed and
listed under ``exempt`` with the exemption; the decision log counts it as not blocking."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from inline_support import AUTH
from tsos_rules.config import Config
from tsos_rules.testing import deal, snapshot

CONFIG = Config.from_mapping(
    {
        "exemptions": [
            {
                "rule": "tsos.next-step-*",
                "record_type": "opportunity",
                "record_id": "o1",
                "reason": "buyer on leave",
                "approver": "Dana (RVP)",
                "created": dt.date(2026, 11, 1),
                "expires": dt.date(2026, 12, 31),
            }
        ]
    }
)


def test_an_exempt_block_is_allowed_over_http(make_client, tmp_path: Path) -> None:
    client = make_client(app_kwargs={"load_config": lambda: CONFIG})
    body = {
        "change": {
            "record_type": "opportunity",
            "before": None,
            "after": deal("o1", next_step="TBD"),
        },
        "context": snapshot(),
        "as_of": "2026-11-24",
    }
    response = client.post("/v1/check", json=body, headers=AUTH)
    assert response.status_code == 200
    payload = response.json()
    assert payload["allowed"] is True
    (waived,) = payload["exempt"]
    assert waived["exemption"] == {
        "id": "config:1",
        "source": "config",
        "reason": "buyer on leave",
        "approver": "Dana (RVP)",
        "expires": "2026-12-31",
    }
    (entry,) = [
        json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()
    ]
    assert entry["allowed"] is True
    assert not any(item.startswith("tsos.next-step-required") for item in entry["blocking"])
