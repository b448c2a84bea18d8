"""The incremental read: a ``SystemModstamp`` window and its related records in a few queries.

Window: ``SystemModstamp > since AND SystemModstamp <= until``, ordered by
``SystemModstamp, Id``. The returned watermark is ``until`` itself, so a record stamped exactly
at the boundary is read by this run and not by the next one (nothing skipped, nothing twice).
``until`` is never later than Salesforce's own clock (the ``Date`` header) minus
``watermark_lag_seconds``, so a skewed local clock cannot move the window past records that are
still being committed.

Related records cost a fixed number of queries, whatever the number of changed deals: accounts
come along as parent fields of the deal, lead and activity rows; converted leads, close-date
history, open activities and team members are fetched with one semi-join each on the changed
deals (``IN (SELECT Id FROM Opportunity WHERE SystemModstamp > since)``); partners and users by
id lists. Incremental windows are read with ``queryAll``, so deletions (``IsDeleted = true``)
arrive in the same calls. With ``[connector.approvals]``, one more query (in id chunks) on the
deals whose close date moved reads the approvals that fill ``CloseDateChange.approved_by``.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import attrs

from tsos_rules.connectors.base import ReadResult, RecordKey
from tsos_rules.connectors.salesforce.client import SalesforceClient
from tsos_rules.connectors.salesforce.mapping import (
    SALESFORCE_ID,
    FieldMapping,
    format_datetime,
    parse_datetime,
    relationship_name,
)
from tsos_rules.connectors.salesforce.settings import (
    ApprovalSettings,
    ExemptionFieldSettings,
    ReadSettings,
    WriteSettings,
    split_rules,
)
from tsos_rules.errors import ConfigError, SkippableRecordError
from tsos_rules.model import (
    Account,
    Activity,
    CloseDateChange,
    CrmExemption,
    Lead,
    Opportunity,
    Partner,
    Snapshot,
    User,
)
from tsos_rules.snapshot.document import RecordError

log = logging.getLogger("tsos_rules.connectors.salesforce")

SOURCE = "salesforce"
#: A field-history approval counts for a close-date move made this close to it.
FIELD_APPROVAL_WINDOW = dt.timedelta(minutes=5)

Row = dict[str, Any]
#: The fields of an ``OpportunityTeamMember`` row a read uses.
TEAM_SELECT = "OpportunityId, UserId"


def quote(value: str) -> str:
    """A SOQL string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def id_list(ids: Iterable[str]) -> str:
    """``('001...','001...')`` from ids that were checked to be Salesforce ids."""
    checked = []
    for value in ids:
        if not SALESFORCE_ID.match(value):
            raise ValueError(f"not a Salesforce id: {value!r}")
        checked.append(f"'{value}'")
    return "(" + ",".join(checked) + ")"


def teams(rows: Iterable[Row]) -> dict[str, list[str]]:
    """Team member user ids by deal id, from ``OpportunityTeamMember`` rows."""
    by_deal: defaultdict[str, list[str]] = defaultdict(list)
    for row in rows:
        if row.get("OpportunityId") and row.get("UserId"):
            by_deal[str(row["OpportunityId"])].append(str(row["UserId"]))
    return by_deal


def parse_watermark(since: str | None) -> dt.datetime | None:
    """The watermark this connector returned last time (``2026-11-24T10:00:00Z``)."""
    if since is None or since == "":
        return None
    try:
        return parse_datetime(since).astimezone(dt.UTC)
    except ValueError:
        raise ConfigError(
            f"salesforce watermark {since!r} is not a timestamp; run a full sync (--full)"
        ) from None


def _flat_parent(row: Row, relationship: str | None) -> Row | None:
    if relationship is None:
        return None
    parent = row.get(relationship)
    return parent if isinstance(parent, dict) else None


class Reader:
    """Reads one window of changes and everything the facts need around them."""

    def __init__(
        self,
        client: SalesforceClient,
        mapping: FieldMapping,
        settings: ReadSettings,
        write: WriteSettings,
        *,
        now: Callable[[], dt.datetime],
        approvals: ApprovalSettings | None = None,
        exemptions: ExemptionFieldSettings | None = None,
    ) -> None:
        self.client = client
        self.mapping = mapping
        self.settings = settings
        self.write = write
        self.now = now
        self.approvals = approvals or ApprovalSettings()
        #: ``[connector.exemptions]``: the Opportunity fields holding a waiver, read when mapped.
        self.exemptions = exemptions or ExemptionFieldSettings()
        #: What each activity read last is about, so a finding task can point at its deal.
        self.activity_what: dict[str, str] = {}

    # -- window ------------------------------------------------------------------------------

    def window_end(self, until: dt.datetime | None) -> dt.datetime:
        """The window's end: ``until`` (default now), never past Salesforce's clock minus the
        lag, in whole seconds (Salesforce stamps records to the second)."""
        self.client.session  # noqa: B018 - log in first: the login answer carries the clock
        lag = dt.timedelta(seconds=self.settings.watermark_lag_seconds)
        server = self.client.server_now() or self.now()
        end = min((until or server).astimezone(dt.UTC), server.astimezone(dt.UTC) - lag)
        return end.replace(microsecond=0)

    # -- read --------------------------------------------------------------------------------

    def read(self, since: str | None, until: dt.datetime | None) -> ReadResult:
        start = parse_watermark(since)
        end = self.window_end(until)
        if start is not None and end <= start:
            log.info("nothing to read: the window (%s, %s] is empty", since, format_datetime(end))
            return ReadResult(Snapshot(), frozenset(), since, full=False)
        window = f"SystemModstamp <= {format_datetime(end)}"
        if start is not None:
            window = f"SystemModstamp > {format_datetime(start)} AND {window}"
        # Deals changed since the watermark, with no upper bound: a superset of the window, so a
        # deal changed again while we read still gets its related records.
        changed_deals = (
            f"(SELECT Id FROM Opportunity WHERE SystemModstamp > {format_datetime(start)})"
            if start is not None
            else "(SELECT Id FROM Opportunity)"
        )
        batch = RecordBatch(self.mapping, end.date(), self.client.integration_user_id())
        batch.exemption_fields = self.exemptions

        # Incremental windows go through queryAll: the same call reports the deletions.
        deleted: set[RecordKey] = set()
        incremental = start is not None

        def windowed(sobject: str, record_type: str, select: str, own: bool = False) -> list[Row]:
            rows = self._windowed(sobject, select, window, own=own, with_deleted=incremental)
            live = []
            for row in rows:
                if row.get("IsDeleted") is True or row.get("IsDeleted") == "true":
                    deleted.add((record_type, str(row.get("Id"))))
                else:
                    live.append(row)
            return live

        opportunity_rows = windowed("Opportunity", "opportunity", self.opportunity_select())
        lead_rows = windowed("Lead", "lead", self.lead_select())
        account_rows = windowed("Account", "account", self.account_select())
        activity_rows = windowed("Task", "activity", self.activity_select("Task"), own=True)
        if self.settings.events:
            activity_rows += windowed("Event", "activity", self.activity_select("Event"), own=True)

        # Deals of changed accounts: their findings may change with the account (partner of
        # record), and the account is judged over all its deals.
        affected_rows: list[Row] = []
        account_field = self.mapping.sf("opportunity.account_id")
        if account_rows and account_field and start is not None:
            changed_ids = {str(r.get("Id")) for r in opportunity_rows}
            affected_rows = [
                row
                for row in self.query(
                    "deals of changed accounts",
                    f"SELECT {self.opportunity_select()} FROM Opportunity WHERE {account_field} "
                    f"IN (SELECT Id FROM Account WHERE {window})",
                )
                if str(row.get("Id")) not in changed_ids
            ]

        context = DealContext()
        if opportunity_rows:
            self.read_deal_context(context, f"IN {changed_deals}")
        affected_ids = [
            str(r.get("Id")) for r in affected_rows if SALESFORCE_ID.match(str(r.get("Id")))
        ]
        size = self.settings.id_chunk_size
        for offset in range(0, len(affected_ids), size):
            self.read_deal_context(context, f"IN {id_list(affected_ids[offset : offset + size])}")

        team_by_deal = teams(context.team)
        deal_rel = self.account_relationship("opportunity")
        batch.add_opportunities(opportunity_rows, team_by_deal, deal_rel, changed=True)
        batch.add_opportunities(affected_rows, team_by_deal, deal_rel, changed=False)
        batch.add_accounts(account_rows)
        batch.add_leads(lead_rows, self.account_relationship("lead"), changed=True)
        batch.add_leads(context.leads, self.account_relationship("lead"), changed=False)
        batch.add_activities(activity_rows, changed=True)
        batch.add_activities(context.activities, changed=False)
        batch.add_history(context.history)
        self.fill_approvals(batch)

        partner_ids = batch.partner_ids()
        if partner_ids:
            rows = self._by_ids("partners", "Account", self.mapping.partner_fields(), partner_ids)
            batch.add_partners(rows)
        user_ids = batch.user_ids()
        if user_ids:
            rows = self._by_ids("users", "User", self.mapping.user_fields(), user_ids)
            batch.add_users(rows)
        batch.link_leads()

        self.activity_what = {
            a.id: a.what_id for a in batch.activities.values() if a.what_id is not None
        }
        full = start is None
        changed = set(batch.changed)
        if full:
            changed |= {("account", account_id) for account_id in batch.accounts}
        failed = {(e.record_type, e.record_id or "") for e in batch.errors}
        changed -= failed
        affected = {("opportunity", i) for i in affected_ids} - changed - failed
        incomplete = batch.incomplete(changed | affected)
        snapshot = batch.snapshot()
        log.info(
            "read %d changed and %d affected record(s) (%d deals, %d leads, %d accounts, "
            "%d activities changed) with %d related, %d deleted, %d skipped, in %d API call(s)",
            len(changed),
            len(affected),
            len(opportunity_rows),
            len(lead_rows),
            len(account_rows),
            len(activity_rows),
            max(0, snapshot.record_count - len(changed) - len(affected)),
            len(deleted),
            len(batch.errors),
            self.client.budget.run_calls,
        )
        return ReadResult(
            snapshot=snapshot,
            changed=frozenset(changed),
            watermark=format_datetime(end),
            deleted=frozenset(deleted - changed),
            versions=batch.versions,
            errors=tuple(batch.errors),
            full=full,
            affected=frozenset(affected),
            incomplete=frozenset(incomplete),
        )

    def read_deal_context(self, context: DealContext, deals: str) -> None:
        """Converted leads, close-date history, open activities and team of a set of deals
        (``deals`` is ``IN (semi-join)`` or ``IN (id list)``): one query each."""
        converted = self.mapping.sf("lead.converted_opportunity_id")
        if converted:
            context.leads += self.query(
                "converted leads",
                f"SELECT {self.lead_select()} FROM Lead WHERE {converted} {deals}",
            )
        context.history += self.query(
            "close-date history",
            "SELECT Id, OpportunityId, CloseDate, StageName, ForecastCategory, CreatedDate, "
            f"CreatedById FROM OpportunityHistory WHERE OpportunityId {deals} "
            "ORDER BY OpportunityId, CreatedDate, Id",
        )
        context.activities += self.query(
            "open tasks",
            f"SELECT {self.activity_select('Task')} FROM Task WHERE IsClosed = false "
            f"AND WhatId {deals}{self.own_activity_filter()}",
        )
        if self.settings.events:
            context.activities += self.query(
                "open events",
                f"SELECT {self.activity_select('Event')} FROM Event WHERE ActivityDate >= "
                f"TODAY AND WhatId {deals}{self.own_activity_filter()}",
            )
        context.team += self.deal_team(deals)

    def deal_team(self, deals: str) -> list[Row]:
        """The team member rows of a set of deals (``deals`` as for ``_deal_context``): one
        query, none when ``read.team_members`` is off."""
        if not self.settings.team_members:
            return []
        return list(
            self.query(
                "deal team members",
                f"SELECT {TEAM_SELECT} FROM OpportunityTeamMember WHERE OpportunityId {deals}",
            )
        )

    # -- approvals ---------------------------------------------------------------------------

    def fill_approvals(self, batch: RecordBatch) -> None:
        """Fill ``approved_by`` of close-date moves from the configured approval source: one
        query (in id chunks) on the deals that have a move, none when no deal has one."""
        source = self.approvals.source
        if source is None:
            return
        deal_ids = sorted(
            {
                c.opportunity_id
                for c in batch.changes
                if c.changed_at is not None and c.approved_by is None
            }
        )
        deal_ids = [i for i in deal_ids if SALESFORCE_ID.match(i)]
        if not deal_ids:
            return
        approvals: list[Approval] = []
        size = self.settings.id_chunk_size
        for offset in range(0, len(deal_ids), size):
            chunk = id_list(deal_ids[offset : offset + size])
            if source == "process_instance":
                approvals += _process_approvals(
                    self.query(
                        "approvals",
                        "SELECT Id, TargetObjectId, Status, CompletedDate, LastActorId "
                        f"FROM ProcessInstance WHERE TargetObjectId IN {chunk} "
                        "AND Status = 'Approved'",
                    )
                )
            else:
                approvals += _field_approvals(
                    self.query(
                        "approval field history",
                        "SELECT Id, OpportunityId, Field, NewValue, CreatedDate "
                        f"FROM OpportunityFieldHistory WHERE OpportunityId IN {chunk} "
                        f"AND Field = {quote(self.approvals.field or '')} "
                        "ORDER BY OpportunityId, CreatedDate, Id",
                    )
                )
        window = (
            dt.timedelta(hours=self.approvals.window_hours)
            if source == "process_instance"
            else FIELD_APPROVAL_WINDOW
        )
        batch.changes = match_approvals(batch.changes, approvals, window)

    # -- queries -----------------------------------------------------------------------------

    def query(self, label: str, soql: str, *, all_rows: bool = False) -> Iterator[Row]:
        log.debug("%s: %s", label, soql)
        return self.client.query(soql, label=label, all_rows=all_rows)

    def _windowed(
        self, sobject: str, select: str, window: str, *, own: bool, with_deleted: bool
    ) -> list[Row]:
        """Rows changed in the window, in ``SystemModstamp, Id`` order; with ``with_deleted``
        through ``queryAll``, so deleted rows (``IsDeleted = true``) come in the same call."""
        own_filter = self.own_activity_filter() if own else ""
        if with_deleted:
            select += ", IsDeleted"
        rows = list(
            self.query(
                f"changed {sobject}",
                f"SELECT {select} FROM {sobject} WHERE {window}{own_filter} "
                "ORDER BY SystemModstamp, Id",
                all_rows=with_deleted,
            )
        )
        # Bulk jobs do not keep ORDER BY; keep the documented order either way.
        rows.sort(key=lambda r: (str(r.get("SystemModstamp") or ""), str(r.get("Id") or "")))
        return rows

    def _by_ids(
        self, label: str, sobject: str, fields: Sequence[str], ids: Sequence[str]
    ) -> list[Row]:
        rows: list[Row] = []
        size = self.settings.id_chunk_size
        select = ", ".join(fields)
        for offset in range(0, len(ids), size):
            chunk = ids[offset : offset + size]
            rows.extend(
                self.query(label, f"SELECT {select} FROM {sobject} WHERE Id IN {id_list(chunk)}")
            )
        return rows

    def own_activity_filter(self) -> str:
        """Leave out activities the integration itself wrote: they are not the rep's activity."""
        parts = []
        if self.write.object == "Task":
            parts.append(f" AND {self.write.external_id_field} = null")
        user_id = self.client.integration_user_id()
        if user_id is not None and SALESFORCE_ID.match(user_id):
            parts.append(f" AND CreatedById != {quote(user_id)}")
        return "".join(parts)

    def account_relationship(self, record: str) -> str | None:
        field = self.mapping.sf(f"{record}.account_id")
        return relationship_name(field) if field else None

    def _parent(self, record: str) -> list[str]:
        rel = self.account_relationship(record)
        if rel is None:
            return []
        return [f"{rel}.{f}" for f in self._account_fields()]

    def _account_fields(self) -> list[str]:
        fields = self.mapping.account_fields()
        return fields + [f for f in ("OwnerId", "LastModifiedDate") if f not in fields]

    def account_select(self) -> str:
        return ", ".join([*self._account_fields(), "SystemModstamp"])

    def opportunity_select(self, *, parents: bool = True) -> str:
        """The deal's fields, with its account's as parent fields unless ``parents`` is off
        (a deal read alone, for the packs' totals)."""
        fields = self.mapping.select(
            "opportunity", "Id", "SystemModstamp", "LastModifiedDate", "LastModifiedById"
        )
        waiver = [f for f, _ in self.exemptions.fields() if f not in fields]
        return ", ".join(fields + waiver + (self._parent("opportunity") if parents else []))

    def lead_select(self, *, parents: bool = True) -> str:
        fields = self.mapping.select(
            "lead", "Id", "IsConverted", "SystemModstamp", "LastModifiedDate"
        )
        return ", ".join(fields + (self._parent("lead") if parents else []))

    def activity_select(self, sobject: str, *, parents: bool = True) -> str:
        base = ["Id", "WhatId", "AccountId", "OwnerId", "CreatedDate", "CreatedById"]
        base += ["SystemModstamp", "LastModifiedDate"]
        if sobject == "Task":
            base.append("IsClosed")
        fields = self.mapping.select("activity", *base)
        account = [f"Account.{f}" for f in self._account_fields()] if parents else []
        return ", ".join(fields + account)


@attrs.frozen
class Approval:
    """One approval of a deal's close-date move: when it was given, and by whom."""

    opportunity_id: str
    at: dt.datetime
    by: str


def datetime_or_none(raw: Any) -> dt.datetime | None:
    if not isinstance(raw, str) or not raw:
        return None
    try:
        return parse_datetime(raw).astimezone(dt.UTC)
    except ValueError:
        return None


def _process_approvals(rows: Iterable[Row]) -> list[Approval]:
    """Approved ``ProcessInstance`` rows: ``CompletedDate`` and ``LastActorId``."""
    out = []
    for row in rows:
        deal, by, at = (
            row.get("TargetObjectId"),
            row.get("LastActorId"),
            datetime_or_none(row.get("CompletedDate")),
        )
        if row.get("Status") not in (None, "Approved"):
            continue
        if isinstance(deal, str) and isinstance(by, str) and by and at is not None:
            out.append(Approval(deal, at, by))
    return out


_LOOKUP_ID = re.compile(r"^[A-Za-z0-9]{15}(?:[A-Za-z0-9]{3})?$")


def _field_approvals(rows: Iterable[Row]) -> list[Approval]:
    """Field-history rows that set the approval field. A lookup's change is tracked as two rows
    at the same instant (the id and the name): one approval, the id preferred."""
    grouped: dict[tuple[str, dt.datetime], list[str]] = {}
    for row in rows:
        deal, value, at = (
            row.get("OpportunityId"),
            row.get("NewValue"),
            datetime_or_none(row.get("CreatedDate")),
        )
        if not isinstance(deal, str) or at is None or value in (None, ""):
            continue
        grouped.setdefault((deal, at), []).append(str(value))
    out = []
    for (deal, at), values in grouped.items():
        ids = [v for v in values if _LOOKUP_ID.match(v)]
        out.append(Approval(deal, at, (ids or values)[0]))
    return out


def match_approvals(
    changes: Sequence[CloseDateChange], approvals: Sequence[Approval], window: dt.timedelta
) -> list[CloseDateChange]:
    """Mark moves approved: each approval approves at most one move of its deal, the nearest in
    time within ``window`` either side (the closest pairs are matched first)."""
    pairs: list[tuple[dt.timedelta, int, int]] = []
    for a_index, approval in enumerate(approvals):
        for c_index, change in enumerate(changes):
            if change.opportunity_id != approval.opportunity_id:
                continue
            if change.changed_at is None or change.approved_by is not None:
                continue
            moved = change.changed_at
            if moved.tzinfo is None:
                moved = moved.replace(tzinfo=dt.UTC)
            distance = abs(moved - approval.at)
            if distance <= window:
                pairs.append((distance, a_index, c_index))
    out = list(changes)
    used_approvals: set[int] = set()
    approved: set[int] = set()
    for _, a_index, c_index in sorted(pairs):
        if a_index in used_approvals or c_index in approved:
            continue
        used_approvals.add(a_index)
        approved.add(c_index)
        out[c_index] = attrs.evolve(out[c_index], approved_by=approvals[a_index].by)
    return out


@attrs.define
class DealContext:
    """Rows fetched around a set of deals."""

    leads: list[Row] = attrs.field(factory=list)
    history: list[Row] = attrs.field(factory=list)
    activities: list[Row] = attrs.field(factory=list)
    team: list[Row] = attrs.field(factory=list)


class RecordBatch:
    """The records of one read, de-duplicated by id, with the errors of the rows skipped."""

    def __init__(self, mapping: FieldMapping, today: dt.date, own_user_id: str | None) -> None:
        self.mapping = mapping
        self.today = today
        self.own_user_id = own_user_id
        self.opportunities: dict[str, Opportunity] = {}
        self.accounts: dict[str, Account] = {}
        self.leads: dict[str, Lead] = {}
        self.activities: dict[str, Activity] = {}
        self.partners: dict[str, Partner] = {}
        self.users: dict[str, User] = {}
        self.changes: list[CloseDateChange] = []
        self.changed: set[RecordKey] = set()
        self.versions: dict[RecordKey, str] = {}
        self.errors: list[RecordError] = []
        #: Deals whose source lead or history could not be mapped (their facts are partial).
        self.partial_deals: set[str] = set()
        self._counts: defaultdict[str, int] = defaultdict(int)
        #: ``[connector.exemptions]`` and the waivers read from those fields, by deal id.
        self.exemption_fields = ExemptionFieldSettings()
        self.exemptions: dict[str, CrmExemption] = {}

    def _skip(self, collection: str, exc: SkippableRecordError) -> None:
        self.errors.append(
            RecordError(
                SOURCE,
                collection,
                self._counts[collection],
                exc.record_id or None,
                exc.field or None,
                exc.reason,
            )
        )

    def _next(self, collection: str) -> None:
        self._counts[collection] += 1

    def _account(self, row: Row, relationship: str | None) -> None:
        parent = _flat_parent(row, relationship)
        if parent is None or not parent.get("Id") or parent["Id"] in self.accounts:
            return  # many deals share an account: map it once
        self.add_account(parent, changed=False)

    def add_account(self, row: Row, *, changed: bool) -> None:
        try:
            account = self.mapping.account(row)
        except SkippableRecordError as exc:
            self._skip("accounts", exc)
        else:
            owner = row.get("OwnerId")
            if isinstance(owner, str) and owner:
                account = attrs.evolve(account, extra={**account.extra, "owner_id": owner})
            if changed or account.id not in self.accounts:
                self.accounts[account.id] = account
            if changed:
                self.changed.add(("account", account.id))
            self._version("account", account.id, row)
        self._next("accounts")

    def add_accounts(self, rows: Iterable[Row]) -> None:
        for row in rows:
            self.add_account(row, changed=True)

    def add_opportunities(
        self,
        rows: Iterable[Row],
        team: dict[str, list[str]],
        account_rel: str | None,
        *,
        changed: bool,
    ) -> None:
        for row in rows:
            try:
                deal = self.mapping.opportunity(row, team.get(str(row.get("Id")), ()))
            except SkippableRecordError as exc:
                self._skip("opportunities", exc)
            else:
                self.opportunities[deal.id] = deal
                self._waiver(deal.id, row)
                if changed:
                    self.changed.add(("opportunity", deal.id))
                self._version("opportunity", deal.id, row)
                self._account(row, account_rel)
            self._next("opportunities")

    def _waiver(self, deal_id: str, row: Row) -> None:
        """The deal's waiver, when ``until_field`` is mapped and set (a Date: ``YYYY-MM-DD``)."""
        fields = self.exemption_fields
        if not fields.until_field:
            return
        self.exemptions.pop(deal_id, None)
        raw = row.get(fields.until_field)
        if not isinstance(raw, str) or not raw:
            return
        try:
            until = dt.date.fromisoformat(raw[:10])
        except ValueError:
            log.warning(
                "Opportunity %s: %s = %r is not a date; no exemption read",
                deal_id,
                fields.until_field,
                raw,
            )
            return
        reason = row.get(fields.reason_field) if fields.reason_field else None
        rules = row.get(fields.rules_field) if fields.rules_field else None
        self.exemptions[deal_id] = CrmExemption(
            record_type="opportunity",
            record_id=deal_id,
            until=until,
            reason=reason.strip() if isinstance(reason, str) and reason.strip() else None,
            rules=split_rules(rules if isinstance(rules, str) else ""),
            field=fields.until_field,
        )

    def add_leads(self, rows: Iterable[Row], account_rel: str | None, *, changed: bool) -> None:
        converted_field = self.mapping.sf("lead.converted_opportunity_id")
        for row in rows:
            try:
                lead = self.mapping.lead(row)
            except SkippableRecordError as exc:
                if changed or str(row.get("Id")) not in self.leads:
                    self._skip("leads", exc)
                deal = row.get(converted_field) if converted_field else None
                if isinstance(deal, str):
                    self.partial_deals.add(deal)
            else:
                self.leads.setdefault(lead.id, lead)
                if changed:
                    self.changed.add(("lead", lead.id))
                self._version("lead", lead.id, row)
                self._account(row, account_rel)
            self._next("leads")

    def add_activities(self, rows: Iterable[Row], *, changed: bool) -> None:
        for row in rows:
            try:
                activity = self.mapping.activity(row, self.today)
            except SkippableRecordError as exc:
                self._skip("activities", exc)
                what = row.get("WhatId")
                if isinstance(what, str):
                    self.partial_deals.add(what)
            else:
                self.activities.setdefault(activity.id, activity)
                if changed:
                    self.changed.add(("activity", activity.id))
                self._version("activity", activity.id, row)
                self._account(row, "Account")
            self._next("activities")

    def add_history(self, rows: Iterable[Row]) -> None:
        by_deal: defaultdict[str, list[Row]] = defaultdict(list)
        for row in rows:
            deal_id = row.get("OpportunityId")
            if isinstance(deal_id, str):
                by_deal[deal_id].append(row)
        for deal_id, deal_rows in by_deal.items():
            if deal_id not in self.opportunities:
                continue  # a deal changed after the window's end: it is read next time
            try:
                self.changes.extend(
                    self.mapping.close_date_changes(deal_id, deal_rows, self.own_user_id)
                )
            except SkippableRecordError as exc:
                self._skip("close_date_changes", exc)
                self.partial_deals.add(deal_id)
            self._next("close_date_changes")

    def add_partners(self, rows: Iterable[Row]) -> None:
        for row in rows:
            try:
                partner = self.mapping.partner(row)
            except SkippableRecordError as exc:
                self._skip("partners", exc)
            else:
                self.partners[partner.id] = partner
            self._next("partners")

    def add_users(self, rows: Iterable[Row]) -> None:
        for row in rows:
            try:
                user = self.mapping.user(row)
            except SkippableRecordError as exc:
                self._skip("users", exc)
            else:
                self.users[user.id] = user
            self._next("users")

    def link_leads(self) -> None:
        """Point each deal at the lead it was converted from (Salesforce has no such lookup)."""
        for lead in self.leads.values():
            deal = self.opportunities.get(lead.converted_opportunity_id or "")
            if deal is not None and deal.lead_id is None:
                self.opportunities[deal.id] = attrs.evolve(deal, lead_id=lead.id)

    def incomplete(self, judged: Iterable[RecordKey]) -> set[RecordKey]:
        """Judged records one of whose related records was skipped: not judgeable this run."""
        failed = {(e.record_type, e.record_id or "") for e in self.errors}
        if not failed and not self.partial_deals:
            return set()
        out: set[RecordKey] = set()
        for key in judged:
            record_type, record_id = key
            needs: list[RecordKey] = []
            if record_type == "opportunity":
                deal = self.opportunities.get(record_id)
                if deal is None:
                    continue
                account = self.accounts.get(deal.account_id or "")
                needs += [
                    ("account", deal.account_id or ""),
                    ("user", deal.owner_id or ""),
                    ("partner", deal.partner_id or ""),
                    ("partner", account.partner_of_record_id or "" if account else ""),
                    *(("user", member) for member in deal.team_user_ids),
                ]
                if record_id in self.partial_deals:
                    out.add(key)
            elif record_type == "lead":
                lead = self.leads.get(record_id)
                if lead is None:
                    continue
                needs += [
                    ("account", lead.account_id or ""),
                    ("user", lead.owner_id or ""),
                    ("partner", lead.partner_id or ""),
                ]
            elif record_type == "activity":
                activity = self.activities.get(record_id)
                if activity is None:
                    continue
                needs += [("account", activity.account_id or ""), ("user", activity.owner_id or "")]
            elif record_type == "account":
                account = self.accounts.get(record_id)
                if account is None:
                    continue
                needs.append(("partner", account.partner_of_record_id or ""))
            if any(need in failed for need in needs if need[1]):
                out.add(key)
        return out

    def _version(self, record_type: str, record_id: str, row: Row) -> None:
        """``LastModifiedDate`` as the record's version (REST and Bulk spell it differently)."""
        raw = row.get("LastModifiedDate")
        if isinstance(raw, str) and len(raw) == 28 and raw.endswith(".000+0000"):
            # REST's shape, in whole seconds as Salesforce stamps them: no parsing needed
            self.versions.setdefault((record_type, record_id), raw[:23] + "Z")
        elif isinstance(raw, str) and raw:
            try:
                moment = parse_datetime(raw).astimezone(dt.UTC)
            except ValueError:
                return
            version = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
            self.versions.setdefault((record_type, record_id), version)

    def partner_ids(self) -> list[str]:
        ids: set[str] = set()
        for deal in self.opportunities.values():
            if deal.partner_id:
                ids.add(deal.partner_id)
        for account in self.accounts.values():
            if account.partner_of_record_id:
                ids.add(account.partner_of_record_id)
        for lead in self.leads.values():
            if lead.partner_id:
                ids.add(lead.partner_id)
        return sorted(i for i in ids if SALESFORCE_ID.match(i))

    def user_ids(self) -> list[str]:
        ids: set[str] = set()
        for deal in self.opportunities.values():
            if deal.owner_id:
                ids.add(deal.owner_id)
            ids.update(deal.team_user_ids)
        for lead in self.leads.values():
            if lead.owner_id:
                ids.add(lead.owner_id)
        for activity in self.activities.values():
            if activity.owner_id:
                ids.add(activity.owner_id)
        # Lead and task owners can be queues (00G...), which have no user record.
        return sorted(i for i in ids if not i.startswith("00G") and SALESFORCE_ID.match(i))

    def snapshot(self) -> Snapshot:
        return Snapshot(
            as_of=None,
            users=tuple(self.users[k] for k in sorted(self.users)),
            partners=tuple(self.partners[k] for k in sorted(self.partners)),
            accounts=tuple(self.accounts[k] for k in sorted(self.accounts)),
            leads=tuple(self.leads[k] for k in sorted(self.leads)),
            opportunities=tuple(self.opportunities[k] for k in sorted(self.opportunities)),
            close_date_changes=tuple(self.changes),
            activities=tuple(self.activities[k] for k in sorted(self.activities)),
            exemptions=tuple(self.exemptions[k] for k in sorted(self.exemptions)),
        )
