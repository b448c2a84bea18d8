"""An incremental sync brings the packs' totals up to date from the changed records alone
(``stream_changed``), with the same findings as a connector that cannot stream them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from tsos_rules.connectors.base import ChangedRecordStream
from tsos_rules.connectors.local.connector import LocalConnector
from tsos_rules.connectors.local.crm import LocalCRM
from tsos_rules.connectors.local.demo import generate_org

AS_OF = dt.date(2026, 11, 24)
Org = Any


#: Every installed pack, contrib packs included (the sync fixtures turn them off).
pytestmark = pytest.mark.usefixtures("contrib_packs")


@pytest.fixture(scope="module")
def small_org() -> dict[str, Any]:
    return generate_org(opportunities=120, seed=7, as_of=AS_OF)


def _open(org: Org) -> set[tuple[str, str, str]]:
    return {(f.rule, f.record_id, f.reason) for f in org.open_findings().values()}


def _commit_deals(org: Org) -> list[dict[str, Any]]:
    rows = org.crm.db.execute("SELECT id FROM opportunities WHERE is_deleted = 0 ORDER BY id")
    deals = [org.crm.get("opportunity", row[0]) or {} for row in rows.fetchall()]
    return [
        d
        for d in deals
        if d.get("forecast_category") == "commit" and not d.get("is_closed") and d["partner_id"]
    ]


def test_stream_changed_reads_the_changed_and_deleted_records_alone(
    make_org: Callable[[Mapping[str, Any]], Org], small_org: dict[str, Any]
) -> None:
    org = make_org(small_org)
    connector = LocalConnector(LocalCRM(org.crm_path))
    try:
        assert isinstance(connector, ChangedRecordStream)
        since = connector.read(None).watermark
        assert since is not None
        first, second = _commit_deals(org)[:2]
        org.crm.update("opportunity", first["id"], {"amount": first["amount"] + 1})
        org.crm.delete("opportunity", second["id"])
        batches = list(connector.stream_changed("opportunity", since, page_size=1))
    finally:
        connector.close()
    assert [o.id for b in batches for o in b.snapshot.opportunities] == [first["id"]]
    assert {k for b in batches for k in b.deleted} == {("opportunity", second["id"])}
    assert all(not b.changed and not b.snapshot.accounts for b in batches)  # nothing else read


class _NoChangeStream:
    """The local connector without ``stream_changed``: the totals come from the run's read."""

    name = "local"

    def __init__(self, inner: LocalConnector) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "stream_changed":
            raise AttributeError(name)
        return getattr(self.inner, name)


def test_totals_from_the_changed_records_give_the_findings_a_full_read_gives(
    make_org: Callable[[Mapping[str, Any]], Org], small_org: dict[str, Any]
) -> None:
    credit = {p["id"]: p["credit_limit"] for p in small_org["partners"]}
    found = []
    for streams in (True, False, None):  # None: judged in full
        org = make_org(small_org)
        if streams is not None:
            org.sync(batch_size=25)
        grown, gone = _commit_deals(org)[:2]
        org.crm.update(
            "opportunity",
            grown["id"],
            {"amount": grown["amount"] + 2 * credit[grown["partner_id"]]},
        )
        org.crm.delete("opportunity", gone["id"])
        inner = LocalConnector(LocalCRM(org.crm_path))
        connector = inner if streams else _NoChangeStream(inner)
        assert isinstance(connector, ChangedRecordStream) == bool(streams)
        try:
            run = org.sync(batch_size=25, connector=connector)
        finally:
            inner.close()
        assert run.full == (streams is None)
        found.append(_open(org))
    assert found[0] == found[1] == found[2]
    assert any(rule == "channel-economics.partner-credit-limit" for rule, _, _ in found[0])
