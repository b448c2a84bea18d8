"""The HubSpot connector: incremental reads of deals, companies, owners and engagements, and
write-back as tasks and conditional property updates.

Reads
    Changed records come from the CRM search API, ``hs_lastmodifieddate`` in the window
    ``(since, until]``, sorted ascending, paged with ``paging.next.after``. A search query stops
    at 10,000 results: when a window reaches that cap, the window is narrowed to start at the
    last timestamp seen and the read continues (ids de-duplicated), so any number of changes is
    read without gaps. The records themselves are fetched by id with batch reads of at most 100
    (deals at most 50, as they ask for ``propertiesWithHistory`` for close-date history), their
    links with associations v4 batch reads, and every related record a rule needs is brought
    along: the deal's company and partner, the other deals of the same company, its owner, its
    open activities.

Writes
    Findings become HubSpot tasks associated to the deal (or company), carrying the finding's
    fingerprint in a custom task property: a search for the fingerprint before creating makes
    creation idempotent. Field repairs compare the deal's current ``hs_lastmodifieddate`` with the
    version that was read and refuse (STALE) when it moved.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import requests

from tsos_rules import (
    Account,
    Activity,
    CloseDateChange,
    ConfigError,
    ConnectorError,
    FatalConnectorError,
    Lead,
    Opportunity,
    Partner,
    Snapshot,
    User,
)
from tsos_rules.config import read_secret
from tsos_rules.connectors.base import (
    Action,
    ActionKind,
    ActionResult,
    ActionStatus,
    Capabilities,
    ReadResult,
    RecordKey,
)
from tsos_rules.snapshot.document import RecordError
from tsos_rules_hubspot.client import HubSpotClient, HubSpotRequestError, chunks, next_after
from tsos_rules_hubspot.mapping import (
    DEAL_HISTORY,
    ENGAGEMENTS,
    FORECAST_TO_HUBSPOT,
    READ_ONLY_DEAL_PROPERTIES,
    TASK_TO_COMPANY,
    TASK_TO_DEAL,
    Engagement,
    MappingProblem,
    close_date_changes,
    company_properties,
    company_to_account,
    company_to_partner,
    deal_properties,
    deal_to_opportunity,
    engagement_properties,
    engagement_to_activity,
    format_instant,
    from_millis,
    id_order,
    is_partner_company,
    lead_properties,
    lead_to_lead,
    owner_to_user,
    parse_instant,
    primary_and_partner,
    stage_map,
    to_millis,
    version_millis,
)
from tsos_rules_hubspot.settings import HubSpotSettings

log = logging.getLogger("tsos_rules_hubspot")

NAME = "hubspot"
SOURCE = "hubspot"
LAST_MODIFIED = "hs_lastmodifieddate"
#: How often one window may restart because its result count moved while paging.
MAX_RESTARTS = 5

_PROPERTY_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: In a translated repair: the partner company to link with the labelled association.
PARTNER_LINK = "@partner"

Json = dict[str, Any]


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@attrs.frozen
class _Changed:
    """Ids of the changed records, by HubSpot object."""

    deals: set[str]
    companies: set[str]
    leads: set[str]
    engagements: set[str]


@attrs.define
class _Loaded:
    """What one read fetched, before mapping."""

    deals: dict[str, Json] = attrs.field(factory=dict)
    deal_companies: dict[str, list[Json]] = attrs.field(factory=dict)
    deal_contacts: dict[str, list[str]] = attrs.field(factory=dict)
    companies: dict[str, Json] = attrs.field(factory=dict)
    engagements: dict[str, tuple[Engagement, Json]] = attrs.field(factory=dict)
    engagement_deals: dict[str, list[str]] = attrs.field(factory=dict)
    engagement_companies: dict[str, list[str]] = attrs.field(factory=dict)
    leads: dict[str, Json] = attrs.field(factory=dict)
    lead_companies: dict[str, list[Json]] = attrs.field(factory=dict)
    lead_deals: dict[str, list[str]] = attrs.field(factory=dict)
    deal_leads: dict[str, list[str]] = attrs.field(factory=dict)
    owners: list[Json] = attrs.field(factory=list)


#: A web app domain HubSpot names (``app.hubspot.com``, ``app-eu1.hubspot.com``); any other
#: answer is not trusted as a link's host.
_UI_DOMAIN = re.compile(r"app(-[a-z0-9]+)?\.hubspot\.com")
#: HubSpot object type ids of our record types, for links to records in the web app.
_RECORD_TYPE_IDS = {"opportunity": "0-3", "account": "0-2", "lead": "0-136"}
_ACTIVITY_TYPE_IDS = {
    "tasks": "0-27",
    "meetings": "0-47",
    "calls": "0-48",
    "notes": "0-46",
    "emails": "0-49",
}


class HubSpotConnector:
    """HubSpot CRM: deals, companies, owners, leads and activities; findings as tasks.

    The :class:`tsos_rules.connectors.base.Connector` for HubSpot. Build it from the
    ``[connector]`` table with :meth:`from_settings`; tests inject a ``session`` (for
    ``responses``), a ``sleep`` that does not sleep and a ``now`` clock.
    """

    name = NAME

    def __init__(
        self,
        settings: HubSpotSettings,
        *,
        token: str | None = None,
        session: requests.Session | None = None,
        client: HubSpotClient | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = _utcnow,
    ) -> None:
        self.settings = settings
        if client is None:
            if token is None:
                token = read_secret(settings.token, "connector.token")
            client = HubSpotClient(
                token,
                session=session,
                base_url=settings.base_url,
                max_retries=settings.max_retries,
                timeout=settings.timeout,
                requests_per_10s=settings.requests_per_10s,
                searches_per_second=settings.searches_per_second,
                sleep=sleep,
                clock=clock,
            )
        self.client = client
        self._now = now
        #: Activities seen by the last read: id -> (object type, deal id, company id).
        self._activity_links: dict[str, tuple[str, str | None, str | None]] = {}
        self._partner_type: tuple[str, int] | None = None
        #: The portal (Hub) id for record links: None until asked, "" when unknown.
        self._portal_id: str | None = None
        #: The web app's domain the account details name (another for EU-hosted accounts).
        self._ui_domain = "app.hubspot.com"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any], **kwargs: Any) -> HubSpotConnector:
        """The factory registered as ``hubspot``: takes the ``[connector]`` table."""
        return cls(HubSpotSettings.from_mapping(settings), **kwargs)

    def __repr__(self) -> str:
        return f"HubSpotConnector(base_url={self.settings.base_url!r})"

    def capabilities(self) -> Capabilities:
        return Capabilities(
            incremental=True,
            tasks=True,
            field_updates=True,
            conditional_updates=True,
            idempotent_upsert=True,
            max_batch=self.settings.batch_size,
        )

    def close(self) -> None:
        self.client.close()

    def record_url(self, record_type: str, record_id: str) -> str | None:
        """The record in the HubSpot web app, ``https://<ui domain>/contacts/<portal id>/
        record/<object type id>/<id>`` (deals 0-3, companies 0-2, leads 0-136; an activity by
        the type the last read saw). The portal id and its web app's domain (``app-eu1.
        hubspot.com`` for an account hosted in the EU) are asked once
        (``/account-info/v3/details``); None when that fails or the type is unknown."""
        if self._portal_id is None:
            try:
                answer = self.client.request("GET", "/account-info/v3/details")
            except (ConnectorError, requests.RequestException):  # links are optional
                answer = {}
            if not isinstance(answer, dict):
                answer = {}
            portal, domain = answer.get("portalId"), answer.get("uiDomain")
            self._portal_id = str(portal) if isinstance(portal, int) and portal > 0 else ""
            if isinstance(domain, str) and _UI_DOMAIN.fullmatch(domain):
                self._ui_domain = domain
        if not self._portal_id or not record_id:
            return None
        type_id = _RECORD_TYPE_IDS.get(record_type)
        if record_type == "activity":
            link = self._activity_links.get(record_id)
            type_id = _ACTIVITY_TYPE_IDS.get(link[0]) if link else None
        if type_id is None:
            return None
        return f"https://{self._ui_domain}/contacts/{self._portal_id}/record/{type_id}/{record_id}"

    def check(self, ladder: Sequence[str]) -> list[Any]:
        """What ``tsos-rules connectors check hubspot`` reports: missing properties, the
        partner label, deal stages off the ladder (see :mod:`tsos_rules_hubspot.check`)."""
        from tsos_rules_hubspot.check import check_portal

        return list(check_portal(self.client, self.settings, ladder))

    # -- reads --------------------------------------------------------------------------------

    def read(self, since: str | None, *, until: dt.datetime | None = None) -> ReadResult:
        """Records whose ``hs_lastmodifieddate`` is after ``since`` and at most ``until``.

        Without ``until`` the window ends ``search_lag_seconds`` ago, so that changes HubSpot
        has not indexed for search yet are left for the next run instead of being skipped.
        """
        (only,) = self.read_batches(since, until=until, batch_size=1 << 40)
        return only

    def read_batches(
        self, since: str | None, *, until: dt.datetime | None = None, batch_size: int = 1000
    ) -> Iterator[ReadResult]:
        """Like :meth:`read`, cut into self-contained batches of at most ``batch_size`` changed
        records, each with all its related records; every batch carries the final watermark."""
        if batch_size < 1:
            raise ConfigError(f"sync.batch_size: expected 1 or more, got {batch_size}")
        s = self.settings
        if until is None:
            high_moment = self._now() - dt.timedelta(seconds=s.search_lag_seconds)
        else:
            high_moment = until if until.tzinfo else until.replace(tzinfo=dt.UTC)
        high = to_millis(high_moment)
        low = _decode_watermark(since) if since else None
        if low is not None and low >= high:
            yield ReadResult(snapshot=Snapshot(), changed=frozenset(), watermark=since)
            return
        watermark = format_instant(from_millis(high))
        calls_before = self.client.calls

        changed_deals = self._window("deals", low, high, [LAST_MODIFIED])
        changed_companies = (
            self._window("companies", low, high, [LAST_MODIFIED, "type"])
            if s.read_companies
            else {}
        )
        changed_leads = self._window("leads", low, high, [LAST_MODIFIED]) if s.read_leads else {}
        changed_engagements: dict[str, Engagement] = {}
        for object_type in s.activity_objects:
            kind = ENGAGEMENTS[object_type]
            found = self._window(object_type, low, high, [LAST_MODIFIED, s.fingerprint_property])
            for record_id, record in found.items():
                if not (record.get("properties") or {}).get(s.fingerprint_property):
                    changed_engagements[record_id] = kind  # our own finding tasks are not judged
        deleted = self._deleted(low, high) if low is not None and s.track_deletions else frozenset()
        units: list[tuple[str, str]] = [
            *(("deal", i) for i in sorted(changed_deals, key=id_order)),
            *(("company", i) for i in sorted(changed_companies, key=id_order)),
            *(("lead", i) for i in sorted(changed_leads, key=id_order)),
            *(("engagement", i) for i in sorted(changed_engagements, key=id_order)),
        ]
        if not units:
            log.info("HubSpot read (%s, %s]: nothing changed", since or "beginning", watermark)
            yield ReadResult(
                snapshot=Snapshot(),
                changed=frozenset(),
                watermark=watermark,
                deleted=deleted,
                full=low is None,
                progress=(0, 0),
            )
            return
        everything = _Changed(
            deals=set(changed_deals),
            companies=set(changed_companies),
            leads=set(changed_leads),
            engagements=set(changed_engagements),
        )
        owners: list[Json] | None = None
        records = 0
        for start in range(0, len(units), batch_size):
            chunk = units[start : start + batch_size]
            part = _Changed(
                deals={i for k, i in chunk if k == "deal"},
                companies={i for k, i in chunk if k == "company"},
                leads={i for k, i in chunk if k == "lead"},
                engagements={i for k, i in chunk if k == "engagement"},
            )
            loaded = self._hydrate(
                sorted(part.deals, key=id_order),
                sorted(part.companies, key=id_order),
                {i: changed_engagements[i] for i in part.engagements},
                sorted(part.leads, key=id_order),
                owners=owners,
                partner_companies={
                    i for i in part.companies if is_partner_company(changed_companies[i], s)
                },
            )
            owners = loaded.owners
            result = self._build(
                loaded,
                part,
                everything=everything,
                deleted=deleted if start == 0 else frozenset(),
                watermark=watermark,
                full=low is None,
            )
            records += result.snapshot.record_count
            yield attrs.evolve(result, progress=(start + len(chunk), len(units)))
        log.info(
            "HubSpot read (%s, %s]: %d deals, %d companies, %d leads, %d activities changed; "
            "%d records read; %d API calls",
            since or "beginning",
            watermark,
            len(changed_deals),
            len(changed_companies),
            len(changed_leads),
            len(changed_engagements),
            records,
            self.client.calls - calls_before,
        )

    def _search_body(
        self,
        low: int | None,
        inclusive: bool,
        high: int,
        properties: Sequence[str],
        after: str | None,
    ) -> Json:
        filters: list[Json] = []
        if low is not None:
            filters.append(
                {
                    "propertyName": LAST_MODIFIED,
                    "operator": "GTE" if inclusive else "GT",
                    "value": str(low),
                }
            )
        filters.append({"propertyName": LAST_MODIFIED, "operator": "LTE", "value": str(high)})
        body: Json = {
            "filterGroups": [{"filters": filters}],
            "sorts": [{"propertyName": LAST_MODIFIED, "direction": "ASCENDING"}],
            "properties": list(properties),
            "limit": self.settings.page_size,
        }
        if after is not None:
            body["after"] = after
        return body

    def _window(
        self, object_type: str, low: int | None, high: int, properties: Sequence[str]
    ) -> dict[str, Json]:
        """Every record of ``object_type`` modified in ``(low, high]``, by id.

        One search query can page through at most ``search_cap`` results. Results come sorted by
        ``hs_lastmodifieddate``; before the cap is reached the window is narrowed to
        ``[last timestamp seen, high]`` and searched again, ids de-duplicated. The same happens
        when the query's ``total`` moves while paging (a record left or entered the window, so
        offsets shifted): no record in the window is skipped.
        """
        s = self.settings
        found: dict[str, Json] = {}
        anchor, inclusive = low, False
        restarts = 0
        while True:
            after: str | None = None
            in_query = 0
            last_seen: int | None = None
            previous_total: int | None = None
            narrowed_by_cap = False
            while True:
                page = self.client.search(
                    object_type, self._search_body(anchor, inclusive, high, properties, after)
                )
                total = page.get("total")
                if (
                    previous_total is not None
                    and isinstance(total, int)
                    and total != previous_total
                    and restarts < MAX_RESTARTS
                ):
                    restarts += 1
                    log.info(
                        "HubSpot %s search: the window changed while paging (%d -> %d results); "
                        "reading again from the last timestamp seen",
                        object_type,
                        previous_total,
                        total,
                    )
                    break
                previous_total = total if isinstance(total, int) else previous_total
                results = page.get("results") or []
                for record in results:
                    found[str(record["id"])] = record
                    stamp = version_millis((record.get("properties") or {}).get(LAST_MODIFIED))
                    if stamp is not None and (last_seen is None or stamp > last_seen):
                        last_seen = stamp
                in_query += len(results)
                after = next_after(page)
                if after is None or not results:
                    return found
                if in_query + s.page_size > s.search_cap:
                    narrowed_by_cap = True
                    break
            if last_seen is None:
                return found
            if narrowed_by_cap:
                if inclusive and last_seen == anchor:
                    raise FatalConnectorError(
                        f"HubSpot {object_type} search: more than {s.search_cap} records share "
                        f"one hs_lastmodifieddate ({format_instant(from_millis(last_seen))}); "
                        "the search API cannot page past that"
                    )
                log.info(
                    "HubSpot %s search: %d results reach the search cap; narrowing the window "
                    "to start at %s",
                    object_type,
                    in_query,
                    format_instant(from_millis(last_seen)),
                )
            anchor, inclusive = last_seen, True

    def _deleted(self, low: int, high: int) -> frozenset[RecordKey]:
        """Deals archived in the window (HubSpot's recycle bin keeps them 90 days)."""
        gone: set[RecordKey] = set()
        for page in self.client.pages(
            "/crm/v3/objects/deals", {"archived": "true", "limit": 100, "properties": "dealname"}
        ):
            for record in page.get("results") or []:
                try:
                    when = parse_instant(record.get("archivedAt"))
                except ValueError:
                    continue
                if when is not None and low < to_millis(when) <= high:
                    gone.add(("opportunity", str(record["id"])))
        return frozenset(gone)

    def _hydrate(
        self,
        changed_deals: Sequence[str],
        changed_companies: Sequence[str],
        changed_engagements: Mapping[str, Engagement],
        changed_leads: Sequence[str] = (),
        *,
        owners: list[Json] | None = None,
        partner_companies: Iterable[str] = (),
    ) -> _Loaded:
        """Fetch the changed records and every related record the facts need."""
        s = self.settings
        client = self.client
        loaded = _Loaded()
        deal_props = deal_properties(s)

        def load_deals(ids: Iterable[str]) -> None:
            wanted = [i for i in dict.fromkeys(ids) if i not in loaded.deals]
            if not wanted:
                return
            got = client.batch_read(
                "deals", wanted, deal_props, history=DEAL_HISTORY, batch_size=s.batch_size
            )
            loaded.deals.update(got)
            links = client.associations("deals", "companies", list(got), batch_size=s.batch_size)
            for deal_id in got:
                loaded.deal_companies[deal_id] = links.get(deal_id, [])

        def load_leads(ids: Iterable[str]) -> None:
            wanted = [i for i in dict.fromkeys(ids) if i not in loaded.leads]
            if not wanted:
                return
            got = client.batch_read("leads", wanted, lead_properties(s), batch_size=s.batch_size)
            loaded.leads.update(got)
            companies = client.associations(
                "leads", "companies", list(got), batch_size=s.batch_size
            )
            deals = client.associations("leads", "deals", list(got), batch_size=s.batch_size)
            for lead_id in got:
                loaded.lead_companies[lead_id] = companies.get(lead_id, [])
                loaded.lead_deals[lead_id] = sorted(_ids(deals.get(lead_id, [])), key=id_order)

        load_deals(changed_deals)
        load_leads(changed_leads)

        # Changed activities bring their deal and company.
        by_type: dict[str, list[str]] = {}
        for record_id, kind in changed_engagements.items():
            by_type.setdefault(kind.object_type, []).append(record_id)
        for object_type, ids in by_type.items():
            kind = ENGAGEMENTS[object_type]
            records = client.batch_read(
                object_type, ids, engagement_properties(kind, s), batch_size=s.batch_size
            )
            for record_id, record in records.items():
                loaded.engagements[record_id] = (kind, record)
            to_deals = client.associations(
                object_type, "deals", list(records), batch_size=s.batch_size
            )
            to_companies = client.associations(
                object_type, "companies", list(records), batch_size=s.batch_size
            )
            for record_id in records:
                loaded.engagement_deals[record_id] = _ids(to_deals.get(record_id, []))
                loaded.engagement_companies[record_id] = _ids(to_companies.get(record_id, []))
        load_deals(d for ids in loaded.engagement_deals.values() for d in ids)

        # The other deals of every company involved: the single-owner and partner-of-record
        # rules compare a deal with its siblings.
        if s.sibling_deals:
            # A changed partner's own deals are not read: a partner can have thousands.
            anchors = set(changed_companies) - set(partner_companies)
            for deal_id in changed_deals:
                primary, _, _ = primary_and_partner(loaded.deal_companies.get(deal_id, []), s)
                if primary:
                    anchors.add(primary)
            for ids in loaded.engagement_companies.values():
                anchors.update(ids)
            for lead_id in changed_leads:
                primary, _, _ = primary_and_partner(loaded.lead_companies.get(lead_id, []), s)
                if primary:
                    anchors.add(primary)
            siblings = client.associations(
                "companies", "deals", sorted(anchors, key=id_order), batch_size=s.batch_size
            )
            load_deals(d for targets in siblings.values() for d in _ids(targets))

        # The lead each deal came from (the channel-lead rules follow it).
        deal_ids = sorted(loaded.deals, key=id_order)
        if s.read_leads and deal_ids:
            links = client.associations("deals", "leads", deal_ids, batch_size=s.batch_size)
            loaded.deal_leads = {d: sorted(_ids(t), key=id_order) for d, t in links.items()}
            load_leads(x for ids in loaded.deal_leads.values() for x in ids)

        # Activities of every deal (next steps), our own finding tasks aside.
        for object_type in s.activity_objects:
            kind = ENGAGEMENTS[object_type]
            links = client.associations("deals", object_type, deal_ids, batch_size=s.batch_size)
            wanted = sorted(
                {a for targets in links.values() for a in _ids(targets)} - set(loaded.engagements),
                key=id_order,
            )
            records = client.batch_read(
                object_type, wanted, engagement_properties(kind, s), batch_size=s.batch_size
            )
            for record_id, record in records.items():
                loaded.engagements[record_id] = (kind, record)
            for deal_id, targets in links.items():
                for activity_id in _ids(targets):
                    deals = loaded.engagement_deals.setdefault(activity_id, [])
                    if deal_id not in deals:
                        deals.append(deal_id)

        if s.read_contacts and deal_ids:
            contacts = client.associations("deals", "contacts", deal_ids, batch_size=s.batch_size)
            loaded.deal_contacts = {d: _ids(t) for d, t in contacts.items()}

        # Companies: accounts, partners, partners of record.
        company_ids: set[str] = set(changed_companies)
        for deal_id, targets in loaded.deal_companies.items():
            company_ids.update(_ids(targets))
            if s.partner_source == "property":
                value = (loaded.deals[deal_id].get("properties") or {}).get(s.partner_property)
                if value:
                    company_ids.add(str(value))
        for ids in loaded.engagement_companies.values():
            company_ids.update(ids)
        for lead_id, targets in loaded.lead_companies.items():
            company_ids.update(_ids(targets))
            if s.partner_source == "property":
                value = (loaded.leads[lead_id].get("properties") or {}).get(s.partner_property)
                if value:
                    company_ids.add(str(value))
        props = company_properties(s)
        for _ in range(2):  # a second round for partners of record not loaded yet
            wanted = sorted(company_ids - set(loaded.companies), key=id_order)
            if not wanted:
                break
            loaded.companies.update(
                client.batch_read("companies", wanted, props, batch_size=s.batch_size)
            )
            for company in loaded.companies.values():
                por = (company.get("properties") or {}).get(s.partner_of_record_property)
                if por:
                    company_ids.add(str(por))

        if owners is None:
            for page in client.pages("/crm/v3/owners", {"limit": 100}):
                loaded.owners.extend(page.get("results") or [])
        else:
            loaded.owners = owners
        return loaded

    def _build(
        self,
        loaded: _Loaded,
        part: _Changed,
        *,
        everything: _Changed,
        deleted: frozenset[RecordKey],
        watermark: str,
        full: bool,
    ) -> ReadResult:
        """Map one batch; ``part`` is what changed among its records, ``everything`` what
        changed in the whole read (so a record judged in another batch is not judged here)."""
        s = self.settings
        changed_deals, changed_companies = part.deals, part.companies
        changed_leads, changed_engagements = part.leads, part.engagements
        errors: list[RecordError] = []
        versions: dict[RecordKey, str] = {}

        def error(collection: str, index: int, record_id: str, exc: MappingProblem) -> None:
            errors.append(RecordError(SOURCE, collection, index, record_id, exc.field, exc.problem))

        users: list[User] = []
        owner_by_user: dict[str, str] = {}
        for index, owner in enumerate(sorted(loaded.owners, key=lambda o: id_order(str(o["id"])))):
            try:
                user = owner_to_user(owner, s)
            except (MappingProblem, ValueError) as exc:
                problem = (
                    exc if isinstance(exc, MappingProblem) else MappingProblem("role", str(exc))
                )
                error("users", index, str(owner.get("id")), problem)
                continue
            users.append(user)
            if owner.get("userId") is not None:
                owner_by_user[str(owner["userId"])] = user.id

        # Which companies are partners and which are accounts.
        links: dict[str, tuple[str | None, str | None]] = {}
        partner_ids: set[str] = set()
        account_ids: set[str] = set()
        for deal_id in loaded.deals:
            primary, partner, _ = primary_and_partner(loaded.deal_companies.get(deal_id, []), s)
            if s.partner_source == "property":
                value = (loaded.deals[deal_id].get("properties") or {}).get(s.partner_property)
                partner = str(value) if value else None
            elif s.partner_source == "none":
                partner = None
            links[deal_id] = (primary, partner)
            if primary:
                account_ids.add(primary)
            if partner:
                partner_ids.add(partner)
        for company_id, company in loaded.companies.items():
            por = (company.get("properties") or {}).get(s.partner_of_record_property)
            if por:
                partner_ids.add(str(por))
            if is_partner_company(company, s):
                partner_ids.add(company_id)
            elif company_id not in partner_ids:
                account_ids.add(company_id)
        for ids in loaded.engagement_companies.values():
            account_ids.update(ids)
        lead_links: dict[str, tuple[str | None, str | None]] = {}
        for lead_id, lead_record in loaded.leads.items():
            primary, partner, _ = primary_and_partner(loaded.lead_companies.get(lead_id, []), s)
            if s.partner_source == "property":
                value = (lead_record.get("properties") or {}).get(s.partner_property)
                partner = str(value) if value else None
            elif s.partner_source == "none":
                partner = None
            lead_links[lead_id] = (primary, partner)
            if primary:
                account_ids.add(primary)
            if partner:
                partner_ids.add(partner)

        bad_companies: set[str] = set()
        accounts: list[Account] = []
        partners: list[Partner] = []
        for index, company_id in enumerate(sorted(loaded.companies, key=id_order)):
            company = loaded.companies[company_id]
            version = (company.get("properties") or {}).get(LAST_MODIFIED)
            if company_id in account_ids:
                accounts.append(company_to_account(company, s))
                if version:
                    versions[("account", company_id)] = str(version)
            if company_id in partner_ids:
                try:
                    partners.append(company_to_partner(company, s))
                except MappingProblem as exc:
                    error("partners", index, company_id, exc)
                    bad_companies.add(company_id)
                    continue
                if version:
                    versions[("partner", company_id)] = str(version)

        opportunities: list[Opportunity] = []
        changes: list[CloseDateChange] = []
        bad_deals: set[str] = set()
        for index, deal_id in enumerate(sorted(loaded.deals, key=id_order)):
            deal = loaded.deals[deal_id]
            primary, partner = links[deal_id]
            try:
                opportunity = deal_to_opportunity(
                    deal,
                    s,
                    account_id=primary,
                    partner_id=partner,
                    contact_ids=loaded.deal_contacts.get(deal_id, []),
                )
                lead_ids = loaded.deal_leads.get(deal_id) or []
                if lead_ids:
                    opportunity = attrs.evolve(opportunity, lead_id=lead_ids[0])
                history = close_date_changes(deal, s, owner_by_user)
            except MappingProblem as exc:
                error("opportunities", index, deal_id, exc)
                bad_deals.add(deal_id)
                continue
            opportunities.append(opportunity)
            changes.extend(history)
            version = (deal.get("properties") or {}).get(LAST_MODIFIED)
            if version:
                versions[("opportunity", deal_id)] = str(version)

        leads: list[Lead] = []
        for index, lead_id in enumerate(sorted(loaded.leads, key=id_order)):
            record = loaded.leads[lead_id]
            primary, partner = lead_links[lead_id]
            company_record = loaded.companies.get(primary) if primary else None
            converted = loaded.lead_deals.get(lead_id) or []
            try:
                lead = lead_to_lead(
                    record,
                    s,
                    account_id=primary,
                    account_name=(company_record.get("properties") or {}).get("name")
                    if company_record
                    else None,
                    partner_id=partner,
                    converted_opportunity_id=converted[0] if converted else None,
                )
            except MappingProblem as exc:
                error("leads", index, lead_id, exc)
                continue
            leads.append(lead)
            version = (record.get("properties") or {}).get(LAST_MODIFIED)
            if version:
                versions[("lead", lead_id)] = str(version)

        activities: list[Activity] = []
        self._activity_links = {}
        for index, activity_id in enumerate(sorted(loaded.engagements, key=id_order)):
            kind, record = loaded.engagements[activity_id]
            props = record.get("properties") or {}
            if props.get(s.fingerprint_property):
                continue  # a task this connector wrote for a finding
            deals = sorted(
                (d for d in loaded.engagement_deals.get(activity_id, []) if d in loaded.deals),
                key=id_order,
            )
            companies = sorted(loaded.engagement_companies.get(activity_id, []), key=id_order)
            what_id = deals[0] if deals else None
            account_id = companies[0] if companies else None
            try:
                activity = engagement_to_activity(
                    record, kind, s, what_id=what_id, account_id=account_id
                )
            except MappingProblem as exc:
                error("activities", index, activity_id, exc)
                continue
            activities.append(activity)
            self._activity_links[activity_id] = (kind.object_type, what_id, account_id)
            if props.get(LAST_MODIFIED):
                versions[("activity", activity_id)] = str(props[LAST_MODIFIED])

        mapped_deals = {o.id for o in opportunities}
        mapped_activities = {a.id for a in activities}
        changed: set[RecordKey] = {("opportunity", d) for d in changed_deals if d in mapped_deals}
        for company_id in changed_companies:
            if company_id in loaded.companies:
                if company_id in account_ids:
                    changed.add(("account", company_id))
                if company_id in partner_ids and company_id not in bad_companies:
                    changed.add(("partner", company_id))
        changed.update(("activity", a) for a in changed_engagements if a in mapped_activities)
        mapped_leads = {x.id for x in leads}
        changed.update(("lead", x) for x in changed_leads if x in mapped_leads)

        affected: set[RecordKey] = set()
        if s.sibling_deals and not full:
            changed_accounts = {links[d][0] for d in changed_deals if d in links} | {
                c for c in changed_companies if c in account_ids
            }
            for deal_id in mapped_deals - changed_deals:
                if links[deal_id][0] in changed_accounts:
                    affected.add(("opportunity", deal_id))
            affected.update(("account", c) for c in changed_accounts if c and c in loaded.companies)
            affected -= changed
            affected = {
                (kind, i)
                for kind, i in affected
                if not (kind == "opportunity" and i in everything.deals)
                and not (kind == "account" and i in everything.companies)
            }

        incomplete: set[RecordKey] = set()
        for opportunity in opportunities:
            if opportunity.account_id in bad_companies or opportunity.partner_id in bad_companies:
                incomplete.add(("opportunity", opportunity.id))
        for account in accounts:
            if account.partner_of_record_id in bad_companies:
                incomplete.add(("account", account.id))
        for lead in leads:
            if lead.account_id in bad_companies or lead.partner_id in bad_companies:
                incomplete.add(("lead", lead.id))

        snapshot = Snapshot(
            users=tuple(users),
            partners=tuple(partners),
            accounts=tuple(accounts),
            leads=tuple(leads),
            opportunities=tuple(opportunities),
            close_date_changes=tuple(changes),
            activities=tuple(activities),
        )
        keys = frozenset(changed)
        return ReadResult(
            snapshot=snapshot,
            changed=keys,
            watermark=watermark,
            deleted=deleted,
            versions=versions,
            errors=tuple(errors),
            full=full,
            affected=frozenset(affected),
            incomplete=frozenset(incomplete),
        )

    # -- writes -------------------------------------------------------------------------------

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        """Tasks first, then field updates; one result per action, in order.

        One refused item is that item's ``FAILED`` or ``STALE``; only a failure of HubSpot
        itself (bad token, budget spent, still rate limited after the retries) raises, and a
        re-run then finds what was already written through the fingerprints.
        """
        results: list[ActionResult | None] = [None] * len(actions)
        tasks = [
            (i, a)
            for i, a in enumerate(actions)
            if a.kind in (ActionKind.CREATE_TASK, ActionKind.CLOSE_TASK)
        ]
        updates = [(i, a) for i, a in enumerate(actions) if a.kind is ActionKind.UPDATE_FIELDS]
        if tasks:
            self._write_tasks(tasks, results)
        if updates:
            self._write_updates(updates, results)
        out: list[ActionResult] = []
        for action, result in zip(actions, results, strict=True):
            out.append(
                result
                if result is not None
                else _result(action, ActionStatus.FAILED, error=f"unsupported action {action.kind}")
            )
        return out

    # tasks

    def _tasks_by_fingerprint(self, fingerprints: Sequence[str]) -> dict[str, list[Json]]:
        s = self.settings
        found: dict[str, list[Json]] = {}
        for chunk in chunks(list(dict.fromkeys(fingerprints)), 100):
            after: str | None = None
            while True:
                body: Json = {
                    "filterGroups": [
                        {
                            "filters": [
                                {
                                    "propertyName": s.fingerprint_property,
                                    "operator": "IN",
                                    "values": chunk,
                                }
                            ]
                        }
                    ],
                    "properties": [s.fingerprint_property, "hs_task_status"],
                    "sorts": [{"propertyName": "hs_createdate", "direction": "ASCENDING"}],
                    "limit": s.page_size,
                }
                if after is not None:
                    body["after"] = after
                page = self.client.search("tasks", body)
                for task in page.get("results") or []:
                    fingerprint = (task.get("properties") or {}).get(s.fingerprint_property)
                    if fingerprint:
                        found.setdefault(str(fingerprint), []).append(task)
                after = next_after(page)
                if after is None:
                    break
        return found

    def _task_links(self, action: Action) -> list[Json] | str:
        """The associations of a finding's task, or why it cannot have one."""

        def link(record_id: str, type_id: int) -> Json:
            return {
                "to": {"id": record_id},
                "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
            }

        if action.record_type == "opportunity":
            return [link(action.record_id, TASK_TO_DEAL)]
        if action.record_type in ("account", "partner"):
            return [link(action.record_id, TASK_TO_COMPANY)]
        if action.record_type == "activity":
            known = self._activity_links.get(action.record_id)
            if known is None:
                return f"activity {action.record_id} was not read by this connector"
            _, deal_id, company_id = known
            out = []
            if deal_id:
                out.append(link(deal_id, TASK_TO_DEAL))
            if company_id:
                out.append(link(company_id, TASK_TO_COMPANY))
            return out or f"activity {action.record_id} has no deal or company to attach a task to"
        return f"HubSpot tasks cannot be attached to a {action.record_type} record"

    def _task_properties(self, action: Action) -> Json:
        s = self.settings
        try:
            days = int(action.changes.get("due_in_days", 2))
        except (TypeError, ValueError):
            days = 2
        today = self._now().astimezone(s.tz).date()
        due = today + dt.timedelta(days=days)
        body = action.description or action.subject
        footer = f"tsos-rules finding {action.fingerprint}" + (
            f" (rule {action.rule})" if action.rule else ""
        )
        props: Json = {
            "hs_task_subject": (action.subject or action.rule or "tsos-rules finding")[:500],
            "hs_task_body": body if action.fingerprint in body else f"{body}\n\n{footer}".strip(),
            "hs_task_status": "NOT_STARTED",
            "hs_task_type": "TODO",
            "hs_timestamp": _date_value(due, s),
            s.fingerprint_property: action.fingerprint,
        }
        if action.owner_id:
            props["hubspot_owner_id"] = action.owner_id
        return props

    def _write_tasks(
        self, items: Sequence[tuple[int, Action]], results: list[ActionResult | None]
    ) -> None:
        s = self.settings
        existing = self._tasks_by_fingerprint([a.fingerprint for _, a in items])
        missing_ids = [
            a.crm_id
            for _, a in items
            if a.kind is ActionKind.CLOSE_TASK and a.crm_id and a.fingerprint not in existing
        ]
        if missing_ids:
            by_id = self.client.batch_read(
                "tasks", missing_ids, [s.fingerprint_property, "hs_task_status"]
            )
            for _, action in items:
                if action.crm_id and action.crm_id in by_id and action.fingerprint not in existing:
                    existing[action.fingerprint] = [by_id[action.crm_id]]

        creates: list[tuple[int, Action, Json]] = []
        status_changes: list[tuple[int, Action, list[str], str]] = []
        claimed: dict[str, int] = {}  # fingerprint -> index of the action that handles it
        for index, action in items:
            tasks = existing.get(action.fingerprint, [])
            open_tasks = [t for t in tasks if _task_status(t) != "COMPLETED"]
            if action.kind is ActionKind.CREATE_TASK:
                if action.fingerprint in claimed:
                    results[index] = _result(action, ActionStatus.ALREADY_DONE)
                    continue
                claimed[action.fingerprint] = index
                if open_tasks:
                    results[index] = _result(
                        action, ActionStatus.ALREADY_DONE, str(open_tasks[0]["id"])
                    )
                elif tasks:  # the finding came back: reopen its task
                    status_changes.append((index, action, [str(tasks[0]["id"])], "NOT_STARTED"))
                else:
                    links = self._task_links(action)
                    if isinstance(links, str):
                        results[index] = _result(action, ActionStatus.FAILED, error=links)
                        continue
                    creates.append(
                        (
                            index,
                            action,
                            {"properties": self._task_properties(action), "associations": links},
                        )
                    )
            else:
                if not tasks:  # never created (or deleted): nothing to close is closed
                    results[index] = _result(action, ActionStatus.ALREADY_DONE)
                elif not open_tasks:
                    results[index] = _result(action, ActionStatus.ALREADY_DONE, str(tasks[0]["id"]))
                else:
                    ids = [str(t["id"]) for t in open_tasks]
                    status_changes.append((index, action, ids, "COMPLETED"))

        self._create_tasks(creates, results)
        self._set_task_status(status_changes, results)
        # A second action with the same fingerprint reports what the first one did.
        for index, action in items:
            first = claimed.get(action.fingerprint)
            done = results[first] if first is not None and first != index else None
            if done is not None and action.kind is ActionKind.CREATE_TASK:
                results[index] = _result(action, ActionStatus.ALREADY_DONE, done.crm_id)

    def _create_tasks(
        self, creates: Sequence[tuple[int, Action, Json]], results: list[ActionResult | None]
    ) -> None:
        s = self.settings
        for start in range(0, len(creates), s.batch_size):
            chunk = creates[start : start + s.batch_size]
            leftovers = list(chunk)
            try:
                page = self.client.request(
                    "POST",
                    "/crm/v3/objects/tasks/batch/create",
                    body={"inputs": [payload for _, _, payload in chunk]},
                )
            except HubSpotRequestError as exc:
                log.info(
                    "HubSpot refused a batch of %d tasks (%s); creating one by one", len(chunk), exc
                )
            else:
                made: dict[str, str] = {}
                for task in page.get("results") or []:
                    fingerprint = (task.get("properties") or {}).get(s.fingerprint_property)
                    if fingerprint:
                        made[str(fingerprint)] = str(task["id"])
                leftovers = []
                for index, action, payload in chunk:
                    if action.fingerprint in made:
                        results[index] = _result(
                            action, ActionStatus.WRITTEN, made[action.fingerprint]
                        )
                    else:
                        leftovers.append((index, action, payload))
            for index, action, payload in leftovers:
                answer = self.client.request(
                    "POST", "/crm/v3/objects/tasks", body=payload, allow=(400, 404, 409)
                )
                status = answer.get("status_code")
                if status == 409:  # a unique-value fingerprint property already holds it
                    results[index] = _result(action, ActionStatus.ALREADY_DONE)
                elif status is not None:
                    results[index] = _result(
                        action, ActionStatus.FAILED, error=_refusal(answer, "task not created")
                    )
                else:
                    results[index] = _result(action, ActionStatus.WRITTEN, str(answer["id"]))

    def _set_task_status(
        self,
        changes: Sequence[tuple[int, Action, list[str], str]],
        results: list[ActionResult | None],
    ) -> None:
        inputs = [
            (index, action, task_id, status)
            for index, action, ids, status in changes
            for task_id in ids
        ]
        outcome = self._batch_update(
            "tasks", [(task_id, {"hs_task_status": status}) for _, _, task_id, status in inputs]
        )
        for index, action, ids, _ in changes:
            problems = [outcome[t] for t in ids if outcome.get(t)]
            if problems:
                results[index] = _result(action, ActionStatus.FAILED, ids[0], problems[0])
            else:
                results[index] = _result(action, ActionStatus.WRITTEN, ids[0])

    def _batch_update(self, object_type: str, inputs: Sequence[tuple[str, Json]]) -> dict[str, str]:
        """Batch-update records (ids unique per call); the error of each refused id, by id."""
        s = self.settings
        problems: dict[str, str] = {}
        for start in range(0, len(inputs), s.batch_size):
            chunk = inputs[start : start + s.batch_size]
            pending = {record_id for record_id, _ in chunk}
            try:
                page = self.client.request(
                    "POST",
                    f"/crm/v3/objects/{object_type}/batch/update",
                    body={"inputs": [{"id": i, "properties": p} for i, p in chunk]},
                )
            except HubSpotRequestError as exc:
                log.info(
                    "HubSpot refused a batch update of %d %s (%s); updating one by one",
                    len(chunk),
                    object_type,
                    exc,
                )
            else:
                for record in page.get("results") or []:
                    pending.discard(str(record["id"]))
            for record_id, props in chunk:
                if record_id not in pending:
                    continue
                answer = self.client.request(
                    "PATCH",
                    f"/crm/v3/objects/{object_type}/{record_id}",
                    body={"properties": props},
                    allow=(400, 404, 409),
                )
                if answer.get("status_code") is not None:
                    problems[record_id] = _refusal(answer, "update refused")
        return problems

    # field updates

    def _write_updates(
        self, items: Sequence[tuple[int, Action]], results: list[ActionResult | None]
    ) -> None:
        pending = list(items)
        while pending:
            this_pass: list[tuple[int, Action]] = []
            later: list[tuple[int, Action]] = []
            seen: set[RecordKey] = set()
            for index, action in pending:
                key = (action.record_type, action.record_id)
                (later if key in seen else this_pass).append((index, action))
                seen.add(key)
            self._update_pass(this_pass, results)
            pending = later

    def _update_pass(
        self, items: Sequence[tuple[int, Action]], results: list[ActionResult | None]
    ) -> None:
        by_object: dict[str, list[tuple[int, Action, Json]]] = {}
        for index, action in items:
            translated = self._properties_for(action)
            if isinstance(translated, str):
                results[index] = _result(action, ActionStatus.FAILED, error=translated)
                continue
            object_type = "deals" if action.record_type == "opportunity" else "companies"
            by_object.setdefault(object_type, []).append((index, action, translated))
        for object_type, group in by_object.items():
            names = sorted(
                {name for _, _, props in group for name in props if name != PARTNER_LINK}
                | {LAST_MODIFIED}
            )
            ids = [a.record_id for _, a, _ in group]
            current = self.client.batch_read(
                object_type, ids, names, batch_size=self.settings.batch_size
            )
            partners: dict[str, str | None] = {}
            if any(PARTNER_LINK in props for _, _, props in group):
                links = self.client.associations(
                    "deals", "companies", ids, batch_size=self.settings.batch_size
                )
                for deal_id in ids:
                    partners[deal_id] = primary_and_partner(links.get(deal_id, []), self.settings)[
                        1
                    ]
            to_write: list[tuple[int, Action, Json]] = []
            for index, action, props in group:
                record = current.get(action.record_id)
                if record is None:
                    results[index] = _result(
                        action,
                        ActionStatus.FAILED,
                        error=f"{action.record_type} {action.record_id} not found in HubSpot",
                    )
                    continue
                now_props = dict(record.get("properties") or {})
                now_props[PARTNER_LINK] = partners.get(action.record_id)
                if all(self._same(n, now_props.get(n), v) for n, v in props.items()):
                    results[index] = _result(action, ActionStatus.ALREADY_DONE, action.record_id)
                    continue
                version = now_props.get(LAST_MODIFIED)
                if action.expected_version is not None and version_millis(
                    action.expected_version
                ) != version_millis(str(version) if version is not None else None):
                    results[index] = _result(
                        action,
                        ActionStatus.STALE,
                        action.record_id,
                        f"{action.record_type} {action.record_id} changed since it was read "
                        f"(hs_lastmodifieddate {version}, expected {action.expected_version})",
                    )
                    continue
                to_write.append((index, action, props))
            problems = self._batch_update(
                object_type,
                [
                    (a.record_id, {k: v for k, v in p.items() if k != PARTNER_LINK})
                    for _, a, p in to_write
                    if set(p) - {PARTNER_LINK}
                ],
            )
            problems.update(
                self._link_partners(
                    [(a.record_id, p[PARTNER_LINK]) for _, a, p in to_write if PARTNER_LINK in p]
                )
            )
            for index, action, _ in to_write:
                if action.record_id in problems:
                    results[index] = _result(
                        action, ActionStatus.FAILED, action.record_id, problems[action.record_id]
                    )
                else:
                    results[index] = _result(action, ActionStatus.WRITTEN, action.record_id)

    def _properties_for(self, action: Action) -> Json | str:
        """HubSpot properties for a repair's model-field changes, or why it cannot be done."""
        s = self.settings
        if action.record_type == "opportunity":
            fields: dict[str, str] = {
                "name": "dealname",
                "amount": "amount",
                "close_date": "closedate",
                "stage": "dealstage",
                "owner_id": "hubspot_owner_id",
                "next_step": "hs_next_step",
                "next_step_date": s.next_step_date_property,
                "forecast_category": "hs_manual_forecast_category",
                "channel": s.channel_property,
                "partner_override_reason": s.partner_override_reason_property,
            }
            refused = {
                "probability": "is computed by HubSpot from the deal stage",
                "is_closed": "follows the deal stage in HubSpot",
                "is_won": "follows the deal stage in HubSpot",
                "account_id": "is an association in HubSpot, not a property",
                "stage_changed_at": "is kept by HubSpot",
                "team_user_ids": "is not written by this connector",
                "lead_id": "is not read by this connector",
            }
            if s.partner_source == "property":
                fields["partner_id"] = s.partner_property
            elif s.partner_source == "none":
                refused["partner_id"] = "is not read from HubSpot (partner_source = none)"
        elif action.record_type in ("account", "partner"):
            fields = {
                "name": "name",
                "partner_of_record_id": s.partner_of_record_property,
                "tier": s.partner_tier_property,
                "status": s.partner_status_property,
                "credit_limit": s.credit_limit_property,
                "fiscal_year_start_month": s.fiscal_year_start_month_property,
            }
            refused = {}
        else:
            return f"field updates of {action.record_type} records are not supported for HubSpot"
        if not action.changes:
            return "no changes given"
        out: Json = {}
        for key, value in action.changes.items():
            if key in refused:
                return f"{key} {refused[key]}"
            if action.record_type == "opportunity" and key == "partner_id" and key not in fields:
                if not value:
                    return "partner_id: removing a partner association is not supported"
                out[PARTNER_LINK] = str(value)
                continue
            name = fields.get(key, key)
            if name not in fields.values() and not _PROPERTY_NAME.match(name):
                return f"{key}: not a model field or a HubSpot property name"
            if action.record_type == "opportunity" and name in READ_ONLY_DEAL_PROPERTIES:
                return f"{key}: HubSpot property {name} is read-only"
            try:
                out[name] = self._property_value(name, value)
            except (TypeError, ValueError) as exc:
                return f"{key}: {exc}"
        return out

    def _property_value(self, name: str, value: Any) -> str:
        s = self.settings
        if value is None:
            return ""
        if isinstance(value, bool):
            return "true" if value else "false"
        if name in ("closedate", s.next_step_date_property):
            day = value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])
            if isinstance(day, dt.datetime):
                day = day.date()
            return _date_value(day, s)
        if name == "dealstage":
            reverse: dict[str, str] = {}
            for hubspot_stage, doctrine_stage in stage_map(s).items():
                reverse.setdefault(doctrine_stage, hubspot_stage)
            return reverse.get(str(value), str(value))
        if name == "hs_manual_forecast_category":
            text = str(value)
            return FORECAST_TO_HUBSPOT.get(text, text.upper())
        if isinstance(value, float) and value.is_integer():
            return str(int(value))
        if isinstance(value, int | float | str):
            return str(value)
        raise TypeError(f"cannot write a {type(value).__name__} to HubSpot")

    def _partner_association_type(self) -> tuple[str, int] | str:
        """``(category, typeId)`` of the partner label, from the settings or HubSpot's labels."""
        s = self.settings
        if s.partner_association_type_id is not None:
            return ("USER_DEFINED", s.partner_association_type_id)
        if self._partner_type is None:
            page = self.client.request("GET", "/crm/v4/associations/deals/companies/labels")
            wanted = s.partner_association_label.strip().casefold()
            for kind in page.get("results") or []:
                if str(kind.get("label") or "").strip().casefold() == wanted:
                    self._partner_type = (str(kind["category"]), int(kind["typeId"]))
                    break
        if self._partner_type is None:
            return (
                f"no deal-to-company association label {s.partner_association_label!r} in HubSpot"
            )
        return self._partner_type

    def _link_partners(self, pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
        """Associate deals with their partner company under the partner label; the problem of
        each deal that could not be linked, by deal id."""
        if not pairs:
            return {}
        kind = self._partner_association_type()
        if isinstance(kind, str):
            return {deal_id: kind for deal_id, _ in pairs}
        category, type_id = kind
        problems: dict[str, str] = {}
        size = self.settings.batch_size
        for start in range(0, len(pairs), size):
            chunk = pairs[start : start + size]
            inputs = [
                {
                    "from": {"id": deal_id},
                    "to": {"id": company_id},
                    "types": [{"associationCategory": category, "associationTypeId": type_id}],
                }
                for deal_id, company_id in chunk
            ]
            try:
                page = self.client.request(
                    "POST",
                    "/crm/v4/associations/deals/companies/batch/create",
                    body={"inputs": inputs},
                )
            except HubSpotRequestError as exc:
                problems.update({deal_id: str(exc) for deal_id, _ in chunk})
                continue
            linked = {str(r.get("fromObjectId")) for r in page.get("results") or []}
            message = "; ".join(str(e.get("message")) for e in page.get("errors") or [])
            for deal_id, _ in chunk:
                if deal_id not in linked:
                    problems[deal_id] = f"HubSpot refused the partner association: {message}"
        return problems

    def _same(self, name: str, current: Any, wanted: str) -> bool:
        """Whether a property already holds the value a repair would write."""
        now = "" if current is None else str(current)
        if now == wanted:
            return True
        if name in ("closedate", self.settings.next_step_date_property):
            try:
                a, b = parse_instant(now), parse_instant(wanted)
            except ValueError:
                return False
            tz = self.settings.tz
            return (
                a is not None
                and b is not None
                and a.astimezone(tz).date() == b.astimezone(tz).date()
            )
        try:
            return float(now) == float(wanted)
        except ValueError:
            return False


def _decode_watermark(watermark: str) -> int:
    try:
        moment = parse_instant(watermark)
    except ValueError:
        moment = None
    if moment is None:
        raise FatalConnectorError(
            f"HubSpot: watermark {watermark!r} is not a timestamp this connector wrote"
        )
    return to_millis(moment)


def _date_value(day: dt.date, settings: HubSpotSettings) -> str:
    """A date as HubSpot's datetime value: midnight in the portal's time zone, in UTC."""
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=settings.tz)
    return midnight.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _ids(targets: Iterable[Mapping[str, Any]]) -> list[str]:
    return [str(t.get("toObjectId")) for t in targets if t.get("toObjectId") is not None]


def _task_status(task: Mapping[str, Any]) -> str:
    return str((task.get("properties") or {}).get("hs_task_status") or "").upper()


def _refusal(answer: Mapping[str, Any], default: str) -> str:
    message = str(answer.get("message") or answer.get("category") or default)
    return f"HubSpot {answer.get('status_code')}: {message[:300]}"


def _result(
    action: Action,
    status: ActionStatus,
    crm_id: str | None = None,
    error: str | None = None,
) -> ActionResult:
    return ActionResult(action.fingerprint, action.kind, status, crm_id, error)
