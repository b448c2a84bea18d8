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
so is a signature seen before within the window (a replay), by this process or any other that
shares the replay store (:mod:`tsos_rules_hubspot.replays`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Mapping
from pathlib import Path
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
from tsos_rules_hubspot.replays import ReplayCache, Replays, ReplayStore, ReplayStoreError
from tsos_rules_hubspot.settings import HubSpotSettings

__all__ = [
    "ADAPTER",
    "MAX_AGE_SECONDS",
    "REPLAY_STORE_NAME",
    "HubSpotInline",
    "ReplayCache",
    "ReplayStore",
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

#: The replay store's file name next to the decision log (``[serve.hubspot] replay_store``).
REPLAY_STORE_NAME: Final = "hubspot-replays.sqlite3"

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


def verify_hubspot(
    *,
    secret: Any,
    method: str,
    uri: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float,
) -> tuple[str, float]:
    """Check a v3 signature; return it (canonical) and when it stops being replayable, or raise
    SignatureProblem. Whether it was used before is the :class:`Replays` store's to say.

    ``secret`` is the service's :class:`~tsos_rules.server.Secret` holding the app secret.
    """
    if not signature or not timestamp:
        raise SignatureProblem("missing X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp")
    # isascii: "²" and other Unicode digits pass isdigit() and fail int().
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > 15:
        raise SignatureProblem("X-HubSpot-Request-Timestamp: expected milliseconds since the epoch")
    sent = int(timestamp) / 1000
    if now - sent > MAX_AGE_SECONDS:
        raise SignatureProblem("stale request: timestamp older than 5 minutes")
    if sent - now > MAX_AGE_SECONDS:
        raise SignatureProblem("timestamp more than 5 minutes in the future")
    expected = hubspot_signature_v3(secret.reveal(), method, uri, body, timestamp)
    if not hmac.compare_digest(expected.encode(), signature.strip().encode()):
        raise SignatureProblem("signature does not match")
    return expected, sent + MAX_AGE_SECONDS


@attrs.define
class SignatureVerifier:
    """Admits a request signed with HubSpot's v3 signature, once (replays are refused).

    The signature is claimed in ``replays`` when the request is admitted (atomically: of two
    identical requests exactly one is admitted) and released again when its answer is a server
    error, so HubSpot's retry of a request that got no decision is not taken for a replay.
    """

    secret: Any
    clock: Callable[[], float]
    replays: Replays = attrs.field(factory=ReplayCache)

    def verify(self, request: InboundRequest) -> Refusal | Admission:
        if self.secret is None:
            return Refusal(
                "no bearer token, and no HubSpot app secret is configured to check signatures"
            )
        now = self.clock()
        try:
            signature, replay_until = verify_hubspot(
                secret=self.secret,
                method=request.method,
                uri=request.uri,
                body=request.body,
                signature=request.headers.get("x-hubspot-signature-v3"),
                timestamp=request.headers.get("x-hubspot-request-timestamp"),
                now=now,
            )
        except SignatureProblem as exc:
            return Refusal(f"HubSpot signature refused: {exc}")
        try:
            fresh = self.replays.claim(signature, replay_until, now)
        except ReplayStoreError as exc:
            log.error("signed request refused: the replay store failed: %s", exc)
            return Refusal(
                "signed requests cannot be checked for replays now; retry later",
                status=503,
                code="replay_store_unavailable",
            )
        if not fresh:
            return Refusal(
                "HubSpot signature refused: replayed request: this signature was already used"
            )

        def settle(status: int) -> None:
            if status >= 500:  # no decision was given: HubSpot's retry must be admitted
                try:
                    self.replays.release(signature)
                except ReplayStoreError as exc:
                    log.error("the replay store could not release a signature: %s", exc)

        return Admission(settle)


def replay_store_for(settings: Any) -> Replays:
    """The ``[serve.hubspot] replay_store`` file; unset, a file next to the decision log.

    A decision log that is not a file in a directory (``/dev/stdout``) leaves only this
    process's memory, which holds across neither restarts nor instances: that is logged.
    """
    path = getattr(settings, "hubspot_replay_store", None)
    if path is None:
        log_path = getattr(settings, "decision_log", None)
        if log_path is None or _special(Path(log_path)):
            log.warning(
                "HubSpot replay protection is per process (in memory): set "
                "[serve.hubspot] replay_store to a file every instance shares"
            )
            return ReplayCache()
        path = Path(log_path).parent / REPLAY_STORE_NAME
    return ReplayStore(Path(path))


def _special(path: Path) -> bool:
    """A device or other non-regular file (``/dev/stdout``, ``/dev/full``), not a log file."""
    if path.parent == Path("/dev"):
        return True
    return path.exists() and not path.is_file()


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
    replays = replay_store_for(context.settings)
    verifier = SignatureVerifier(context.settings.hubspot_app_secret, context.clock, replays)
    close = replays.close if isinstance(replays, ReplayStore) else None
    return Binding(adapter.adapt, verifier, close=close)


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
