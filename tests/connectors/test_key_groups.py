"""The paged readers' shared company grouping: the facts' companies, never split, paged whole."""

from __future__ import annotations

import datetime as dt

from tsos_rules.connectors.grouping import KeyGroups
from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.facts.index import CompanyGroups, FactIndex
from tsos_rules.org import OrgProfile
from tsos_rules.snapshot.document import snapshot_from_dict

AS_OF = dt.date(2026, 11, 24)


def test_a_lead_on_a_named_account_goes_by_the_account_not_its_company() -> None:
    keys = KeyGroups()
    acme = keys.account("a1", "Acme")
    globex = keys.account("a2", "Globex, Inc.")
    blank = keys.account("a3", "Inc.")  # a name that normalises to nothing: no name key
    other_blank = keys.account("a4", "-")
    on_acme = keys.lead("l1", "a1", "Globex", None)
    loose = keys.lead("l2", None, "GLOBEX Corporation", None)
    on_blank = keys.lead("l3", "a3", "Globex", None)
    find = keys.groups.find
    assert find(on_acme) == find(acme) != find(globex)
    assert find(loose) == find(globex)
    assert find(on_blank) == find(blank) != find(globex)  # a named account, however blank
    assert find(blank) != find(other_blank)


def test_deals_leads_and_activities_follow_their_account_then_their_deal() -> None:
    keys = KeyGroups()
    account = keys.account("a1", "Acme")
    deal = keys.deal("o1", "a1")
    lone = keys.deal("o2", None)
    converted = keys.lead("l1", None, "Initech", "o2")
    assert keys.groups.find(deal) == keys.groups.find(account)
    assert keys.groups.find(converted) == keys.groups.find(lone)
    assert keys.activity("a1", "o2") == account  # the account wins over the deal
    assert keys.activity(None, "o2") == lone
    assert keys.activity(None, "o-unknown") == ""  # an orphan


def test_pages_hold_whole_companies_and_only_the_touched_ones_when_asked() -> None:
    keys = KeyGroups()
    for i in range(5):
        keys.account(f"a{i}", f"Company {i}")
        keys.deal(f"o{i}", f"a{i}")
    keys.lead("l9", None, "Company 3 Ltd", None)
    every = keys.pages(2, every=True, orphans=True)
    assert every[-1] is None and len(every) == 4  # 5 companies, 2 a page, then the orphans
    assert sorted(len(p) for p in every if p is not None) == [3, 2 + 2, 2 + 2]
    nodes = [node for page in every if page is not None for node in page]
    assert sorted(nodes) == sorted(n for n in keys.groups.parent if not n.startswith("name:"))
    assert keys.pages(2, every=False, orphans=True) == []  # nothing touched, orphans not either
    keys.touch("deal:o3")
    keys.touch("")
    (page, orphans) = keys.pages(10, every=False, orphans=True)
    assert sorted(page or []) == ["account:a3", "deal:o3", "lead:l9"] and orphans is None
    keys.touch_known(["account:gone", "account:a1"])
    assert "account:gone" not in keys.touched and "account:a1" in keys.touched


def test_the_key_groups_never_split_a_company_the_facts_see() -> None:
    """On a generated org: records the facts put in one company share one key group."""
    snapshot, _ = snapshot_from_dict(generate_org(opportunities=400, seed=5, as_of=AS_OF))
    keys = KeyGroups()
    for account in snapshot.accounts:
        keys.account(account.id, account.name)
    for deal in snapshot.opportunities:
        keys.deal(deal.id, deal.account_id)
    for lead in snapshot.leads:
        keys.lead(lead.id, lead.account_id, lead.company, lead.converted_opportunity_id)
    index = FactIndex(snapshot, OrgProfile(), AS_OF)
    facts = CompanyGroups()
    nodes: list[tuple[str, str]] = []
    for record, node in [
        *((lead, f"lead:{lead.id}") for lead in snapshot.leads),
        *((deal, f"deal:{deal.id}") for deal in snapshot.opportunities),
    ]:
        company = index.company_keys_of(record)
        if company:
            facts.join(company)
            nodes.append((company[0], node))
    together: dict[str, str] = {}
    for company, node in nodes:
        root = keys.groups.find(node)
        assert together.setdefault(facts.find(company), root) == root, node
    assert len(set(together.values())) > 50  # many companies, not one lump
