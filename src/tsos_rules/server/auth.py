"""Authentication: a bearer token compared in constant time, and HubSpot's v3 request signature.

HubSpot v3 (developers.hubspot.com, "Validating requests"): the ``X-HubSpot-Signature-v3``
header is ``base64(HMAC-SHA256(app secret, method + uri + body + timestamp))`` where ``uri`` is
the full URL HubSpot called (scheme, host, path, query) with the listed percent-escapes decoded
and ``timestamp`` is the ``X-HubSpot-Request-Timestamp`` header (milliseconds since the epoch).
A request older than five minutes is refused; so is one from more than five minutes in the
future (a clock that far off is not a clock we can trust), and so is a signature seen before
within the window (a replay).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import threading
from collections import OrderedDict
from typing import Final

from tsos_rules.errors import SignatureProblem as SignatureProblem
from tsos_rules.server.settings import Secret

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


def bearer_ok(authorization: str | None, token: Secret) -> bool:
    """True when the ``Authorization`` header is ``Bearer <token>`` (constant-time compare)."""
    if not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return token.matches(value.strip())


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
    live signature.
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
    secret: Secret,
    method: str,
    uri: str,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    now: float,
    replays: ReplayCache,
) -> float:
    """Check a v3 signature; return when it stops being replayable, or raise SignatureProblem."""
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
