"""tsos.lead-outcome-recorded (warn): every qualified lead ends as current, future or no
opportunity."""

from __future__ import annotations

import pytest

from tsos_rules.testing import lead, snapshot

pytestmark = pytest.mark.usefixtures("isolated_env")

RULE = "tsos.lead-outcome-recorded"


@pytest.fixture
def lo(found):
    def lo(*leads, **kwargs):
        return found(snapshot(leads=leads), RULE, **kwargs)

    return lo


@pytest.mark.parametrize("status", ["qualified", "closed"])
def test_a_qualified_or_closed_lead_without_outcome_is_reported(status, only):
    finding = only(snapshot(leads=[lead(status=status, outcome=None)]), RULE)
    assert (finding.record_type, finding.record_id, finding.reason, finding.severity.value) == (
        "lead",
        "l1",
        "no_outcome",
        "warn",
    )
    assert "current prospect, a future prospect or no opportunity" in finding.message


@pytest.mark.parametrize("status", ["qualified", "closed"])
@pytest.mark.parametrize("outcome", ["current", "future", "no_opportunity"])
def test_any_recorded_outcome_satisfies_the_rule(status, outcome, lo):
    assert lo(lead(status=status, outcome=outcome)) == set()


@pytest.mark.parametrize("status", ["open", "working", None])
def test_leads_still_being_worked_need_no_outcome_yet(status, lo):
    assert lo(lead(status=status, outcome=None)) == set()


def test_a_missing_outcome_key_is_no_outcome(lo):
    record = lead(status="qualified")
    del record["outcome"]
    assert lo(record) == {("l1", "no_outcome", "warn")}


def test_each_lead_is_judged_on_its_own(lo):
    leads = [
        lead("l1", status="qualified"),
        lead("l2", status="qualified", outcome="future"),
        lead("l3", status="closed"),
    ]
    assert lo(*leads) == {("l1", "no_outcome", "warn"), ("l3", "no_outcome", "warn")}


def test_which_statuses_are_qualified_is_configurable(lo):
    config = {"org": {"qualified_lead_statuses": ["sales_accepted"]}}
    assert lo(lead(status="sales_accepted"), config=config) == {("l1", "no_outcome", "warn")}
    assert lo(lead(status="qualified"), config=config) == set()
