"""``stream_records`` for Salesforce: one object's current records alone, page by page.

The cheap first read of a full sync whose packs total records over the org (``Aggregate``):
one query of the object's own fields (no parent fields, no related records) through the
client's usual paging (REST ``nextRecordsUrl`` pages of up to 2,000 rows, or above
``bulk_threshold`` a Bulk API 2.0 job whose ``Sforce-Locator`` result pages are fetched one at
a time), mapped by the read's own ``RecordBatch`` and ``FieldMapping``, ``page_size`` records a
result. Memory holds one API page and one result, never the object. A record read alone has
no related records: a deal's ``team_user_ids`` and ``lead_id`` (read from
``OpportunityTeamMember`` and the converted lead) are empty here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from itertools import islice

from tsos_rules.connectors.base import ReadResult
from tsos_rules.connectors.salesforce.reader import Reader, RecordBatch, Row
from tsos_rules.model import Snapshot


def sobjects(reader: Reader, record_type: str) -> list[str]:
    """The Salesforce objects holding ``record_type`` (Event only with ``read.events``)."""
    if record_type == "activity":
        return ["Task", "Event"] if reader.settings.events else ["Task"]
    return {"account": ["Account"], "lead": ["Lead"], "opportunity": ["Opportunity"]}.get(
        record_type, []
    )


def stream_records(reader: Reader, record_type: str, page_size: int) -> Iterator[ReadResult]:
    """Every current record of ``record_type``, ``page_size`` a result, none judged; rows
    that cannot be mapped are left out, as a read leaves them out."""
    objects = sobjects(reader, record_type)
    if not objects:
        return
    today = reader.window_end(None).date()  # logs in first; an Event is open while ahead
    size = max(1, page_size)
    for sobject in objects:
        rows = reader.query(f"{sobject} records", _soql(reader, sobject))
        while page := list(islice(rows, size)):
            yield ReadResult(
                snapshot=records_of(reader, record_type, page, today),
                changed=frozenset(),
                watermark=None,
            )


def records_of(reader: Reader, record_type: str, rows: Iterable[Row], today: dt.date) -> Snapshot:
    """``rows`` mapped as a read maps them, alone in a snapshot."""
    batch = RecordBatch(reader.mapping, today, reader.client.integration_user_id())
    if record_type == "opportunity":
        batch.add_opportunities(rows, {}, None, changed=False)
        return Snapshot(opportunities=tuple(batch.opportunities.values()))
    if record_type == "lead":
        batch.add_leads(rows, None, changed=False)
        return Snapshot(leads=tuple(batch.leads.values()))
    if record_type == "activity":
        batch.add_activities(rows, changed=False)
        return Snapshot(activities=tuple(batch.activities.values()))
    for row in rows:
        batch.add_account(row, changed=False)
    return Snapshot(accounts=tuple(batch.accounts.values()))


def _soql(reader: Reader, sobject: str) -> str:
    """The object's own fields, as a read selects them (the integration's own activities
    left out, as a read leaves them out)."""
    own = reader.own_activity_filter().removeprefix(" AND ") if sobject in ("Task", "Event") else ""
    return f"SELECT {select_of(reader, sobject, parents=False)} FROM {sobject}" + (
        f" WHERE {own}" if own else ""
    )


def select_of(reader: Reader, sobject: str, *, parents: bool) -> str:
    """The fields a read selects of ``sobject``: with the account's as parent fields when
    ``parents`` (a deal, lead or activity read with its account), else its own alone."""
    if sobject == "Opportunity":
        return reader.opportunity_select(parents=parents)
    if sobject == "Lead":
        return reader.lead_select(parents=parents)
    if sobject == "Account":
        return reader.account_select()
    return reader.activity_select(sobject, parents=parents)
