"""When an aggregate moves, an incremental sync judges its readers again with the rules that
read it alone (``Aggregate.read_by_rules``), from the readers and their linked records: the
findings are a full run's, and the other rules' findings on the readers stay as stored."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import pytest

from local_subsets import GroupReads
from tsos_rules.connectors.local.connector import LocalConnector
from tsos_rules.connectors.local.crm import LocalCRM
from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.sync import job as job_module
from tsos_rules.sync.job import run_sync

AS_OF = dt.date(2026, 11, 24)
Org = Any
RULE = "channel-economics.partner-credit-limit"


#: Every installed pack, contrib packs included (the sync fixtures turn them off).
pytestmark = pytest.mark.usefixtures("contrib_packs")


@pytest.fixture(scope="module")
def org_document() -> dict[str, Any]:
    return generate_org(opportunities=300, seed=7, as_of=AS_OF)


def _open(org: Org) -> set[tuple[str, str, str, str, str, str]]:
    """What a user sees of each open finding: rule, record, reason, severity and message."""
    return {
        (f.rule, f.record_type, f.record_id, f.reason, f.severity, f.message)
        for f in org.open_findings().values()
    }


def _deals(org: Org) -> list[dict[str, Any]]:
    rows = org.crm.db.execute("SELECT id, grp FROM opportunities WHERE is_deleted = 0")
    return [{**(org.crm.get("opportunity", i) or {}), "grp": g} for i, g in rows.fetchall()]


def _commit_deal(org: Org) -> dict[str, Any]:
    """An open commit deal with a partner that has open deals in other company groups."""
    deals = _deals(org)
    return next(
        d
        for d in sorted(deals, key=lambda d: str(d["id"]))
        if d["forecast_category"] == "commit"
        and not d["is_closed"]
        and d["partner_id"]
        and any(
            o["partner_id"] == d["partner_id"] and o["grp"] != d["grp"] and not o["is_closed"]
            for o in deals
        )
    )


def _credit(document: Mapping[str, Any], partner_id: str) -> float:
    return float({p["id"]: p["credit_limit"] for p in document["partners"]}[partner_id] or 0)


EDITS: dict[str, Callable[[dict[str, Any], float, str], dict[str, Any]]] = {
    "amount_up": lambda d, credit, other: {"amount": d["amount"] + 2 * credit},
    "amount_to_zero": lambda d, credit, other: {"amount": 0},
    "out_of_commit": lambda d, credit, other: {"forecast_category": "pipeline"},
    "to_another_partner": lambda d, credit, other: {
        "partner_id": other,
        "amount": d["amount"] + 2 * credit,
    },
}


@pytest.mark.parametrize("edit", sorted(EDITS))
def test_after_one_deal_changed_an_incremental_run_finds_what_a_full_run_finds(
    make_org: Callable[[Mapping[str, Any]], Org], org_document: dict[str, Any], edit: str
) -> None:
    org = make_org(org_document)
    org.sync(batch_size=25)
    commit = _commit_deal(org)
    other_partner = next(
        p["id"] for p in org_document["partners"] if p["id"] != commit["partner_id"]
    )
    changes = EDITS[edit](commit, _credit(org_document, commit["partner_id"]), other_partner)

    org.crm.update("opportunity", commit["id"], changes)
    run = org.sync(batch_size=25)
    assert not run.full
    assert run.records_judged < len(org_document["opportunities"])

    full = make_org(org_document)
    full.crm.update("opportunity", commit["id"], changes)
    full.sync(batch_size=25)
    assert _open(org) == _open(full)


def _last_runs(org: Org, record_id: str) -> dict[tuple[str, str], tuple[str, int]]:
    state = org.state()
    try:
        rows = state.db.execute(
            "SELECT rule, reason, status, last_run FROM findings WHERE record_id = ?",
            (record_id,),
        ).fetchall()
    finally:
        state.close()
    return {(row[0], row[1]): (row[2], row[3]) for row in rows}


def test_a_readers_other_rules_findings_are_kept_as_stored(
    make_org: Callable[[Mapping[str, Any]], Org], org_document: dict[str, Any]
) -> None:
    org = make_org(org_document)
    org.sync(batch_size=25)
    found = _open(org)
    deals = _deals(org)
    flagged = {(rule, rid) for rule, _, rid, *_ in found}
    commit, reader = next(
        (c, r)
        for c in sorted(deals, key=lambda d: str(d["id"]))
        if c["forecast_category"] == "commit" and not c["is_closed"] and c["partner_id"]
        for r in deals
        if r["partner_id"] == c["partner_id"]
        and r["grp"] != c["grp"]
        and not r["is_closed"]
        and r.get("amount")
        and (RULE, r["id"]) not in flagged
        and any(rid == r["id"] and rule != RULE for rule, rid in flagged)
    )
    before = _last_runs(org, reader["id"])
    credit = _credit(org_document, commit["partner_id"])

    org.crm.update("opportunity", commit["id"], {"amount": commit["amount"] + 2 * credit})
    run = org.sync(batch_size=25)

    after = _last_runs(org, reader["id"])
    assert after[(RULE, "over_credit")] == ("open", run.run_id)  # judged again, this run
    others = {key: value for key, value in before.items() if key[0] != RULE}
    assert others and all(status == "open" for status, _ in others.values())
    # neither judged again (last_run would move) nor resolved
    assert {key: after[key] for key in others} == others


def test_readers_are_read_without_their_company_groups(
    make_org: Callable[[Mapping[str, Any]], Org], org_document: dict[str, Any]
) -> None:
    """The same findings as with the readers' company groups read, from fewer records."""
    runs = []
    for connector_class in (None, GroupReads):
        org = make_org(org_document)
        org.sync(batch_size=25)
        commit = _commit_deal(org)
        credit = _credit(org_document, commit["partner_id"])
        org.crm.update("opportunity", commit["id"], {"amount": commit["amount"] + 2 * credit})
        if connector_class is None:
            run = org.sync(batch_size=25)
        else:
            connector = connector_class(LocalConnector(LocalCRM(org.crm_path)))
            try:
                run = org.sync(batch_size=25, connector=connector)
            finally:
                connector.close()
        runs.append((run, _open(org)))
    (linked, linked_open), (grouped, grouped_open) = runs
    assert linked_open == grouped_open
    assert linked.records_read < grouped.records_read


def test_readers_streamed_with_their_accounts_whatever_their_partner_of_record(
    make_org: Callable[[Mapping[str, Any]], Org], org_document: dict[str, Any]
) -> None:
    """Every partner's deals at once (accounts with and without a partner of record among
    them): each deal once, judged, with its account, owner and partner."""
    org = make_org(org_document)
    deals = [d for d in org_document["opportunities"] if d.get("partner_id")]
    accounts = {a["id"]: a for a in org_document["accounts"]}
    known_partners = {p["id"] for p in org_document["partners"]}
    assert any(not accounts[d["account_id"]].get("partner_of_record_id") for d in deals)
    connector = LocalConnector(LocalCRM(org.crm_path))
    try:
        pages = list(
            connector.stream_where(
                "opportunity", "partner_id", sorted({d["partner_id"] for d in deals}), page_size=40
            )
        )
    finally:
        connector.close()
    judged = sorted(key[1] for page in pages for key in page.affected)
    assert judged == sorted(d["id"] for d in deals)
    for page in pages:
        snapshot = page.snapshot
        have_accounts = {a.id for a in snapshot.accounts}
        have_partners = {p.id for p in snapshot.partners}
        have_users = {u.id for u in snapshot.users}
        for deal in snapshot.opportunities:
            assert deal.account_id in have_accounts
            # the demo org has deals naming a partner that does not exist ("px..."): no record
            assert deal.partner_id in have_partners or deal.partner_id not in known_partners
            assert deal.owner_id in have_users


WAIVER_FIELDS = {"until_field": "exempt_until", "reason_field": "exempt_reason"}


@pytest.mark.parametrize("group_reads", [False, True], ids=["linked", "groups"])
def test_a_readers_crm_exemption_survives_its_judging_again(
    make_org: Callable[[Mapping[str, Any]], Org], org_document: dict[str, Any], group_reads: bool
) -> None:
    """A waiver held in a reader's CRM field is read with the reader, whichever way it is read,
    so judging the reader again never revokes its exemption."""
    org = make_org(org_document)
    commit = _commit_deal(org)
    reader = next(
        d
        for d in _deals(org)
        if d["partner_id"] == commit["partner_id"]
        and d["grp"] != commit["grp"]
        and not d["is_closed"]
        and d.get("amount")
    )
    org.crm.update(
        "opportunity", reader["id"], {"exempt_until": "2026-12-31", "exempt_reason": "legal hold"}
    )
    config = org.config(batch_size=25)
    config["connector"]["exemptions"] = WAIVER_FIELDS
    run_sync(config, as_of=AS_OF)
    credit = _credit(org_document, commit["partner_id"])
    org.crm.update("opportunity", commit["id"], {"amount": commit["amount"] + 2 * credit})
    connector = None
    if group_reads:
        settings = {"path": str(org.crm_path), "exemptions": WAIVER_FIELDS}
        connector = GroupReads(LocalConnector.from_settings(settings))
    try:
        run = run_sync(config, as_of=AS_OF, connector=connector)
    finally:
        if connector is not None:
            connector.close()
    assert not run.full
    assert run.records_judged > 0
    state = org.state()
    try:
        mine = [e for e in state.exemptions("local") if e.record_id == reader["id"]]
    finally:
        state.close()
    assert [(e.source, e.revoked_at) for e in mine] == [("crm", None)]


def _fallen_partner(org: Org) -> tuple[dict[str, Any], set[str], set[str]]:
    """A commit deal whose partner has open deals elsewhere both with and without a credit
    finding: the deal, and those two sets of the partner's other deals."""
    flagged = {rid for rule, _, rid, *_ in _open(org) if rule == RULE}
    deals = _deals(org)
    for commit in sorted(deals, key=lambda d: str(d["id"])):
        if commit["forecast_category"] != "commit" or commit["is_closed"]:
            continue
        others = {
            d["id"]
            for d in deals
            if d["partner_id"] == commit["partner_id"]
            and d["grp"] != commit["grp"]
            and not d["is_closed"]
            and d.get("amount")
        }
        if commit["partner_id"] and others & flagged and others - flagged:
            return commit, others & flagged, others - flagged
    raise AssertionError("the generated org has no such partner")


def _credit_findings_seen(org: Org, run_id: int) -> set[str]:
    """The deals whose credit finding the run ``run_id`` wrote: opened or resolved (its run
    marked), or its text updated (an incremental run leaves a finding it sees unchanged as
    it was, and marks no run on it)."""
    state = org.state()
    try:
        rows = state.db.execute(
            "SELECT record_id FROM findings WHERE rule = ? AND (last_run = ? OR last_seen >= "
            "(SELECT started_at FROM runs WHERE id = ?))",
            (RULE, run_id, run_id),
        ).fetchall()
    finally:
        state.close()
    return {row[0] for row in rows}


def _falls(
    make_org: Callable[[Mapping[str, Any]], Org],
    document: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    *,
    pack_says_so: bool = True,
    interrupted: bool = False,
) -> tuple[Any, Org, set[str], set[str]]:
    """A partner's commit total falls (one of its commit deals leaves commit) and the next
    incremental run: the run, the org, the partner's other deals over and under its limit."""
    import tsos_rules_channel_economics.plugin as plugin

    pack = plugin.PACK
    aggregates = tuple(
        attrs.evolve(
            a,
            findings_rise_with_total=pack_says_so,
            flags_above=a.flags_above if pack_says_so else None,
            restate=a.restate if pack_says_so else None,
        )
        for a in pack.aggregates
    )
    monkeypatch.setattr(plugin, "PACK", attrs.evolve(pack, aggregates=aggregates))
    org = make_org(document)
    org.sync(batch_size=25)
    commit, over, under = _fallen_partner(org)
    if interrupted:
        state = org.state()
        try:  # a run that never finished: the next one marks it interrupted
            state.start_run(
                "local",
                as_of=AS_OF,
                mode="annotate",
                full=False,
                dry_run=False,
                watermark_from=None,
            )
        finally:
            state.close()
    org.crm.update("opportunity", commit["id"], {"forecast_category": "pipeline"})
    run = org.sync(batch_size=25)
    assert not run.full
    full = make_org(document)
    full.crm.update("opportunity", commit["id"], {"forecast_category": "pipeline"})
    full.sync(batch_size=25)
    assert _open(org) == _open(full)  # whichever readers were judged again
    return run, org, over, under


def test_when_a_partners_total_falls_only_its_deals_over_the_limit_are_judged_again(
    make_org: Callable[[Mapping[str, Any]], Org],
    org_document: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Less committed means more credit left: a deal under the partner's limit stays under
    it, so of the partner's other deals only those over it are judged again (the figures in
    their findings move), and the findings are a full run's."""
    every, _, _, _ = _falls(make_org, org_document, monkeypatch, pack_says_so=False)
    run, org, over, under = _falls(make_org, org_document, monkeypatch)
    assert _credit_findings_seen(org, run.run_id) & (over | under) == over
    assert run.records_judged == every.records_judged - len(under)
    assert run.records_read < every.records_read  # nor read: they and their accounts


def test_after_an_interrupted_run_every_reader_of_a_fallen_total_is_judged_again(
    make_org: Callable[[Mapping[str, Any]], Org],
    org_document: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run that died may have judged readers with a total that was never stored: the next
    run does not rely on their stored findings and judges them all."""
    every, _, _, _ = _falls(make_org, org_document, monkeypatch, pack_says_so=False)
    run, org, over, _ = _falls(make_org, org_document, monkeypatch, interrupted=True)
    assert _credit_findings_seen(org, run.run_id) >= over
    assert run.records_judged == every.records_judged


def test_readers_judged_by_rules_that_never_compare_companies_skip_the_company_index(
    make_org: Callable[[Mapping[str, Any]], Org],
    org_document: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The companies' conflicts are built for a batch only when a rule asks for them: the
    readers' batches, judged by partner-credit-limit alone, never do (1.4 s at 1M deals)."""
    from tsos_rules.facts.index import FactIndex

    org = make_org(org_document)
    org.sync(batch_size=25)
    commit = _commit_deal(org)
    credit = _credit(org_document, commit["partner_id"])
    built: list[int] = []
    company_conflicts = FactIndex._company_conflicts

    def counted(index: FactIndex) -> Any:
        built.append(len(index.snapshot.opportunities))
        return company_conflicts(index)

    monkeypatch.setattr(FactIndex, "_company_conflicts", counted)
    judged: list[int] = []
    process = job_module._Job._process

    def judging(self: Any, batch: Any, as_of: Any, *, rules: Any = None) -> None:
        if rules is not None:
            judged.append(len(batch.affected))
        process(self, batch, as_of, rules=rules)

    monkeypatch.setattr(job_module._Job, "_process", judging)
    org.crm.update("opportunity", commit["id"], {"amount": commit["amount"] + 2 * credit})
    run = org.sync(batch_size=25)

    assert not run.full and sum(judged) > 0  # readers were judged again...
    assert len(built) == run.batches - len(judged)  # ...with no company index of their own
