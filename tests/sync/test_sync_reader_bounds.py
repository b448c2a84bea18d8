"""A partner's commit total that rises but stays below what its deals without a finding allow
(``Aggregate.flags_above``) judges again only its deals holding a finding, and an incremental
run still finds what a full run finds: the bounds are exact after a full run, lowered by every
deal judged since, and forgotten after a run that did not finish."""

from __future__ import annotations

import datetime as dt
import math
import random
from collections.abc import Callable, Mapping
from typing import Any, Protocol, runtime_checkable

import attrs
import pytest

AS_OF = dt.date(2026, 11, 24)
Org = Any
RULE = "channel-economics.partner-credit-limit"
TOTAL = "channel-economics.commit-by-partner"
Edit = tuple[str, str, dict[str, Any]]


#: Every installed pack, contrib packs included (the sync fixtures turn them off).
pytestmark = pytest.mark.usefixtures("contrib_packs")


def _without_bounds(monkeypatch: pytest.MonkeyPatch, *, restate: bool = False) -> None:
    """The channel-economics pack as if it gave no ``flags_above`` (every reader of a risen
    total is judged again), or with ``restate`` no ``restate`` alone (the readers holding a
    finding are read and judged again): the runs to compare with."""
    import tsos_rules_channel_economics.plugin as plugin

    pack = plugin.PACK
    aggregates = tuple(
        attrs.evolve(a, restate=None)
        if restate
        else attrs.evolve(a, flags_above=None, restate=None)
        for a in pack.aggregates
    )
    monkeypatch.setattr(plugin, "PACK", attrs.evolve(pack, aggregates=aggregates))


def _open(org: Org) -> set[tuple[Any, ...]]:
    """What a user sees of each open finding: rule, record, reason, severity, message,
    details, and the names and link it is listed with."""
    state = org.state()
    try:
        rows = state.db.execute(
            "SELECT rule, record_id, reason, severity, message, details, owner_name, "
            "partner_name, record_name, account_name, record_url, shadow FROM findings "
            "WHERE status = 'open'"
        ).fetchall()
    finally:
        state.close()
    return {tuple(row) for row in rows}


def _by_key(org: Org, sql: str) -> dict[str, float]:
    """``(key, figure)`` rows of the org's state for the commit total, as a mapping."""
    state = org.state()
    try:
        rows = state.db.execute(sql, (TOTAL,)).fetchall()
    finally:
        state.close()
    return {str(key): float(figure) for key, figure in rows}


def _bounds(org: Org) -> dict[str, float]:
    return _by_key(org, "SELECT key, bound FROM aggregate_bounds WHERE aggregate = ?")


def _totals(org: Org) -> dict[str, float]:
    return _by_key(
        org, "SELECT key, sum(value) FROM aggregate_shares WHERE aggregate = ? GROUP BY key"
    )


def _deals(org: Org) -> list[dict[str, Any]]:
    rows = org.crm.db.execute("SELECT id, grp FROM opportunities WHERE is_deleted = 0")
    return [
        {**(org.crm.get("opportunity", i) or {}), "grp": g} for i, g in sorted(map(tuple, rows))
    ]


def _flagged(org: Org) -> set[str]:
    return {f.record_id for f in org.open_findings().values() if f.rule == RULE}


def _partner(org: Org, document: Mapping[str, Any]) -> tuple[str, dict[str, Any], dict[str, Any]]:
    """A partner with room under its bound, one of its open commit deals and one of its open
    non-commit deals without a credit finding in another company group (judged only as a
    reader when the commit deal changes): (partner id, commit deal, other deal)."""
    bounds, totals, flagged = _bounds(org), _totals(org), _flagged(org)
    deals = _deals(org)
    for partner in sorted(document["partners"], key=lambda p: str(p["id"])):
        pid = partner["id"]
        if not math.isfinite(bounds.get(pid, math.inf)) or bounds[pid] <= totals.get(pid, 0):
            continue
        mine = [d for d in deals if d["partner_id"] == pid and not d["is_closed"]]
        commit = [d for d in mine if d["forecast_category"] == "commit" and d.get("amount")]
        other = [
            d
            for d in mine
            if d["forecast_category"] != "commit"
            and d.get("amount")
            and d["id"] not in flagged
            and not d.get("partner_consent")  # its finding would be info: not stored
        ]
        for deal in commit:
            elsewhere = [d for d in other if d["grp"] != deal["grp"]]
            if elsewhere:
                return pid, deal, elsewhere[0]
    raise AssertionError("the generated org has no such partner")


def _run_steps(
    make_org: Callable[[Mapping[str, Any]], Org],
    document: dict[str, Any],
    plan: Callable[[Org], list[list[Edit]]],
) -> list[int]:
    """A full sync, then each step's edits and an incremental sync, each checked against a
    full run of the same CRM; the records each incremental run judged."""
    org, full = make_org(document), make_org(document)
    org.sync(batch_size=25)
    judged = []
    for edits in plan(org):
        for target in (org, full):
            for record_type, record_id, changes in edits:
                target.crm.update(record_type, record_id, changes)
        run = org.sync(batch_size=25)
        assert not run.full
        full.sync(batch_size=25, full=True)
        assert _open(org) == _open(full)
        judged.append(run.records_judged)
    return judged


def _room(org: Org, document: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any], float]:
    pid, commit, other = _partner(org, document)
    return commit, other, _bounds(org)[pid] - _totals(org).get(pid, 0.0)


def test_a_rise_within_the_bound_judges_only_the_deals_holding_a_finding(
    make_org: Callable[[Mapping[str, Any]], Org],
    demo_org: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """One commit deal grows by a quarter of its partner's room: no other deal of the partner
    can go over its credit, so fewer are judged than without bounds, and the findings are a
    full run's."""

    edits: list[list[Edit]] = []

    def plan(org: Org) -> list[list[Edit]]:
        if not edits:  # the same edits for the runs without bounds
            commit, _, room = _room(org, demo_org)
            edits.append([("opportunity", commit["id"], {"amount": commit["amount"] + room / 4})])
        return edits

    (bounded,) = _run_steps(make_org, demo_org, plan)
    _without_bounds(monkeypatch)
    (every,) = _run_steps(make_org, demo_org, plan)
    assert bounded < every


def test_a_rise_within_the_bound_rewords_the_held_findings_without_reading_their_deals(
    make_org: Callable[[Mapping[str, Any]], Org],
    demo_org: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The partner's deals over its credit quote its commit total: a rise within the bound
    gets their findings reworded from the state (``Aggregate.restate``), so none of them is
    read or judged, and every finding, figures and details included, is a full run's."""
    edits: list[list[Edit]] = []
    runs = []

    def plan(org: Org) -> list[list[Edit]]:
        if not edits:
            commit, _, room = _room(org, demo_org)
            edits.append([("opportunity", commit["id"], {"amount": commit["amount"] + room / 4})])
            runs.append((org, commit))
        return edits

    (restated,) = _run_steps(make_org, demo_org, plan)
    org, commit = runs[0]
    pid = commit["partner_id"]
    held = {
        f.record_id
        for f in org.open_findings().values()
        if f.rule == RULE and f.record_id != commit["id"] and _partner_of(org, f.record_id) == pid
    }
    _without_bounds(monkeypatch, restate=True)
    (judged,) = _run_steps(make_org, demo_org, plan)
    assert held and restated == judged - len(held)


def _partner_of(org: Org, deal_id: str) -> Any:
    return (org.crm.get("opportunity", deal_id) or {}).get("partner_id")


def test_a_deal_judged_since_lowers_its_partners_bound(
    make_org: Callable[[Mapping[str, Any]], Org], demo_org: dict[str, Any]
) -> None:
    """A non-commit deal grows until a quarter of the room is left before it goes over; then
    a commit deal grows by half the room: past the lowered bound, that deal goes over. A bound
    kept from the full run would have spared it."""

    def plan(org: Org) -> list[list[Edit]]:
        commit, other, room = _room(org, demo_org)
        pid = commit["partner_id"]
        limit = next(p["credit_limit"] for p in demo_org["partners"] if p["id"] == pid)
        # over once the partner's commit total passes limit - amount
        grown = limit - (_totals(org)[pid] + room / 4)
        return [
            [("opportunity", other["id"], {"amount": grown})],
            [("opportunity", commit["id"], {"amount": commit["amount"] + room / 2})],
        ]

    _run_steps(make_org, demo_org, plan)


@pytest.mark.parametrize("promises", ["bounds", "restate alone"])
def test_a_partners_credit_change_and_many_rises_find_what_full_runs_find(
    make_org: Callable[[Mapping[str, Any]], Org],
    demo_org: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    promises: str,
) -> None:
    """Rises within and past the bound, a lower credit limit, a higher balance, a deal that
    changes partner: after each, an incremental run finds what a full run finds (and so with
    a pack that rewords its findings but promises nothing of how they rise with the total:
    a changed partner's findings are judged, never reworded from stale figures)."""
    first = make_org(demo_org)  # the partner and its room, as the pack's bounds see them
    first.sync(batch_size=25)
    commit, other, room = _room(first, demo_org)
    pid = commit["partner_id"]
    limit = next(p["credit_limit"] for p in demo_org["partners"] if p["id"] == pid)
    elsewhere = next(p["id"] for p in demo_org["partners"] if p["id"] != pid)
    steps: list[list[Edit]] = [
        [("opportunity", commit["id"], {"amount": commit["amount"] + room / 8})],
        [("opportunity", commit["id"], {"amount": commit["amount"] + room / 2})],
        [("partner", pid, {"credit_limit": limit - room / 4})],
        [("partner", pid, {"credit_used": room / 8})],
        [("opportunity", other["id"], {"partner_id": elsewhere})],
        [("opportunity", commit["id"], {"amount": commit["amount"] + 3 * room})],
        [("opportunity", commit["id"], {"forecast_category": "pipeline"})],
    ]
    if promises == "restate alone":
        import tsos_rules_channel_economics.plugin as plugin

        pack = plugin.PACK
        aggregates = tuple(
            attrs.evolve(a, findings_rise_with_total=False, flags_above=None)
            for a in pack.aggregates
        )
        monkeypatch.setattr(plugin, "PACK", attrs.evolve(pack, aggregates=aggregates))
    _run_steps(make_org, demo_org, lambda org: steps)


@pytest.mark.parametrize(("seed", "restated_keys"), [(1, 500), (2, 500), (3, 500), (1, 1)])
def test_random_edits_find_what_full_runs_find(
    make_org: Callable[[Mapping[str, Any]], Org],
    demo_org: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    seed: int,
    restated_keys: int,
) -> None:
    """Eight steps of one to three random edits (small and large rises and falls of amounts,
    deals in and out of commit, partners' limits up and down, deals moved between partners):
    after each, the incremental run, spared by whatever bounds hold, finds what a full run
    finds (also with each partner's reworded findings committed apart)."""
    from tsos_rules.sync import job

    monkeypatch.setattr(job, "RESTATED_KEYS", restated_keys)
    rng = random.Random(seed)

    def plan(org: Org) -> list[list[Edit]]:
        deals = [d for d in _deals(org) if d["partner_id"] and not d["is_closed"]]
        partners = [p for p in demo_org["partners"] if p.get("credit_limit")]
        steps: list[list[Edit]] = []
        for _ in range(8):
            step: list[Edit] = []
            for _ in range(rng.randint(1, 3)):
                deal, partner = rng.choice(deals), rng.choice(partners)
                amount = deal["amount"] or 10_000
                change = rng.choice(
                    [
                        {"amount": amount + rng.uniform(1, 2_000)},
                        {"amount": round(amount * rng.uniform(0.3, 2.5), 2)},
                        {"forecast_category": rng.choice(["commit", "pipeline"])},
                        {"partner_id": partner["id"]},
                    ]
                )
                step.append(("opportunity", deal["id"], change))
                if rng.random() < 0.3:
                    limit = round(partner["credit_limit"] * rng.uniform(0.6, 1.4))
                    step.append(("partner", partner["id"], {"credit_limit": limit}))
            steps.append(step)
        return steps

    _run_steps(make_org, demo_org, plan)


def test_after_an_interrupted_run_the_bounds_spare_no_reader(
    make_org: Callable[[Mapping[str, Any]], Org], demo_org: dict[str, Any]
) -> None:
    """A run that never finished may have judged deals with totals the bounds were not kept
    for: the next run forgets them and judges every reader of a risen total."""
    org = make_org(demo_org)
    org.sync(batch_size=25)
    commit, _, room = _room(org, demo_org)
    state = org.state()
    try:  # a run that never finished: the next one marks it interrupted
        state.start_run(
            "local", as_of=AS_OF, mode="annotate", full=False, dry_run=False, watermark_from=None
        )
    finally:
        state.close()
    org.crm.update("opportunity", commit["id"], {"amount": commit["amount"] + room / 4})
    org.sync(batch_size=25)
    bounds = _bounds(org)
    assert commit["partner_id"] in bounds  # stored again: every reader was judged
    assert len(bounds) == 1  # the others forgotten until a full run


def test_a_key_read_as_changed_spares_no_reader_and_loses_its_bound(tmp_path: Any) -> None:
    """A connector that reads a changed partner without the deals naming it leaves their
    bound stale: a key whose own record the run read as changed is not spared, and its bound
    is dropped, whatever the stored bound says."""
    import tsos_rules_channel_economics.plugin as plugin

    from tsos_rules.engine.aggregates import BoundAggregate
    from tsos_rules.sync.bounds import ReaderBounds
    from tsos_rules.sync.state import StateStore

    (aggregate,) = plugin.PACK.aggregates
    item = BoundAggregate(aggregate, {"reserve_commit_deals": True, "credit_used_field": "x"})
    state = StateStore(tmp_path / "state.sqlite3")
    try:
        state.save_aggregate_bounds(
            "local", TOTAL, exact={"p1": 100.0, "p2": 100.0}, lowered={}, replace=True
        )
        bounds = ReaderBounds([item], [RULE])
        bounds.trusted = True
        totals = {"p1": 50.0, "p2": 50.0}
        assert bounds.within(state, "local", TOTAL, ["p1", "p2"], totals) == {"p1", "p2"}
        bounds.changed([("partner", "p1")])
        assert bounds.within(state, "local", TOTAL, ["p1", "p2"], totals) == {"p2"}
        assert bounds.unchanged(["p1", "p2"]) == {"p2"}  # nor spared when its total fell
        bounds.save(state, "local", full=False)
        assert state.aggregate_bounds("local", TOTAL, ["p1", "p2"]) == {"p2": 100.0}
        # a total within a billionth of its bound is past it
        assert bounds.within(state, "local", TOTAL, ["p2"], {"p2": 100.0 - 1e-8}) == set()
    finally:
        state.close()


def test_a_key_read_as_changed_has_no_finding_reworded_whatever_the_pack_promises() -> None:
    """A pack that rewords its readers' findings (``restate``) without promising how they
    rise with the total still has a changed partner's deals judged: their stored figures
    (its old limit) are stale."""
    import tsos_rules_channel_economics.plugin as plugin

    from tsos_rules.engine.aggregates import BoundAggregate
    from tsos_rules.sync.bounds import ReaderBounds

    (aggregate,) = plugin.PACK.aggregates
    plain = attrs.evolve(aggregate, findings_rise_with_total=False, flags_above=None)
    bounds = ReaderBounds([BoundAggregate(plain, {})], [RULE])
    bounds.changed([("partner", "p1")])
    assert bounds.unchanged(["p1", "p2"]) == {"p2"}


def test_a_rise_past_the_bound_reads_only_the_readers_not_reworded(
    make_org: Callable[[Mapping[str, Any]], Org],
    demo_org: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Past its bound every reader of the partner may go over, so those without a finding
    are read and judged; the ones whose findings were reworded are not read again when the
    connector lists the readers' ids first (``ids_where``): fewer records read, the same
    findings as a full run."""
    from tsos_rules.sync import job

    @runtime_checkable
    class Unlisted(Protocol):  # no connector has it: the job streams every reader
        def no_such_method(self) -> None: ...

    first = make_org(demo_org)
    first.sync(batch_size=25)
    commit, _, room = _room(first, demo_org)
    steps = [[("opportunity", commit["id"], {"amount": commit["amount"] + 3 * room})]]
    reads = []
    for lists_ids in (True, False):
        if not lists_ids:
            monkeypatch.setattr(job, "ReaderIds", Unlisted)
        org = make_org(demo_org)
        org.sync(batch_size=25)
        for edits in steps:
            for record_type, record_id, changes in edits:
                org.crm.update(record_type, record_id, changes)
        run = org.sync(batch_size=25)
        full = make_org(demo_org)
        for record_type, record_id, changes in steps[0]:
            full.crm.update(record_type, record_id, changes)
        full.sync(batch_size=25)
        assert _open(org) == _open(full)
        reads.append((run.records_read, run.records_judged))
    (listed, listed_judged), (every, every_judged) = reads
    assert listed < every and listed_judged == every_judged
