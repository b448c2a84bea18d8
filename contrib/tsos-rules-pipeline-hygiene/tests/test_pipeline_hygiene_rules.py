"""pipeline-hygiene: the YAML pack's two rules, through the public testing kit only."""

from __future__ import annotations

from pathlib import Path

import pytest
from tsos_rules_pipeline_hygiene import PACK, PACK_FILE

from tsos_rules.testing import (
    at,
    channel_deal,
    closed_deal,
    deal,
    evaluate,
    found,
    installed_packs,
    lead,
    only,
    run_markdown_example,
    snapshot,
)

STALLED = "pipeline-hygiene.stalled-deal"
LATE = "pipeline-hygiene.late-registration"


def run(*deals, leads=(), **parameters):
    snap = snapshot(opportunities=deals, leads=leads)
    return evaluate(PACK, snap, parameters={"pipeline-hygiene": parameters} if parameters else None)


def test_the_pack_is_data() -> None:
    assert PACK_FILE.suffix == ".yaml"
    assert PACK.python_rules == () and len(PACK.declarative_rules) == 2
    assert {spec.id for spec in PACK.specs} == {STALLED, LATE}


# -- stalled-deal ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("days", "expected"),
    [
        (5, set()),
        (30, set()),
        (31, {("o1", "stalled", "warn")}),
        (200, {("o1", "stalled", "warn")}),
    ],
)
def test_a_deal_stuck_in_its_stage_is_stalled(
    days: int, expected: set[tuple[str, str, str]]
) -> None:
    assert found(run(deal(stage_changed_at=at(-days))), STALLED) == expected


def test_the_message_says_how_long() -> None:
    finding = only(run(deal(name="Boeing fleet", stage_changed_at=at(-45))), STALLED)
    assert finding.message.startswith("Deal Boeing fleet has been in stage engagement for 45 days")
    assert "Sometimes a sales deal stalls" in finding.doctrine


def test_closed_deals_and_deals_without_a_stage_date_are_not_judged() -> None:
    assert found(run(closed_deal(stage_changed_at=at(-90))), STALLED) == set()
    assert found(run(deal(stage_changed_at=None)), STALLED) == set()


def test_the_threshold_is_configurable() -> None:
    assert found(run(deal(stage_changed_at=at(-45)), stalled_days=60), STALLED) == set()
    assert found(run(deal(stage_changed_at=at(-45)), stalled_days=10), STALLED)


# -- late-registration ------------------------------------------------------------------------


def registered(stage: str | None, source: str = "deal_registration", **fields: object):
    """A channel deal converted from a partner's registration made at ``stage``."""
    extra = {"registration_stage": stage} if stage is not None else {}
    return (
        channel_deal("o1", lead_id="l1", stage="closing", probability=80, **extra, **fields),
        lead(
            "l1", source=source, partner_id="p1", status="converted", converted_opportunity_id="o1"
        ),
    )


@pytest.mark.parametrize(
    ("stage", "flagged"),
    [("engagement", False), ("date_locked", False), ("draft_proposal", True), ("closing", True)],
)
def test_registration_at_a_late_stage_is_flagged(stage: str, flagged: bool) -> None:
    opportunity, source_lead = registered(stage)
    result = found(run(opportunity, leads=[source_lead]), LATE)
    assert result == ({("o1", "registered_late", "warn")} if flagged else set())


def test_only_deal_registrations_are_judged() -> None:
    opportunity, referral = registered("closing", source="partner_referral")
    assert found(run(opportunity, leads=[referral]), LATE) == set()
    opportunity, source_lead = registered(None)
    assert found(run(opportunity, leads=[source_lead]), LATE) == set()


def test_closed_deals_are_history() -> None:
    source_lead = lead("l1", source="deal_registration", converted_opportunity_id="o1")
    won = closed_deal("o1", lead_id="l1", registration_stage="closing")
    assert found(run(won, leads=[source_lead]), LATE) == set()


def test_late_stages_are_configurable() -> None:
    opportunity, source_lead = registered("date_locked")
    findings = run(opportunity, leads=[source_lead], late_stages=["date_locked", "closing"])
    assert only(findings, LATE).message.startswith(
        "Deal Deal o1 was registered by its partner only at stage date_locked"
    )


# -- the package as installed -----------------------------------------------------------------


def test_the_entry_point_registers_the_pack(tsos_cli) -> None:
    assert "pipeline-hygiene" in [pack.name for pack in installed_packs()]
    listed = tsos_cli("rules")
    assert STALLED in listed.out and LATE in listed.out
    explained = tsos_cli("explain", STALLED)
    assert explained.code == 0 and "stalled_days" in explained.out


def test_the_shipped_yaml_validates(tsos_cli) -> None:
    checked = tsos_cli("validate-pack", str(PACK_FILE))
    assert checked.code == 0, checked.out + checked.err
    assert "pack pipeline-hygiene 0.1.0, 2 rule(s)" in checked.out


def test_the_readme_example_prints_what_it_says() -> None:
    example = run_markdown_example(Path(__file__).parents[1] / "README.md")
    assert example.expected and example.printed == example.expected
