"""The Salesforce connector: settings, the protocol methods, and the org check against describe().

``SalesforceConnector.from_settings(table)`` is the factory registered under the name
``salesforce``; ``table`` is the raw ``[connector]`` config table, validated strictly here.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs
import requests

from tsos_rules.config import SettingsTable
from tsos_rules.connectors.base import (
    Action,
    ActionResult,
    Capabilities,
    Problem,
    ReadResult,
)
from tsos_rules.connectors.salesforce.auth import Authenticator
from tsos_rules.connectors.salesforce.client import SalesforceClient
from tsos_rules.connectors.salesforce.faults import Redactor
from tsos_rules.connectors.salesforce.linked import stream_where
from tsos_rules.connectors.salesforce.mapping import CATALOGUE, FieldMapping
from tsos_rules.connectors.salesforce.orgfit import (
    OPTIONAL_FIELDS,
    OPTIONAL_OBJECTS,
    OrgFit,
    fit_to_org,
    objects_to_describe,
)
from tsos_rules.connectors.salesforce.paging import PagedReader
from tsos_rules.connectors.salesforce.reader import Reader
from tsos_rules.connectors.salesforce.settings import (
    ApprovalSettings,
    AuthSettings,
    BudgetSettings,
    ExemptionFieldSettings,
    ReadSettings,
    RetrySettings,
    WriteSettings,
    host,
)
from tsos_rules.connectors.salesforce.stream import stream_records
from tsos_rules.connectors.salesforce.writer import Writer
from tsos_rules.errors import ConfigError

log = logging.getLogger("tsos_rules.connectors.salesforce")

DEFAULT_API_VERSION = "62.0"

#: The describe() types each kind of doctrine field can be read from.
FIELD_TYPES: dict[str, tuple[str, ...]] = {
    "str": ("string", "textarea", "picklist", "combobox", "email", "phone", "url", "id"),
    "enum": ("picklist", "string", "combobox", "multipicklist"),
    "id": ("reference", "id", "string"),
    "date": ("date", "datetime"),
    "datetime": ("datetime", "date"),
    "number": ("double", "currency", "percent", "int", "long"),
    "int": ("int", "double", "long"),
    "bool": ("boolean",),
}


@attrs.frozen
class SalesforceSettings:
    """Everything the ``[connector]`` table says, validated."""

    auth: AuthSettings
    api_version: str = DEFAULT_API_VERSION
    sandbox: bool = False
    my_domain: str | None = None
    timeout_seconds: float = 60.0
    budget: BudgetSettings = attrs.field(factory=BudgetSettings)
    retry: RetrySettings = attrs.field(factory=RetrySettings)
    read: ReadSettings = attrs.field(factory=ReadSettings)
    write: WriteSettings = attrs.field(factory=WriteSettings)
    approvals: ApprovalSettings = attrs.field(factory=ApprovalSettings)
    exemptions: ExemptionFieldSettings = attrs.field(factory=ExemptionFieldSettings)
    mapping: FieldMapping = attrs.field(factory=FieldMapping)

    @classmethod
    def parse(cls, data: Mapping[str, Any], where: str = "connector") -> SalesforceSettings:
        table = SettingsTable(data, where)
        kind = table.string("type", "salesforce")
        if kind != "salesforce":
            raise ConfigError(f"{table.path('type')}: expected 'salesforce', got {kind!r}")
        version = table.string("api_version", DEFAULT_API_VERSION) or DEFAULT_API_VERSION
        version = version.removeprefix("v")
        try:
            major = float(version)
        except ValueError:
            major = 0.0
        if not version.endswith(".0") or not 47.0 <= major < 100.0:
            raise ConfigError(
                f"{table.path('api_version')}: expected a version such as '62.0' (47.0 or later "
                f"for Bulk API 2.0 queries), got {version!r}"
            )
        settings = cls(
            api_version=version,
            sandbox=table.boolean("sandbox", False),
            my_domain=host(table.string("my_domain"), table.path("my_domain")),
            timeout_seconds=table.number("timeout_seconds", 60.0, low=1.0, high=600.0),
            auth=AuthSettings.parse(table.table("auth")),
            budget=BudgetSettings.parse(table.table("budget")),
            retry=RetrySettings.parse(table.table("retry")),
            read=ReadSettings.parse(table.table("read")),
            write=WriteSettings.parse(table.table("write")),
            approvals=ApprovalSettings.parse(table.table("approvals")),
            exemptions=ExemptionFieldSettings.parse(table.table("exemptions")),
            mapping=FieldMapping.parse(
                table.table("fields"),
                table.table("stages"),
                table.table("lead_statuses"),
                table.table("values"),
                table.table("extra_fields"),
                table.table("users"),
            ),
        )
        table.done()
        return settings


class _RedactingFilter(logging.Filter):
    """Last line of defence: a secret that reaches a log record of ours is masked."""

    def __init__(self, redact: Redactor) -> None:
        super().__init__()
        self.redact = redact

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = self.redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, ()
        return True


#: Our record types as Salesforce objects, for Lightning record links.
_LIGHTNING_OBJECTS = {"opportunity": "Opportunity", "account": "Account", "lead": "Lead"}
#: An activity is a Task (id prefix 00T) or an Event (00U).
_ACTIVITY_PREFIXES = {"00T": "Task", "00U": "Event"}


class SalesforceConnector:
    """Reads an org incrementally and writes findings back, within the API budget."""

    name = "salesforce"

    def __init__(
        self,
        settings: SalesforceSettings,
        *,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.redact = Redactor()
        self._own_session = session is None
        self.http = session or requests.Session()
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self._filter = _RedactingFilter(self.redact)
        log.addFilter(self._filter)
        self.auth = Authenticator(
            settings.auth,
            session=self.http,
            api_version=settings.api_version,
            sandbox=settings.sandbox,
            my_domain=settings.my_domain,
            timeout=settings.timeout_seconds,
            redact=self.redact,
        )
        self.client = SalesforceClient(
            self.auth,
            session=self.http,
            api_version=settings.api_version,
            timeout=settings.timeout_seconds,
            retry=settings.retry,
            budget=settings.budget,
            read=settings.read,
            redact=self.redact,
            sleep=sleep,
            now=self._now,
        )
        self.reader = Reader(
            self.client,
            settings.mapping,
            settings.read,
            settings.write,
            now=self._now,
            approvals=settings.approvals,
            exemptions=settings.exemptions,
        )
        self._fit: OrgFit | None = None
        self.writer = Writer(
            self.client,
            settings.mapping,
            settings.write,
            today=lambda: self._now().astimezone(dt.UTC).date(),
            activity_what=lambda: self.reader.activity_what,
        )

    @classmethod
    def from_settings(cls, table: Mapping[str, Any], **kwargs: Any) -> SalesforceConnector:
        """The factory registered as ``salesforce``: validates the ``[connector]`` table."""
        return cls(SalesforceSettings.parse(table), **kwargs)

    def capabilities(self) -> Capabilities:
        return Capabilities(
            incremental=True,
            tasks=True,
            field_updates=True,
            conditional_updates=True,
            idempotent_upsert=True,
            # Actions per write() call: a multiple of 200 (Collections) and 25 (Composite),
            # so splitting a plan into calls costs no extra API call.
            max_batch=2000,
        )

    def read(self, since: str | None, *, until: dt.datetime | None = None) -> ReadResult:
        self.fit_to_org()
        return self.reader.read(since, until)

    def read_batches(
        self, since: str | None, *, until: dt.datetime | None = None, batch_size: int = 1000
    ) -> Iterator[ReadResult]:
        """``read`` in pages of ``batch_size`` company groups (see ``salesforce/paging.py``):
        a key pass over ids and grouping keys, then each page read by id, so a full sync
        never holds the whole org."""
        if batch_size < 1:
            raise ConfigError(f"sync.batch_size: expected 1 or more, got {batch_size}")
        self.fit_to_org()
        yield from PagedReader(self.reader).batches(since, until, batch_size)

    def read_where(
        self, record_type: str, field: str, values: Collection[str], *, batch_size: int = 1000
    ) -> Iterator[ReadResult]:
        """The records of ``record_type`` whose ``field`` holds one of ``values`` (a
        partner's deals, when a total moved), judged as ``affected`` in pages of
        ``batch_size`` whole companies with everything their facts read (``paging.py``)."""
        if batch_size < 1:
            raise ConfigError(f"sync.batch_size: expected 1 or more, got {batch_size}")
        self.fit_to_org()
        yield from PagedReader(self.reader).where(record_type, field, values, batch_size)

    def stream_where(
        self, record_type: str, field: str, values: Collection[str], *, page_size: int = 5000
    ) -> Iterator[ReadResult]:
        """The records of ``record_type`` whose ``field`` holds one of ``values``, judged (as
        ``affected``) with only their accounts, owners, team and partners, ``page_size`` a
        result: one filter query of the records, no company groups (``linked.py``)."""
        self.fit_to_org()
        yield from stream_where(self.reader, record_type, field, values, page_size)

    def stream_records(self, record_type: str, *, page_size: int = 5000) -> Iterator[ReadResult]:
        """Every current record of ``record_type`` alone, ``page_size`` a result: one query
        of the object's own fields, REST or Bulk API 2.0 pages (``stream.py``)."""
        self.fit_to_org()
        yield from stream_records(self.reader, record_type, page_size)

    def fit_to_org(self) -> OrgFit:
        """Describe the org once per connector (one Composite call) before the first read:
        optional fields and objects it lacks are left out of the SOQL, each named once in a
        warning; a required field it lacks fails here, naming the mapping key."""
        if self._fit is None:
            settings = self.settings
            described = self.describe(objects_to_describe(settings.read))
            fit = fit_to_org(
                settings.mapping,
                settings.read,
                settings.approvals,
                described,
                exemptions=settings.exemptions,
            )
            for part, lost in fit.left_out:
                log.warning("Salesforce: %s is not in this org, read without it (%s)", part, lost)
            self.reader.mapping = fit.mapping
            self.reader.settings = fit.read
            self._fit = fit
        return self._fit

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        if not actions:
            return []
        return self.writer.write(actions)

    def record_url(self, record_type: str, record_id: str) -> str | None:
        """The record's Lightning Experience page, ``<instance>/lightning/r/<Object>/<id>/view``
        (None before a login, or for an activity id that is neither a Task nor an Event)."""
        session = self.auth.current
        if session is None or not record_id:
            return None
        sobject = _LIGHTNING_OBJECTS.get(record_type)
        if record_type == "activity":
            sobject = _ACTIVITY_PREFIXES.get(record_id[:3])
        if sobject is None:
            return None
        return f"{session.instance_url}/lightning/r/{sobject}/{record_id}/view"

    def close(self) -> None:
        log.removeFilter(self._filter)
        if self._own_session:
            self.http.close()

    @property
    def api_calls(self) -> int:
        """API calls this connector made (logins not counted: they use no API allowance)."""
        return self.client.budget.run_calls

    # -- connectors check ----------------------------------------------------------------------

    def describe(self, sobjects: Iterable[str]) -> dict[str, dict[str, Any] | None]:
        """``describe()`` of each object in one Composite call (None for an unknown object)."""
        names = list(dict.fromkeys(sobjects))
        out: dict[str, dict[str, Any] | None] = {}
        version = self.settings.api_version
        for offset in range(0, len(names), 25):
            chunk = names[offset : offset + 25]
            body = {
                "allOrNone": False,
                "compositeRequest": [
                    {
                        "method": "GET",
                        "url": f"/services/data/v{version}/sobjects/{name}/describe",
                        "referenceId": f"d{i}",
                    }
                    for i, name in enumerate(chunk)
                ],
            }
            response = self.client.request(
                "POST", "composite", what="describe", kind="describe", json_body=body
            )
            answers = {
                a.get("referenceId"): a
                for a in response.json().get("compositeResponse", [])
                if isinstance(a, dict)
            }
            for i, name in enumerate(chunk):
                answer = answers.get(f"d{i}") or {}
                ok = answer.get("httpStatusCode") == 200 and isinstance(answer.get("body"), dict)
                out[name] = answer["body"] if ok else None
        return out

    def check(self, ladder: Sequence[str] = ()) -> list[Problem]:
        """Validate the mapping against the org: every field present with a usable type."""
        settings = self.settings
        mapping = settings.mapping
        objects = ["Opportunity", "Account", "Lead", "User", "Task", "OpportunityHistory"]
        if settings.read.events:
            objects.append("Event")
        if settings.read.team_members:
            objects.append("OpportunityTeamMember")
        if settings.approvals.source == "process_instance":
            objects.append("ProcessInstance")
        elif settings.approvals.source == "field":
            objects.append("OpportunityFieldHistory")
        objects.append(settings.write.object)
        described = self.describe(objects)
        problems: list[Problem] = []
        fields: dict[str, dict[str, dict[str, Any]]] = {}
        for name, info in described.items():
            if info is None and name in OPTIONAL_OBJECTS:
                problems.append(
                    Problem("warning", name, f"not in this org: {OPTIONAL_OBJECTS[name]}")
                )
                continue
            if info is None:
                problems.append(Problem("error", name, "object not found or not readable"))
                continue
            fields[name] = {f["name"]: f for f in info.get("fields", []) if isinstance(f, dict)}

        def need(sobject: str, field: str, kinds: Sequence[str], key: str) -> dict[str, Any] | None:
            if sobject not in fields:
                return None
            info = fields[sobject].get(field)
            where = f"{sobject}.{field}"
            spec = CATALOGUE.get(key)
            if info is None and key in OPTIONAL_FIELDS and spec and field == spec.default:
                problems.append(
                    Problem("warning", where, f"not in this org: {OPTIONAL_FIELDS[key]}")
                )
                return None
            if info is None:
                hint = f' (mapping {key}; switch it off with {key} = "")' if key else ""
                problems.append(Problem("error", where, f"field not found{hint}"))
                return None
            if kinds and info.get("type") not in kinds:
                expected = " or ".join(kinds)
                problems.append(
                    Problem(
                        "error",
                        where,
                        f"is a {info.get('type')} field, expected {expected}"
                        + (f" (mapping {key})" if key else ""),
                    )
                )
            return info

        for key, spec in CATALOGUE.items():
            field = mapping.sf(key)
            if not field:
                continue
            sobjects = (
                ["Task", "Event"]
                if spec.sobject == "Task" and settings.read.events
                else [spec.sobject]
            )
            for sobject in sobjects:
                need(sobject, field, FIELD_TYPES[spec.kind], key)
        for record, sobject in (("opportunity", "Opportunity"), ("lead", "Lead")):
            field = mapping.sf(f"{record}.account_id") or ""
            info = fields.get(sobject, {}).get(field)
            if info is not None and "Account" not in (info.get("referenceTo") or []):
                # accounts are read as the parent fields of this lookup
                problems.append(
                    Problem("error", f"{sobject}.{field}", "must be a lookup to Account")
                )
        for record, names in mapping.extra_fields.items():
            sobject = {
                "opportunity": "Opportunity",
                "account": "Account",
                "partner": "Account",
                "lead": "Lead",
                "user": "User",
                "activity": "Task",
            }[record]
            for name in names:
                need(sobject, name, (), f"extra_fields.{record}")
        users = mapping.users
        if users.by == "field" and users.field:
            need("User", users.field, (), "users.field")
        if settings.approvals.source == "field" and settings.approvals.field:
            need("Opportunity", settings.approvals.field, (), "approvals.field")
        exempt_kinds = {
            "exemptions.until_field": ("date",),
            "exemptions.reason_field": ("string", "textarea", "picklist"),
            "exemptions.rules_field": ("string", "textarea", "picklist", "multipicklist"),
        }
        for field, key in settings.exemptions.fields():
            need("Opportunity", field, exempt_kinds[key], key)
        if "User" in fields and "UserType" not in fields["User"]:
            problems.append(Problem("error", "User.UserType", "not found"))
        write = settings.write
        key_info = need(
            write.object, write.external_id_field, ("string",), "write.external_id_field"
        )
        if key_info is not None:
            if not key_info.get("externalId"):
                problems.append(
                    Problem(
                        "error",
                        f"{write.object}.{write.external_id_field}",
                        "must be marked External ID",
                    )
                )
            if not key_info.get("unique"):
                problems.append(
                    Problem(
                        "error",
                        f"{write.object}.{write.external_id_field}",
                        "must be Unique, or a re-run could create a second task for a finding",
                    )
                )
            if int(key_info.get("length") or 0) < 32:
                problems.append(
                    Problem(
                        "error",
                        f"{write.object}.{write.external_id_field}",
                        "must hold at least 32 characters (finding fingerprints)",
                    )
                )
        for label, field in (
            ("write.subject_field", write.subject_field),
            ("write.description_field", write.description_field),
            ("write.owner_field", write.owner_field),
            ("write.record_field", write.record_field),
            ("write.rule_field", write.rule_field),
            ("write.status_field", write.status_field),
            ("write.due_date_field", write.due_date_field),
        ):
            if field:
                need(write.object, field, (), label)
        stage_field = mapping.sf("opportunity.stage")
        stage_info = fields.get("Opportunity", {}).get(stage_field or "")
        if ladder:
            for raw, stage in sorted(mapping.stages.items()):
                if stage not in ladder:
                    problems.append(
                        Problem("error", f"stages.{raw!r}", f"{stage!r} is not on org.stage_ladder")
                    )
        if stage_info is not None:
            values = [
                str(v.get("value"))
                for v in stage_info.get("picklistValues") or []
                if isinstance(v, dict) and v.get("active", True)
            ]
            for value in values:
                if value not in mapping.stages and (not ladder or value not in ladder):
                    problems.append(
                        Problem(
                            "warning",
                            f"Opportunity.{stage_field}",
                            f"stage {value!r} is not mapped onto the ladder ([connector.stages])",
                        )
                    )
        if not (users.direct or users.channel):
            problems.append(
                Problem(
                    "warning",
                    "users",
                    "no direct/channel rule: every internal user is "
                    f"{users.unmatched.value!r} ([connector.users] by, direct, channel)",
                )
            )
        return problems
