"""The core's own body: docs/contract.md's ``POST /v1/check``.

``{"change": {"record_type", "before", "after"}, "context": <snapshot subset>,
"as_of": "YYYY-MM-DD"}``. CRM bodies are read by in-line adapters that plugins register
(:mod:`tsos_rules.connectors.inline`); the core names no CRM.
"""

from __future__ import annotations

from typing import Any

from tsos_rules.connectors.inline import CheckRequest
from tsos_rules.connectors.inline_values import body_object, include_info
from tsos_rules.errors import ChangeError
from tsos_rules.findings import Decision
from tsos_rules.snapshot.change import parse_change

__all__ = ["CheckRequest", "generic", "render_plain"]


def generic(body: Any) -> CheckRequest:
    """docs/contract.md's ``POST /v1/check`` body."""
    data = body_object(body, "body")
    if "change" not in data:
        raise ChangeError("change", "required field is missing")
    change = body_object(data["change"], "change")
    parsed = parse_change(
        change.get("record_type"),
        change.get("before"),
        change.get("after"),
        data.get("context"),
        as_of=data.get("as_of"),
        prefix="change.",
    )
    return CheckRequest("generic", parsed, include_info(data))


def render_plain(decision: Decision, decision_id: str) -> dict[str, Any]:
    """docs/contract.md's answer and the decision log id, nothing else."""
    payload: dict[str, Any] = decision.to_dict()
    payload["decision_id"] = decision_id
    return payload
