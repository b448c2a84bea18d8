"""The Salesforce ``[connector]`` table, validated strictly: an unknown key is an error naming it.

Secrets are never values here, only references (``{env = "NAME"}`` or ``{file = "/path"}``)
resolved at login time by :func:`tsos_rules.config.read_secret`.
"""

from __future__ import annotations

import re

import attrs

from tsos_rules.config import SecretRef, SettingsTable
from tsos_rules.errors import ConfigError

PREFIX = "connector"


FLOWS = ("jwt", "client_credentials", "session", "password")

_HOST = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)+$")
_VERSION = re.compile(r"^\d{2}\.0$")
_API_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


def host(value: str | None, where: str) -> str | None:
    """A bare host name (``acme.my.salesforce.com``); a URL is reduced to its host."""
    if value is None:
        return None
    text = value.strip().lower()
    for scheme in ("https://", "http://"):
        if text.startswith(scheme):
            text = text[len(scheme) :]
    text = text.rstrip("/")
    if not _HOST.match(text):
        raise ConfigError(
            f"{where}: expected a host name such as acme.my.salesforce.com, got {value!r}"
        )
    return text


def api_name(value: str, where: str) -> str:
    """A Salesforce API name (object or field): letters, digits and underscores."""
    if not _API_NAME.match(value):
        raise ConfigError(f"{where}: {value!r} is not a Salesforce API name")
    return value


@attrs.frozen
class AuthSettings:
    """How to log in. ``jwt`` is the default; ``password`` is legacy (SOAP login is retiring)."""

    flow: str = "jwt"
    username: str | None = None
    consumer_key: SecretRef | None = None
    private_key: SecretRef | None = None
    consumer_secret: SecretRef | None = None
    session_id: SecretRef | None = None
    instance_url: str | None = None
    password: SecretRef | None = None
    security_token: SecretRef | None = None
    integration_user_id: str | None = None

    @classmethod
    def parse(cls, table: SettingsTable) -> AuthSettings:
        flow = table.string("flow", "jwt") or "jwt"
        if flow not in FLOWS:
            raise table.error("flow", f"expected one of {', '.join(FLOWS)}, got {flow!r}")
        settings = cls(
            flow=flow,
            username=table.string("username"),
            consumer_key=table.secret("consumer_key", plain_ok=True),
            private_key=table.secret("private_key"),
            consumer_secret=table.secret("consumer_secret"),
            session_id=table.secret("session_id"),
            instance_url=table.string("instance_url"),
            password=table.secret("password"),
            security_token=table.secret("security_token"),
            integration_user_id=table.string("integration_user_id"),
        )
        table.done()
        needs = {
            "jwt": ("username", "consumer_key", "private_key"),
            "client_credentials": ("consumer_key", "consumer_secret"),
            "session": ("session_id", "instance_url"),
            "password": ("username", "password"),
        }[flow]
        for key in needs:
            if getattr(settings, key) is None:
                raise table.error(key, f"required for flow = {flow!r}")
        allowed = set(needs) | {"flow", "integration_user_id"}
        if flow == "password":
            allowed.add("security_token")
        for key in table.data:
            if key not in allowed:
                raise table.error(key, f"not used by flow = {flow!r}")
        return settings


@attrs.frozen
class BudgetSettings:
    """How much of the org's daily API allowance a run may use."""

    max_run_share: float = 0.10
    min_remaining_share: float = 0.05

    @classmethod
    def parse(cls, table: SettingsTable) -> BudgetSettings:
        settings = cls(
            max_run_share=table.number("max_run_share", 0.10, low=0.0, high=1.0),
            min_remaining_share=table.number("min_remaining_share", 0.05, low=0.0, high=1.0),
        )
        table.done()
        return settings


@attrs.frozen
class RetrySettings:
    """Bounded retries with exponential backoff, and at most one re-login per request."""

    max_retries: int = 3
    backoff_seconds: float = 1.0
    max_backoff_seconds: float = 30.0
    max_reauth_per_run: int = 3

    @classmethod
    def parse(cls, table: SettingsTable) -> RetrySettings:
        settings = cls(
            max_retries=table.integer("max_retries", 3, low=0, high=10),
            backoff_seconds=table.number("backoff_seconds", 1.0, high=60.0),
            max_backoff_seconds=table.number("max_backoff_seconds", 30.0, high=600.0),
            max_reauth_per_run=table.integer("max_reauth_per_run", 3, low=0, high=10),
        )
        table.done()
        return settings


@attrs.frozen
class ReadSettings:
    """Incremental read tuning: when to switch to Bulk API 2.0, what related records to fetch."""

    bulk_threshold: int = 10_000
    bulk_max_records: int = 50_000
    bulk_poll_seconds: float = 2.0
    bulk_timeout_seconds: float = 900.0
    events: bool = True
    team_members: bool = False
    id_chunk_size: int = 300
    watermark_lag_seconds: int = 60
    """The window ends this long before Salesforce's clock: a save committed late (a long
    transaction, a clock tick) cannot be stamped inside a window that was already read."""

    @classmethod
    def parse(cls, table: SettingsTable) -> ReadSettings:
        settings = cls(
            bulk_threshold=table.integer("bulk_threshold", 10_000, low=0),
            bulk_max_records=table.integer("bulk_max_records", 50_000, low=1),
            bulk_poll_seconds=table.number("bulk_poll_seconds", 2.0, high=300.0),
            bulk_timeout_seconds=table.number("bulk_timeout_seconds", 900.0, high=86_400.0),
            events=table.boolean("events", True),
            team_members=table.boolean("team_members", False),
            id_chunk_size=table.integer("id_chunk_size", 300, low=1, high=700),
            watermark_lag_seconds=table.integer("watermark_lag_seconds", 60, low=0, high=3600),
        )
        table.done()
        return settings


APPROVAL_SOURCES = ("process_instance", "field")


@attrs.frozen
class ApprovalSettings:
    """Where approvals of close-date moves come from; none by default (every move unapproved).

    ``process_instance``: approved ``ProcessInstance`` rows of the deal whose ``CompletedDate``
    is within ``window_hours`` of the move (``approved_by`` = ``LastActorId``).
    ``field``: field history (``OpportunityFieldHistory``) of an Opportunity field set within
    five minutes of the move (``approved_by`` = the value set).
    """

    source: str | None = None
    window_hours: float = 72.0
    field: str | None = None

    @classmethod
    def parse(cls, table: SettingsTable) -> ApprovalSettings:
        source = table.string("source")
        if source is None or source == "none":
            table.done()
            return cls()
        if source not in APPROVAL_SOURCES:
            raise table.error(
                "source", f"expected one of none, {', '.join(APPROVAL_SOURCES)}, got {source!r}"
            )
        if source == "process_instance":
            settings = cls(
                source=source,
                window_hours=table.number("window_hours", 72.0, low=0.0, high=24.0 * 365),
            )
        else:
            field = table.string("field")
            if not field:
                raise table.error("field", "required for source = 'field'")
            settings = cls(source=source, field=api_name(field, table.path("field")))
        table.done()
        return settings


def split_rules(text: str) -> tuple[str, ...]:
    """A rules field's ids or globs: separated by ``;`` or ``,`` (a multi-select picklist's
    values come joined by ``;``); blank means every rule."""
    return tuple(part.strip() for part in re.split(r"[;,]", text) if part.strip())


@attrs.frozen
class ExemptionFieldSettings:
    """``[connector.exemptions]``: Opportunity fields holding a waiver (none by default).

    ``until_field`` (a Date: the last day the waiver holds) is required when the table is
    given; ``reason_field`` (text) and ``rules_field`` (text: rule ids or globs separated by
    ``;`` or ``,``; blank = every rule) are optional. Read only when mapped.
    """

    until_field: str | None = None
    reason_field: str | None = None
    rules_field: str | None = None

    @classmethod
    def parse(cls, table: SettingsTable) -> ExemptionFieldSettings:
        if not table.data:
            table.done()
            return cls()
        until = table.string("until_field")
        if not until:
            raise table.error("until_field", "required when [connector.exemptions] is given")

        def optional(key: str) -> str | None:
            value = (table.string(key) or "").removeprefix("Opportunity.")
            return api_name(value, table.path(key)) if value else None

        settings = cls(
            until_field=api_name(until.removeprefix("Opportunity."), table.path("until_field")),
            reason_field=optional("reason_field"),
            rules_field=optional("rules_field"),
        )
        table.done()
        return settings

    def fields(self) -> list[tuple[str, str]]:
        """``(field, mapping key)`` of every mapped field (what the SOQL adds)."""
        keys = ("until_field", "reason_field", "rules_field")
        return [(f, f"exemptions.{key}") for key in keys if (f := getattr(self, key))]


@attrs.frozen
class WriteSettings:
    """Where findings go: Tasks by default, or a custom object, keyed on an external-id field."""

    object: str = "Task"
    external_id_field: str = "Tsos_Fingerprint__c"
    subject_field: str = "Subject"
    description_field: str | None = "Description"
    owner_field: str | None = "OwnerId"
    record_field: str | None = None
    rule_field: str | None = None
    status_field: str | None = "Status"
    open_status: str = "Not Started"
    closed_status: str = "Completed"
    due_date_field: str | None = "ActivityDate"
    due_days: int = 3
    subject_prefix: str = "tsos-rules: "

    @classmethod
    def parse(cls, table: SettingsTable) -> WriteSettings:
        obj = api_name(table.string("object", "Task") or "Task", table.path("object"))
        if obj == "Event":
            raise table.error("object", "findings are written as Tasks, not Events")
        task = obj == "Task"

        def field(key: str, task_default: str | None) -> str | None:
            value = table.string(key, task_default if task else None)
            if value in (None, ""):
                return None
            return api_name(value, table.path(key))

        subject = field("subject_field", "Subject")
        settings = cls(
            object=obj,
            external_id_field=api_name(
                table.string("external_id_field", "Tsos_Fingerprint__c") or "",
                table.path("external_id_field"),
            ),
            subject_field=subject or "Name",
            description_field=field("description_field", "Description"),
            owner_field=field("owner_field", "OwnerId"),
            record_field=field("record_field", None),
            rule_field=field("rule_field", None),
            status_field=field("status_field", "Status"),
            open_status=table.string("open_status", "Not Started") or "Not Started",
            closed_status=table.string("closed_status", "Completed") or "Completed",
            due_date_field=field("due_date_field", "ActivityDate"),
            due_days=table.integer("due_days", 3, low=0, high=365),
            subject_prefix=table.string("subject_prefix", "tsos-rules: ") or "",
        )
        table.done()
        if not task and settings.record_field is None:
            raise ConfigError(
                f"{table.path('record_field')}: required when object is {obj!r} "
                "(the text or lookup field that holds the judged record's id)"
            )
        return settings
