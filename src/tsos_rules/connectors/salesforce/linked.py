"""``stream_where`` for Salesforce: the records holding some values, with only what links to them.

An aggregate's readers (a partner's deals, when its commit total moved) are judged again by the
few rules that read the total, which need the record, its account (and the account's partner of
record), its owner and team, and its partner, not its company group. So the readers are read
in one filter query (``matching_rows``: ``IN`` lists cut under the SOQL and URI limits, or the
object streamed when the field's value is mapped) selecting every field a read selects, the
account's as parent fields; its REST pages (``nextRecordsUrl``) or Bulk API 2.0 result pages
are cut into results of ``page_size`` records. Each result then costs one team-member query
(in id chunks) and the partners and users it names that no earlier result read: no key pass,
no leads, history or activities.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterator
from itertools import islice

from tsos_rules.connectors.base import ReadResult, RecordKey
from tsos_rules.connectors.salesforce.mapping import SALESFORCE_ID
from tsos_rules.connectors.salesforce.paging import PagedReader, id_chunks, matching_rows
from tsos_rules.connectors.salesforce.reader import (
    TEAM_SELECT,
    Reader,
    RecordBatch,
    Row,
    teams,
)
from tsos_rules.connectors.salesforce.stream import sobjects


def stream_where(
    reader: Reader, record_type: str, field: str, values: Collection[str], page_size: int
) -> Iterator[ReadResult]:
    """The current records of ``record_type`` whose ``field`` holds one of ``values``, judged
    (as ``affected``), ``page_size`` a result, each with its linked records; records that
    cannot be mapped are in ``errors``, and those whose linked record cannot be mapped in
    ``incomplete``."""
    wanted = set(values)
    if not wanted or not sobjects(reader, record_type):
        return
    end = reader.window_end(None)
    people = PagedReader(reader)  # keeps the partners and users read, for the later results
    rows = matching_rows(reader, record_type, field, wanted, end, whole=True)
    while page := list(islice(rows, max(1, page_size))):
        yield _linked(people, record_type, page, end)


def _linked(people: PagedReader, record_type: str, rows: list[Row], end: dt.datetime) -> ReadResult:
    """``rows`` mapped as a read maps them, with their accounts (parent fields), team members,
    owners and partners."""
    reader = people.reader
    batch = RecordBatch(reader.mapping, end.date(), reader.client.integration_user_id())
    batch.exemption_fields = reader.exemptions
    if record_type == "opportunity":
        ids = sorted(
            {str(row.get("Id")) for row in rows if SALESFORCE_ID.match(str(row.get("Id")))}
        )
        team: list[Row] = []
        prefix = f"SELECT {TEAM_SELECT} FROM OpportunityTeamMember WHERE OpportunityId IN "
        for chunk in id_chunks(prefix, ids, reader.settings.id_chunk_size):
            team += reader.deal_team(f"IN {chunk}")
        batch.add_opportunities(
            rows, teams(team), reader.account_relationship("opportunity"), changed=False
        )
        judged: Collection[str] = batch.opportunities
    elif record_type == "lead":
        batch.add_leads(rows, reader.account_relationship("lead"), changed=False)
        judged = batch.leads
    elif record_type == "activity":
        batch.add_activities(rows, changed=False)
        judged = batch.activities
        reader.activity_what.update(
            {a.id: a.what_id for a in batch.activities.values() if a.what_id is not None}
        )
    else:
        for row in rows:
            batch.add_account(row, changed=False)
        judged = batch.accounts
    people.add_people(batch)
    keys: set[RecordKey] = {(record_type, record_id) for record_id in judged}
    incomplete = batch.incomplete(keys)
    return ReadResult(
        snapshot=batch.snapshot(),
        changed=frozenset(),
        watermark=None,
        versions=batch.versions,
        errors=tuple(batch.errors),
        affected=frozenset(keys - incomplete),
        incomplete=frozenset(incomplete),
    )
