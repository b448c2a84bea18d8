"""HubSpot's in-line adapter: ``POST /v1/hubspot/check``, a deal from a workflow webhook.

The body is a deal as a HubSpot workflow's "Send a webhook" action posts it: the legacy object
shape (``{"dealId", "properties": {"dealstage": {"value": ...}}}``), the v3 object shape
(``{"id", "properties": {"dealstage": "..."}}``) or a customised flat body
(``{"hs_object_id": ..., "dealstage": ...}``). Property values arrive as strings; dates as
epoch milliseconds or ISO text. Deal workflows carry no previous values, so a HubSpot check
judges the after-state unless the body adds a ``before`` object (same property names).
Properties are read through the package's deal field map (:func:`~.mapping.deal_fields`).

A request carries the service's bearer token, or HubSpot's v3 signature (developers.hubspot.com,
"Validating requests"): ``X-HubSpot-Signature-v3`` is
``base64(HMAC-SHA256(app secret, method + uri + body + timestamp))`` where ``uri`` is the full
URL HubSpot called (scheme, host, path, query) with the listed percent-escapes decoded and
``timestamp`` is ``X-HubSpot-Request-Timestamp`` (milliseconds since the epoch). A request
older than five minutes is refused; so is one from more than five minutes in the future, and
so is a signature seen before within the window (a replay).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final

import attrs

from tsos_rules.connectors import inline_values as v
from tsos_rules.connectors.inline import (
    Admission,
    Binding,
    CheckRequest,
    InboundRequest,
    InlineAdapter,
    Refusal,
    ServeContext,
)
from tsos_rules.errors import ChangeError, SignatureProblem
from tsos_rules.snapshot.change import RECORD_TYPES
from tsos_rules_hubspot.mapping import deal_fields
from tsos_rules_hubspot.settings import HubSpotSettings

__all__ = [
    "ADAPTER",
    "MAX_AGE_SECONDS",
    "HubSpotInline",
    "ReplayCache",
    "SignatureVerifier",
    "adapt",
    "hubspot_signature_v3",
    "hubspot_uri",
    "verify_hubspot",
]

log = logging.getLogger("tsos_rules_hubspot.inline")

Fields = dict[str, tuple[tuple[str, ...], v.Convert]]

# -- the v3 signature --------------------------------------------------------------------------

#: HubSpot's window for ``X-HubSpot-Request-Timestamp``.
MAX_AGE_SECONDS: Final = 300

#: The percent-escapes HubSpot decodes in the URI before signing (its documented table).
_DECODED: Final = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}
_ESCAPE = re.compile("|".join(_DECODED), re.IGNORECASE)


def hubspot_uri(uri: str) -> str:
    """The URI as HubSpot signs it: the documented percent-escapes decoded."""
    return _ESCAPE.sub(lambda m: _DECODED[m.group(0).upper()], uri)


def hubspot_signature_v3(secret: str, method: str, uri: str, body: bytes, timestamp: str) -> str:
    """``base64(HMAC-SHA256(secret, method + uri + body + timestamp))``, as HubSpot computes it."""
    message = method.encode() + hubspot_uri(uri).encode() + body + timestamp.encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class ReplayCache:
    """Signatures accepted within the timestamp window; bounded, oldest evicted first.

    Only entries whose window has passed are dropped (a replay of them is stale anyway); when
    the cache is full the service refuses signed requests (:meth:`full`) rather than forget a
    live signature. It lives in this process's memory.
    """

    def __init__(self, max_entries: int = 200_000) -> None:
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._max = max_entries
        self._lock = threading.Lock()

    def seen(self, signature: str, now: float) -> bool:
        with self._lock:
            self._expire(now)
            return signature in self._seen

    def full(self, now: float) -> bool:
        """True when no signature can be remembered until some expire: refuse, never forget."""
        with self._lock:
            self._expire(now)
            return len(self._seen) >= self._max

    def remember(self, signature: str, expires_at: float, now: float) -> None:
        with self._lock:
            self._expire(now)
            self._seen[signature] = expires_at

    def _expire(self, now: float) -> None:
        seen = self._seen
        while seen:
            key, expires = next(iter(seen.items()))
            if expires > now:
                break
            del seen[key]

    def __len__(self) -> int:
        return len(self._seen)


def verify_hubspot(
    *,
    secret: Any,
    method: str,
    uri: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float,
    replays: ReplayCache,
) -> float:
    """Check a v3 signature; return when it stops being replayable, or raise SignatureProblem.

    ``secret`` is the service's :class:`~tsos_rules.server.Secret` holding the app secret.
    """
    if not signature or not timestamp:
        raise SignatureProblem("missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp")
    if not timestamp.isdigit() or len(timestamp) > 15:
        raise SignatureProblem("X-HubSpot-Request-Timestamp: expected milliseconds since the epoch")
    sent = int(timestamp) / 1000
    if now - sent > MAX_AGE_SECONDS:
        raise SignatureProblem("stale request: timestamp older than 5 minutes")
    if sent - now > MAX_AGE_SECONDS:
        raise SignatureProblem("timestamp more than 5 minutes in the future")
    expected = hubspot_signature_v3(secret.reveal(), method, uri, body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise SignatureProblem("signature does not match")
    if replays.seen(expected, now):
        raise SignatureProblem("replayed request: this signature was already used")
    return sent + MAX_AGE_SECONDS


@attrs.define
class SignatureVerifier:
    """Admits a request signed with HubSpot's v3 signature, once (replays are refused)."""

    secret: Any
    clock: Callable[[], float]
    replays: ReplayCache = attrs.field(factory=ReplayCache)

    def verify(self, request: InboundRequest) -> Refusal | Admission:
        if self.secret is None:
            return Refusal(
                "no bearer token, and no HubSpot app secret is configured to check signatures"
            )
        signature = request.headers.get("x-hubspot-signature-v3")
        now = self.clock()
        try:
            replay_until = verify_hubspot(
                secret=self.secret,
                method=request.method,
                uri=request.uri,
                body=request.body,
                signature=signature,
                timestamp=request.headers.get("x-hubspot-request-timestamp"),
                now=now,
                replays=self.replays,
            )
        except SignatureProblem as exc:
            return Refusal(f"HubSpot signature refused: {exc}")
        if self.replays.full(now):
            log.error("replay cache full: signed requests are refused until entries expire")
            return Refusal(
                "too many signed requests in the last 5 minutes", status=503, code="busy"
            )
        accepted = (signature or "").strip()

        def settle(status: int) -> None:
            # A request refused by a server error got no decision: it may be retried.
            if accepted and status < 500:
                self.replays.remember(accepted, replay_until, self.clock())

        return Admission(settle)


# -- the deal adapter ----------------------------------------------------------------------------

_ENVELOPE: Final = frozenset(
    {"context", "as_of", "include_info", "before", "objectType", "associations", "portalId"}
)
_DEAL_TYPES: Final = frozenset({"deal", "deals", "0-3"})
_KNOWN: Final = frozenset(a.name for a in attrs.fields(RECORD_TYPES["opportunity"][0]))


def _percent_fraction(value: Any, where: str) -> float | None:
    number = v.number(value, where)
    return None if number is None else round(number * 100, 6)


def _ids(value: Any, where: str) -> list[str]:
    if value is None or value == "":
        return []
    if type(value) is str:
        return [part for part in value.replace(",", ";").split(";") if part]
    if type(value) is list and all(type(item) in (str, int) for item in value):
        return [str(item) for item in value]
    raise ChangeError(where, f"expected a list of ids, got {v.shown(value)}")


#: Model field -> how its webhook value converts (property names come from the field map).
_CONVERT: Final[Mapping[str, v.Convert]] = {
    "amount": v.number,
    "close_date": v.date,
    "forecast_category": v.forecast,
    "is_closed": v.boolean,
    "is_won": v.boolean,
    "probability": _percent_fraction,
    "next_step_date": v.date,
    "channel": v.picklist,
    "stage_changed_at": v.timestamp,
    "team_user_ids": _ids,
}


def webhook_fields(
    settings: HubSpotSettings | None = None, overrides: Mapping[str, str] | None = None
) -> Fields:
    """The deal field map with converters; ``[serve.hubspot.properties]`` overrides win."""
    fields: Fields = {
        ours: (names, _CONVERT.get(ours, v.text))
        for ours, names in deal_fields(settings or HubSpotSettings()).items()
    }
    for ours, theirs in (overrides or {}).items():
        fields[ours] = ((theirs,), fields[ours][1]) if ours in fields else ((theirs,), v.text)
    return fields


def _unwrap(properties: Mapping[str, Any]) -> dict[str, Any]:
    """Legacy property values are ``{"value": ..., "timestamp": ..., "versions": [...]}``."""
    return {
        name: value["value"] if type(value) is dict and "value" in value else value
        for name, value in properties.items()
    }


def _company_id(body: Mapping[str, Any]) -> str | None:
    associations = body.get("associations")
    if type(associations) is not dict:
        return None
    legacy = associations.get("associatedCompanyIds")
    if type(legacy) is list and legacy and type(legacy[0]) in (int, str):
        return str(legacy[0])
    companies = associations.get("companies")
    if type(companies) is dict:
        results = companies.get("results")
        if type(results) is list and results and type(results[0]) is dict:
            first = results[0].get("id")
            if type(first) in (int, str):
                return str(first)
    return None


@attrs.frozen
class HubSpotInline:
    """A deal from a HubSpot workflow webhook (legacy, v3 or flat body)."""

    fields: Fields = attrs.field(factory=webhook_fields)

    def _deal(self, properties: Mapping[str, Any], prefix: str) -> dict[str, Any]:
        deal, used = v.mapped(properties, self.fields, lambda name: f"{prefix}{name}")
        for name, value in properties.items():
            if name not in used and name not in _KNOWN and name not in deal:
                deal[name] = value  # kept for third-party rules, as unknown snapshot keys are
        return {key: value for key, value in deal.items() if value is not None}

    def adapt(self, body: Any) -> CheckRequest:
        """The body as a validated change; errors name the HubSpot property."""
        if type(body) is list:
            raise ChangeError(
                "body",
                "this is a batch of webhook subscription events (one property each, sent after "
                "the save); send the deal from a workflow's 'Send a webhook' action instead",
            )
        data = v.body_object(body, "body")
        object_type = data.get("objectType")
        if object_type is not None and str(object_type).lower() not in _DEAL_TYPES:
            raise ChangeError("objectType", f"only deals are judged, got {v.shown(object_type)}")
        if type(data.get("properties")) is dict:
            properties = _unwrap(data["properties"])
            prefix = "properties."
            record_id = data.get("dealId", data.get("objectId", data.get("id")))
        elif "properties" in data:
            raise ChangeError(
                "properties", f"expected an object, got {v.shown(data['properties'])}"
            )
        else:
            properties = {k: val for k, val in data.items() if k not in _ENVELOPE}
            prefix = ""
            ids = [properties.pop(key, None) for key in ("dealId", "objectId", "id")]
            record_id = next((value for value in ids if value is not None), None)
        after = self._deal(properties, prefix)
        if "id" not in after:
            if record_id is None:
                raise ChangeError(
                    f"{prefix}hs_object_id", "required field is missing (the deal id)"
                )
            after["id"] = v.text(record_id, "dealId")
        if "account_id" not in after:
            company = _company_id(data)
            if company is not None:
                after["account_id"] = company
        before = None
        if data.get("before") is not None:
            before = self._deal(_unwrap(v.body_object(data["before"], "before")), "before.")
            before.setdefault("id", after["id"])
            if "account_id" in after:
                before.setdefault("account_id", after["account_id"])
        return CheckRequest.of(
            "hubspot",
            "opportunity",
            before,
            after,
            data.get("context"),
            as_of=data.get("as_of"),
            include_info=v.include_info(data),
            name_field=lambda field: self._name(field, prefix),
        )

    def _name(self, field: str, prefix: str) -> str:
        """``after.close_date`` as the property the caller sent (``properties.closedate``)."""
        side, _, name = field.partition(".")
        if side not in ("before", "after") or name not in self.fields:
            return field
        where = "before." if side == "before" else prefix
        return f"{where}{self.fields[name][0][0]}"


def adapt(body: Any, overrides: Mapping[str, str] | None = None) -> CheckRequest:
    """One body judged with the default deal field map and ``[serve.hubspot.properties]``."""
    return HubSpotInline(webhook_fields(None, overrides)).adapt(body)


def _bind(context: ServeContext) -> Binding:
    connector = context.config.connector
    settings = (
        HubSpotSettings.from_mapping(connector) if connector.get("type") == "hubspot" else None
    )
    adapter = HubSpotInline(webhook_fields(settings, context.settings.hubspot_properties))
    verifier = SignatureVerifier(context.settings.hubspot_app_secret, context.clock)
    return Binding(adapter.adapt, verifier)


def _schemas() -> dict[str, Any]:
    nullable_date = {
        "type": ["string", "null"],
        "format": "date",
        "pattern": r"^\d{4}-\d{2}-\d{2}$",
    }
    return {
        "HubSpotDeal": {
            "type": "object",
            "description": (
                "A deal as a HubSpot workflow posts it: {dealId, properties: {name: {value}}} "
                "(legacy), {id, properties: {name: value}} (v3), or a flat customised body "
                "{hs_object_id, dealstage, ...}. Optional: context, as_of, include_info, before."
            ),
            "properties": {
                "properties": {"type": "object"},
                "dealId": {"type": ["integer", "string"]},
                "hs_object_id": {"type": ["integer", "string"]},
                "context": {"anyOf": [{"$ref": "#/components/schemas/Context"}, {"type": "null"}]},
                "as_of": nullable_date,
                "include_info": {"type": "boolean"},
                "before": {"type": ["object", "null"]},
            },
            "additionalProperties": True,
        }
    }


#: Registered by this package's plugin module: ``POST /v1/hubspot/check``.
ADAPTER: Final = InlineAdapter(
    "hubspot",
    _bind,
    summary="Judge a deal posted by a HubSpot workflow webhook.",
    operation_id="checkHubSpot",
    schemas=_schemas(),
    request_schema="HubSpotDeal",
    security_schemes={
        "hubspotSignature": {
            "type": "apiKey",
            "in": "header",
            "name": "X-HubSpot-Signature-v3",
            "description": (
                "HubSpot's v3 signature with X-HubSpot-Request-Timestamp (5-minute window)."
            ),
        }
    },
    unauthorized=(
        "Bad, stale (older than 5 minutes) or replayed HubSpot v3 signature, "
        "and no valid bearer token."
    ),
)
