"""An in-memory HubSpot for tests: the CRM v3 / associations v4 endpoints the connector uses
and the account details (``/account-info/v3/details``, for record links), answering with
HubSpot's JSON shapes, served through ``responses``.

    fake = FakeHubSpot()
    deal = fake.add("deals", {"dealname": "Boeing fleet", "dealstage": "closedwon"})
    with responses.RequestsMock() as rsps:
        fake.install(rsps)
        connector = HubSpotConnector(settings, token=fake.token, sleep=fake.sleep)
        result = connector.read(None, until=fake.now())

Every change moves a millisecond clock, so ``hs_lastmodifieddate`` behaves as in HubSpot.
:meth:`FakeHubSpot.throttle` queues 429 answers (with ``policyName``), :meth:`fail` queues
server errors; :attr:`calls` records ``(method, path)`` of every request for counting.
This module needs nothing beyond the standard library (``responses`` is passed in).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import math
import re
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tsos_rules_hubspot.settings import DEFAULT_BASE_URL

Json = dict[str, Any]
Answer = tuple[int, dict[str, str], str]

#: Reverse association type ids for the HubSpot-defined types the connector uses.
_REVERSE_TYPES = {5: 6, 6: 5, 341: 342, 342: 341, 216: 215, 215: 216, 192: 191, 191: 192}
_DEFAULT_PROPERTIES = ("hs_object_id", "createdate", "hs_lastmodifieddate")
_DATE_PROPERTIES = {
    "hs_lastmodifieddate",
    "createdate",
    "hs_createdate",
    "closedate",
    "hs_timestamp",
    "notes_next_activity_date",
}
_OBJECT_NAMES = {
    "deals": "DEAL",
    "companies": "COMPANY",
    "contacts": "CONTACT",
    "tasks": "TASK",
    "meetings": "MEETING",
    "calls": "CALL",
    "emails": "EMAIL",
}


def iso(millis: int) -> str:
    """HubSpot's timestamp format: ``2026-11-20T10:00:00.123Z``."""
    moment = dt.datetime.fromtimestamp(millis / 1000.0, dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def millis_of(value: Any) -> int | None:
    if value is None or value == "":
        return None
    text = str(value)
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        if len(text) == 10:
            moment = dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)
        else:
            moment = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return round(moment.timestamp() * 1000)


class FakeHubSpot:
    """A HubSpot portal in memory. See the module docstring."""

    def __init__(
        self,
        *,
        token: str = "pat-na1-00000000-fake-token-0000",
        base_url: str = DEFAULT_BASE_URL,
        start: dt.datetime = dt.datetime(2026, 11, 2, 9, 0, tzinfo=dt.UTC),
        search_cap: int = 10_000,
        association_page: int = 500,
    ) -> None:
        self.token = token
        self.base_url = base_url.rstrip("/")
        self.clock = int(start.timestamp() * 1000)
        self.search_cap = search_cap
        self.association_page = association_page
        self.objects: dict[str, dict[str, Json]] = defaultdict(dict)
        #: (from type, to type) -> from id -> to id -> association types
        self.links: dict[tuple[str, str], dict[str, dict[str, list[Json]]]] = defaultdict(
            lambda: defaultdict(dict)
        )
        self.owners: list[Json] = []
        #: What ``GET /account-info/v3/details`` answers (HubSpot's documented shape).
        self.account: Json = {
            "portalId": 2519445,
            "accountType": "STANDARD",
            "timeZone": "US/Eastern",
            "companyCurrency": "USD",
            "additionalCurrencies": [],
            "utcOffset": "-05:00",
            "utcOffsetMilliseconds": -18000000,
            "uiDomain": "app.hubspot.com",
            "dataHostingLocation": "na1",
        }
        #: Property definitions ``/crm/v3/properties`` knows, by object type and name.
        self.property_defs: dict[str, dict[str, Json]] = defaultdict(dict)
        #: Deal pipelines, HubSpot's default one to begin with.
        self.pipelines: list[Json] = [
            {
                "id": "default",
                "label": "Sales Pipeline",
                "displayOrder": 0,
                "archived": False,
                "stages": [
                    {
                        "id": stage,
                        "label": label,
                        "displayOrder": n,
                        "archived": False,
                        "metadata": {"probability": probability, "isClosed": closed},
                    }
                    for n, (stage, label, probability, closed) in enumerate(
                        [
                            ("appointmentscheduled", "Appointment Scheduled", "0.2", "false"),
                            ("qualifiedtobuy", "Qualified To Buy", "0.4", "false"),
                            ("presentationscheduled", "Presentation Scheduled", "0.6", "false"),
                            ("decisionmakerboughtin", "Decision Maker Bought-In", "0.8", "false"),
                            ("contractsent", "Contract Sent", "0.9", "false"),
                            ("closedwon", "Closed Won", "1.0", "true"),
                            ("closedlost", "Closed Lost", "0.0", "true"),
                        ]
                    )
                ],
            }
        ]
        #: (from type, to type) -> label -> USER_DEFINED type id
        self.labels: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
        self.calls: list[tuple[str, str]] = []
        self.bodies: list[tuple[str, str, Any]] = []
        self.slept: list[float] = []
        #: Property values refused with a 400 (name -> allowed values), like enumeration options.
        self.options: dict[str, set[str]] = {}
        #: Properties HubSpot computes: writing one is a 400.
        self.read_only: set[str] = {"notes_next_activity_date", "hs_lastmodifieddate"}
        #: Properties with unique values (a second record with the same value is a 409).
        self.unique: set[str] = set()
        #: Ids that search does not return yet (HubSpot indexes changes for search with a delay).
        self.unindexed: set[str] = set()
        self._queued: list[Answer] = []
        self._pinned: int | None = None
        self._next_id = 1000
        self.on_request: Callable[[str, str], None] | None = None

    # -- the clock ---------------------------------------------------------------------------

    def now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock / 1000.0, dt.UTC)

    def tick(self, millis: int = 1) -> int:
        """Move the clock on (unless :meth:`frozen_at` holds it) and return it."""
        if self._pinned is not None:
            return self._pinned
        self.clock += millis
        return self.clock

    @contextlib.contextmanager
    def frozen_at(self, moment: dt.datetime) -> Iterator[None]:
        """Every change inside the block is stamped exactly ``moment``; afterwards the clock
        goes on from the later of ``moment`` and where it was."""
        before = self.clock
        self.clock = round(moment.timestamp() * 1000)
        self._pinned = self.clock
        try:
            yield
        finally:
            self._pinned = None
            self.clock = max(before, self.clock)

    def sleep(self, seconds: float) -> None:
        """A ``sleep`` for the client: records the wait and moves the clock, never sleeps."""
        self.slept.append(seconds)
        self.clock += math.ceil(seconds * 1000)

    def monotonic(self) -> float:
        """A ``clock`` for the client's rate window, on the fake's clock."""
        return self.clock / 1000.0

    # -- seeding and changing records ----------------------------------------------------------

    def _new_id(self) -> str:
        self._next_id += 1
        return str(self._next_id)

    def add(
        self,
        object_type: str,
        properties: Mapping[str, Any],
        *,
        record_id: str | None = None,
        user_id: int | None = None,
    ) -> str:
        """Create a record now (``record_id`` chosen by HubSpot unless given); returns its id."""
        now = self.tick()
        record_id = record_id or self._new_id()
        record: Json = {
            "id": record_id,
            "properties": {},
            "history": defaultdict(list),
            "createdAt": iso(now),
            "updatedAt": iso(now),
            "archived": False,
        }
        props: dict[str, str | None] = {
            "hs_object_id": record_id,
            "createdate": iso(now),
            "hs_createdate": iso(now),
        }
        props.update({k: _text(v) for k, v in properties.items()})
        self.objects[object_type][record_id] = record
        self._set(record, props, now, user_id, source="CRM_UI")
        return record_id

    def update(
        self,
        object_type: str,
        record_id: str,
        properties: Mapping[str, Any],
        *,
        user_id: int | None = None,
        at: int | None = None,
    ) -> None:
        """Change properties now (or at epoch ms ``at``), as a user would in HubSpot's UI."""
        now = self.tick() if at is None else at
        record = self.objects[object_type][record_id]
        self._set(record, {k: _text(v) for k, v in properties.items()}, now, user_id, "CRM_UI")

    def _set(
        self,
        record: Json,
        props: Mapping[str, str | None],
        now: int,
        user_id: int | None,
        source: str,
    ) -> None:
        for name, value in props.items():
            record["properties"][name] = value
            entry: Json = {
                "value": value if value is not None else "",
                "timestamp": iso(now),
                "sourceType": source,
            }
            if user_id is not None:
                entry["sourceId"] = f"userId:{user_id}"
                entry["updatedByUserId"] = user_id
            record["history"][name].insert(0, entry)
        record["properties"]["hs_lastmodifieddate"] = iso(now)
        record["updatedAt"] = iso(now)

    def set_history(
        self,
        object_type: str,
        record_id: str,
        name: str,
        entries: Sequence[tuple[Any, dt.datetime, int | None]],
    ) -> None:
        """Replace a property's history with ``(value, when, HubSpot user id)`` entries (any
        order); the current value becomes the latest entry's. Not a modification."""
        record = self.objects[object_type][record_id]
        history: list[Json] = []
        for value, when, user_id in sorted(entries, key=lambda e: e[1]):
            entry: Json = {
                "value": _text(value) or "",
                "timestamp": iso(round(when.timestamp() * 1000)),
                "sourceType": "CRM_UI",
            }
            if user_id is not None:
                entry["sourceId"] = f"userId:{user_id}"
                entry["updatedByUserId"] = user_id
            history.insert(0, entry)
        record["history"][name] = history
        if history:
            record["properties"][name] = history[0]["value"]

    def archive(self, object_type: str, record_id: str) -> None:
        now = self.tick()
        record = self.objects[object_type][record_id]
        record["archived"] = True
        record["archivedAt"] = iso(now)

    def associate(
        self,
        from_type: str,
        from_id: str,
        to_type: str,
        to_id: str,
        *,
        type_id: int | None = None,
        label: str | None = None,
        category: str | None = None,
    ) -> None:
        """Link two records both ways. ``type_id`` 5 is a deal's primary company (HubSpot
        labels it ``"Primary"``); a ``label`` alone makes a USER_DEFINED labelled association
        (e.g. ``"Partner"``)."""
        if category is None:
            category = "USER_DEFINED" if label is not None else "HUBSPOT_DEFINED"
        if category == "USER_DEFINED":
            known = self.labels[(from_type, to_type)]
            type_id = type_id or known.get(label or "") or 100 + len(known)
            known[label or ""] = type_id
            self.labels[(to_type, from_type)].setdefault(label or "", type_id)
        type_id = type_id or 1
        if type_id == 5 and category == "HUBSPOT_DEFINED" and label is None:
            label = "Primary"
        forward = {"category": category, "typeId": type_id, "label": label}
        backward = {
            "category": category,
            "typeId": _REVERSE_TYPES.get(type_id, type_id)
            if category == "HUBSPOT_DEFINED"
            else type_id,
            "label": label,
        }
        for a, a_id, b, b_id, kind in (
            (from_type, from_id, to_type, to_id, forward),
            (to_type, to_id, from_type, from_id, backward),
        ):
            types = self.links[(a, b)][a_id].setdefault(b_id, [])
            if kind not in types:
                types.append(kind)
        # Like HubSpot: an association alone does not move either record's hs_lastmodifieddate.

    def add_owner(
        self,
        owner_id: str,
        *,
        email: str,
        first: str = "",
        last: str = "",
        user_id: int | None = None,
        teams: Iterable[str] = (),
    ) -> None:
        now = iso(self.clock)
        self.owners.append(
            {
                "id": owner_id,
                "email": email,
                "type": "PERSON",
                "firstName": first,
                "lastName": last,
                "userId": user_id,
                "userIdIncludingInactive": user_id,
                "createdAt": now,
                "updatedAt": now,
                "archived": False,
                "teams": [
                    {"id": str(9000 + i), "name": name, "primary": i == 0}
                    for i, name in enumerate(teams)
                ],
            }
        )

    def define_property(
        self,
        object_type: str,
        name: str,
        *,
        type: str = "string",
        field_type: str = "text",
        unique: bool = False,
    ) -> None:
        """Create a custom property definition (what ``connectors check`` looks for)."""
        self.property_defs[object_type][name] = {
            "name": name,
            "label": name.replace("_", " ").title(),
            "type": type,
            "fieldType": field_type,
            "groupName": f"{object_type[:-1]}information",
            "hasUniqueValue": unique,
            "hubspotDefined": False,
            "archived": False,
            "modificationMetadata": {
                "archivable": True,
                "readOnlyDefinition": False,
                "readOnlyValue": False,
            },
        }
        if unique:
            self.unique.add(name)

    def get(self, object_type: str, record_id: str) -> Json:
        return self.objects[object_type][record_id]

    def props(self, object_type: str, record_id: str) -> Json:
        return dict(self.objects[object_type][record_id]["properties"])

    def tasks_with(self, name: str, value: str) -> list[Json]:
        return [t for t in self.objects["tasks"].values() if t["properties"].get(name) == value]

    # -- faults ------------------------------------------------------------------------------

    def throttle(
        self,
        count: int = 1,
        *,
        policy: str = "TEN_SECONDLY_ROLLING",
        retry_after: str | None = None,
    ) -> None:
        """The next ``count`` requests answer 429 with HubSpot's body for ``policy``."""
        headers = {"Content-Type": "application/json"}
        if retry_after is not None:
            headers["Retry-After"] = retry_after
        body = {
            "status": "error",
            "message": f"You have reached your {policy.lower()} limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": policy,
            "groupName": "api-calls-burst:app",
        }
        self._queued.extend([(429, headers, json.dumps(body))] * count)

    def fail(self, count: int = 1, *, status: int = 502) -> None:
        """The next ``count`` requests answer ``status`` (a server error by default)."""
        body = {"status": "error", "message": "Bad gateway", "correlationId": str(uuid.uuid4())}
        self._queued.extend(
            [(status, {"Content-Type": "application/json"}, json.dumps(body))] * count
        )

    # -- serving -----------------------------------------------------------------------------

    def install(self, rsps: Any) -> None:
        """Register the fake on a ``responses.RequestsMock`` (or the ``responses`` module).

        The fake answers every CRM and account-info path, so a test need not call each of them:
        the mock's ``assert_all_requests_are_fired`` is turned off.
        """
        if hasattr(rsps, "assert_all_requests_are_fired"):
            rsps.assert_all_requests_are_fired = False
        pattern = re.compile(re.escape(self.base_url) + r"/(crm|account-info)/.*")
        for method in ("GET", "POST", "PATCH"):
            rsps.add_callback(method, pattern, callback=self._serve)

    def count(self, method: str, path: str) -> int:
        """Requests sent with ``method`` to paths matching the regex ``path``."""
        rx = re.compile(path)
        return sum(1 for m, p in self.calls if m == method and rx.fullmatch(p))

    def _serve(self, request: Any) -> Answer:
        parts = urlsplit(request.url)
        path = parts.path
        query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
        method = request.method
        self.calls.append((method, path))
        raw = request.body
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8")
        body = json.loads(raw) if raw else None
        self.bodies.append((method, path, body))
        if self.on_request is not None:
            self.on_request(method, path)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return _answer(
                401,
                {
                    "status": "error",
                    "message": "Authentication credentials not found. This API supports OAuth 2.0 "
                    "authentication and you can find more details at https://developers.hubspot.com/",
                    "correlationId": str(uuid.uuid4()),
                    "category": "INVALID_AUTHENTICATION",
                },
            )
        if self._queued:
            return self._queued.pop(0)
        try:
            return self._route(method, path, query, body)
        except _Refused as exc:
            return _answer(exc.status, exc.body())

    def _route(self, method: str, path: str, query: Mapping[str, str], body: Any) -> Answer:
        m = re.fullmatch(r"/crm/v3/objects/(\w+)/search", path)
        if m and method == "POST":
            return self._search(m.group(1), body or {})
        m = re.fullmatch(r"/crm/v3/objects/(\w+)/batch/(read|update|create)", path)
        if m and method == "POST":
            handler: Callable[[str, Json], Answer] = getattr(self, f"_batch_{m.group(2)}")
            return handler(m.group(1), body or {})
        m = re.fullmatch(r"/crm/v3/objects/(\w+)", path)
        if m and method == "GET":
            return self._list(m.group(1), query)
        if m and method == "POST":
            record = self._create(m.group(1), body or {})
            return _answer(201, record)
        m = re.fullmatch(r"/crm/v3/objects/(\w+)/(\w+)", path)
        if m and method == "PATCH":
            return self._patch(m.group(1), m.group(2), body or {})
        m = re.fullmatch(r"/crm/v4/associations/(\w+)/(\w+)/batch/read", path)
        if m and method == "POST":
            return self._associations(m.group(1), m.group(2), body or {})
        m = re.fullmatch(r"/crm/v4/associations/(\w+)/(\w+)/batch/create", path)
        if m and method == "POST":
            return self._create_associations(m.group(1), m.group(2), body or {})
        m = re.fullmatch(r"/crm/v4/associations/(\w+)/(\w+)/labels", path)
        if m and method == "GET":
            return self._labels(m.group(1), m.group(2))
        m = re.fullmatch(r"/crm/v4/objects/(\w+)/(\w+)/associations/(\w+)", path)
        if m and method == "GET":
            return self._association_page(m.group(1), m.group(2), m.group(3), query)
        m = re.fullmatch(r"/crm/v3/properties/(\w+)/batch/read", path)
        if m and method == "POST":
            return self._read_properties(m.group(1), body or {})
        if path == "/crm/v3/pipelines/deals" and method == "GET":
            return _answer(200, {"results": self.pipelines})
        if path == "/crm/v3/owners" and method == "GET":
            return self._owners(query)
        if path == "/account-info/v3/details" and method == "GET":
            return _answer(200, self.account)
        raise _Refused(404, "NOT_FOUND", f"no route {method} {path}")

    # -- endpoints ---------------------------------------------------------------------------

    def _view(
        self,
        object_type: str,
        record: Json,
        properties: Iterable[str] | None,
        history: Iterable[str] = (),
    ) -> Json:
        props = record["properties"]
        names = list(properties) if properties is not None else list(props)
        shown = {name: props.get(name) for name in (*_DEFAULT_PROPERTIES, *names)}
        out: Json = {
            "id": record["id"],
            "properties": shown,
            "createdAt": record["createdAt"],
            "updatedAt": record["updatedAt"],
            "archived": record["archived"],
        }
        if record.get("archivedAt"):
            out["archivedAt"] = record["archivedAt"]
        wanted = list(history)
        if wanted:
            out["propertiesWithHistory"] = {
                name: list(record["history"].get(name, [])) for name in wanted
            }
        return out

    def _live(self, object_type: str) -> list[Json]:
        return [r for r in self.objects[object_type].values() if not r["archived"]]

    def _search(self, object_type: str, body: Json) -> Answer:
        groups = body.get("filterGroups") or []
        if len(groups) > 5 or any(len(g.get("filters") or []) > 6 for g in groups):
            raise _Refused(400, "VALIDATION_ERROR", "too many filter groups or filters")
        limit = int(body.get("limit", 10))
        if limit > 200:
            raise _Refused(400, "VALIDATION_ERROR", "limit must be at most 200")
        offset = int(body.get("after") or 0)
        if offset >= self.search_cap:
            raise _Refused(
                400,
                "VALIDATION_ERROR",
                f"The search API can return at most {self.search_cap} results; after={offset}",
            )
        records = [
            r
            for r in self._live(object_type)
            if r["id"] not in self.unindexed and (not groups or any(_matches(r, g) for g in groups))
        ]
        for sort in reversed(body.get("sorts") or []):
            if isinstance(sort, str):
                name, descending = sort.lstrip("-"), sort.startswith("-")
            else:
                name, descending = sort["propertyName"], sort.get("direction") == "DESCENDING"
            records.sort(key=lambda r: _sort_key(r, name), reverse=descending)
        page = records[offset : offset + limit]
        out: Json = {
            "total": len(records),
            "results": [self._view(object_type, r, body.get("properties")) for r in page],
        }
        if offset + limit < len(records):
            nxt = str(offset + limit)
            out["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
        return _answer(200, out)

    def _list(self, object_type: str, query: Mapping[str, str]) -> Answer:
        archived = query.get("archived") == "true"
        limit = int(query.get("limit", 10))
        if limit > 100:
            raise _Refused(400, "VALIDATION_ERROR", "limit must be at most 100")
        records = sorted(
            (r for r in self.objects[object_type].values() if r["archived"] == archived),
            key=lambda r: int(r["id"]) if r["id"].isdigit() else 0,
        )
        offset = int(query.get("after") or 0)
        names = query["properties"].split(",") if query.get("properties") else None
        out: Json = {
            "results": [self._view(object_type, r, names) for r in records[offset : offset + limit]]
        }
        if offset + limit < len(records):
            nxt = str(offset + limit)
            out["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
        return _answer(200, out)

    def _batch_read(self, object_type: str, body: Json) -> Answer:
        inputs = body.get("inputs") or []
        if len(inputs) > 100:
            raise _Refused(400, "VALIDATION_ERROR", "at most 100 inputs per batch")
        if body.get("propertiesWithHistory") and len(inputs) > _HISTORY_INPUTS:
            raise _Refused(400, "VALIDATION_ERROR", _HISTORY_LIMIT_MESSAGE)
        started = iso(self.clock)
        results, missing = [], []
        for item in inputs:
            record = self.objects[object_type].get(str(item["id"]))
            if record is None or record["archived"]:
                missing.append(str(item["id"]))
                continue
            results.append(
                self._view(
                    object_type,
                    record,
                    body.get("properties") or [],
                    body.get("propertiesWithHistory") or [],
                )
            )
        out: Json = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": iso(self.clock),
        }
        if missing:
            out["numErrors"] = 1
            out["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Could not get some {_OBJECT_NAMES.get(object_type, object_type)} "
                    "objects, they may be deleted or not exist. Check that ids are valid.",
                    "context": {"ids": missing},
                }
            ]
            return _answer(207, out)
        return _answer(200, out)

    def _check_properties(
        self, object_type: str, props: Mapping[str, Any], record_id: str | None
    ) -> None:
        for name, value in props.items():
            if name in self.read_only:
                raise _Refused(
                    400,
                    "VALIDATION_ERROR",
                    f'Property values were not valid: [{{"isValid":false,"message":"{name} is a '
                    f'read only property","error":"READ_ONLY_VALUE","name":"{name}"}}]',
                )
            allowed = self.options.get(name)
            if allowed is not None and value not in allowed:
                raise _Refused(
                    400,
                    "VALIDATION_ERROR",
                    f'Property values were not valid: [{{"isValid":false,"message":"{value} was '
                    f'not one of the allowed options","error":"INVALID_OPTION","name":"{name}"}}]',
                )
            if name in self.unique and value:
                for other in self._live(object_type):
                    if other["id"] != record_id and other["properties"].get(name) == value:
                        raise _Refused(
                            409,
                            "CONFLICT",
                            f"A {object_type[:-1]} with {name}={value} already exists",
                            context={"id": [other["id"]]},
                        )

    def _create(self, object_type: str, item: Json) -> Json:
        props = item.get("properties") or {}
        self._check_properties(object_type, props, None)
        for link in item.get("associations") or []:
            to_id = str(link["to"]["id"])
            if not any(to_id in self.objects[t] for t in ("deals", "companies", "contacts")):
                raise _Refused(400, "VALIDATION_ERROR", f"association target {to_id} not found")
        record_id = self.add(object_type, props)
        for link in item.get("associations") or []:
            to_id = str(link["to"]["id"])
            to_type = next(
                t for t in ("deals", "companies", "contacts") if to_id in self.objects[t]
            )
            for kind in link.get("types") or []:
                self.associate(
                    object_type, record_id, to_type, to_id, type_id=kind["associationTypeId"]
                )
        return self._view(object_type, self.objects[object_type][record_id], None)

    def _batch_create(self, object_type: str, body: Json) -> Answer:
        inputs = body.get("inputs") or []
        if len(inputs) > 100:
            raise _Refused(400, "VALIDATION_ERROR", "at most 100 inputs per batch")
        if body.get("propertiesWithHistory") and len(inputs) > _HISTORY_INPUTS:
            raise _Refused(400, "VALIDATION_ERROR", _HISTORY_LIMIT_MESSAGE)
        started = iso(self.clock)
        for item in inputs:  # all or nothing, like HubSpot's validation
            self._check_properties(object_type, item.get("properties") or {}, None)
        created = [self._create(object_type, item) for item in inputs]
        created.reverse()  # HubSpot does not promise the input order
        return _answer(
            201,
            {
                "status": "COMPLETE",
                "results": created,
                "startedAt": started,
                "completedAt": iso(self.clock),
            },
        )

    def _batch_update(self, object_type: str, body: Json) -> Answer:
        inputs = body.get("inputs") or []
        if len(inputs) > 100:
            raise _Refused(400, "VALIDATION_ERROR", "at most 100 inputs per batch")
        ids = [str(item["id"]) for item in inputs]
        if len(set(ids)) != len(ids):
            raise _Refused(400, "VALIDATION_ERROR", "Duplicate IDs found in batch input")
        started = iso(self.clock)
        for item in inputs:
            self._check_properties(object_type, item.get("properties") or {}, str(item["id"]))
        now = self.tick()
        results, missing = [], []
        for item in inputs:
            record = self.objects[object_type].get(str(item["id"]))
            if record is None or record["archived"]:
                missing.append(str(item["id"]))
                continue
            self._set(
                record,
                {k: _text(v) for k, v in item["properties"].items()},
                now,
                None,
                "INTEGRATION",
            )
            results.append(self._view(object_type, record, list(item["properties"])))
        out: Json = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": started,
            "completedAt": iso(self.clock),
        }
        if missing:
            out["numErrors"] = 1
            out["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": "Could not update some objects, they may be deleted or not exist.",
                    "context": {"ids": missing},
                }
            ]
            return _answer(207, out)
        return _answer(200, out)

    def _patch(self, object_type: str, record_id: str, body: Json) -> Answer:
        record = self.objects[object_type].get(record_id)
        if record is None or record["archived"]:
            raise _Refused(404, "OBJECT_NOT_FOUND", f"resource not found: {record_id}")
        props = body.get("properties") or {}
        self._check_properties(object_type, props, record_id)
        self._set(record, {k: _text(v) for k, v in props.items()}, self.tick(), None, "INTEGRATION")
        return _answer(200, self._view(object_type, record, list(props)))

    def _assoc_targets(self, from_type: str, from_id: str, to_type: str) -> list[Json]:
        targets = self.links[(from_type, to_type)].get(from_id, {})
        out = []
        for to_id in sorted(targets, key=lambda i: int(i) if i.isdigit() else 0):
            record = self.objects.get(to_type, {}).get(to_id)
            if record is not None and record["archived"]:
                continue
            out.append(
                {
                    "toObjectId": int(to_id) if to_id.isdigit() else to_id,
                    "associationTypes": [dict(t) for t in targets[to_id]],
                }
            )
        return out

    def _associations(self, from_type: str, to_type: str, body: Json) -> Answer:
        inputs = body.get("inputs") or []
        if len(inputs) > 1000:
            raise _Refused(400, "VALIDATION_ERROR", "at most 1000 inputs per batch")
        results, errors = [], []
        for item in inputs:
            from_id = str(item["id"])
            targets = self._assoc_targets(from_type, from_id, to_type)
            if not targets:
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                        "message": f"No {to_type} is associated with {from_type} {from_id}.",
                        "context": {"fromObjectId": [from_id], "toObjectType": [to_type]},
                    }
                )
                continue
            result: Json = {"from": {"id": from_id}, "to": targets[: self.association_page]}
            if len(targets) > self.association_page:
                nxt = str(self.association_page)
                result["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
            results.append(result)
        out: Json = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": iso(self.clock),
            "completedAt": iso(self.clock),
        }
        if errors:
            out["numErrors"] = len(errors)
            out["errors"] = errors
            return _answer(207, out)
        return _answer(200, out)

    def _read_properties(self, object_type: str, body: Json) -> Answer:
        known = self.property_defs[object_type]
        names = [str(item["name"]) for item in body.get("inputs") or []]
        out: Json = {
            "status": "COMPLETE",
            "results": [known[n] for n in names if n in known],
            "startedAt": iso(self.clock),
            "completedAt": iso(self.clock),
        }
        missing = [n for n in names if n not in known]
        if missing:
            out["numErrors"] = len(missing)
            out["errors"] = [
                {
                    "status": "error",
                    "category": "OBJECT_NOT_FOUND",
                    "message": f"Unable to find property {n} for object type {object_type}",
                    "context": {"name": [n]},
                }
                for n in missing
            ]
            return _answer(207, out)
        return _answer(200, out)

    def _labels(self, from_type: str, to_type: str) -> Answer:
        results: list[Json] = []
        if (from_type, to_type) == ("deals", "companies"):
            results += [
                {"category": "HUBSPOT_DEFINED", "typeId": 5, "label": "Primary"},
                {"category": "HUBSPOT_DEFINED", "typeId": 341, "label": None},
            ]
        for label, type_id in sorted(self.labels[(from_type, to_type)].items()):
            results.append({"category": "USER_DEFINED", "typeId": type_id, "label": label})
        return _answer(200, {"results": results})

    def _create_associations(self, from_type: str, to_type: str, body: Json) -> Answer:
        inputs = body.get("inputs") or []
        if len(inputs) > 100:
            raise _Refused(400, "VALIDATION_ERROR", "at most 100 inputs per batch")
        results, errors = [], []
        for item in inputs:
            from_id, to_id = str(item["from"]["id"]), str(item["to"]["id"])
            if from_id not in self.objects[from_type] or to_id not in self.objects[to_type]:
                errors.append(
                    {
                        "status": "error",
                        "category": "VALIDATION_ERROR",
                        "message": f"{from_type} {from_id} or {to_type} {to_id} does not exist",
                        "context": {"fromObjectId": [from_id]},
                    }
                )
                continue
            labels = []
            for kind in item.get("types") or []:
                category = kind["associationCategory"]
                type_id = int(kind["associationTypeId"])
                label = next(
                    (n for n, t in self.labels[(from_type, to_type)].items() if t == type_id),
                    None,
                )
                self.associate(
                    from_type,
                    from_id,
                    to_type,
                    to_id,
                    type_id=type_id,
                    label=label,
                    category=category,
                )
                if label:
                    labels.append(label)
            results.append(
                {
                    "fromObjectTypeId": from_type,
                    "fromObjectId": int(from_id) if from_id.isdigit() else from_id,
                    "toObjectTypeId": to_type,
                    "toObjectId": int(to_id) if to_id.isdigit() else to_id,
                    "labels": labels,
                }
            )
        out: Json = {"status": "COMPLETE", "results": results}
        if errors:
            out["numErrors"] = len(errors)
            out["errors"] = errors
            return _answer(207, out)
        return _answer(201, out)

    def _association_page(
        self, from_type: str, from_id: str, to_type: str, query: Mapping[str, str]
    ) -> Answer:
        targets = self._assoc_targets(from_type, from_id, to_type)
        offset = int(query.get("after") or 0)
        limit = min(int(query.get("limit", 500)), self.association_page)
        out: Json = {"results": targets[offset : offset + limit]}
        if offset + limit < len(targets):
            nxt = str(offset + limit)
            out["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
        return _answer(200, out)

    def _owners(self, query: Mapping[str, str]) -> Answer:
        limit = min(int(query.get("limit", 100)), 500)
        offset = int(query.get("after") or 0)
        out: Json = {"results": self.owners[offset : offset + limit]}
        if offset + limit < len(self.owners):
            nxt = str(offset + limit)
            out["paging"] = {"next": {"after": nxt, "link": f"?after={nxt}"}}
        return _answer(200, out)


#: HubSpot's own limit and answer (HTTP 400) for a batch read with ``propertiesWithHistory``.
_HISTORY_INPUTS = 50
_HISTORY_LIMIT_MESSAGE = (
    "The maximum number of inputs supported in a batch request for property histories is 50. "
    "Please reduce the number of items and try again"
)


class _Refused(Exception):
    def __init__(
        self, status: int, category: str, message: str, context: Json | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.category = category
        self.message = message
        self.context = context

    def body(self) -> Json:
        out: Json = {
            "status": "error",
            "message": self.message,
            "correlationId": str(uuid.uuid4()),
            "category": self.category,
        }
        if self.context:
            out["context"] = self.context
        return out


def _answer(status: int, body: Json) -> Answer:
    return status, {"Content-Type": "application/json"}, json.dumps(body)


def _text(value: Any) -> str | None:
    """HubSpot keeps every property value as a string."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return iso(int(value.timestamp() * 1000))
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _comparable(name: str, value: Any) -> Any:
    if value is None or value == "":
        return None
    if name in _DATE_PROPERTIES:
        return millis_of(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return str(value).lower()


def _sort_key(record: Json, name: str) -> tuple[int, float, str, int]:
    value = _comparable(name, record["properties"].get(name))
    rid = int(record["id"]) if record["id"].isdigit() else 0
    if value is None:
        return (1, 0.0, "", rid)
    if isinstance(value, int | float):
        return (0, float(value), "", rid)
    return (0, 0.0, str(value), rid)


def _matches(record: Json, group: Json) -> bool:
    props = record["properties"]
    for flt in group.get("filters") or []:
        name = flt["propertyName"]
        operator = flt["operator"]
        current = _comparable(name, props.get(name))
        if operator == "HAS_PROPERTY":
            ok = current is not None
        elif operator == "NOT_HAS_PROPERTY":
            ok = current is None
        elif operator in ("IN", "NOT_IN"):
            values = flt.get("values") or []
            if len(values) > 100:
                raise _Refused(400, "VALIDATION_ERROR", "at most 100 values in an IN filter")
            inside = current is not None and current in {_comparable(name, v) for v in values}
            ok = inside if operator == "IN" else not inside
        else:
            wanted = _comparable(name, flt.get("value"))
            if current is None or wanted is None:
                ok = operator == "NEQ" and current != wanted
            elif operator == "EQ":
                ok = current == wanted
            elif operator == "NEQ":
                ok = current != wanted
            elif operator == "GT":
                ok = current > wanted
            elif operator == "GTE":
                ok = current >= wanted
            elif operator == "LT":
                ok = current < wanted
            elif operator == "LTE":
                ok = current <= wanted
            else:
                raise _Refused(400, "VALIDATION_ERROR", f"unknown operator {operator}")
        if not ok:
            return False
    return True
