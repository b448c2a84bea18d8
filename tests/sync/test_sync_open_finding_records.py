"""The records an incremental sync judges again when a total falls: those holding an open
finding of the reader rules, scoped to the fallen keys. The answer must be exactly that set,
sorted, and the state must find it from the rules' findings, not by walking every open finding
of the record type (2.8 s at a million deals)."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from state_rows import finding_row, insert_row
from tsos_rules.sync.state import StateStore

RULE = "channel-economics.partner-credit-limit"
OTHER = "tsos.next-step-required"


def _row(n: int, **columns: Any) -> dict[str, Any]:
    """A partner-credit-limit finding on deal n, its owner, partner and account cycling."""
    row = {
        "rule": RULE,
        "severity": "warn",
        "record_id": f"o{n:04d}",
        "reason": "over_credit",
        "owner_id": f"u{n % 3}",
        "partner_id": f"p{n % 4}",
        "account_id": f"a{n % 5}",
    }
    row.update(columns)
    return finding_row(str(row.pop("fingerprint", f"{n:032x}")), **row)


ROWS = [
    *(_row(n) for n in range(40)),
    *(_row(100 + n, rule=OTHER, reason="r") for n in range(40)),  # another rule
    _row(200, status="resolved", resolved_at="2026-11-02T00:00:00+00:00"),  # not open
    _row(201, connector="other"),  # another org's
    _row(202, record_type="lead", record_id="l1"),  # another record type
    _row(3, fingerprint="f" * 32, reason="over_credit_direct_fulfilment"),  # a second reason
]


@pytest.fixture
def state(tmp_path: Path) -> Any:
    path = tmp_path / "state.sqlite3"
    StateStore(path).close()
    db = sqlite3.connect(path)
    for row in ROWS:
        insert_row(db, row)
    db.commit()
    db.close()
    store = StateStore(path)
    yield store
    store.close()


def _expected(rules: set[str], column: str | None = None, ids: set[str] | None = None) -> list[str]:
    return sorted(
        {
            row["record_id"]
            for row in ROWS
            if row["connector"] == "local"
            and row["status"] == "open"
            and row["record_type"] == "opportunity"
            and row["rule"] in rules
            and (column is None or row[column] in (ids or set()))
        }
    )


@pytest.mark.parametrize("column", ["partner_id", "owner_id", "account_id"])
def test_the_records_holding_a_finding_of_the_rules_under_the_fallen_keys(
    state: StateStore, column: str
) -> None:
    keys = {"p1", "p3", "u2", "a0", "a4"}
    found = state.open_finding_records("local", "opportunity", [RULE], scope=(column, keys))
    assert found == _expected({RULE}, column, keys)
    assert found and len(found) == len(set(found))  # each record once, in id order


def test_without_a_scope_every_record_holding_one_of_the_rules(state: StateStore) -> None:
    assert state.open_finding_records("local", "opportunity", [RULE]) == _expected({RULE})
    both = state.open_finding_records("local", "opportunity", [OTHER, RULE])
    assert both == _expected({RULE, OTHER})
    assert state.open_finding_records("local", "opportunity", []) == []


def test_an_unknown_scope_column_is_refused(state: StateStore) -> None:
    with pytest.raises(ValueError, match="scope column"):
        state.open_finding_records("local", "opportunity", [RULE], scope=("message", ["m"]))


def test_the_state_looks_the_rules_findings_up_by_rule(state: StateStore) -> None:
    statements: list[str] = []
    state.db.set_trace_callback(statements.append)
    state.open_finding_records("local", "opportunity", [RULE], scope=("partner_id", ["p1"]))
    state.db.set_trace_callback(None)
    (query,) = [s for s in statements if "FROM" in s]
    plan = " ".join(str(row[-1]) for row in state.db.execute("EXPLAIN QUERY PLAN " + query))
    assert "findings_by_rule" in plan, plan


def test_the_open_findings_of_judged_records_are_theirs_alone(state: StateStore) -> None:
    """``open_findings_for`` (what a batch's verdicts are compared with): each record's open
    findings by fingerprint, of its own record type and org, and with ``rules`` only theirs."""
    keys = {("opportunity", "o0003"), ("opportunity", "o0103"), ("lead", "l1")}
    keys |= {("opportunity", "o0200"), ("opportunity", "o0201"), ("lead", "o0004")}
    expected = {
        row["fingerprint"]
        for row in ROWS
        if row["connector"] == "local"
        and row["status"] == "open"
        and (row["record_type"], row["record_id"]) in keys
    }
    found = state.open_findings_for("local", keys)
    assert set(found) == expected
    assert {(s.record_type, s.record_id) for s in found.values()} == {
        ("opportunity", "o0003"),
        ("opportunity", "o0103"),
        ("lead", "l1"),
    }
    assert len(expected) == 4  # o0003 has two reasons; the resolved and other org's are out
    only = state.open_findings_for("local", keys, rules=[RULE])
    assert set(only) == {fp for fp in expected if found[fp].rule == RULE}
    assert {s.record_id for s in only.values()} == {"o0003", "l1"}
    assert state.open_findings_for("local", []) == {}
