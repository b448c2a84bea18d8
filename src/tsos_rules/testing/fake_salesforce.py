"""A fake Salesforce org behind ``responses``, for connector tests and plugin authors.

It keeps records in memory and answers the REST, Bulk API 2.0, OAuth and SOAP login endpoints
with payloads shaped like Salesforce's own: records with ``attributes``, ``totalSize``/``done``/
``nextRecordsUrl`` paging, error bodies as lists of ``{errorCode, message, fields}``, sObject
Collections per-item results, Composite ``compositeResponse``, Bulk 2.0 CSV pages with
``Sforce-Locator``, and the ``Sforce-Limit-Info`` header on every API answer. Records change
(``SystemModstamp``, ``LastModifiedDate``, ``OpportunityHistory`` rows), so incremental reads,
stale conditional writes and idempotent upserts behave as they do against a real org.
``fake.metadata`` answers the Metadata API's SOAP calls for validation rules
(:mod:`tsos_rules.testing.fake_metadata`).

    fake = FakeSalesforce()
    with fake.mock():                       # or use the ``fake_salesforce`` pytest fixture
        creds = fake.setup_jwt()
        ...

Faults can be injected per endpoint kind (``fake.fail("query", status=503)``,
``fake.timeout("collections")``, ``fake.lock_items(2)``, ``fake.expire_sessions()``), and every
HTTP call is recorded in ``fake.calls`` so tests can count them.
"""

from __future__ import annotations

import base64
import contextlib
import csv
import datetime as dt
import email.utils
import io
import itertools
import json
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import requests
import responses

__all__ = [
    "FakeCall",
    "FakeSalesforce",
    "FieldDef",
    "JwtCredentials",
    "SoqlError",
    "fake_salesforce",
    "make_rsa_key",
]

# -- ids ---------------------------------------------------------------------------------------

KEY_PREFIXES = {
    "Account": "001",
    "Opportunity": "006",
    "Lead": "00Q",
    "User": "005",
    "Task": "00T",
    "Event": "00U",
    "OpportunityHistory": "008",
    "OpportunityTeamMember": "00q",
    "OpportunityFieldHistory": "017",
    "ProcessInstance": "04g",
    "UserRole": "00E",
    "Profile": "00e",
    "Group": "00G",
}
_SUFFIX_CHARS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def id18(id15: str) -> str:
    """Salesforce's case-safe 18-character id: three checksum characters over the 15."""
    suffix = ""
    for chunk in range(3):
        flags = 0
        for position in range(5):
            char = id15[chunk * 5 + position]
            if "A" <= char <= "Z":
                flags |= 1 << position
        suffix += _SUFFIX_CHARS[flags]
    return id15 + suffix


def _key15(value: str) -> str:
    return value[:15]


# -- schema ------------------------------------------------------------------------------------


@attrs.define
class FieldDef:
    """One field as ``describe()`` reports it."""

    name: str
    type: str = "string"
    reference_to: tuple[str, ...] = ()
    relationship_name: str | None = None
    external_id: bool = False
    unique: bool = False
    length: int = 255
    picklist: tuple[str, ...] = ()
    createable: bool = True
    updateable: bool = True

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "label": self.name.replace("__c", "").replace("_", " "),
            "type": self.type,
            "length": self.length if self.type in ("string", "textarea", "picklist") else 0,
            "referenceTo": list(self.reference_to),
            "relationshipName": self.relationship_name,
            "externalId": self.external_id,
            "unique": self.unique,
            "nillable": self.name != "Id",
            "createable": self.createable,
            "updateable": self.updateable,
            "custom": self.name.endswith("__c"),
            "picklistValues": [
                {"active": True, "defaultValue": False, "label": v, "value": v}
                for v in self.picklist
            ],
        }


STAGES = (
    ("Prospecting", 10, "Pipeline"),
    ("Qualification", 10, "Pipeline"),
    ("Needs Analysis", 20, "Pipeline"),
    ("Value Proposition", 50, "Pipeline"),
    ("Id. Decision Makers", 60, "Pipeline"),
    ("Perception Analysis", 70, "Pipeline"),
    ("Proposal/Price Quote", 75, "Pipeline"),
    ("Negotiation/Review", 90, "Pipeline"),
    ("Closed Won", 100, "Closed"),
    ("Closed Lost", 0, "Omitted"),
)
_FORECAST_API = {
    "Pipeline": "Pipeline",
    "Best Case": "BestCase",
    "Commit": "Forecast",
    "Closed": "Closed",
    "Omitted": "Omitted",
}


def _system_fields(history: bool = False) -> list[FieldDef]:
    fields = [
        FieldDef("Id", "id", length=18, createable=False, updateable=False),
        FieldDef("IsDeleted", "boolean", createable=False, updateable=False),
        FieldDef("CreatedDate", "datetime", createable=False, updateable=False),
        FieldDef("CreatedById", "reference", ("User",), "CreatedBy", createable=False),
        FieldDef("SystemModstamp", "datetime", createable=False, updateable=False),
    ]
    if not history:
        fields += [
            FieldDef("LastModifiedDate", "datetime", createable=False, updateable=False),
            FieldDef(
                "LastModifiedById", "reference", ("User",), "LastModifiedBy", createable=False
            ),
        ]
    return fields


#: Standard fields that exist only in orgs with partner relationship management enabled.
PRM_FIELDS = (
    ("Opportunity", "PartnerAccountId"),
    ("Lead", "PartnerAccountId"),
    ("Account", "IsPartner"),
)


def _describes_only(body: str) -> bool:
    """A Composite body whose every subrequest is a ``GET .../describe``."""
    try:
        parts = json.loads(body).get("compositeRequest") or []
    except (ValueError, AttributeError):
        return False
    return bool(parts) and all(
        isinstance(p, dict) and str(p.get("url", "")).endswith("/describe") for p in parts
    )


def _ref(name: str, *targets: str) -> FieldDef:
    rel = name[:-2] if name.endswith("Id") else name[:-3] + "__r"
    return FieldDef(name, "reference", tuple(targets), rel, length=18)


def _activity_fields() -> list[FieldDef]:
    return [
        FieldDef("Subject", "combobox"),
        FieldDef("ActivityDate", "date"),
        FieldDef("Description", "textarea", length=32000),
        _ref("WhatId", "Account", "Opportunity"),
        _ref("WhoId", "Lead"),
        _ref("AccountId", "Account"),
        _ref("OwnerId", "User"),
        FieldDef("Tsos_Fingerprint__c", "string", external_id=True, unique=True, length=32),
    ]


def default_schema() -> dict[str, dict[str, FieldDef]]:
    """Standard objects with the fields the connector reads, and the fingerprint field."""
    stage_names = tuple(s for s, _, _ in STAGES)
    objects: dict[str, list[FieldDef]] = {
        "Account": [
            FieldDef("Name"),
            FieldDef("IsPartner", "boolean"),
            _ref("OwnerId", "User"),
            FieldDef("Type", "picklist", picklist=("Customer", "Partner", "Prospect")),
        ],
        "Opportunity": [
            FieldDef("Name", length=120),
            _ref("AccountId", "Account"),
            _ref("OwnerId", "User"),
            _ref("PartnerAccountId", "Account"),
            FieldDef("StageName", "picklist", picklist=stage_names),
            FieldDef("Probability", "percent"),
            FieldDef("Amount", "currency"),
            FieldDef("CloseDate", "date"),
            FieldDef("ForecastCategoryName", "picklist", picklist=tuple(_FORECAST_API)),
            FieldDef("ForecastCategory", "picklist", picklist=tuple(_FORECAST_API.values())),
            FieldDef("IsClosed", "boolean", updateable=False),
            FieldDef("IsWon", "boolean", updateable=False),
            FieldDef("NextStep"),
            FieldDef("LastStageChangeDate", "datetime", createable=False, updateable=False),
            FieldDef("LeadSource", "picklist"),
        ],
        "Lead": [
            FieldDef("Company"),
            FieldDef("LastName"),
            _ref("OwnerId", "User", "Group"),
            _ref("PartnerAccountId", "Account"),
            FieldDef(
                "LeadSource",
                "picklist",
                picklist=("Web", "Phone Inquiry", "Partner Referral", "Purchased List", "Other"),
            ),
            FieldDef(
                "Status",
                "picklist",
                picklist=(
                    "Open - Not Contacted",
                    "Working - Contacted",
                    "Closed - Converted",
                    "Closed - Not Converted",
                ),
            ),
            FieldDef("IsConverted", "boolean"),
            _ref("ConvertedAccountId", "Account"),
            _ref("ConvertedOpportunityId", "Opportunity"),
        ],
        "User": [
            FieldDef("Name"),
            FieldDef("Username"),
            FieldDef(
                "UserType", "picklist", picklist=("Standard", "PowerPartner", "CsnOnly", "Guest")
            ),
            _ref("UserRoleId", "UserRole"),
            _ref("ProfileId", "Profile"),
            FieldDef("IsActive", "boolean"),
        ],
        "UserRole": [FieldDef("Name")],
        "Profile": [FieldDef("Name")],
        "Group": [FieldDef("Name"), FieldDef("Type")],
        "Task": [
            *_activity_fields(),
            FieldDef("Status", "picklist", picklist=("Not Started", "In Progress", "Completed")),
            FieldDef("Priority", "picklist", picklist=("High", "Normal", "Low")),
            FieldDef("IsClosed", "boolean", createable=False, updateable=False),
        ],
        "Event": [
            *_activity_fields(),
            FieldDef("StartDateTime", "datetime"),
            FieldDef("EndDateTime", "datetime"),
            FieldDef("DurationInMinutes", "int"),
        ],
        "OpportunityHistory": [
            _ref("OpportunityId", "Opportunity"),
            FieldDef("StageName", "picklist", picklist=stage_names),
            FieldDef("CloseDate", "date"),
            FieldDef("Amount", "currency"),
            FieldDef("Probability", "percent"),
            FieldDef("ForecastCategory", "picklist", picklist=tuple(_FORECAST_API.values())),
        ],
        "OpportunityTeamMember": [
            _ref("OpportunityId", "Opportunity"),
            _ref("UserId", "User"),
            FieldDef("TeamMemberRole", "picklist"),
        ],
        # Rows of fields with history tracking (see FakeSalesforce.track_history).
        "OpportunityFieldHistory": [
            _ref("OpportunityId", "Opportunity"),
            FieldDef("Field", "picklist"),
            FieldDef("OldValue", "anyType"),
            FieldDef("NewValue", "anyType"),
        ],
        # Approval processes: insert one with Status = "Approved" and a CompletedDate.
        "ProcessInstance": [
            _ref("TargetObjectId", "Opportunity", "Account", "Lead"),
            FieldDef(
                "Status",
                "picklist",
                picklist=("Approved", "Rejected", "Removed", "Fault", "Pending", "Held"),
            ),
            FieldDef("CompletedDate", "datetime"),
            _ref("LastActorId", "User"),
            _ref("SubmittedById", "User"),
        ],
    }
    history_objects = ("OpportunityHistory", "OpportunityFieldHistory")
    schema: dict[str, dict[str, FieldDef]] = {}
    for name, fields in objects.items():
        all_fields = _system_fields(history=name in history_objects) + fields
        schema[name] = {f.name: f for f in all_fields}
    return schema


# -- values ------------------------------------------------------------------------------------


def sf_datetime(moment: dt.datetime) -> str:
    """Salesforce's REST timestamp shape: ``2026-11-24T09:00:00.000+0000``."""
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}+0000"


def _bulk_datetime(moment: dt.datetime) -> str:
    moment = moment.astimezone(dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _parse_dt(text: str) -> dt.datetime:
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def _to_json(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return sf_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    return value


def _to_csv(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return _bulk_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


class SoqlError(Exception):
    """A query Salesforce would refuse, with its error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class _ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, fields: Sequence[str] = ()) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.fields = list(fields)

    def body(self) -> list[dict[str, Any]]:
        entry: dict[str, Any] = {"message": self.message, "errorCode": self.code}
        if self.fields:
            entry["fields"] = self.fields
        return [entry]


# -- SOQL ----------------------------------------------------------------------------------------

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<str>'(?:\\.|[^'\\])*')
     |(?P<dt>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:?\d{2}))
     |(?P<date>\d{4}-\d{2}-\d{2})
     |(?P<num>-?\d+(?:\.\d+)?)
     |(?P<op><=|>=|!=|<>|=|<|>|\(|\)|,)
     |(?P<name>[A-Za-z_][A-Za-z0-9_.]*)
    )""",
    re.VERBOSE,
)
_KEYWORDS = {
    "select", "from", "where", "and", "or", "not", "in", "like", "order", "by", "asc", "desc",
    "limit", "null", "true", "false", "nulls", "first", "last", "today",
}  # fmt: skip

Predicate = Callable[[dict[str, Any]], bool]


@attrs.define
class _Token:
    kind: str
    text: str


@attrs.define
class _Query:
    sobject: str
    fields: list[str]
    where: Any
    order: list[tuple[str, bool]]
    limit: int | None


def _tokenize(soql: str) -> list[_Token]:
    tokens: list[_Token] = []
    position = 0
    text = soql.strip()
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None or match.end() == position:
            raise SoqlError("MALFORMED_QUERY", f"unexpected token at: {text[position:][:30]!r}")
        kind = match.lastgroup or ""
        value = match.group(kind)
        if kind == "name" and value.lower() in _KEYWORDS:
            kind = "kw"
            value = value.lower()
        tokens.append(_Token(kind, value))
        position = match.end()
    return tokens


class _Parser:
    def __init__(self, tokens: list[_Token]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> _Token | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def take(self) -> _Token:
        token = self.peek()
        if token is None:
            raise SoqlError("MALFORMED_QUERY", "unexpected end of query")
        self.pos += 1
        return token

    def accept(self, kind: str, text: str | None = None) -> bool:
        token = self.peek()
        if token is not None and token.kind == kind and (text is None or token.text == text):
            self.pos += 1
            return True
        return False

    def expect(self, kind: str, text: str | None = None) -> _Token:
        token = self.take()
        if token.kind != kind or (text is not None and token.text != text):
            raise SoqlError("MALFORMED_QUERY", f"expected {text or kind}, got {token.text!r}")
        return token

    def query(self) -> _Query:
        self.expect("kw", "select")
        fields = [self.expect("name").text]
        while self.accept("op", ","):
            fields.append(self.expect("name").text)
        self.expect("kw", "from")
        sobject = self.expect("name").text
        where = None
        if self.accept("kw", "where"):
            where = self.condition()
        order: list[tuple[str, bool]] = []
        if self.accept("kw", "order"):
            self.expect("kw", "by")
            while True:
                name = self.expect("name").text
                descending = False
                if self.accept("kw", "desc"):
                    descending = True
                else:
                    self.accept("kw", "asc")
                if self.accept("kw", "nulls"):
                    self.take()
                order.append((name, descending))
                if not self.accept("op", ","):
                    break
        limit = None
        if self.accept("kw", "limit"):
            limit = int(float(self.expect("num").text))
        return _Query(sobject, fields, where, order, limit)

    def condition(self) -> Any:
        left = self.conjunction()
        while self.accept("kw", "or"):
            left = ("or", left, self.conjunction())
        return left

    def conjunction(self) -> Any:
        left = self.negation()
        while self.accept("kw", "and"):
            left = ("and", left, self.negation())
        return left

    def negation(self) -> Any:
        if self.accept("kw", "not"):
            return ("not", self.negation())
        if self.accept("op", "("):
            inner = self.condition()
            self.expect("op", ")")
            return inner
        return self.comparison()

    def comparison(self) -> Any:
        name = self.expect("name").text
        negate = self.accept("kw", "not")
        if self.accept("kw", "in"):
            self.expect("op", "(")
            token = self.peek()
            if token is not None and token.kind == "kw" and token.text == "select":
                sub = self.query()
                self.expect("op", ")")
                return ("semi", name, sub, negate)
            values = [self.value()]
            while self.accept("op", ","):
                values.append(self.value())
            self.expect("op", ")")
            return ("in", name, values, negate)
        if negate:
            raise SoqlError("MALFORMED_QUERY", "NOT must be followed by IN here")
        if self.accept("kw", "like"):
            return ("like", name, self.value())
        op = self.expect("op").text
        if op not in ("=", "!=", "<>", "<", "<=", ">", ">="):
            raise SoqlError("MALFORMED_QUERY", f"unexpected operator {op!r}")
        return ("cmp", name, "!=" if op == "<>" else op, self.value())

    def value(self) -> Any:
        token = self.take()
        if token.kind == "str":
            body = token.text[1:-1]
            return re.sub(r"\\(.)", r"\1", body)
        if token.kind == "dt":
            return _parse_dt(token.text)
        if token.kind == "date":
            return dt.date.fromisoformat(token.text)
        if token.kind == "num":
            return float(token.text)
        if token.kind == "kw" and token.text in ("true", "false"):
            return token.text == "true"
        if token.kind == "kw" and token.text == "null":
            return None
        if token.kind == "kw" and token.text == "today":
            return ("today",)
        raise SoqlError("MALFORMED_QUERY", f"unexpected value {token.text!r}")


def parse_soql(soql: str) -> _Query:
    """Parse the SOQL subset the connector and most plugins use (no aggregates, no TYPEOF)."""
    parser = _Parser(_tokenize(soql))
    query = parser.query()
    if parser.peek() is not None:
        raise SoqlError("MALFORMED_QUERY", f"unexpected {parser.peek().text!r}")  # type: ignore[union-attr]
    return query


# -- the org -----------------------------------------------------------------------------------


@attrs.define
class FakeCall:
    """One HTTP call the fake answered (or failed on purpose)."""

    method: str
    path: str
    kind: str
    status: int
    api: bool
    headers: Mapping[str, str] = attrs.field(factory=dict)
    """The request's headers, Authorization left out."""
    body: str = ""


@attrs.define
class _Fault:
    kind: str
    mode: str
    status: int
    code: str
    message: str
    remaining: int
    headers: Mapping[str, str]


@attrs.define
class _Cursor:
    rows: list[dict[str, Any]]
    offset: int


@attrs.define
class _BulkJob:
    id: str
    operation: str
    sobject: str
    columns: list[str]
    rows: list[list[str]]
    polls_left: int
    created: dt.datetime


@attrs.frozen
class JwtCredentials:
    """What an admin configures for the JWT flow (the key is PEM text, never committed)."""

    consumer_key: str
    private_key_pem: str
    username: str
    user_id: str


@attrs.define
class _App:
    consumer_key: str
    public_key_pem: str | None
    consumer_secret: str | None
    run_as: str | None
    approved: bool = True


def make_rsa_key() -> tuple[str, str]:
    """A fresh 2048-bit RSA key pair as PEM text ``(private, public)`` for JWT tests."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private, public


_HOST = r"https://[A-Za-z0-9.-]+\.salesforce\.com"
_DATA = re.compile(r"^/services/data/v(\d+\.\d)(/.*)?$")


class FakeSalesforce:
    """An in-memory org answering Salesforce's HTTP APIs through ``responses``."""

    def __init__(
        self,
        *,
        instance_url: str = "https://acme.my.salesforce.com",
        org_id: str = "00D5g000004Dn01EAC",
        daily_limit: int = 15_000,
        api_usage: int = 0,
        page_size: int = 2000,
        bulk_polls: int = 1,
        sandbox: bool = False,
        now: dt.datetime | None = None,
        partner_relationship_management: bool = True,
        team_selling: bool = True,
    ) -> None:
        """``partner_relationship_management=False``: an org without PRM (no
        ``PartnerAccountId`` on Opportunity and Lead, no ``Account.IsPartner``);
        ``team_selling=False``: no ``OpportunityTeamMember`` object."""
        self.instance_url = instance_url.rstrip("/")
        self.org_id = org_id
        self.daily_limit = daily_limit
        self.api_usage = api_usage
        self.page_size = page_size
        self.bulk_polls = bulk_polls
        self.sandbox = sandbox
        self.now = now or dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)
        self.schema = default_schema()
        if not partner_relationship_management:
            for sobject, field in PRM_FIELDS:
                self.schema[sobject].pop(field)
        if not team_selling:
            del self.schema["OpportunityTeamMember"]
        self.tables: dict[str, dict[str, dict[str, Any]]] = {name: {} for name in self.schema}
        self._counter = itertools.count(1)
        self._ext_index: dict[tuple[str, str], dict[str, str]] = {}
        self.sessions: dict[str, str] = {}
        #: Every access token ever issued (tests check none of them reaches a log).
        self.issued: list[str] = []
        self.refuse_sessions = False
        self.apps: dict[str, _App] = {}
        self.passwords: dict[str, str] = {}
        self.calls: list[FakeCall] = []
        self.query_log: list[tuple[str, int]] = []
        self.faults: list[_Fault] = []
        self.locked_items = 0
        #: False: PATCHes ignore ``If-Unmodified-Since`` (Salesforce documents the header only
        #: loosely), to prove the writer's own staleness guard.
        self.honour_unmodified_since = True
        self.server_cpu = 0.0
        self._cursors: dict[str, _Cursor] = {}
        self._jobs: dict[str, _BulkJob] = {}
        self._rsps: responses.RequestsMock | None = None
        #: Opportunity fields whose changes write OpportunityFieldHistory rows.
        self.tracked_fields: set[str] = set()
        self.admin_id = self.add_user("Org Admin", username="admin@acme.example")
        from tsos_rules.testing.fake_metadata import FakeMetadataApi

        #: The Metadata API (SOAP): validation rules, custom permissions, permission sets.
        self.metadata = FakeMetadataApi(self)

    # -- clock -----------------------------------------------------------------------------

    def stamp(self) -> dt.datetime:
        """The org's clock in whole seconds, as Salesforce stores timestamps."""
        return self.now.astimezone(dt.UTC).replace(microsecond=0)

    def advance(self, seconds: float = 1.0) -> dt.datetime:
        """Move the org's clock (every write is stamped with it)."""
        self.now += dt.timedelta(seconds=seconds)
        return self.now

    # -- schema ----------------------------------------------------------------------------

    def add_field(
        self,
        sobject: str,
        name: str,
        type: str = "string",
        *,
        reference_to: Sequence[str] = (),
        external_id: bool = False,
        unique: bool = False,
        length: int = 255,
        picklist: Sequence[str] = (),
    ) -> FieldDef:
        """Add a (custom) field; a lookup gets its ``__r`` relationship name."""
        relationship = None
        if type == "reference":
            relationship = name[:-3] + "__r" if name.endswith("__c") else name.removesuffix("Id")
        field = FieldDef(
            name,
            type,
            tuple(reference_to),
            relationship,
            external_id,
            unique,
            length,
            tuple(picklist),
        )
        self.schema.setdefault(sobject, {})[name] = field
        self.tables.setdefault(sobject, {})
        return field

    def track_history(self, name: str) -> None:
        """Turn on field history tracking for an Opportunity field: each change of it writes an
        ``OpportunityFieldHistory`` row (``Field``, ``OldValue``, ``NewValue``)."""
        self.tracked_fields.add(self._field("Opportunity", name).name)

    def remove_field(self, sobject: str, name: str) -> None:
        self.schema[sobject].pop(name, None)

    def _field(self, sobject: str, name: str) -> FieldDef:
        fields = self.schema.get(sobject)
        if fields is None:
            raise SoqlError("INVALID_TYPE", f"sObject type '{sobject}' is not supported.")
        field = fields.get(name)
        if field is None:
            for candidate in fields.values():
                if candidate.name.lower() == name.lower():
                    return candidate
            raise SoqlError("INVALID_FIELD", f"No such column '{name}' on entity '{sobject}'.")
        return field

    def _relationship(self, sobject: str, name: str) -> FieldDef:
        for candidate in self.schema.get(sobject, {}).values():
            if candidate.relationship_name and candidate.relationship_name.lower() == name.lower():
                return candidate
        raise SoqlError(
            "INVALID_FIELD",
            f"Didn't understand relationship '{name}' in field path on entity '{sobject}'.",
        )

    # -- records -----------------------------------------------------------------------------

    def new_id(self, sobject: str) -> str:
        prefix = KEY_PREFIXES.get(sobject, "a0X")
        return id18(f"{prefix}Dn{next(self._counter):010d}")

    def _object_of(self, record_id: str) -> str | None:
        prefix = record_id[:3]
        for name, key in KEY_PREFIXES.items():
            if key == prefix and record_id in self.tables.get(name, {}):
                return name
        for name, table in self.tables.items():
            if record_id in table:
                return name
        return None

    def _coerce(self, sobject: str, name: str, value: Any) -> Any:
        field = self._field(sobject, name)
        if value is None:
            return None
        kind = field.type
        if kind == "date":
            if isinstance(value, dt.datetime):
                return value.date()
            if isinstance(value, dt.date):
                return value
            if isinstance(value, str) and len(value) == 10:
                return dt.date.fromisoformat(value)
            raise _ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize {value!r} as a date")
        if kind == "datetime":
            if isinstance(value, dt.datetime):
                return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
            if isinstance(value, str):
                try:
                    return _parse_dt(value)
                except ValueError:
                    pass
            raise _ApiError(400, "JSON_PARSER_ERROR", f"Cannot deserialize {value!r} as a dateTime")
        if kind in ("double", "currency", "percent"):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise _ApiError(
                    400, "JSON_PARSER_ERROR", f"Cannot deserialize {value!r} as a number"
                )
            return float(value)
        if kind == "int":
            return int(value)
        if kind == "boolean":
            return bool(value)
        if kind == "reference" and isinstance(value, str) and value:
            if self._object_of(value) is None:
                raise _ApiError(
                    400,
                    "INVALID_CROSS_REFERENCE_KEY",
                    f"invalid cross reference id: {name}",
                    [name],
                )
            return value
        return value if isinstance(value, str) else str(value)

    def insert(
        self,
        sobject: str,
        fields: Mapping[str, Any] | None = None,
        *,
        by: str | None = None,
        **values: Any,
    ) -> str:
        """Create a record as user ``by`` (the org admin by default) at the org's clock."""
        data = {**dict(fields or {}), **values}
        record_id = str(data.pop("Id", None) or self.new_id(sobject))
        record: dict[str, Any] = {name: None for name in self.schema[sobject]}
        author = by or self.admin_id
        record.update(
            Id=record_id,
            IsDeleted=False,
            CreatedDate=self.stamp(),
            CreatedById=author,
            SystemModstamp=self.stamp(),
        )
        if "LastModifiedDate" in record:
            record.update(LastModifiedDate=self.stamp(), LastModifiedById=author)
        self.tables[sobject][record_id] = record
        try:
            self._apply(sobject, record, data, author, created=True)
        except Exception:
            del self.tables[sobject][record_id]
            raise
        return record_id

    def update(
        self,
        sobject: str,
        record_id: str,
        fields: Mapping[str, Any] | None = None,
        *,
        by: str | None = None,
        **values: Any,
    ) -> None:
        """Change a record as user ``by``: stamps, derived fields and history as Salesforce does."""
        record = self._live(sobject, record_id)
        author = by or self.admin_id
        self._apply(sobject, record, {**dict(fields or {}), **values}, author, created=False)
        record["SystemModstamp"] = self.stamp()
        if "LastModifiedDate" in record:
            record["LastModifiedDate"] = self.stamp()
            record["LastModifiedById"] = author

    def delete(self, sobject: str, record_id: str, *, by: str | None = None) -> None:
        """Move a record to the recycle bin: visible to ``queryAll`` with ``IsDeleted = true``."""
        record = self._live(sobject, record_id)
        record["IsDeleted"] = True
        record["SystemModstamp"] = self.stamp()
        if "LastModifiedDate" in record:
            record["LastModifiedDate"] = self.stamp()
            record["LastModifiedById"] = by or self.admin_id
        for (table, _), index in self._ext_index.items():
            if table == sobject:
                for key, value in list(index.items()):
                    if value == record_id:
                        del index[key]

    def get(self, sobject: str, record_id: str) -> dict[str, Any]:
        """A copy of one record's fields (Python values)."""
        return dict(self.tables[sobject][record_id])

    def records(self, sobject: str, *, deleted: bool = False) -> list[dict[str, Any]]:
        return [
            dict(r) for r in self.tables.get(sobject, {}).values() if deleted or not r["IsDeleted"]
        ]

    def find(self, sobject: str, **equals: Any) -> list[dict[str, Any]]:
        """Live records whose fields equal the given values."""
        return [r for r in self.records(sobject) if all(r.get(k) == v for k, v in equals.items())]

    def _live(self, sobject: str, record_id: str) -> dict[str, Any]:
        table = self.tables.get(sobject, {})
        record = table.get(record_id)
        if record is None:
            for key, candidate in table.items():
                if _key15(key) == _key15(record_id):
                    record = candidate
                    break
        if record is None:
            raise _ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        if record["IsDeleted"]:
            raise _ApiError(404, "ENTITY_IS_DELETED", "entity is deleted")
        return record

    def _apply(
        self,
        sobject: str,
        record: dict[str, Any],
        data: Mapping[str, Any],
        author: str,
        *,
        created: bool,
    ) -> None:
        coerced = {
            self._field(sobject, k).name: self._coerce(sobject, k, v) for k, v in data.items()
        }
        for name in coerced:
            field = self._field(sobject, name)
            if not created and not field.updateable and name != "Id":
                raise _ApiError(
                    400,
                    "INVALID_FIELD_FOR_INSERT_UPDATE",
                    f"Unable to create/update fields: {name}.",
                    [name],
                )
        before = dict(record)
        record.update(coerced)
        for (table, field_name), index in self._ext_index.items():
            if table == sobject:
                old, new = before.get(field_name), record.get(field_name)
                if old != new and old is not None:
                    index.pop(str(old), None)
        for name, field in self.schema[sobject].items():
            if field.external_id and record.get(name) is not None:
                self._ext_index.setdefault((sobject, name), {})[str(record[name])] = record["Id"]
        if sobject == "Opportunity":
            self._derive_opportunity(record, before, coerced, author, created)
        elif sobject in ("Task", "Event"):
            self._derive_activity(sobject, record)

    def _derive_opportunity(
        self,
        record: dict[str, Any],
        before: Mapping[str, Any],
        given: Iterable[str],
        author: str,
        created: bool,
    ) -> None:
        """Stage-driven fields and the history row, as a save in Salesforce would make them."""
        stages = {name: (probability, forecast) for name, probability, forecast in STAGES}
        given = set(given)
        stage = record.get("StageName")
        if created or stage != before.get("StageName"):
            probability, forecast = stages.get(str(stage), (None, "Pipeline"))
            if "Probability" not in given:
                record["Probability"] = None if probability is None else float(probability)
            if "ForecastCategoryName" not in given:
                record["ForecastCategoryName"] = forecast
            record["LastStageChangeDate"] = self.stamp()
        record["IsClosed"] = stage in ("Closed Won", "Closed Lost")
        record["IsWon"] = stage == "Closed Won"
        category = str(record.get("ForecastCategoryName") or "")
        record["ForecastCategory"] = _FORECAST_API.get(category, "Pipeline")
        tracked = ("StageName", "CloseDate", "Amount", "Probability", "ForecastCategoryName")
        if created or any(record.get(k) != before.get(k) for k in tracked):
            self.insert(
                "OpportunityHistory",
                by=author,
                OpportunityId=record["Id"],
                StageName=record.get("StageName"),
                CloseDate=record.get("CloseDate"),
                Amount=record.get("Amount"),
                Probability=record.get("Probability"),
                ForecastCategory=record["ForecastCategory"],
            )
        for name in sorted(self.tracked_fields):
            if not created and record.get(name) != before.get(name):
                self.insert(
                    "OpportunityFieldHistory",
                    by=author,
                    OpportunityId=record["Id"],
                    Field=name,
                    OldValue=before.get(name),
                    NewValue=record.get(name),
                )

    def _derive_activity(self, sobject: str, record: dict[str, Any]) -> None:
        if sobject == "Task":
            if record.get("Status") is None:
                record["Status"] = "Not Started"
            record["IsClosed"] = record.get("Status") == "Completed"
        if record.get("OwnerId") is None:
            record["OwnerId"] = record.get("CreatedById")
        what = record.get("WhatId")
        if what:
            kind = self._object_of(what)
            if kind == "Account":
                record["AccountId"] = what
            elif kind == "Opportunity":
                record["AccountId"] = self.tables["Opportunity"][what].get("AccountId")

    # -- users and logins -------------------------------------------------------------------

    def add_user(
        self,
        name: str,
        *,
        username: str | None = None,
        user_type: str = "Standard",
        role: str | None = None,
        profile: str | None = None,
        **fields: Any,
    ) -> str:
        """A user, with a role and a profile record created by name when given."""
        values: dict[str, Any] = {
            "Name": name,
            "Username": username or f"{re.sub(r'[^a-z0-9]+', '.', name.lower())}@acme.example",
            "UserType": user_type,
            "IsActive": True,
            **fields,
        }
        if role is not None:
            values["UserRoleId"] = self._named("UserRole", role)
        if profile is not None:
            values["ProfileId"] = self._named("Profile", profile)
        by = getattr(self, "admin_id", None)
        if by is None:
            values_id = self.new_id("User")
            values["Id"] = values_id
            return self.insert("User", values, by=values_id)
        return self.insert("User", values, by=by)

    def _named(self, sobject: str, name: str) -> str:
        for record in self.tables[sobject].values():
            if record["Name"] == name:
                return str(record["Id"])
        return self.insert(sobject, Name=name, by=getattr(self, "admin_id", None))

    def user_by_username(self, username: str) -> str | None:
        for record in self.tables["User"].values():
            if record["Username"] == username and record["IsActive"]:
                return str(record["Id"])
        return None

    def connected_app(
        self,
        consumer_key: str,
        *,
        public_key_pem: str | None = None,
        consumer_secret: str | None = None,
        run_as: str | None = None,
        approved: bool = True,
    ) -> None:
        """Register a Connected App: a certificate for JWT, a secret and Run As user for
        client credentials."""
        self.apps[consumer_key] = _App(
            consumer_key, public_key_pem, consumer_secret, run_as, approved
        )

    def set_password(self, username: str, password: str) -> None:
        """For the legacy SOAP login: ``password`` is what must be sent (password + token)."""
        self.passwords[username] = password

    def setup_jwt(
        self,
        username: str = "tsos-integration@acme.example",
        *,
        name: str = "tsos Integration",
        key_pair: tuple[str, str] | None = None,
    ) -> JwtCredentials:
        """An integration user and a Connected App with a fresh certificate (or ``key_pair``
        as made by :func:`make_rsa_key`); the private key is returned: write it to a temporary
        file in tests, never commit it."""
        user_id = self.user_by_username(username) or self.add_user(name, username=username)
        private, public = key_pair or make_rsa_key()
        consumer_key = "3MVG9fake" + base64.urlsafe_b64encode(user_id.encode()).decode().rstrip("=")
        self.connected_app(consumer_key, public_key_pem=public)
        return JwtCredentials(consumer_key, private, username, user_id)

    def issue_session(self, user_id: str) -> str:
        serial = base64.urlsafe_b64encode(next(self._counter).to_bytes(8, "big")).decode()
        token = f"{self.org_id[:15]}!AQ{serial.rstrip('=')}fake"
        self.sessions[token] = user_id
        self.issued.append(token)
        return token

    def expire_sessions(self) -> None:
        """Every session issued so far becomes invalid (the next call gets 401)."""
        self.sessions.clear()

    # -- faults -------------------------------------------------------------------------------

    def fail(
        self,
        kind: str,
        *,
        status: int = 503,
        code: str = "SERVER_UNAVAILABLE",
        message: str = "Server temporarily unavailable",
        times: int = 1,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """The next ``times`` calls of ``kind`` (``query``, ``collections``, ``composite``,
        ``bulk``, ``auth``, ``describe``, ``any``) answer with this error instead."""
        self.faults.append(_Fault(kind, "http", status, code, message, times, dict(headers or {})))

    def timeout(self, kind: str, *, times: int = 1, after: bool = False) -> None:
        """The next calls of ``kind`` time out; with ``after`` the call takes effect first
        (the answer is lost on the way back, as when a connection drops mid-write)."""
        mode = "timeout_after" if after else "timeout"
        self.faults.append(_Fault(kind, mode, 0, "", "", times, {}))

    def lock_items(self, count: int = 1) -> None:
        """The next ``count`` items of Collections/Composite writes fail with UNABLE_TO_LOCK_ROW."""
        self.locked_items += count

    def _take_fault(self, kind: str) -> _Fault | None:
        for fault in self.faults:
            if fault.remaining > 0 and fault.kind in (kind, "any"):
                fault.remaining -= 1
                return fault
        return None

    # -- counting ----------------------------------------------------------------------------

    def count(self, kind: str | None = None, *, api_only: bool = False) -> int:
        """HTTP calls answered, of one kind (``auth``, ``query``, ...) or all."""
        return sum(
            1
            for call in self.calls
            if (kind is None or call.kind == kind) and (not api_only or call.api)
        )

    def reset_counts(self) -> None:
        self.calls.clear()
        self.query_log.clear()

    # -- HTTP ---------------------------------------------------------------------------------

    def install(self, rsps: responses.RequestsMock) -> None:
        """Answer every ``*.salesforce.com`` request made through ``rsps``."""
        pattern = re.compile(_HOST + r"/.*")
        for method in ("GET", "POST", "PATCH", "PUT", "DELETE"):
            rsps.add_callback(method, pattern, callback=self._callback)

    @contextlib.contextmanager
    def mock(self, *, keep_history: bool = True) -> Iterator[FakeSalesforce]:
        """Activate ``responses`` with this org installed, for the ``with`` block.

        ``keep_history=False`` stops ``responses`` from keeping every request and answer
        (benchmarks make hundreds of thousands of them); ``calls`` still counts them.
        """
        with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
            self.install(rsps)
            self._rsps = rsps if not keep_history else None
            try:
                yield self
            finally:
                self._rsps = None

    def _callback(self, request: requests.PreparedRequest) -> Any:
        if self._rsps is not None:
            self._rsps.calls.reset()
        started = time.process_time()
        try:
            return self._handle(request)
        finally:
            self.server_cpu += time.process_time() - started

    def _headers(self, api: bool) -> dict[str, str]:
        headers = {"Date": email.utils.format_datetime(self.stamp(), usegmt=True)}
        if api:
            headers["Sforce-Limit-Info"] = f"api-usage={self.api_usage}/{self.daily_limit}"
        return headers

    def _json(
        self, status: int, body: Any, api: bool = True, extra: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], str]:
        headers = {**self._headers(api), "Content-Type": "application/json;charset=UTF-8"}
        headers.update(extra or {})
        return status, headers, json.dumps(body) if body is not None else ""

    def _handle(self, request: requests.PreparedRequest) -> Any:
        url = urllib.parse.urlsplit(request.url or "")
        path = url.path
        method = (request.method or "GET").upper()
        query = urllib.parse.parse_qs(url.query)
        body = request.body.decode() if isinstance(request.body, bytes) else (request.body or "")
        headers = request.headers
        kind = self._kind(method, path)
        if kind == "composite" and _describes_only(body):
            kind = "describe"  # a Composite call of describe() requests (connectors, check)
        shown = {k: str(v) for k, v in headers.items() if k.lower() != "authorization"}

        def log(status: int, api: bool) -> None:
            self.calls.append(FakeCall(method, path, kind, status, api, shown, body))

        if path.startswith("/services/Soap/m/"):
            status, out_headers, text = self.metadata.handle(body)
            log(status, True)
            return status, {**self._headers(False), **out_headers}, text
        fault = self._take_fault(kind)
        if fault is not None and fault.mode == "timeout":
            log(0, False)
            return requests.exceptions.ReadTimeout(f"fake timeout on {path}")
        if kind == "auth":
            if fault is not None and fault.mode == "http":
                log(fault.status, False)
                return self._json(
                    fault.status,
                    {"error": fault.code, "error_description": fault.message},
                    api=False,
                    extra=fault.headers,
                )
            status, out_headers, text = self._auth(url.netloc, path, body, headers)
            log(status, False)
            return status, out_headers, text
        token = str(headers.get("Authorization", "")).removeprefix("Bearer ").strip()
        if self.refuse_sessions or token not in self.sessions:
            log(401, False)
            return self._json(
                401,
                [{"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}],
                api=False,
            )
        user_id = self.sessions[token]
        self.api_usage += 1
        if fault is not None and fault.mode == "http":
            log(fault.status, True)
            return self._json(
                fault.status,
                [{"message": fault.message, "errorCode": fault.code}],
                extra=fault.headers,
            )
        if self.api_usage > self.daily_limit:
            log(403, True)
            return self._json(
                403,
                [
                    {
                        "message": "TotalRequests Limit exceeded.",
                        "errorCode": "REQUEST_LIMIT_EXCEEDED",
                    }
                ],
            )
        try:
            status, out, extra = self._api(method, path, query, body, headers, user_id)
        except SoqlError as exc:
            status, out, extra = 400, [{"message": exc.message, "errorCode": exc.code}], {}
        except _ApiError as exc:
            status, out, extra = exc.status, exc.body(), {}
        log(status, True)
        if fault is not None and fault.mode == "timeout_after":
            return requests.exceptions.ReadTimeout(f"fake timeout after processing {path}")
        if isinstance(out, str):
            headers_out = {**self._headers(True), "Content-Type": "text/csv", **extra}
            return status, headers_out, out
        return self._json(status, out, extra=extra)

    @staticmethod
    def _kind(method: str, path: str) -> str:
        if path.startswith("/services/oauth2/token") or path.startswith("/services/Soap/u/"):
            return "auth"
        if path.startswith("/services/oauth2/"):
            return "userinfo"
        if path.startswith("/services/Soap/m/"):
            return "metadata"
        match = _DATA.match(path)
        rest = (match.group(2) or "") if match else ""
        if rest.startswith("/query") or rest.startswith("/queryAll"):
            return "query"
        if rest.startswith("/composite/sobjects"):
            return "collections"
        if rest.startswith("/composite"):
            return "composite"
        if rest.startswith("/jobs/query"):
            return "bulk"
        if rest.endswith("/describe"):
            return "describe"
        if rest.startswith("/limits"):
            return "limits"
        if rest.startswith("/sobjects"):
            return "sobject"
        return "other"

    # -- auth endpoints -------------------------------------------------------------------------

    def _auth(
        self, host: str, path: str, body: str, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, str], str]:
        login_host = "test.salesforce.com" if self.sandbox else "login.salesforce.com"
        my_host = urllib.parse.urlsplit(self.instance_url).netloc
        if host not in (login_host, my_host):
            return self._json(
                400,
                {
                    "error": "invalid_grant",
                    "error_description": f"{host} is not this org's login host",
                },
                api=False,
            )
        if path.startswith("/services/Soap/u/"):
            return self._soap_login(body)
        form = {k: v[0] for k, v in urllib.parse.parse_qs(body).items()}
        grant = form.get("grant_type", "")

        def bad(description: str) -> tuple[int, dict[str, str], str]:
            return self._json(
                400, {"error": "invalid_grant", "error_description": description}, api=False
            )

        user_id: str | None
        if grant == "urn:ietf:params:oauth:grant-type:jwt-bearer":
            import jwt

            assertion = form.get("assertion", "")
            try:
                claims = jwt.decode(assertion, options={"verify_signature": False})
            except jwt.PyJWTError:
                return bad("invalid assertion")
            app = self.apps.get(str(claims.get("iss")))
            if app is None:
                return self._json(
                    400,
                    {
                        "error": "invalid_client_id",
                        "error_description": "client identifier invalid",
                    },
                    api=False,
                )
            if app.public_key_pem is None:
                return bad("invalid assertion")
            try:
                jwt.decode(
                    assertion,
                    app.public_key_pem,
                    algorithms=["RS256"],
                    audience=f"https://{login_host}",
                )
            except jwt.InvalidAudienceError:
                return bad("audience is invalid")
            except jwt.PyJWTError:
                return bad("invalid assertion")
            user_id = self.user_by_username(str(claims.get("sub")))
            if user_id is None:
                return bad("user hasn't approved this consumer")
            if not app.approved:
                return bad("user hasn't approved this consumer")
        elif grant == "client_credentials":
            if host != my_host:
                return bad("request not supported on this domain")
            auth = str(headers.get("Authorization", ""))
            try:
                key, _, secret = (
                    base64.b64decode(auth.removeprefix("Basic ")).decode().partition(":")
                )
            except ValueError:
                return self._json(
                    400,
                    {"error": "invalid_client", "error_description": "invalid client credentials"},
                    api=False,
                )
            app = self.apps.get(key)
            if app is None or app.consumer_secret != secret:
                return self._json(
                    400,
                    {"error": "invalid_client", "error_description": "invalid client credentials"},
                    api=False,
                )
            if app.run_as is None:
                return bad("no client credentials user enabled")
            user_id = app.run_as
        else:
            return self._json(
                400,
                {
                    "error": "unsupported_grant_type",
                    "error_description": "grant type not supported",
                },
                api=False,
            )
        token = self.issue_session(user_id)
        answer = {
            "access_token": token,
            "scope": "api",
            "instance_url": self.instance_url,
            "id": f"https://{login_host}/id/{self.org_id}/{user_id}",
            "token_type": "Bearer",
        }
        return self._json(200, answer, api=False)

    def _soap_login(self, body: str) -> tuple[int, dict[str, str], str]:
        def element(name: str) -> str:
            match = re.search(rf"<(?:\w+:)?{name}>(.*?)</(?:\w+:)?{name}>", body, re.S)
            return match.group(1) if match else ""

        import html

        username = html.unescape(element("username"))
        password = html.unescape(element("password"))
        user_id = self.user_by_username(username)
        headers = {**self._headers(False), "Content-Type": "text/xml;charset=UTF-8"}
        if user_id is None or self.passwords.get(username) != password:
            fault = (
                '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
                'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
                'xmlns:sf="urn:fault.partner.soap.sforce.com"><soapenv:Body><soapenv:Fault>'
                "<faultcode>sf:INVALID_LOGIN</faultcode><faultstring>INVALID_LOGIN: Invalid "
                "username, password, security token; or user locked out.</faultstring><detail>"
                "<sf:LoginFault><sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>"
                "<sf:exceptionMessage>Invalid username, password, security token; or user "
                "locked out.</sf:exceptionMessage></sf:LoginFault></detail></soapenv:Fault>"
                "</soapenv:Body></soapenv:Envelope>"
            )
            return 500, headers, fault
        token = self.issue_session(user_id)
        server = f"{self.instance_url}/services/Soap/u/62.0/{self.org_id}"
        answer = (
            '<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns="urn:partner.soap.sforce.com"><soapenv:Body><loginResponse><result>'
            f"<metadataServerUrl>{server}</metadataServerUrl><passwordExpired>false"
            f"</passwordExpired><sandbox>{str(self.sandbox).lower()}</sandbox>"
            f"<serverUrl>{server}</serverUrl><sessionId>{token}</sessionId>"
            f"<userId>{user_id}</userId></result></loginResponse></soapenv:Body>"
            "</soapenv:Envelope>"
        )
        return 200, headers, answer

    # -- data API -------------------------------------------------------------------------------

    def _api(
        self,
        method: str,
        path: str,
        query: Mapping[str, list[str]],
        body: str,
        headers: Mapping[str, str],
        user_id: str,
    ) -> tuple[int, Any, dict[str, str]]:
        if path.startswith("/services/oauth2/userinfo"):
            return 200, {"user_id": user_id, "organization_id": self.org_id}, {}
        match = _DATA.match(path)
        if match is None:
            raise _ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        rest = match.group(2) or ""
        data: Any = json.loads(body) if body else None
        if method == "GET" and rest in ("/query", "/queryAll"):
            soql = query.get("q", [""])[0]
            return 200, self._run_query(soql, all_rows=rest == "/queryAll"), {}
        if method == "GET" and (rest.startswith("/query/") or rest.startswith("/queryAll/")):
            cursor = rest.split("/", 2)[2]
            return 200, self._more(cursor), {}
        if rest.startswith("/composite/sobjects"):
            return self._collections(method, rest, data, user_id)
        if rest == "/composite" and method == "POST":
            return 200, self._composite(data, user_id), {}
        if rest.startswith("/jobs/query"):
            return self._bulk(method, rest, query, data, user_id)
        if rest.startswith("/limits"):
            limits = {"Max": self.daily_limit, "Remaining": self.daily_limit - self.api_usage}
            return 200, {"DailyApiRequests": limits}, {}
        if rest.startswith("/sobjects/"):
            status, out = self._sobject(method, rest, data, headers, user_id)
            return status, out, {}
        raise _ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    # queries

    def _compile(self, sobject: str, where: Any) -> Predicate:
        if where is None:
            return lambda record: True
        op = where[0]
        if op in ("and", "or"):
            left = self._compile(sobject, where[1])
            right = self._compile(sobject, where[2])
            if op == "and":
                return lambda record: left(record) and right(record)
            return lambda record: left(record) or right(record)
        if op == "not":
            inner = self._compile(sobject, where[1])
            return lambda record: not inner(record)
        getter, field = self._getter(sobject, where[1])
        is_id = field.type in ("id", "reference")
        if op == "semi":
            sub: _Query = where[2]
            if len(sub.fields) != 1:
                raise SoqlError("MALFORMED_QUERY", "a semi-join selects exactly one field")
            rows = self._matching(sub, all_rows=False)
            sub_get, _ = self._getter(sub.sobject, sub.fields[0])
            keys = {_key15(str(v)) for v in (sub_get(r) for r in rows) if v is not None}
            negate = where[3]
            return lambda record: (
                ((value := getter(record)) is not None and _key15(str(value)) in keys) != negate
            )
        if op == "in":
            values = [self._literal(v) for v in where[2]]
            negate = where[3]
            if is_id:
                keys = {_key15(str(v)) for v in values if v is not None}
                return lambda record: (
                    ((value := getter(record)) is not None and _key15(str(value)) in keys) != negate
                )
            allowed = set(values)
            return lambda record: (getter(record) in allowed) != negate
        if op == "like":
            pattern = re.compile(
                "^" + re.escape(str(where[2])).replace("%", ".*").replace("_", ".") + "$", re.I
            )
            return lambda record: (
                (value := getter(record)) is not None and bool(pattern.match(str(value)))
            )
        comparison, literal = where[2], self._literal(where[3])
        if (
            field.type == "datetime"
            and isinstance(literal, dt.date)
            and not isinstance(literal, dt.datetime)
        ):
            raise SoqlError(
                "INVALID_FIELD",
                f"value of filter criterion for field '{field.name}' must be of type dateTime",
            )
        if is_id and isinstance(literal, str):
            key = _key15(literal)
            if comparison == "=":
                return lambda record: (
                    (value := getter(record)) is not None and _key15(str(value)) == key
                )
            if comparison == "!=":
                return lambda record: (value := getter(record)) is None or _key15(str(value)) != key

        def compare(record: dict[str, Any]) -> bool:
            value = getter(record)
            if literal is None:
                if comparison == "=":
                    return value is None
                if comparison == "!=":
                    return value is not None
                return False
            if value is None:
                return bool(comparison == "!=")
            try:
                if comparison == "=":
                    return bool(value == literal)
                if comparison == "!=":
                    return bool(value != literal)
                if comparison == "<":
                    return bool(value < literal)
                if comparison == "<=":
                    return bool(value <= literal)
                if comparison == ">":
                    return bool(value > literal)
                return bool(value >= literal)
            except TypeError:
                raise SoqlError(
                    "INVALID_QUERY_FILTER_OPERATOR", f"cannot compare {field.name} with {literal!r}"
                ) from None

        return compare

    def _literal(self, value: Any) -> Any:
        if value == ("today",):
            return self.now.date()
        return value

    def _getter(self, sobject: str, path: str) -> tuple[Callable[[dict[str, Any]], Any], FieldDef]:
        parts = path.split(".")
        if len(parts) > 1 and parts[0].lower() == sobject.lower():
            parts = parts[1:]
        current = sobject
        steps: list[FieldDef] = []
        for part in parts[:-1]:
            relation = self._relationship(current, part)
            steps.append(relation)
            current = relation.reference_to[0] if relation.reference_to else current
        field = self._field(current, parts[-1])
        name = field.name
        if not steps:
            return (lambda record: record.get(name)), field
        tables = self.tables

        def get(record: dict[str, Any]) -> Any:
            target: dict[str, Any] | None = record
            for relation in steps:
                assert target is not None
                ref = target.get(relation.name)
                if not ref:
                    return None
                target = None
                for candidate in relation.reference_to:
                    found = tables.get(candidate, {}).get(ref)
                    if found is not None:
                        target = found
                        break
                if target is None:
                    return None
            return target.get(name) if target is not None else None

        return get, field

    def _matching(self, query: _Query, *, all_rows: bool) -> list[dict[str, Any]]:
        if query.sobject not in self.schema:
            raise SoqlError("INVALID_TYPE", f"sObject type '{query.sobject}' is not supported.")
        predicate = self._compile(query.sobject, query.where)
        rows = [
            record
            for record in self.tables[query.sobject].values()
            if (all_rows or not record["IsDeleted"]) and predicate(record)
        ]
        for name, descending in reversed(query.order):
            getter, _ = self._getter(query.sobject, name)
            rows.sort(key=_sort_key(getter), reverse=descending)
        if query.limit is not None:
            rows = rows[: query.limit]
        return rows

    def _projector(self, query: _Query) -> Callable[[dict[str, Any]], dict[str, Any]]:
        """A function shaping one record as the REST API returns it (nested parents)."""
        version = "62.0"
        sobject = query.sobject
        plan: list[
            tuple[
                list[str],
                Callable[[dict[str, Any]], Any],
                list[tuple[str, Callable[[dict[str, Any]], Any]]],
            ]
        ] = []
        for path in query.fields:
            parts = path.split(".")
            getter, _ = self._getter(sobject, path)
            prefixes: list[tuple[str, Callable[[dict[str, Any]], Any]]] = []
            current = sobject
            for i, part in enumerate(parts[:-1]):
                relation = self._relationship(current, part)
                id_getter, _ = self._getter(sobject, ".".join([*parts[:i], relation.name]))
                prefixes.append((relation.relationship_name or part, id_getter))
                current = relation.reference_to[0] if relation.reference_to else current
            plan.append((parts, getter, prefixes))
        field_names = [self._field(sobject, p[0][0]).name if len(p[0]) == 1 else "" for p in plan]

        def project(record: dict[str, Any]) -> dict[str, Any]:
            out: dict[str, Any] = {
                "attributes": {
                    "type": sobject,
                    "url": f"/services/data/v{version}/sobjects/{sobject}/{record['Id']}",
                }
            }
            for (parts, getter, prefixes), name in zip(plan, field_names, strict=True):
                if not prefixes:
                    out[name] = _to_json(getter(record))
                    continue
                target = out
                alive = True
                for rel_name, id_getter in prefixes:
                    ref = id_getter(record)
                    if not ref:
                        target.setdefault(rel_name, None)
                        alive = False
                        break
                    child = target.get(rel_name)
                    if not isinstance(child, dict):
                        kind = self._object_of(str(ref)) or "sObject"
                        child = {
                            "attributes": {
                                "type": kind,
                                "url": f"/services/data/v{version}/sobjects/{kind}/{ref}",
                            }
                        }
                        target[rel_name] = child
                    target = child
                if alive:
                    target[parts[-1]] = _to_json(getter(record))
            return out

        return project

    def _run_query(self, soql: str, *, all_rows: bool) -> dict[str, Any]:
        query = parse_soql(soql)
        rows = self._matching(query, all_rows=all_rows)
        project = self._projector(query)
        shaped = [project(r) for r in rows]
        self.query_log.append((soql, len(shaped)))
        return self._page(shaped, 0)

    def _page(self, rows: list[dict[str, Any]], offset: int) -> dict[str, Any]:
        end = offset + self.page_size
        page: dict[str, Any] = {
            "totalSize": len(rows),
            "done": end >= len(rows),
            "records": rows[offset:end],
        }
        if end < len(rows):
            cursor = f"01g5g00000{next(self._counter):08d}"
            self._cursors[cursor] = _Cursor(rows, end)
            page["nextRecordsUrl"] = f"/services/data/v62.0/query/{cursor}-{end}"
        return page

    def _more(self, locator: str) -> dict[str, Any]:
        cursor_id, _, _ = locator.partition("-")
        cursor = self._cursors.pop(cursor_id, None)
        if cursor is None:
            raise _ApiError(400, "INVALID_QUERY_LOCATOR", "invalid query locator")
        return self._page(cursor.rows, cursor.offset)

    # sObject rows

    def _sobject(
        self, method: str, rest: str, data: Any, headers: Mapping[str, str], user_id: str
    ) -> tuple[int, Any]:
        parts = rest.strip("/").split("/")
        sobject = parts[1] if len(parts) > 1 else ""
        if sobject not in self.schema:
            raise _ApiError(404, "NOT_FOUND", f"The requested resource does not exist: {sobject}")
        if len(parts) == 3 and parts[2] == "describe" and method == "GET":
            return 200, {
                "name": sobject,
                "label": sobject,
                "custom": sobject.endswith("__c"),
                "queryable": True,
                "createable": True,
                "updateable": True,
                "fields": [f.describe() for f in self.schema[sobject].values()],
            }
        if len(parts) == 2 and method == "POST":
            record_id = self.insert(sobject, _strip(data), by=user_id)
            return 201, {"id": record_id, "success": True, "errors": []}
        if len(parts) == 3:
            record_id = parts[2]
            if method == "GET":
                record = self._live(sobject, record_id)
                return 200, {
                    "attributes": {"type": sobject},
                    **{k: _to_json(v) for k, v in record.items()},
                }
            if method == "PATCH":
                record = self._live(sobject, record_id)
                condition = headers.get("If-Unmodified-Since")
                if condition and self.honour_unmodified_since:
                    try:
                        since = email.utils.parsedate_to_datetime(str(condition))
                    except (TypeError, ValueError):
                        raise _ApiError(
                            400, "INVALID_HEADER", "If-Unmodified-Since is not a date"
                        ) from None
                    modified = record["LastModifiedDate"].replace(microsecond=0)
                    if modified > since:
                        raise _ApiError(
                            412,
                            "PRECONDITION_FAILED",
                            f"The requested resource was modified after {condition}",
                        )
                self.update(sobject, record["Id"], _strip(data), by=user_id)
                return 204, None
            if method == "DELETE":
                self.delete(sobject, record_id, by=user_id)
                return 204, None
        raise _ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    # Collections

    def _item_error(self, code: str, message: str, fields: Sequence[str] = ()) -> dict[str, Any]:
        return {
            "success": False,
            "errors": [{"statusCode": code, "message": message, "fields": list(fields)}],
        }

    def _collections(
        self, method: str, rest: str, data: Any, user_id: str
    ) -> tuple[int, Any, dict[str, str]]:
        parts = rest.strip("/").split("/")
        records = (data or {}).get("records")
        if not isinstance(records, list):
            raise _ApiError(400, "JSON_PARSER_ERROR", "records: expected a list")
        if len(records) > 200:
            raise _ApiError(
                400,
                "EXCEEDED_ID_LIMIT",
                "record limit reached. cannot submit more than 200 records into this call",
            )
        results: list[dict[str, Any]] = []
        for record in records:
            if self.locked_items > 0:
                self.locked_items -= 1
                results.append(
                    self._item_error(
                        "UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record"
                    )
                )
                continue
            sobject = str((record.get("attributes") or {}).get("type") or "")
            try:
                if method == "PATCH" and len(parts) == 4:
                    results.append(self._upsert(parts[2], parts[3], sobject, record, user_id))
                elif method == "PATCH" and len(parts) == 2:
                    record_id = str(record.get("id") or record.get("Id") or "")
                    live = self._live(sobject, record_id)
                    self.update(sobject, live["Id"], _strip(record, "id"), by=user_id)
                    results.append({"id": live["Id"], "success": True, "errors": []})
                elif method == "POST" and len(parts) == 2:
                    new_id = self.insert(sobject, _strip(record), by=user_id)
                    results.append({"id": new_id, "success": True, "errors": []})
                else:
                    raise _ApiError(404, "NOT_FOUND", "The requested resource does not exist")
            except _ApiError as exc:
                if (
                    exc.status == 404
                    and exc.code == "NOT_FOUND"
                    and method == "PATCH"
                    and len(parts) == 2
                ):
                    results.append(
                        self._item_error(
                            "INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id"
                        )
                    )
                else:
                    results.append(self._item_error(exc.code, exc.message, exc.fields))
            except SoqlError as exc:
                results.append(self._item_error(exc.code, exc.message))
        return 200, results, {}

    def _upsert(
        self, sobject: str, key_field: str, declared: str, record: Mapping[str, Any], user_id: str
    ) -> dict[str, Any]:
        if declared != sobject:
            raise _ApiError(
                400, "INVALID_TYPE", f"record type {declared!r} does not match {sobject}"
            )
        field = self._field(sobject, key_field)
        if not field.external_id:
            raise _ApiError(
                400,
                "INVALID_FIELD",
                f"Field {key_field} is not an External ID field for {sobject}",
                [key_field],
            )
        key = record.get(key_field)
        if not key:
            raise _ApiError(
                400,
                "REQUIRED_FIELD_MISSING",
                f"Required fields are missing: [{key_field}]",
                [key_field],
            )
        values = _strip(record)
        existing = self._ext_index.get((sobject, field.name), {}).get(str(key))
        if existing is not None:
            self.update(sobject, existing, values, by=user_id)
            return {"id": existing, "success": True, "errors": [], "created": False}
        new_id = self.insert(sobject, values, by=user_id)
        return {"id": new_id, "success": True, "errors": [], "created": True}

    # Composite

    def _composite(self, data: Any, user_id: str) -> dict[str, Any]:
        subrequests = (data or {}).get("compositeRequest")
        if not isinstance(subrequests, list):
            raise _ApiError(400, "JSON_PARSER_ERROR", "compositeRequest: expected a list")
        if len(subrequests) > 25:
            raise _ApiError(
                400,
                "LIMIT_EXCEEDED",
                "Maximum number of subrequests allowed in a composite request is 25",
            )
        answers = []
        for sub in subrequests:
            reference = sub.get("referenceId")
            if self.locked_items > 0 and sub.get("method") in ("PATCH", "POST"):
                self.locked_items -= 1
                answers.append(
                    {
                        "body": [
                            {
                                "errorCode": "UNABLE_TO_LOCK_ROW",
                                "message": "unable to obtain exclusive access to this record",
                            }
                        ],
                        "httpHeaders": {},
                        "httpStatusCode": 400,
                        "referenceId": reference,
                    }
                )
                continue
            url = urllib.parse.urlsplit(str(sub.get("url") or ""))
            match = _DATA.match(url.path)
            rest = (match.group(2) or "") if match else ""
            method = str(sub.get("method") or "GET").upper()
            body: Any
            try:
                if method == "GET" and rest in ("/query", "/queryAll"):
                    q = urllib.parse.parse_qs(url.query).get("q", [""])[0]
                    status, body = 200, self._run_query(q, all_rows=rest == "/queryAll")
                elif rest.startswith("/sobjects/"):
                    status, body = self._sobject(
                        method, rest, sub.get("body"), sub.get("httpHeaders") or {}, user_id
                    )
                else:
                    raise _ApiError(404, "NOT_FOUND", "The requested resource does not exist")
            except _ApiError as exc:
                status, body = exc.status, exc.body()
            except SoqlError as exc:
                status, body = 400, [{"errorCode": exc.code, "message": exc.message}]
            answers.append(
                {
                    "body": body,
                    "httpHeaders": {},
                    "httpStatusCode": status,
                    "referenceId": reference,
                }
            )
        return {"compositeResponse": answers}

    # Bulk API 2.0

    def _bulk(
        self, method: str, rest: str, query: Mapping[str, list[str]], data: Any, user_id: str
    ) -> tuple[int, Any, dict[str, str]]:
        parts = rest.strip("/").split("/")
        if method == "POST" and len(parts) == 2:
            operation = str((data or {}).get("operation") or "query")
            soql = str((data or {}).get("query") or "")
            parsed = parse_soql(soql)
            rows = self._matching(parsed, all_rows=operation == "queryAll")
            self.query_log.append((soql, len(rows)))
            getters = [self._getter(parsed.sobject, f)[0] for f in parsed.fields]
            table = [[_to_csv(g(r)) for g in getters] for r in rows]
            job_id = id18(f"7505g{next(self._counter):010d}")
            self._jobs[job_id] = _BulkJob(
                job_id, operation, parsed.sobject, parsed.fields, table, self.bulk_polls, self.now
            )
            return 200, self._job_info(self._jobs[job_id], "UploadComplete"), {}
        job = self._jobs.get(parts[2]) if len(parts) > 2 else None
        if job is None:
            raise _ApiError(404, "NOT_FOUND", "The requested resource does not exist")
        if method == "GET" and len(parts) == 3:
            job.polls_left -= 1
            state = "JobComplete" if job.polls_left <= 0 else "InProgress"
            return 200, self._job_info(job, state), {}
        if method == "GET" and len(parts) == 4 and parts[3] == "results":
            if job.polls_left > 0:
                raise _ApiError(400, "INVALIDJOBSTATE", "job is not complete")
            size = int(query.get("maxRecords", ["50000"])[0])
            offset = int(query.get("locator", ["0"])[0] or 0)
            chunk = job.rows[offset : offset + size]
            out = io.StringIO()
            writer = csv.writer(out, lineterminator="\n")
            writer.writerow(job.columns)
            writer.writerows(chunk)
            following = offset + size
            locator = str(following) if following < len(job.rows) else "null"
            return (
                200,
                out.getvalue(),
                {"Sforce-Locator": locator, "Sforce-NumberOfRecords": str(len(chunk))},
            )
        raise _ApiError(404, "NOT_FOUND", "The requested resource does not exist")

    def _job_info(self, job: _BulkJob, state: str) -> dict[str, Any]:
        return {
            "id": job.id,
            "operation": job.operation,
            "object": job.sobject,
            "createdById": self.admin_id,
            "createdDate": sf_datetime(job.created),
            "systemModstamp": sf_datetime(self.now),
            "state": state,
            "concurrencyMode": "Parallel",
            "contentType": "CSV",
            "apiVersion": 62.0,
            "lineEnding": "LF",
            "columnDelimiter": "COMMA",
            "numberRecordsProcessed": len(job.rows) if state == "JobComplete" else 0,
        }


def _sort_key(getter: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], Any]:
    """Nulls first, as SOQL sorts them in ascending order."""

    def key(record: dict[str, Any]) -> Any:
        value = getter(record)
        return (value is not None, value if value is not None else 0)

    return key


def _strip(record: Any, *more: str) -> dict[str, Any]:
    if not isinstance(record, Mapping):
        raise _ApiError(400, "JSON_PARSER_ERROR", "expected a JSON object")
    return {k: v for k, v in record.items() if k != "attributes" and k not in more}


def seed_records(fake: FakeSalesforce, rows: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """Insert ``(sobject, fields)`` pairs in order; returns their ids."""
    return [fake.insert(sobject, fields) for sobject, fields in rows]


try:  # the fixture is offered only where pytest is installed
    import pytest
except ImportError:  # pragma: no cover
    pass
else:

    @pytest.fixture
    def fake_salesforce() -> Iterator[FakeSalesforce]:
        """A fresh fake org with ``responses`` active for the test."""
        fake = FakeSalesforce()
        with fake.mock():
            yield fake
