"""Write-back: tasks upserted once on their fingerprint, repairs refused when stale."""

from __future__ import annotations

import datetime as dt

import pytest
from sf_scenario import Ids, seed
from sf_support import NOW, Org

from tsos_rules.connectors.base import Action, ActionKind, ActionStatus, ReadResult


@pytest.fixture
def ids(org: Org) -> Ids:
    return seed(org.fake)


def fingerprint(n: int) -> str:
    return f"{n:032x}"


def task(
    n: int, record_id: str, owner_id: str | None = None, record_type: str = "opportunity"
) -> Action:
    return Action(
        kind=ActionKind.CREATE_TASK,
        fingerprint=fingerprint(n),
        record_type=record_type,
        record_id=record_id,
        owner_id=owner_id,
        subject=f"finding {n}",
        description="Agree a next step with the buyer.",
        rule="tsos.next-step-required",
    )


def repair(read: ReadResult, record_id: str, n: int = 900, **changes: str) -> Action:
    return Action(
        kind=ActionKind.UPDATE_FIELDS,
        fingerprint=fingerprint(n),
        record_type="opportunity",
        record_id=record_id,
        changes=changes,
        expected_version=read.versions[("opportunity", record_id)],
    )


def tasks_with(org: Org, key: str) -> list[dict[str, object]]:
    return [t for t in org.fake.records("Task") if t["Tsos_Fingerprint__c"] == key]


def test_tasks_are_written_exactly_once_across_reruns_and_restarts(org: Org, ids: Ids) -> None:
    actions = [
        task(1, ids.boeing_fleet, ids.ray),
        task(2, ids.embraer_jets, ids.cara),
        task(3, ids.lead_embraer, ids.pat, record_type="lead"),
    ]
    connector = org.connector()
    first = connector.write(actions)
    assert [r.status for r in first] == [ActionStatus.WRITTEN] * 3
    assert [r.fingerprint for r in first] == [a.fingerprint for a in actions]
    again = connector.write(actions)  # the job re-runs after dying before it saved its state
    assert [r.status for r in again] == [ActionStatus.ALREADY_DONE] * 3
    assert [r.crm_id for r in again] == [r.crm_id for r in first]
    restarted = org.connector().write(actions)  # a new process, a new login
    assert [r.status for r in restarted] == [ActionStatus.ALREADY_DONE] * 3
    for n in (1, 2, 3):
        assert len(tasks_with(org, fingerprint(n))) == 1
    (lead_task,) = tasks_with(org, fingerprint(3))
    assert lead_task["WhoId"] == ids.lead_embraer and lead_task["OwnerId"] == ids.pat
    (deal_task,) = tasks_with(org, fingerprint(1))
    assert deal_task["WhatId"] == ids.boeing_fleet and deal_task["Status"] == "Not Started"
    assert deal_task["Subject"] == "tsos-rules: finding 1"
    assert deal_task["ActivityDate"] == dt.date(2026, 11, 27)
    assert org.fake.count("collections") == 3  # one Collections call per write


def test_a_lost_answer_is_retried_without_a_second_task(org: Org, ids: Ids) -> None:
    org.fake.timeout("collections", after=True)  # written, but the answer never arrives
    results = org.connector().write([task(1, ids.boeing_fleet, ids.ray)])
    assert results[0].status in (ActionStatus.WRITTEN, ActionStatus.ALREADY_DONE)
    assert len(tasks_with(org, fingerprint(1))) == 1
    assert org.fake.count("collections") == 2


def test_collections_carry_200_records_per_call(org: Org, ids: Ids) -> None:
    actions = [task(n, ids.airbus_cabin, ids.ray) for n in range(450)]
    results = org.connector().write(actions)
    assert {r.status for r in results} == {ActionStatus.WRITTEN}
    assert org.fake.count("collections") == 3  # ceil(450 / 200)
    assert len(org.fake.records("Task")) == 450 + 2


def test_one_bad_item_fails_alone_and_results_keep_the_order(org: Org, ids: Ids) -> None:
    actions = [
        task(1, ids.boeing_fleet, ids.ray),
        task(2, "006Dn0000009999ZZZ", ids.ray),  # no such deal
        task(3, ids.embraer_jets, ids.cara),
        Action(ActionKind.UPDATE_FIELDS, fingerprint(4), "opportunity", ids.airbus_cabin),
        Action(ActionKind.CREATE_TASK, "not-a-fingerprint", "opportunity", ids.airbus_cabin),
    ]
    results = org.connector().write(actions)
    assert [r.fingerprint for r in results] == [a.fingerprint for a in actions]
    assert [r.status for r in results] == [
        ActionStatus.WRITTEN,
        ActionStatus.FAILED,
        ActionStatus.WRITTEN,
        ActionStatus.FAILED,
        ActionStatus.FAILED,
    ]
    assert results[1].error and results[1].error.startswith("INVALID_CROSS_REFERENCE_KEY")
    assert results[3].error and "expected_version" in results[3].error
    assert results[4].error and "32 hex" in results[4].error


def test_locked_items_are_sent_again(org: Org, ids: Ids) -> None:
    org.fake.lock_items(2)
    actions = [task(n, ids.boeing_fleet, ids.ray) for n in range(3)]
    results = org.connector().write(actions)
    assert [r.status for r in results] == [ActionStatus.WRITTEN] * 3
    assert org.fake.count("collections") == 2  # the two locked items went again, together
    assert len(org.sleeps) == 1


def test_items_locked_for_good_fail_after_bounded_rounds(org: Org, ids: Ids) -> None:
    org.fake.lock_items(100)
    results = org.connector(retry={"max_retries": 2}).write([task(1, ids.boeing_fleet)])
    assert results[0].status is ActionStatus.FAILED
    assert results[0].error and "UNABLE_TO_LOCK_ROW" in results[0].error
    assert org.fake.count("collections") == 3


def test_a_repair_is_written_when_the_record_is_unchanged(org: Org, ids: Ids) -> None:
    connector = org.connector()
    read = connector.read(None, until=NOW)
    org.fake.now = NOW + dt.timedelta(minutes=1)
    (result,) = connector.write([repair(read, ids.boeing_fleet, close_date="2026-12-15")])
    assert result.status is ActionStatus.WRITTEN, result
    record = org.fake.get("Opportunity", ids.boeing_fleet)
    assert record["CloseDate"] == dt.date(2026, 12, 15)
    assert record["LastModifiedById"] == org.creds.user_id
    (call,) = [c for c in org.fake.calls if c.kind == "composite"]
    assert '"If-Unmodified-Since": "Thu, 19 Nov 2026 09:00:00 GMT"' in call.body


def test_a_record_changed_since_it_was_read_is_not_overwritten(org: Org, ids: Ids) -> None:
    connector = org.connector()
    read = connector.read(None, until=NOW)
    org.fake.now = NOW + dt.timedelta(minutes=1)
    org.fake.update("Opportunity", ids.boeing_fleet, CloseDate=dt.date(2027, 2, 1), by=ids.ray)
    (result,) = connector.write([repair(read, ids.boeing_fleet, close_date="2026-12-15")])
    assert result.status is ActionStatus.STALE, result
    assert org.fake.get("Opportunity", ids.boeing_fleet)["CloseDate"] == dt.date(2027, 2, 1)
    fresh = connector.read(read.watermark, until=org.fake.now)
    (again,) = connector.write([repair(fresh, ids.boeing_fleet, close_date="2026-12-15")])
    assert again.status is ActionStatus.WRITTEN


def test_repairs_go_25_to_a_composite_call(org: Org, ids: Ids) -> None:
    connector = org.connector()
    read = connector.read(None, until=NOW)
    actions = [repair(read, ids.airbus_cabin, n, next_step=f"Step {n}") for n in range(26)]
    results = connector.write(actions)
    # the first repair changes the deal, so the 25 after it see a newer record: stale
    assert [r.status for r in results].count(ActionStatus.WRITTEN) == 1
    assert [r.status for r in results].count(ActionStatus.STALE) == 25
    assert org.fake.count("composite") == 2


def test_a_repair_of_an_unmapped_field_fails_alone(org: Org, ids: Ids) -> None:
    connector = org.connector(fields={"opportunity.partner_override_reason": ""})
    read = connector.read(None, until=NOW)
    (result,) = connector.write(
        [repair(read, ids.airbus_cabin, partner_override_reason="customer asked")]
    )
    assert result.status is ActionStatus.FAILED
    assert result.error and "no Salesforce field" in result.error
    assert org.fake.count("composite") == 0


def test_closing_tasks_by_id_and_by_fingerprint(org: Org, ids: Ids) -> None:
    connector = org.connector()
    made = connector.write([task(1, ids.boeing_fleet, ids.ray), task(2, ids.airbus_cabin)])
    by_id = Action(
        ActionKind.CLOSE_TASK,
        fingerprint(1),
        "opportunity",
        ids.boeing_fleet,
        crm_id=made[0].crm_id,
    )
    by_key = Action(ActionKind.CLOSE_TASK, fingerprint(2), "opportunity", ids.airbus_cabin)
    never = Action(ActionKind.CLOSE_TASK, fingerprint(3), "opportunity", ids.airbus_cabin)
    closed = connector.write([by_id, by_key, never])
    assert [r.status for r in closed] == [
        ActionStatus.WRITTEN,
        ActionStatus.WRITTEN,
        ActionStatus.ALREADY_DONE,
    ]
    assert closed[1].crm_id == made[1].crm_id
    assert {t["Status"] for t in org.fake.records("Task") if t["Tsos_Fingerprint__c"]} == {
        "Completed"
    }
    again = connector.write([by_id, by_key])
    assert [r.status for r in again] == [ActionStatus.ALREADY_DONE] * 2


def test_findings_can_go_to_a_custom_object(org: Org, ids: Ids) -> None:
    fake = org.fake
    fake.schema["Tsos_Finding__c"] = {}
    for name, kind in (
        ("Id", "id"),
        ("IsDeleted", "boolean"),
        ("CreatedDate", "datetime"),
        ("CreatedById", "reference"),
        ("LastModifiedDate", "datetime"),
        ("LastModifiedById", "reference"),
        ("SystemModstamp", "datetime"),
        ("Name", "string"),
        ("Record_Id__c", "string"),
        ("Rule__c", "string"),
        ("Status__c", "string"),
    ):
        fake.add_field("Tsos_Finding__c", name, kind)
    fake.add_field(
        "Tsos_Finding__c", "Fingerprint__c", "string", external_id=True, unique=True, length=32
    )
    connector = org.connector(
        write={
            "object": "Tsos_Finding__c",
            "external_id_field": "Fingerprint__c",
            "subject_field": "Name",
            "record_field": "Record_Id__c",
            "rule_field": "Rule__c",
            "status_field": "Status__c",
            "open_status": "Open",
            "closed_status": "Resolved",
        }
    )
    (written,) = connector.write([task(7, ids.boeing_fleet, ids.ray)])
    assert written.status is ActionStatus.WRITTEN
    (row,) = fake.records("Tsos_Finding__c")
    assert (row["Record_Id__c"], row["Rule__c"], row["Status__c"]) == (
        ids.boeing_fleet,
        "tsos.next-step-required",
        "Open",
    )
    close = Action(ActionKind.CLOSE_TASK, fingerprint(7), "opportunity", ids.boeing_fleet)
    assert connector.write([close])[0].status is ActionStatus.WRITTEN
    assert fake.records("Tsos_Finding__c")[0]["Status__c"] == "Resolved"


def test_a_changed_record_is_not_repaired_even_where_the_condition_header_is_ignored(
    org: Org, ids: Ids
) -> None:
    """The guard does not rely on Salesforce honouring If-Unmodified-Since for every object:
    the writer reads LastModifiedDate again right before it sends, and sends nothing stale."""
    org.fake.honour_unmodified_since = False
    connector = org.connector()
    read = connector.read(None, until=NOW)
    org.fake.now = NOW + dt.timedelta(minutes=1)
    org.fake.update("Opportunity", ids.boeing_fleet, CloseDate=dt.date(2027, 2, 1), by=ids.ray)
    org.fake.reset_counts()
    (result,) = connector.write([repair(read, ids.boeing_fleet, close_date="2026-12-15")])
    assert result.status is ActionStatus.STALE, result
    assert result.error and "not overwritten" in result.error
    assert org.fake.get("Opportunity", ids.boeing_fleet)["CloseDate"] == dt.date(2027, 2, 1)
    assert org.fake.count("composite") == 0  # the stale repair was never sent
    assert org.fake.count("query") == 1  # one look at the current versions


def test_an_unchanged_record_is_repaired_after_the_version_check(org: Org, ids: Ids) -> None:
    org.fake.honour_unmodified_since = False
    connector = org.connector()
    read = connector.read(None, until=NOW)
    org.fake.now = NOW + dt.timedelta(minutes=1)
    (result,) = connector.write([repair(read, ids.boeing_fleet, close_date="2026-12-15")])
    assert result.status is ActionStatus.WRITTEN, result
    assert org.fake.get("Opportunity", ids.boeing_fleet)["CloseDate"] == dt.date(2026, 12, 15)
