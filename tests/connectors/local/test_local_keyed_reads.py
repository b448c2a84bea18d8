"""The local connector's reads for the packs' totals: one type streamed alone, and the records
whose field holds some values read with their context (a partner's deals)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tsos_rules.connectors.base import KeyedReader, RecordStream
from tsos_rules.connectors.local.connector import LocalConnector
from tsos_rules.connectors.local.crm import LocalCRM
from tsos_rules.connectors.local.demo import generate_org

pytestmark = pytest.mark.usefixtures("isolated_env")

AS_OF = dt.date(2026, 11, 24)


@pytest.fixture
def connector(tmp_path: Path) -> Iterator[LocalConnector]:
    crm = LocalCRM(tmp_path / "crm.sqlite3")
    crm.seed(json.loads(json.dumps(generate_org(opportunities=80, seed=3, as_of=AS_OF))))
    local = LocalConnector(crm)
    yield local
    local.close()


def test_stream_records_pages_every_current_deal_once_and_judges_none(
    connector: LocalConnector,
) -> None:
    assert isinstance(connector, RecordStream)
    connector.crm.delete("opportunity", "o000005")
    pages = list(connector.stream_records("opportunity", page_size=7))
    ids = [deal.id for page in pages for deal in page.snapshot.opportunities]
    full = connector.read(None).snapshot
    assert sorted(ids) == sorted(deal.id for deal in full.opportunities)
    assert len(ids) == len(set(ids)) and "o000005" not in ids
    assert max(len(page.snapshot.opportunities) for page in pages) == 7
    assert all(not page.changed and not page.affected for page in pages)
    assert all(not page.snapshot.leads and not page.snapshot.accounts for page in pages)


def test_read_where_judges_the_partners_deals_with_their_context(
    connector: LocalConnector,
) -> None:
    assert isinstance(connector, KeyedReader)
    deals = connector.read(None).snapshot.opportunities
    partner = next(d.partner_id for d in deals if d.partner_id)
    wanted = {("opportunity", d.id) for d in deals if d.partner_id == partner}
    batches = list(connector.read_where("opportunity", "partner_id", [partner], batch_size=2))
    judged = [key for batch in batches for key in batch.affected]
    assert sorted(judged) == sorted(wanted)  # each once
    for batch in batches:
        assert not batch.changed and batch.watermark is None
        accounts = {a.id for a in batch.snapshot.accounts}
        mine = [d for d in batch.snapshot.opportunities if ("opportunity", d.id) in batch.affected]
        assert all(d.account_id in accounts for d in mine if d.account_id)
        assert {p.id for p in batch.snapshot.partners} >= {partner}
    by_id = list(connector.read_where("opportunity", "id", [sorted(wanted)[0][1]]))
    assert [key for batch in by_id for key in batch.affected] == [sorted(wanted)[0]]
    assert list(connector.read_where("opportunity", "partner_id", [])) == []
