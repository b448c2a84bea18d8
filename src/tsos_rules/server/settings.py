"""The ``[serve]`` config table, validated strictly: an unknown key or a wrong type names it.

Secrets (the bearer token, the HubSpot app secret) are never in the file, only references to
them (``{env = "NAME"}`` or ``{file = "/path"}``), resolved by
:func:`tsos_rules.config.read_secret`.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import attrs
import platformdirs

from tsos_rules.config import SettingsTable, naming_file, read_secret
from tsos_rules.errors import ConfigError

#: Field names a CRM adapter may remap, by record type (the snapshot's own field names).
MAPPABLE_TYPES: Final = ("opportunity", "lead", "account", "user", "activity", "close_date_change")


class Secret:
    """A secret value that never shows itself in a repr, a log line or an exception."""

    __slots__ = ("_digest", "_value")

    def __init__(self, value: str) -> None:
        if not value:
            raise ConfigError("a secret cannot be empty")
        self._value = value
        self._digest = hashlib.sha256(value.encode()).digest()

    def matches(self, candidate: str | bytes) -> bool:
        """Constant-time comparison (of digests, so the length does not leak either)."""
        raw = candidate.encode() if isinstance(candidate, str) else candidate
        return hmac.compare_digest(hashlib.sha256(raw).digest(), self._digest)

    def reveal(self) -> str:
        """The value itself, for the one place that needs it (an HMAC key)."""
        return self._value

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


def default_decision_log() -> Path:
    return platformdirs.user_state_path("tsos-rules") / "decisions.jsonl"


@attrs.frozen
class ServeSettings:
    """How ``tsos-rules serve`` runs. Built from ``[serve]`` by :meth:`from_mapping`."""

    token: Secret
    hubspot_app_secret: Secret | None = None
    host: str = "127.0.0.1"
    port: int = 8787
    #: The public base URL HubSpot calls (``https://rules.example.com``): the v3 signature
    #: covers the full URL, which a proxy in front of the service changes. Unset: from the request.
    public_url: str | None = None
    max_body_bytes: int = 256 * 1024
    body_timeout_seconds: float = 5.0
    keep_alive_seconds: int = 5
    #: Requests in progress at once; above it, 503 (idle connections do not count).
    max_concurrency: int = 200
    #: A connection whose request headers are not complete this long after it opened (or after
    #: the first byte of its next request) is answered 408 and closed.
    header_timeout_seconds: float = 5.0
    #: Open connections in total, and from one client address; above either, 503 and closed.
    max_connections: int = 4096
    max_connections_per_client: int = 100
    #: Bodies above this size are judged on a worker thread, so the event loop keeps serving.
    offload_body_bytes: int = 16 * 1024
    decision_log: Path = attrs.field(factory=default_decision_log)
    #: How long the exemptions added with ``tsos-rules exempt add`` are reused before the state
    #: file is read again (0: on every check).
    exemptions_refresh_seconds: float = 30.0
    decision_log_fsync: bool = False
    #: True: when a decision cannot be written to the log, /v1/check answers 503 (fail closed).
    decision_log_required: bool = True
    #: Snapshot field -> CRM field overrides, by record type.
    salesforce_fields: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    hubspot_properties: Mapping[str, str] = attrs.field(factory=dict)
    #: The HubSpot replay store (a SQLite file); several instances must share one. Unset: a
    #: file next to the decision log (see the HubSpot plugin's README).
    hubspot_replay_store: Path | None = None

    @classmethod
    def from_mapping(
        cls, data: Mapping[str, Any], *, file: str | Path | None = None
    ) -> ServeSettings:
        """Validate the ``[serve]`` table; every error names the file, ``serve`` and the key."""
        table = SettingsTable(data, "serve", file=file)
        with naming_file(file):
            return cls(**_read(table))


def _read(table: SettingsTable) -> dict[str, Any]:
    token = table.secret("token")
    if token is None:
        raise table.error(
            "token",
            'required: give env = "VARIABLE" or file = "/path" holding the bearer token callers '
            "send",
        )
    values: dict[str, Any] = {"token": Secret(read_secret(token, table.path("token")))}
    app_secret = table.secret("hubspot_app_secret")
    if app_secret is not None:
        where = table.path("hubspot_app_secret")
        values["hubspot_app_secret"] = Secret(read_secret(app_secret, where))
    if table.has("host"):
        values["host"] = table.string("host")
    if table.has("port"):
        values["port"] = table.integer("port", 0, low=0, high=65535)
    url = table.string("public_url")
    if url is not None:
        url = url.rstrip("/")
        if not url.startswith(("https://", "http://")):
            raise table.error("public_url", f"expected an http(s) URL, got {url!r}")
        values["public_url"] = url
    if table.has("max_body_bytes"):
        values["max_body_bytes"] = table.integer("max_body_bytes", 0, low=1024)
    if table.has("body_timeout_seconds"):
        seconds = table.number("body_timeout_seconds", 0.0, low=0.0, high=300.0)
        if seconds == 0:
            raise table.error("body_timeout_seconds", "expected seconds above 0, got 0")
        values["body_timeout_seconds"] = seconds
    if table.has("keep_alive_seconds"):
        values["keep_alive_seconds"] = table.integer("keep_alive_seconds", 0, low=1, high=3600)
    if table.has("max_concurrency"):
        values["max_concurrency"] = table.integer("max_concurrency", 0, low=1)
    if table.has("header_timeout_seconds"):
        seconds = table.number("header_timeout_seconds", 0.0, low=0.0, high=300.0)
        if seconds == 0:
            raise table.error("header_timeout_seconds", "expected seconds above 0, got 0")
        values["header_timeout_seconds"] = seconds
    if table.has("max_connections"):
        values["max_connections"] = table.integer("max_connections", 0, low=1, high=1_000_000)
    if table.has("max_connections_per_client"):
        values["max_connections_per_client"] = table.integer(
            "max_connections_per_client", 0, low=1, high=1_000_000
        )
    if table.has("offload_body_bytes"):
        values["offload_body_bytes"] = table.integer("offload_body_bytes", 0, low=0)
    if table.has("exemptions_refresh_seconds"):
        values["exemptions_refresh_seconds"] = table.number(
            "exemptions_refresh_seconds", 0.0, low=0.0, high=3600.0
        )
    if table.has("decision_log"):
        values["decision_log"] = Path(table.string("decision_log") or "")
    for flag in ("decision_log_fsync", "decision_log_required"):
        if table.has(flag):
            values[flag] = table.boolean(flag, False)
    salesforce = table.table("salesforce")
    fields = salesforce.table("fields")
    salesforce.done()
    if table.has("salesforce"):
        values["salesforce_fields"] = {
            record_type: _field_map(fields, record_type) for record_type in fields.data
        }
    hubspot = table.table("hubspot")
    if hubspot.has("properties"):
        values["hubspot_properties"] = _field_map(hubspot, "properties", record_type="opportunity")
    if hubspot.has("replay_store"):
        store = hubspot.string("replay_store")
        if not store:
            raise hubspot.error("replay_store", "expected a file path, got an empty string")
        values["hubspot_replay_store"] = Path(store)
    hubspot.done("properties", "replay_store")
    table.done()
    return values


def _field_map(table: SettingsTable, key: str, *, record_type: str | None = None) -> dict[str, str]:
    """``key`` of ``table``: a map of our field = the CRM's field, for one record type (``key``
    itself unless given)."""
    if record_type is None:
        if key not in MAPPABLE_TYPES:
            raise table.error(key, f"unknown record type (known: {', '.join(MAPPABLE_TYPES)})")
        known = _model_fields(key)
    else:
        known = _model_fields(record_type) | {"close_date_approved_by"}
    mapping = table.table(key)
    out: dict[str, str] = {}
    for ours in mapping.data:
        if ours not in known:
            raise mapping.error(ours, f"unknown field (known: {', '.join(sorted(known))})")
        theirs = mapping.value(ours)
        if type(theirs) is not str or not theirs:
            raise mapping.error(ours, f"expected the CRM field's name, got {theirs!r}")
        out[ours] = theirs
    return out


def _model_fields(record_type: str) -> set[str]:
    from tsos_rules.model import COLLECTIONS

    for _, singular, cls in COLLECTIONS:
        if singular == record_type:
            names = {a.name for a in attrs.fields(cls) if a.name != "extra"}
            if record_type == "opportunity":
                names |= {"close_date_approved_by", "partner_consent.by", "partner_consent.at"}
                names |= {"partner_consent.reason", "partner_consent.note"}
            return names
    raise AssertionError(record_type)
