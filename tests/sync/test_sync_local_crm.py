"""The local demo CRM behaves like a CRM: watermarks, related records, idempotent and
conditional writes, tombstones, bad records (real SQLite files in tmp_path)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from tsos_rules.connectors.base import Action, ActionKind, ActionStatus, BatchReader, ReadResult
from tsos_rules.connectors.local.connector import LocalConnector
from tsos_rules.connectors.local.crm import LocalCRM, iter_org_json
from tsos_rules.connectors.local.demo import write_org_json
from tsos_rules.engine import Engine, filter_severity
from tsos_rules.snapshot.document import snapshot_from_dict
from tsos_rules.testing import builders as b

AS_OF = b.TODAY


def _connector(tmp_path: Path, document: dict[str, Any]) -> LocalConnector:
    crm = LocalCRM(tmp_path / "crm.sqlite3")
    crm.seed(copy.deepcopy(document))
    return LocalConnector(crm)


def _deals(count: int) -> dict[str, Any]:
    return b.snapshot(opportunities=[b.deal(f"o{i:03d}") for i in range(count)])


def _ids(result: ReadResult, record_type: str = "opportunity") -> set[str]:
    return {record_id for kind, record_id in result.changed if kind == record_type}


def test_same_modstamp_at_the_watermark_is_neither_missed_nor_read_twice(
    tmp_path: Path,
) -> None:
    connector = _connector(tmp_path, _deals(30))
    first = connector.read(None)
    assert len(_ids(first)) == 30
    # A bulk edit: ten deals in one transaction share one modstamp.
    crm = connector.crm
    versions = crm.update_many(
        [("opportunity", f"o{i:03d}", {"amount": 20000 + i}) for i in range(10)], by="u1"
    )
    assert len(set(versions)) == 1
    second = connector.read(first.watermark)
    assert _ids(second) == {f"o{i:03d}" for i in range(10)}
    # Paging through the tie one group per batch loses and repeats nothing.
    pages = list(connector.read_batches(first.watermark, batch_size=1))
    assert len(pages) == 10
    paged = [record_id for page in pages for record_id in _ids(page)]
    assert sorted(paged) == sorted(_ids(second))
    assert {page.watermark for page in pages} == {second.watermark}
    # Nothing changed since: nothing is read; a later edit is read once.
    assert connector.read(second.watermark).changed == frozenset()
    crm.update("opportunity", "o020", {"amount": 1}, by="u1")
    third = connector.read(second.watermark)
    assert _ids(third) == {"o020"}
    connector.close()


def test_a_changed_deal_brings_its_related_records(tmp_path: Path) -> None:
    document = b.snapshot(
        accounts=[b.channel_account("a1")],
        leads=[b.lead("l1", account_id="a1", partner_id="p1", converted_opportunity_id="o1")],
        opportunities=[
            b.channel_deal("o1", lead_id="l1", team_user_ids=["d1"]),
            b.channel_deal("o2"),
            b.deal("o9"),
        ],
        close_date_changes=[b.change("o1")],
        activities=[b.activity("t1", what_id="o1")],
    )
    connector = _connector(tmp_path, document)
    first = connector.read(None)
    connector.crm.update("opportunity", "o1", {"next_step": "Send the MSA"}, by="u1")
    result = connector.read(first.watermark)
    snap = result.snapshot
    assert _ids(result) == {"o1"}
    assert {a.id for a in snap.accounts} == {"a1"}
    assert {lead.id for lead in snap.leads} == {"l1"}
    assert {p.id for p in snap.partners} == {"p1"}
    assert {u.id for u in snap.users} >= {"u1", "d1"}
    assert [c.opportunity_id for c in snap.close_date_changes] == ["o1"]
    assert {a.id for a in snap.activities} == {"t1"}
    # The company's other deal is context (ownership conflicts compare them), not re-judged:
    # the edit touched no field that links records. An unrelated deal is not read at all.
    assert "o2" in {o.id for o in snap.opportunities}
    assert result.affected == frozenset()
    assert "o9" not in {o.id for o in snap.opportunities}
    assert result.versions[("opportunity", "o1")] == connector.crm.version("opportunity", "o1")
    # A new owner can make or break an ownership conflict: the whole company is re-judged.
    connector.crm.update("opportunity", "o1", {"owner_id": "u2"}, by="u1")
    relinked = connector.read(result.watermark)
    assert _ids(relinked) == {"o1"}
    assert {("opportunity", "o2"), ("account", "a1"), ("lead", "l1")} <= relinked.affected
    connector.close()


def test_an_edited_activity_rejudges_its_deal(tmp_path: Path) -> None:
    document = b.snapshot(
        opportunities=[b.deal("o1", next_step="TBD")],
        activities=[b.activity("t1", what_id="o1", due_date=b.day(3))],
    )
    connector = _connector(tmp_path, document)
    first = connector.read(None)
    connector.crm.update("activity", "t1", {"status": "completed"}, by="u1")
    result = connector.read(first.watermark)
    assert ("activity", "t1") in result.changed
    assert ("opportunity", "o1") in result.affected  # its next step may no longer be covered
    connector.close()


def test_a_changed_partner_brings_every_record_that_names_it(tmp_path: Path) -> None:
    document = b.snapshot(
        accounts=[b.channel_account("a1"), b.account("a2")],
        opportunities=[b.channel_deal("o1"), b.deal("o2", account_id="a2")],
    )
    connector = _connector(tmp_path, document)
    first = connector.read(None)
    connector.crm.update("partner", "p1", {"status": "terminated"}, by="u1")
    result = connector.read(first.watermark)
    assert ("partner", "p1") in result.changed
    judged = result.changed | result.affected
    assert ("opportunity", "o1") in judged and ("account", "a1") in judged
    assert ("opportunity", "o2") not in judged
    connector.close()


def test_deletes_are_tombstones_read_once(tmp_path: Path) -> None:
    connector = _connector(tmp_path, _deals(3))
    first = connector.read(None)
    connector.crm.delete("opportunity", "o001")
    second = connector.read(first.watermark)
    assert second.deleted == frozenset({("opportunity", "o001")})
    assert connector.read(second.watermark).deleted == frozenset()
    assert "o001" not in {o.id for o in connector.read(None).snapshot.opportunities}
    connector.close()


def _task(fingerprint: str, record_id: str = "o000") -> Action:
    return Action(
        kind=ActionKind.CREATE_TASK,
        fingerprint=fingerprint,
        record_type="opportunity",
        record_id=record_id,
        owner_id="u1",
        subject="Fix the next step",
    )


def test_task_upsert_on_the_external_id_is_idempotent(tmp_path: Path) -> None:
    connector = _connector(tmp_path, _deals(1))
    [created] = connector.write([_task("f" * 32)])
    [again] = connector.write([_task("f" * 32)])
    assert created.status is ActionStatus.WRITTEN
    assert again.status is ActionStatus.ALREADY_DONE and again.crm_id == created.crm_id
    close = Action(ActionKind.CLOSE_TASK, "f" * 32, "opportunity", "o000")
    assert [r.status for r in connector.write([close, close])] == [
        ActionStatus.WRITTEN,
        ActionStatus.ALREADY_DONE,
    ]
    # The finding comes back: the same task reopens, no second task.
    [reopened] = connector.write([_task("f" * 32)])
    assert reopened.status is ActionStatus.WRITTEN and reopened.crm_id == created.crm_id
    assert [t["status"] for t in connector.crm.tasks()] == ["open"]
    # The sync's own tasks are never read back as the sales team's activities.
    assert connector.read(None).snapshot.activities == ()
    connector.close()


def test_a_field_update_naming_a_stale_version_is_refused(tmp_path: Path) -> None:
    connector = _connector(tmp_path, _deals(1))
    read = connector.read(None)
    version = read.versions[("opportunity", "o000")]
    connector.crm.update("opportunity", "o000", {"close_date": b.day(40)}, by="u1")
    repair = Action(
        ActionKind.UPDATE_FIELDS,
        "e" * 32,
        "opportunity",
        "o000",
        changes={"close_date": b.day(30)},
        expected_version=version,
    )
    [result] = connector.write([repair])
    assert result.status is ActionStatus.STALE
    assert connector.crm.get("opportunity", "o000")["close_date"] == b.day(40)  # type: ignore[index]
    fresh = connector.crm.version("opportunity", "o000")
    [written] = connector.write([Action(**{**_fields(repair), "expected_version": fresh})])
    assert written.status is ActionStatus.WRITTEN
    assert connector.crm.get("opportunity", "o000")["close_date"] == b.day(30)  # type: ignore[index]
    # The repair is in the history, approved by the sync (so it is not itself an offence).
    last = connector.crm.close_date_history("o000")[-1]
    assert (last["old"], last["new"], last["approved_by"]) == (b.day(40), b.day(30), "tsos-rules")
    connector.close()


def _fields(action: Action) -> dict[str, Any]:
    return {
        name: getattr(action, name)
        for name in (
            "kind",
            "fingerprint",
            "record_type",
            "record_id",
            "changes",
            "expected_version",
        )
    }


def test_a_bad_record_is_named_and_holds_back_its_group(tmp_path: Path) -> None:
    document = b.snapshot(
        accounts=[b.account("a1"), b.account("a2")],
        opportunities=[
            b.deal("o1", account_id="a1"),
            b.deal("o2", account_id="a1"),
            b.deal("o3", account_id="a2"),
        ],
    )
    connector = _connector(tmp_path, document)
    connector.crm.update("opportunity", "o1", {"close_date": "next Friday"}, by="u1")
    result = connector.read(None)
    # The deal, and the history row the edit left, both name the record and the field.
    named = {(e.record_type, e.record_id, e.field) for e in result.errors}
    assert named == {("opportunity", "o1", "close_date"), ("close_date_change", "o1", "new")}
    assert all("YYYY-MM-DD" in e.problem for e in result.errors)
    # o2 shares o1's company group: judging it without o1 could resolve findings falsely.
    assert ("opportunity", "o2") in result.incomplete
    assert ("opportunity", "o3") in result.changed
    connector.close()


def test_batched_reads_judge_exactly_like_one_snapshot(
    tmp_path: Path, demo_org: dict[str, Any]
) -> None:
    """Company groups carry every related record: findings per batch equal the whole org's."""
    connector = _connector(tmp_path, demo_org)
    assert isinstance(connector, BatchReader)
    engine = Engine.from_config(None)
    whole, _ = snapshot_from_dict(copy.deepcopy(demo_org))
    expected = {
        f.fingerprint for f in filter_severity(engine.evaluate(whole, AS_OF), include_info=True)
    }
    found: set[str] = set()
    batches = 0
    for batch in connector.read_batches(None, batch_size=7):
        batches += 1
        index = engine.index(batch.snapshot, AS_OF)
        for facts in index.iter_facts(engine.record_types):
            if (facts.record_type, facts.record_id) in batch.changed:
                found.update(f.fingerprint for f in engine.evaluate_facts(facts))
    engine.close()
    connector.close()
    assert batches > 10
    assert found == expected


def test_a_million_deal_org_can_be_seeded_from_a_stream(tmp_path: Path) -> None:
    """write_org_json's one-record-per-line file streams into the CRM (the benchmark's path)."""
    path = tmp_path / "org.json"
    counts = write_org_json(path, opportunities=40, seed=3, as_of=AS_OF)
    crm = LocalCRM(tmp_path / "crm.sqlite3")
    loaded = crm.seed_records(iter_org_json(path), as_of=AS_OF.isoformat())
    assert loaded == {name: n for name, n in counts.items() if n}
    assert crm.counts()["opportunities"] == 40
    crm.close()


def test_a_lead_bridging_an_account_id_and_a_company_name_joins_their_groups(
    tmp_path: Path,
) -> None:
    """Facts join records sharing an account id or a company name (union-find): a lead on a
    missing account that names a company links that account's deals with the company's."""
    document = b.snapshot(
        accounts=[b.account("a1", name="Boeing")],
        leads=[b.lead("l1", account_id="gone", company="Boeing Inc.", owner_id="u1")],
        opportunities=[
            b.deal("o1", account_id="a1", owner_id="u1"),
            b.deal("o2", account_id="gone", owner_id="u2"),
        ],
    )
    connector = _connector(tmp_path, document)
    engine = Engine.from_config(None)
    whole, _ = snapshot_from_dict(copy.deepcopy(document))
    expected = {f.fingerprint for f in engine.evaluate(whole, AS_OF)}
    assert any(f.rule == "tsos.lead-single-owner" for f in engine.evaluate(whole, AS_OF))
    found: set[str] = set()
    for batch in connector.read_batches(None, batch_size=1):
        index = engine.index(batch.snapshot, AS_OF)
        for facts in index.iter_facts(engine.record_types):
            if (facts.record_type, facts.record_id) in batch.changed:
                found.update(f.fingerprint for f in engine.evaluate_facts(facts))
    engine.close()
    connector.close()
    assert found == expected
