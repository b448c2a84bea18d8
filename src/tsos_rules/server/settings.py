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

from tsos_rules.config import read_secret
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
    max_concurrency: int = 200
    decision_log: Path = attrs.field(factory=default_decision_log)
    decision_log_fsync: bool = False
    #: True: when a decision cannot be written to the log, /v1/check answers 503 (fail closed).
    decision_log_required: bool = True
    #: Snapshot field -> CRM field overrides, by record type.
    salesforce_fields: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    hubspot_properties: Mapping[str, str] = attrs.field(factory=dict)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> ServeSettings:
        """Validate the ``[serve]`` table; every error names ``serve.<key>``."""
        known = {
            "token",
            "hubspot_app_secret",
            "host",
            "port",
            "public_url",
            "max_body_bytes",
            "body_timeout_seconds",
            "keep_alive_seconds",
            "max_concurrency",
            "decision_log",
            "decision_log_fsync",
            "decision_log_required",
            "salesforce",
            "hubspot",
        }
        for key in data:
            if key not in known:
                raise ConfigError(
                    f"serve.{key}: unknown setting (known: {', '.join(sorted(known))})"
                )
        if "token" not in data:
            raise ConfigError(
                'serve.token: required: give env = "VARIABLE" or file = "/path" holding the '
                "bearer token callers send"
            )
        values: dict[str, Any] = {"token": _secret(data["token"], "serve.token")}
        if data.get("hubspot_app_secret") is not None:
            values["hubspot_app_secret"] = _secret(
                data["hubspot_app_secret"], "serve.hubspot_app_secret"
            )
        if "host" in data:
            values["host"] = _typed(data["host"], str, "serve.host")
        if "port" in data:
            values["port"] = _int(data["port"], "serve.port", 0, 65535)
        if data.get("public_url") is not None:
            url = _typed(data["public_url"], str, "serve.public_url").rstrip("/")
            if not url.startswith(("https://", "http://")):
                raise ConfigError(f"serve.public_url: expected an http(s) URL, got {url!r}")
            values["public_url"] = url
        if "max_body_bytes" in data:
            values["max_body_bytes"] = _int(data["max_body_bytes"], "serve.max_body_bytes", 1024)
        if "body_timeout_seconds" in data:
            values["body_timeout_seconds"] = _seconds(
                data["body_timeout_seconds"], "serve.body_timeout_seconds"
            )
        if "keep_alive_seconds" in data:
            values["keep_alive_seconds"] = _int(
                data["keep_alive_seconds"], "serve.keep_alive_seconds", 1, 3600
            )
        if "max_concurrency" in data:
            values["max_concurrency"] = _int(data["max_concurrency"], "serve.max_concurrency", 1)
        if "decision_log" in data:
            values["decision_log"] = Path(_typed(data["decision_log"], str, "serve.decision_log"))
        for flag in ("decision_log_fsync", "decision_log_required"):
            if flag in data:
                values[flag] = _typed(data[flag], bool, f"serve.{flag}")
        if "salesforce" in data:
            values["salesforce_fields"] = _salesforce(data["salesforce"])
        if "hubspot" in data:
            values["hubspot_properties"] = _hubspot(data["hubspot"])
        return cls(**values)


def _secret(reference: Any, where: str) -> Secret:
    if not isinstance(reference, Mapping):
        raise ConfigError(
            f'{where}: give env = "VARIABLE" or file = "/path", not the secret itself'
        )
    return Secret(read_secret(reference, where))


def _typed(value: Any, kind: type[Any], where: str) -> Any:
    if type(value) is not kind:
        raise ConfigError(f"{where}: expected {kind.__name__}, got {value!r}")
    return value


def _int(value: Any, where: str, low: int, high: int | None = None) -> int:
    if type(value) is not int or value < low or (high is not None and value > high):
        bounds = f"{low} to {high}" if high is not None else f"at least {low}"
        raise ConfigError(f"{where}: expected a whole number {bounds}, got {value!r}")
    return value


def _seconds(value: Any, where: str) -> float:
    if type(value) not in (int, float) or not 0 < value <= 300:
        raise ConfigError(f"{where}: expected seconds between 0 and 300, got {value!r}")
    return float(value)


def _salesforce(table: Any) -> dict[str, dict[str, str]]:
    if not isinstance(table, Mapping):
        raise ConfigError("serve.salesforce: expected a table")
    for key in table:
        if key != "fields":
            raise ConfigError(f"serve.salesforce.{key}: unknown setting (known: fields)")
    fields = table.get("fields", {})
    if not isinstance(fields, Mapping):
        raise ConfigError("serve.salesforce.fields: expected a table of record type tables")
    out: dict[str, dict[str, str]] = {}
    for record_type, mapping in fields.items():
        where = f"serve.salesforce.fields.{record_type}"
        if record_type not in MAPPABLE_TYPES:
            raise ConfigError(f"{where}: unknown record type (known: {', '.join(MAPPABLE_TYPES)})")
        out[record_type] = _field_map(mapping, where, _model_fields(record_type))
    return out


def _hubspot(table: Any) -> dict[str, str]:
    if not isinstance(table, Mapping):
        raise ConfigError("serve.hubspot: expected a table")
    for key in table:
        if key != "properties":
            raise ConfigError(f"serve.hubspot.{key}: unknown setting (known: properties)")
    known = _model_fields("opportunity") | {"close_date_approved_by"}
    return _field_map(table.get("properties", {}), "serve.hubspot.properties", known)


def _field_map(mapping: Any, where: str, known: set[str]) -> dict[str, str]:
    if not isinstance(mapping, Mapping):
        raise ConfigError(f"{where}: expected a table of field = CRM field")
    out: dict[str, str] = {}
    for ours, theirs in mapping.items():
        if ours not in known:
            raise ConfigError(f"{where}.{ours}: unknown field (known: {', '.join(sorted(known))})")
        if type(theirs) is not str or not theirs:
            raise ConfigError(f"{where}.{ours}: expected the CRM field's name, got {theirs!r}")
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
