"""Tests for the tutorial's packs, written with tsos_rules.testing (docs/tutorial-rule-pack.md).

python -m pytest docs/examples/test_acme_packs.py -p tsos_rules.testing.pytest_plugin
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

import acme_pack

from tsos_rules import load_declarative_pack
from tsos_rules.testing import deal, evaluate, found, only, snapshot

YAML = Path(__file__).with_name("acme-hygiene.yaml")
HYGIENE = load_declarative_pack(YAML)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ({"discount_percent": 25}, {("o1", "unapproved", "warn")}),
        ({"discount_percent": 25, "discount_approved_by": "VP Sales"}, set()),
        ({"discount_percent": 20}, set()),
        ({}, set()),
    ],
)
def test_discount_approval(fields, expected):
    findings = evaluate(HYGIENE, snapshot(opportunities=[deal(**fields)]))
    assert found(findings, "acme-hygiene.discount-approval") == expected


def test_the_discount_limit_is_a_parameter():
    snap = snapshot(opportunities=[deal(discount_percent=25)])
    relaxed = evaluate(HYGIENE, snap, parameters={"acme-hygiene": {"max_discount": 30}})
    assert found(relaxed, "acme-hygiene.discount-approval") == set()


def test_big_deals_need_a_sponsor():
    snap = snapshot(
        opportunities=[deal(amount=150_000), deal("o2", amount=150_000, executive_sponsor="CFO")]
    )
    finding = only(evaluate(acme_pack.PACK, snap), "acme.big-deal-sponsor")
    assert (finding.record_id, finding.reason) == ("o1", "no_sponsor")


def test_the_plugin_registers_the_pack(tsos_plugin, tsos_cli):
    tsos_plugin(acme_pack, name="acme")
    assert "acme.big-deal-sponsor" in tsos_cli("rules").out


def test_the_yaml_validates(tsos_cli):
    assert tsos_cli("rules", "validate", str(YAML)).code == 0
