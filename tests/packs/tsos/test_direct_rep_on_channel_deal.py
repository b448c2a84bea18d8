"""tsos.direct-rep-on-channel-deal (warn): no direct rep on a channel deal's team."""

from __future__ import annotations

import pytest

from tsos_rules.testing import channel_account, channel_deal, closed_deal, deal, snapshot

pytestmark = pytest.mark.usefixtures("isolated_env")

RULE = "tsos.direct-rep-on-channel-deal"


def test_a_direct_rep_on_the_team_of_a_channel_deal_is_a_warning(only):
    snap = snapshot(
        opportunities=[channel_deal(team_user_ids=["u2", "d1"])], accounts=[channel_account()]
    )
    finding = only(snap, RULE)
    assert (finding.record_id, finding.reason, finding.severity.value) == (
        "o1",
        "direct_rep_on_team",
        "warn",
    )
    assert finding.details["user_ids"] == ["d1"]
    assert "User d1" in finding.message


def test_a_team_of_channel_reps_is_fine(found):
    snap = snapshot(
        opportunities=[channel_deal(team_user_ids=["u1", "u2"])], accounts=[channel_account()]
    )
    assert found(snap, RULE) == set()


def test_a_direct_rep_on_a_direct_deal_is_fine(found):
    assert found(snapshot(opportunities=[deal(team_user_ids=["d1"])]), RULE) == set()


def test_several_direct_reps_make_one_finding_naming_them_all(only):
    snap = snapshot(
        users=[
            {"id": "d1", "name": "Ray", "role": "direct"},
            {"id": "d2", "name": "Kim", "role": "direct"},
            {"id": "u1", "role": "channel"},
        ],
        opportunities=[channel_deal(team_user_ids=["d2", "d1"])],
        accounts=[channel_account()],
    )
    finding = only(snap, RULE)
    assert finding.details["user_ids"] == ["d1", "d2"]
    assert "Ray" in finding.message and "Kim" in finding.message


def test_closed_channel_deals_are_not_judged(found):
    snap = snapshot(
        opportunities=[
            closed_deal(account_id="a1", partner_id="p1", channel="partner", team_user_ids=["d1"])
        ],
        accounts=[channel_account()],
    )
    assert found(snap, RULE) == set()
