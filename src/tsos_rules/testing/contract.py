"""``ConnectorContract``: the protocol checks every connector inherits (pytest).

Subclass it in a test module under a name starting with ``Test`` and implement the harness
methods; pytest then runs every ``test_*`` check below against your connector::

    from tsos_rules.testing import ConnectorContract

    class TestMyCRM(ConnectorContract):
        def make_connector(self, tmp_path):
            return MyConnector(base_url=..., session=self.session)

        def seed(self, connector, snapshot, *, at):
            ...  # put every record of ``snapshot`` in the CRM, modified at ``at``

        def change_record(self, connector, record_type, record_id, changes, *, at):
            ...  # change these fields of one record in the CRM, modified at ``at``

What is checked (each check says in its docstring why it matters to the sync job):

- the protocol itself: ``name``, ``capabilities()``, ``close()`` twice;
- incremental windows ``(since, until]``: a full read returns every record; a change is read
  exactly once; records changed at the very instant of ``until`` are in that window and not in
  the next (no gap, no duplicate at the watermark); a read with nothing new returns nothing;
- related records present: a changed deal arrives with its account, owner, team, partner,
  source lead, close-date history and activities; a changed lead with its owner and partner;
- writes: results in the same order as the actions; task creation and closing idempotent on
  the fingerprint (also across a new connector instance); one bad item fails alone;
- stale writes refused: a repair carrying an old ``expected_version`` is ``STALE`` and leaves
  the newer change in place;
- errors mapped to the right types: the failures the harness can provoke
  (:meth:`ConnectorContract.induce_error`) surface as ``FatalConnectorError``,
  ``RetriableConnectorError`` or a skipped record in ``ReadResult.errors``;
- optional: deletions reported in ``deleted``; ``read_batches`` (if implemented) agrees with
  ``read``; ``read_where`` judges exactly the records whose field matches, with their related
  records; ``stream_where`` reads the same records with their account, owner, team and
  partner; ``ids_where`` lists their ids; ``stream_records`` gives every record once; the
  connector is registered under :attr:`ConnectorContract.connector_name`.

Checks that need a capability the connector does not declare (tasks, field updates,
conditional updates) or a harness method left unimplemented are skipped, with the reason.
Times: the contract seeds at ``T0`` (two hours ago, whole seconds) and changes at later whole
seconds, always passing ``until`` explicitly, so no check depends on the real clock.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, ClassVar

import attrs
import pytest

from tsos_rules.connectors.base import (
    Action,
    ActionKind,
    ActionResult,
    ActionStatus,
    BatchReader,
    Capabilities,
    ChangedRecordStream,
    Connector,
    KeyedReader,
    ReaderIds,
    ReaderStream,
    ReadResult,
    RecordKey,
    RecordStream,
)
from tsos_rules.errors import (
    ConnectorError,
    FatalConnectorError,
    RetriableConnectorError,
)
from tsos_rules.model import Snapshot
from tsos_rules.testing import builders as b

__all__ = ["CONTRACT_SNAPSHOT", "ConnectorContract", "contract_snapshot", "missing_related"]

#: The judged records the contract seeds (``contract_snapshot``), by key.
SEEDED_JUDGED: frozenset[RecordKey] = frozenset(
    {
        ("account", "a1"),
        ("account", "a2"),
        ("lead", "l1"),
        ("lead", "l2"),
        ("opportunity", "o1"),
        ("opportunity", "o2"),
        ("activity", "t1"),
        ("activity", "t2"),
    }
)
JUDGED_TYPES = frozenset({"account", "lead", "opportunity", "activity"})


def contract_snapshot() -> dict[str, Any]:
    """What the contract seeds: two users and a direct rep, partner ``p1``, a channel deal
    ``o1`` (account ``a1`` with partner of record ``p1``, source lead ``l1``, direct rep ``d1``
    on its team, one close-date change, task ``t1``) and a direct deal ``o2`` on account
    ``a2`` with task ``t2``, plus an open lead ``l2`` distributed to ``p1``."""
    return b.snapshot(
        users=[b.user("u1", "channel"), b.user("u2", "channel"), b.user("d1", "direct")],
        partners=[b.partner("p1")],
        accounts=[b.channel_account("a1", name="Boeing"), b.account("a2", name="Airbus")],
        leads=[
            b.lead(
                "l1",
                company="Boeing",
                account_id="a1",
                partner_id="p1",
                source="partner_referral",
                status="converted",
                outcome="current",
                converted_opportunity_id="o1",
            ),
            b.lead(
                "l2",
                company="Embraer",
                owner_id="u2",
                partner_id="p1",
                source="partner",
                distributed_at=b.at(-1),
            ),
        ],
        opportunities=[
            b.channel_deal("o1", name="Boeing fleet", lead_id="l1", team_user_ids=["d1"]),
            b.deal("o2", name="Airbus cabin", account_id="a2", owner_id="u2"),
        ],
        close_date_changes=[b.change("o1", changed_by="u1")],
        activities=[
            b.activity("t1", what_id="o1", account_id="a1"),
            b.activity("t2", what_id="o2", account_id="a2", owner_id="u2"),
        ],
    )


#: The contract's snapshot as a :class:`tsos_rules.Snapshot` (what :meth:`seed` receives).
CONTRACT_SNAPSHOT: Snapshot = b.to_snapshot(contract_snapshot())


def missing_related(result: ReadResult) -> list[str]:
    """Related records a read should carry but does not, one line each (empty when complete).

    For every changed deal: its account, owner, team, partner, source lead, the account's
    partner of record, its close-date changes and activities present in the CRM (as far as
    this snapshot can tell: a deal whose ``lead_id`` names a lead must bring that lead). For
    every changed lead: owner, partner, account. For every changed account: its partner of
    record. For every changed activity: its owner and its account.
    """
    snap = result.snapshot
    users = {u.id for u in snap.users}
    partners = {p.id for p in snap.partners}
    accounts = {a.id: a for a in snap.accounts}
    leads = {x.id for x in snap.leads}
    out: list[str] = []

    def need(present: set[str] | dict[str, Any], wanted: str | None, what: str) -> None:
        if wanted and wanted not in present:
            out.append(what)

    for opportunity in snap.opportunities:
        if ("opportunity", opportunity.id) not in result.changed:
            continue
        where = f"opportunity {opportunity.id}"
        need(accounts, opportunity.account_id, f"{where}: account {opportunity.account_id}")
        need(users, opportunity.owner_id, f"{where}: owner {opportunity.owner_id}")
        need(partners, opportunity.partner_id, f"{where}: partner {opportunity.partner_id}")
        need(leads, opportunity.lead_id, f"{where}: lead {opportunity.lead_id}")
        for member in opportunity.team_user_ids:
            need(users, member, f"{where}: team member {member}")
        account = accounts.get(opportunity.account_id or "")
        if account is not None:
            por = account.partner_of_record_id
            need(partners, por, f"{where}: account's partner of record {por}")
    for lead in snap.leads:
        if ("lead", lead.id) not in result.changed:
            continue
        need(users, lead.owner_id, f"lead {lead.id}: owner {lead.owner_id}")
        need(partners, lead.partner_id, f"lead {lead.id}: partner {lead.partner_id}")
        need(accounts, lead.account_id, f"lead {lead.id}: account {lead.account_id}")
    for account in snap.accounts:
        if ("account", account.id) in result.changed:
            por = account.partner_of_record_id
            need(partners, por, f"account {account.id}: partner of record {por}")
    for activity in snap.activities:
        if ("activity", activity.id) not in result.changed:
            continue
        need(users, activity.owner_id, f"activity {activity.id}: owner {activity.owner_id}")
        need(accounts, activity.account_id, f"activity {activity.id}: account")
    return out


def _judged(keys: frozenset[RecordKey]) -> set[RecordKey]:
    return {key for key in keys if key[0] in JUDGED_TYPES}


class ConnectorContract:
    """Inherit in a ``Test*`` class and implement the harness methods (see the module doc)."""

    #: The name the connector registers through ``tsos_rules_register_connectors`` (checked
    #: when set).
    connector_name: ClassVar[str | None] = None
    #: ``make_connector`` twice on one ``tmp_path`` reaches the same CRM (so idempotency across
    #: a restart of the job can be checked). Set False when it cannot.
    reconnects: ClassVar[bool] = True
    #: The enforce-mode repair used by the stale-write check: record type, id, field changes in
    #: the snapshot JSON shape, and a change that someone else makes meanwhile.
    repair: ClassVar[tuple[str, str, Mapping[str, Any]]] = (
        "opportunity",
        "o1",
        {"close_date": b.day(23)},
    )
    concurrent_change: ClassVar[Mapping[str, Any]] = {"next_step": "Call the CFO about budget"}

    # -- the harness: implement these ------------------------------------------------------

    def make_connector(self, tmp_path: Path) -> Connector:
        """A connector over an empty CRM kept under ``tmp_path`` (or a fake server)."""
        raise NotImplementedError("ConnectorContract: implement make_connector(self, tmp_path)")

    def seed(self, connector: Connector, snapshot: Snapshot, *, at: dt.datetime) -> None:
        """Create every record of ``snapshot`` in the CRM, all last modified at ``at``."""
        raise NotImplementedError("ConnectorContract: implement seed(self, connector, ...)")

    def change_record(
        self,
        connector: Connector,
        record_type: str,
        record_id: str,
        changes: Mapping[str, Any],
        *,
        at: dt.datetime,
    ) -> None:
        """Change fields of one record *in the CRM* (as a CRM user would), modified at ``at``.

        ``record_type`` is the singular name (``opportunity``, ``lead``, ``account``,
        ``activity``); ``changes`` uses the snapshot's field names and JSON values.
        """
        raise NotImplementedError("ConnectorContract: implement change_record(...)")

    def delete_record(
        self, connector: Connector, record_type: str, record_id: str, *, at: dt.datetime
    ) -> None:
        """Delete one record in the CRM at ``at``. Optional: the deletion check is skipped."""
        raise NotImplementedError

    def induce_error(self, connector: Connector, kind: str) -> bool:
        """Make the connector's next ``read`` meet a failure of ``kind``; False: not possible.

        Kinds: ``"fatal"`` (bad credentials, missing permission, unusable store: the read must
        raise :class:`FatalConnectorError`), ``"retriable"`` (rate limit, timeout, lock: must
        raise :class:`RetriableConnectorError`), ``"bad_record"`` (opportunity ``o2`` holds a
        value that cannot be mapped, e.g. a close date ``"soon"``: the read must skip it and
        name it in ``ReadResult.errors``, and still return the other records).
        """
        return False

    # -- fixtures ---------------------------------------------------------------------------

    T0: ClassVar[dt.datetime] = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(
        hours=2
    )

    def t(self, seconds: int) -> dt.datetime:
        """``T0`` plus ``seconds``: the contract's clock."""
        return self.T0 + dt.timedelta(seconds=seconds)

    @pytest.fixture
    def connector(self, tmp_path: Path) -> Iterator[Connector]:
        """An unseeded connector, closed after the test."""
        made = self.make_connector(tmp_path)
        yield made
        made.close()

    @pytest.fixture
    def seeded(self, connector: Connector) -> Connector:
        """A connector whose CRM holds :func:`contract_snapshot`, modified at ``T0``."""
        self.seed(connector, CONTRACT_SNAPSHOT, at=self.T0)
        return connector

    def first_read(self, connector: Connector) -> ReadResult:
        """The full read at ``T0 + 1s`` every incremental check starts from."""
        return connector.read(None, until=self.t(1))

    def _change(self, connector: Connector, key: RecordKey, seconds: int) -> None:
        changes: dict[str, Mapping[str, Any]] = {
            "opportunity": {"next_step": f"Agenda for meeting {seconds}"},
            "lead": {"status": "working"},
            "account": {"name": f"Renamed {seconds}"},
            "activity": {"subject": f"Call {seconds}"},
        }
        self.change_record(connector, key[0], key[1], changes[key[0]], at=self.t(seconds))

    def _needs(self, connector: Connector, **flags: bool) -> Capabilities:
        capabilities = connector.capabilities()
        for flag, wanted in flags.items():
            if wanted and not getattr(capabilities, flag):
                pytest.skip(f"the connector does not declare {flag}")
        return capabilities

    # -- the protocol --------------------------------------------------------------------------

    def test_implements_the_protocol(self, connector: Connector) -> None:
        """The job only talks to ``name``, ``capabilities``, ``read``, ``write``, ``close``."""
        assert isinstance(connector, Connector)
        assert isinstance(connector.name, str) and connector.name
        capabilities = connector.capabilities()
        assert isinstance(capabilities, Capabilities)
        assert capabilities.max_batch >= 1

    def test_close_twice_is_harmless(self, tmp_path: Path) -> None:
        """The job closes connectors in ``finally`` blocks, sometimes twice."""
        made = self.make_connector(tmp_path)
        made.close()
        made.close()

    def test_registered_under_its_name(self) -> None:
        """``[connector] type = "<name>"`` finds the factory through the plugin hook."""
        if self.connector_name is None:
            pytest.skip("set connector_name to check the registration")
        from tsos_rules.testing.run import installed_connectors

        assert self.connector_name in installed_connectors()

    # -- incremental reads ----------------------------------------------------------------------

    def test_full_read_returns_every_record(self, seeded: Connector) -> None:
        """A first run (no watermark) judges everything and leaves a watermark to go on from."""
        result = self.first_read(seeded)
        assert _judged(result.changed) >= SEEDED_JUDGED, sorted(SEEDED_JUDGED - result.changed)
        snap = result.snapshot
        assert {u.id for u in snap.users} >= {"u1", "u2", "d1"}
        assert {p.id for p in snap.partners} >= {"p1"}
        assert len(snap.close_date_changes) >= 1
        assert isinstance(result.watermark, str) and result.watermark
        assert not result.errors, [str(e) for e in result.errors]

    def test_records_read_with_their_fields(self, seeded: Connector) -> None:
        """Mapping both ways keeps the values the rules read (stage, dates, partner, ...)."""
        snap = self.first_read(seeded).snapshot
        deals = {o.id: o for o in snap.opportunities}
        expected = {o.id: o for o in CONTRACT_SNAPSHOT.opportunities}
        for deal_id in ("o1", "o2"):
            got, want = deals[deal_id], expected[deal_id]
            for field in (
                "account_id",
                "owner_id",
                "partner_id",
                "stage",
                "amount",
                "close_date",
                "forecast_category",
                "is_closed",
                "next_step",
                "next_step_date",
            ):
                assert getattr(got, field) == getattr(want, field), (deal_id, field)
        leads = {x.id: x for x in snap.leads}
        assert leads["l2"].partner_id == "p1" and leads["l2"].distributed_at is not None
        accounts = {a.id: a for a in snap.accounts}
        assert accounts["a1"].partner_of_record_id == "p1"

    def test_nothing_new_reads_nothing(self, seeded: Connector) -> None:
        """Records at the watermark's instant were read; the next window must not repeat them."""
        self._needs(seeded, incremental=True)
        first = seeded.read(None, until=self.T0)  # ``until`` exactly at the seeding instant
        assert _judged(first.changed) >= SEEDED_JUDGED, "until is inclusive: (since, until]"
        again = seeded.read(first.watermark, until=self.t(5))
        assert _judged(again.changed) == set(), sorted(again.changed)
        assert not again.deleted

    def test_a_change_is_read_exactly_once(self, seeded: Connector) -> None:
        """Each change is judged once: not lost, not judged again as new on the next run."""
        self._needs(seeded, incremental=True)
        first = self.first_read(seeded)
        self._change(seeded, ("opportunity", "o2"), 10)
        second = seeded.read(first.watermark, until=self.t(20))
        assert _judged(second.changed) == {("opportunity", "o2")}
        third = seeded.read(second.watermark, until=self.t(30))
        assert _judged(third.changed) == set()

    def test_no_gap_and_no_duplicate_at_the_watermark(self, seeded: Connector) -> None:
        """Windows ``(since, until]`` tile time: a record changed exactly at ``until`` is in that
        window, a record one second later is in the next, and neither is read twice."""
        self._needs(seeded, incremental=True)
        first = self.first_read(seeded)
        self._change(seeded, ("opportunity", "o1"), 10)
        self._change(seeded, ("account", "a2"), 10)  # the same instant as o1
        self._change(seeded, ("opportunity", "o2"), 11)
        at_boundary = seeded.read(first.watermark, until=self.t(10))
        assert _judged(at_boundary.changed) == {("opportunity", "o1"), ("account", "a2")}
        after = seeded.read(at_boundary.watermark, until=self.t(11))
        assert _judged(after.changed) == {("opportunity", "o2")}
        last = seeded.read(after.watermark, until=self.t(60))
        assert _judged(last.changed) == set()

    def test_related_records_arrive_with_a_changed_deal(self, seeded: Connector) -> None:
        """Rules judge a deal with its account, owner, partner, lead, history and activities,
        even when only the deal changed."""
        self._needs(seeded, incremental=True)
        first = self.first_read(seeded)
        self._change(seeded, ("opportunity", "o1"), 10)
        result = seeded.read(first.watermark, until=self.t(20))
        assert _judged(result.changed) == {("opportunity", "o1")}
        assert missing_related(result) == []
        snap = result.snapshot
        assert "a1" in {a.id for a in snap.accounts}
        assert {"u1", "d1"} <= {u.id for u in snap.users}
        assert "p1" in {p.id for p in snap.partners}
        assert "l1" in {x.id for x in snap.leads}
        assert "o1" in {c.opportunity_id for c in snap.close_date_changes}
        assert "t1" in {a.id for a in snap.activities}

    def test_related_records_arrive_with_a_changed_lead(self, seeded: Connector) -> None:
        """A lead's owner and partner come with it (partner follow-up rules read them)."""
        self._needs(seeded, incremental=True)
        first = self.first_read(seeded)
        self._change(seeded, ("lead", "l2"), 10)
        result = seeded.read(first.watermark, until=self.t(20))
        assert ("lead", "l2") in result.changed
        assert missing_related(result) == []

    def test_versions_for_conditional_updates(self, seeded: Connector) -> None:
        """Repairs carry the version that was read; without one, stale writes go unnoticed."""
        self._needs(seeded, conditional_updates=True)
        first = self.first_read(seeded)
        assert ("opportunity", "o1") in first.versions
        version = first.versions[("opportunity", "o1")]
        self._change(seeded, ("opportunity", "o1"), 10)
        second = seeded.read(first.watermark, until=self.t(20))
        assert second.versions[("opportunity", "o1")] != version

    def test_deletions_are_reported(self, seeded: Connector) -> None:
        """A deleted record's open findings must be resolved, so the job must hear of it."""
        self._needs(seeded, incremental=True)
        first = self.first_read(seeded)
        try:
            self.delete_record(seeded, "opportunity", "o2", at=self.t(10))
        except NotImplementedError:
            pytest.skip("delete_record is not implemented by this harness")
        result = seeded.read(first.watermark, until=self.t(20))
        assert ("opportunity", "o2") in result.deleted
        assert ("opportunity", "o2") not in result.changed

    def test_batches_agree_with_a_single_read(self, seeded: Connector) -> None:
        """``read_batches`` (optional) yields self-contained batches with one final watermark."""
        if not isinstance(seeded, BatchReader):
            pytest.skip("the connector does not implement read_batches")
        whole = self.first_read(seeded)
        batches = list(seeded.read_batches(None, until=self.t(1), batch_size=2))
        assert batches
        assert {batch.watermark for batch in batches} == {batches[-1].watermark}
        union: set[RecordKey] = set()
        for batch in batches:
            assert missing_related(batch) == []
            union |= _judged(batch.changed)
        assert union == _judged(whole.changed)

    def test_keyed_reads_judge_the_matching_records(self, seeded: Connector) -> None:
        """``read_where`` (optional): a partner's deals, judged, with their related records."""
        if not isinstance(seeded, KeyedReader):
            pytest.skip("the connector does not implement read_where")
        whole = self.first_read(seeded)
        deals = {
            ("opportunity", d.id) for d in whole.snapshot.opportunities if d.partner_id == "p1"
        }
        assert deals, "the contract's seed gives partner p1 deals"
        batches = list(seeded.read_where("opportunity", "partner_id", ["p1"], batch_size=2))
        judged: list[RecordKey] = [key for batch in batches for key in batch.affected]
        assert sorted(judged) == sorted(deals)
        for batch in batches:
            assert not batch.changed and batch.watermark is None
            # the judged records come with every related record, as a changed one does
            assert missing_related(attrs.evolve(batch, changed=batch.affected)) == []

    def test_reader_streams_bring_the_matching_records_with_their_links(
        self, seeded: Connector
    ) -> None:
        """``stream_where`` (optional): a partner's deals, judged, each with its account (and
        the account's partner of record), owner, team members and partner."""
        if not isinstance(seeded, ReaderStream):
            pytest.skip("the connector does not implement stream_where")
        whole = self.first_read(seeded)
        deals = {
            ("opportunity", d.id) for d in whole.snapshot.opportunities if d.partner_id == "p1"
        }
        assert deals, "the contract's seed gives partner p1 deals"
        pages = list(seeded.stream_where("opportunity", "partner_id", ["p1"], page_size=1))
        judged: list[RecordKey] = [key for page in pages for key in page.affected]
        assert sorted(judged) == sorted(deals)
        for page in pages:
            assert not page.changed and page.watermark is None
            missing = missing_related(attrs.evolve(page, changed=page.affected))
            # the linked records alone: a deal's lead is not needed by the rules reading it
            assert [line for line in missing if ": lead " not in line] == []

    def test_reader_streams_read_records_by_id(self, seeded: Connector) -> None:
        """``stream_where`` (optional) by ``id``: a sync reads again by id the readers of a
        fallen total that hold a finding; the records named, judged, an unknown id ignored."""
        if not isinstance(seeded, ReaderStream):
            pytest.skip("the connector does not implement stream_where")
        whole = self.first_read(seeded)
        wanted = sorted(d.id for d in whole.snapshot.opportunities)[:2]
        pages = list(seeded.stream_where("opportunity", "id", [*wanted, "no-such-deal"]))
        judged = sorted(key for page in pages for key in page.affected)
        assert judged == [("opportunity", i) for i in wanted]

    def test_reader_ids_are_the_ids_a_reader_stream_reads(self, seeded: Connector) -> None:
        """``ids_where`` (optional): the sorted ids of the records ``stream_where`` reads for
        the same field and values, a partner's deals; none for an unknown partner."""
        if not isinstance(seeded, ReaderIds):
            pytest.skip("the connector does not implement ids_where")
        whole = self.first_read(seeded)
        deals = sorted(d.id for d in whole.snapshot.opportunities if d.partner_id == "p1")
        assert deals, "the contract's seed gives partner p1 deals"
        assert seeded.ids_where("opportunity", "partner_id", ["p1"]) == deals
        assert seeded.ids_where("opportunity", "partner_id", ["no-such-partner"]) == []

    def test_streamed_records_are_every_record_once(self, seeded: Connector) -> None:
        """``stream_records`` (optional): every deal once, none judged."""
        if not isinstance(seeded, RecordStream):
            pytest.skip("the connector does not implement stream_records")
        whole = self.first_read(seeded)
        pages = list(seeded.stream_records("opportunity", page_size=2))
        ids = [deal.id for page in pages for deal in page.snapshot.opportunities]
        assert sorted(ids) == sorted(deal.id for deal in whole.snapshot.opportunities)
        assert all(not page.changed and not page.affected for page in pages)

    def test_streamed_changes_are_the_changed_records_alone(self, seeded: Connector) -> None:
        """``stream_changed`` (optional): the deals changed after a watermark, alone, and the
        deals deleted since; none judged (an incremental sync's totals read)."""
        if not isinstance(seeded, ChangedRecordStream):
            pytest.skip("the connector does not implement stream_changed")
        first = self.first_read(seeded)
        assert first.watermark is not None
        self._change(seeded, ("opportunity", "o2"), 10)
        pages = list(seeded.stream_changed("opportunity", first.watermark, page_size=1))
        assert [deal.id for page in pages for deal in page.snapshot.opportunities] == ["o2"]
        assert all(not page.changed and not page.affected for page in pages)
        assert all(not page.snapshot.accounts and not page.snapshot.users for page in pages)
        try:
            self.delete_record(seeded, "opportunity", "o1", at=self.t(20))
        except NotImplementedError:
            return
        pages = list(seeded.stream_changed("opportunity", first.watermark))
        assert ("opportunity", "o1") in {key for page in pages for key in page.deleted}
        assert "o1" not in {deal.id for page in pages for deal in page.snapshot.opportunities}

    # -- writes ---------------------------------------------------------------------------------

    def _task(self, fingerprint: str, record_id: str = "o1") -> Action:
        return Action(
            kind=ActionKind.CREATE_TASK,
            fingerprint=fingerprint,
            record_type="opportunity",
            record_id=record_id,
            owner_id="u1" if record_id == "o1" else "u2",
            subject="tsos-rules: next step missing",
            description="Agree a next step with the buyer and record it.",
            rule="tsos.next-step-required",
        )

    def test_create_task_is_idempotent(self, seeded: Connector, tmp_path: Path) -> None:
        """A re-run after a crash re-sends the same actions; the CRM must not get two tasks."""
        self._needs(seeded, tasks=True)
        action = self._task("f" * 32)
        (first,) = seeded.write([action])
        assert first.status is ActionStatus.WRITTEN, first
        assert first.fingerprint == action.fingerprint
        (again,) = seeded.write([action])
        assert again.status is ActionStatus.ALREADY_DONE, again
        if first.crm_id is not None and again.crm_id is not None:
            assert again.crm_id == first.crm_id
        if self.reconnects:
            restarted = self.make_connector(tmp_path)
            try:
                (third,) = restarted.write([action])
            finally:
                restarted.close()
            assert third.status is ActionStatus.ALREADY_DONE, third

    def test_close_task_is_idempotent(self, seeded: Connector) -> None:
        """Closing a resolved finding's task twice is harmless and says so."""
        self._needs(seeded, tasks=True)
        (created,) = seeded.write([self._task("c" * 32)])
        assert created.status is ActionStatus.WRITTEN, created
        close = Action(
            kind=ActionKind.CLOSE_TASK,
            fingerprint="c" * 32,
            record_type="opportunity",
            record_id="o1",
            crm_id=created.crm_id,
        )
        (closed,) = seeded.write([close])
        assert closed.status is ActionStatus.WRITTEN, closed
        (again,) = seeded.write([close])
        assert again.status is ActionStatus.ALREADY_DONE, again

    def test_closing_a_task_never_created_is_already_done(self, seeded: Connector) -> None:
        """A run killed before its write leaves a close for a task that never existed."""
        self._needs(seeded, tasks=True)
        close = Action(
            kind=ActionKind.CLOSE_TASK,
            fingerprint="d" * 32,
            record_type="opportunity",
            record_id="o1",
        )
        (result,) = seeded.write([close])
        assert result.status is ActionStatus.ALREADY_DONE, result

    def test_results_in_order_and_one_bad_item_fails_alone(self, seeded: Connector) -> None:
        """``write`` never raises for one item: the others go on, results keep the order."""
        capabilities = self._needs(seeded, tasks=True)
        bad: Action
        if capabilities.field_updates:
            bad = Action(
                kind=ActionKind.UPDATE_FIELDS,
                fingerprint="b" * 32,
                record_type="opportunity",
                record_id="o404",
                changes={"next_step": "x"},
                expected_version="1",
            )
        else:
            bad = self._task("b" * 32, record_id="o404")
        actions = [self._task("1" * 32), bad, self._task("2" * 32, record_id="o2")]
        results = seeded.write(actions)
        assert [r.fingerprint for r in results] == [a.fingerprint for a in actions]
        assert all(isinstance(r, ActionResult) for r in results)
        assert results[0].status is ActionStatus.WRITTEN, results[0]
        assert results[1].status in (ActionStatus.FAILED, ActionStatus.STALE), results[1]
        if results[1].status is ActionStatus.FAILED:
            assert results[1].error
        assert results[2].status is ActionStatus.WRITTEN, results[2]

    def test_stale_write_is_refused(self, seeded: Connector) -> None:
        """A repair computed from an old read must never overwrite a newer change."""
        self._needs(seeded, field_updates=True, conditional_updates=True)
        record_type, record_id, changes = self.repair
        key = (record_type, record_id)
        first = self.first_read(seeded)
        read_version = first.versions[key]
        self.change_record(seeded, record_type, record_id, self.concurrent_change, at=self.t(10))
        repair = Action(
            kind=ActionKind.UPDATE_FIELDS,
            fingerprint="5" * 32,
            record_type=record_type,
            record_id=record_id,
            changes=changes,
            expected_version=read_version,
        )
        (stale,) = seeded.write([repair])
        assert stale.status is ActionStatus.STALE, stale
        after = seeded.read(first.watermark, until=self.t(20))
        record = self._record(after, key)
        for field, value in self.concurrent_change.items():
            assert _plain(getattr(record, field)) == value, "the newer change was overwritten"
        for field, value in changes.items():
            assert _plain(getattr(record, field)) != value, "the stale repair was applied"
        fresh = Action(
            kind=ActionKind.UPDATE_FIELDS,
            fingerprint="5" * 32,
            record_type=record_type,
            record_id=record_id,
            changes=changes,
            expected_version=after.versions[key],
        )
        (written,) = seeded.write([fresh])
        assert written.status is ActionStatus.WRITTEN, written
        (again,) = seeded.write([fresh])
        assert again.status in (ActionStatus.ALREADY_DONE, ActionStatus.STALE), again
        final = seeded.read(None, until=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
        record = self._record(final, key)
        for field, value in changes.items():
            assert _plain(getattr(record, field)) == value

    def _record(self, result: ReadResult, key: RecordKey) -> Any:
        collection: tuple[Any, ...] = {
            "opportunity": result.snapshot.opportunities,
            "lead": result.snapshot.leads,
            "account": result.snapshot.accounts,
            "activity": result.snapshot.activities,
        }[key[0]]
        matches = [record for record in collection if record.id == key[1]]
        assert matches, f"{key[0]} {key[1]} missing from the read"
        return matches[0]

    # -- errors -------------------------------------------------------------------------------

    @pytest.mark.parametrize(
        ("kind", "expected"),
        [("fatal", FatalConnectorError), ("retriable", RetriableConnectorError)],
    )
    def test_errors_map_to_the_right_types(
        self, seeded: Connector, kind: str, expected: type[ConnectorError]
    ) -> None:
        """The job stops on fatal errors, retries retriable ones: the type is the decision."""
        if not self.induce_error(seeded, kind):
            pytest.skip(f"the harness cannot provoke a {kind} failure")
        with pytest.raises(expected):
            self.first_read(seeded)

    def test_a_bad_record_is_skipped_and_named(self, seeded: Connector) -> None:
        """One unmappable record must not stop the run; the report names it and its field."""
        if not self.induce_error(seeded, "bad_record"):
            pytest.skip("the harness cannot provoke a bad record")
        result = self.first_read(seeded)
        assert ("opportunity", "o2") not in result.changed
        assert ("opportunity", "o1") in result.changed
        named = [e for e in result.errors if e.record_id == "o2"]
        assert named, [str(e) for e in result.errors]
        assert named[0].record_type == "opportunity"


def _plain(value: Any) -> Any:
    if isinstance(value, dt.date | dt.datetime):
        return value.isoformat()
    if hasattr(value, "value") and isinstance(value.value, str):
        return value.value
    return value
