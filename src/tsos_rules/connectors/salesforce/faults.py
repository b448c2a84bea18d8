"""Every Salesforce and HTTP failure mapped onto the project's error types, in this one place.

The client asks :func:`classify_response` or :func:`classify_exception` what a failure means
(retry it, re-authenticate, refuse as stale, or stop) and raises :meth:`Fault.error` when it
gives up. Messages name the call and Salesforce's error code, and pass through :class:`Redactor`
so that no token, key or password can reach a log line or an exception.
"""

from __future__ import annotations

import enum
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import requests

from tsos_rules.errors import ConnectorError, FatalConnectorError, RetriableConnectorError

#: Error codes worth retrying after a pause (whole requests or single items).
RETRY_CODES = frozenset(
    {
        "UNABLE_TO_LOCK_ROW",
        "REQUEST_LIMIT_EXCEEDED",
        "SERVER_UNAVAILABLE",
        "QUERY_TIMEOUT",
        "TXN_SECURITY_METERING_ERROR",
    }
)

#: Error codes that mean the session is gone and a new login may help (once).
REAUTH_CODES = frozenset({"INVALID_SESSION_ID", "INVALID_AUTH_HEADER"})

#: Error codes that mean the org and the mapping disagree: fix config, do not retry.
SCHEMA_CODES = frozenset(
    {"INVALID_FIELD", "INVALID_TYPE", "MALFORMED_QUERY", "INVALID_QUERY_FILTER_OPERATOR"}
)


class FaultKind(enum.Enum):
    RETRY = "retry"
    REAUTH = "reauth"
    STALE = "stale"
    FATAL = "fatal"


class Redactor:
    """Removes known secret values from text before it is logged or raised."""

    def __init__(self) -> None:
        self._secrets: set[str] = set()

    def add(self, *values: str | None) -> None:
        for value in values:
            if value and len(value) >= 4:
                self._secrets.add(value)
                # A PEM key may be echoed line by line; hide each substantial line too.
                for line in value.splitlines():
                    if len(line.strip()) >= 16:
                        self._secrets.add(line.strip())

    def __call__(self, text: str) -> str:
        for secret in sorted(self._secrets, key=len, reverse=True):
            if secret in text:
                text = text.replace(secret, "[redacted]")
        return text


@attrs.frozen
class Fault:
    """What one failed call means, and the words to report it with."""

    kind: FaultKind
    code: str
    message: str
    status: int | None = None
    retry_after: float | None = None

    def error(self, what: str, redact: Redactor | None = None, attempts: int = 1) -> ConnectorError:
        """The project error for this fault once the client has given up on ``what``."""
        tried = f" after {attempts} attempts" if attempts > 1 else ""
        status = f"HTTP {self.status} " if self.status is not None else ""
        text = f"Salesforce {what} failed{tried}: {status}{self.code}: {self.message}"
        if self.code in SCHEMA_CODES:
            text += " (check the field mapping: tsos-rules connectors check salesforce)"
        if redact is not None:
            text = redact(text)
        if self.kind is FaultKind.RETRY:
            return RetriableConnectorError(text)
        return FatalConnectorError(text)


def error_entries(body: Any) -> list[dict[str, Any]]:
    """Salesforce error bodies as a list of dicts, whatever shape they came in.

    REST errors are ``[{"errorCode", "message", "fields"}]``; Collections items say
    ``statusCode`` instead of ``errorCode``; OAuth says ``{"error", "error_description"}``.
    """
    if isinstance(body, list):
        return [entry for entry in body if isinstance(entry, dict)]
    if isinstance(body, dict):
        if "error" in body:
            return [{"errorCode": body.get("error"), "message": body.get("error_description")}]
        if "errorCode" in body or "statusCode" in body:
            return [body]
    return []


def first_code(entries: Iterable[Mapping[str, Any]]) -> tuple[str, str, list[str]]:
    """The first entry's code, message and fields (empty strings when absent)."""
    for entry in entries:
        code = entry.get("errorCode") or entry.get("statusCode") or ""
        fields = entry.get("fields") or []
        return str(code), str(entry.get("message") or ""), [str(f) for f in fields]
    return "", "", []


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def classify_response(response: requests.Response) -> Fault:
    """The meaning of a non-success HTTP response from any Salesforce endpoint."""
    status = response.status_code
    try:
        body: Any = response.json()
    except (ValueError, json.JSONDecodeError):
        body = None
    code, message, _ = first_code(error_entries(body))
    if not code:
        code = {401: "UNAUTHORIZED", 404: "NOT_FOUND", 412: "PRECONDITION_FAILED"}.get(
            status, f"HTTP_{status}"
        )
    if not message:
        message = (response.text or response.reason or "").strip()[:300] or "no message"
    message = " ".join(message.split())
    retry_after = _retry_after(response)
    if status == 401 or code in REAUTH_CODES:
        return Fault(FaultKind.REAUTH, code, message, status)
    if status == 412:
        return Fault(FaultKind.STALE, code, message, status)
    if code == "REQUEST_LIMIT_EXCEEDED" and "totalrequests" in message.replace(" ", "").lower():
        # The org's daily allowance is spent: waiting seconds will not help.
        return Fault(FaultKind.FATAL, code, message, status)
    if code in RETRY_CODES or status == 429 or status >= 500:
        return Fault(FaultKind.RETRY, code, message, status, retry_after)
    return Fault(FaultKind.FATAL, code, message, status)


def classify_exception(exc: BaseException) -> Fault:
    """The meaning of a transport failure (no HTTP response at all)."""
    name = type(exc).__name__
    if isinstance(exc, requests.Timeout):
        return Fault(FaultKind.RETRY, "TIMEOUT", f"no answer in time ({name})")
    if isinstance(exc, requests.ConnectionError):
        return Fault(FaultKind.RETRY, "CONNECTION_ERROR", f"could not connect ({name})")
    return Fault(FaultKind.FATAL, "TRANSPORT_ERROR", f"{name}: {exc}")


def item_fault(entries: Iterable[Mapping[str, Any]], status: int | None = None) -> Fault:
    """The meaning of one failed item of a Collections or Composite request."""
    code, message, fields = first_code(entries)
    if fields:
        message = f"{message} (fields: {', '.join(fields)})"
    message = " ".join(message.split())
    if status == 412:
        return Fault(FaultKind.STALE, code or "PRECONDITION_FAILED", message, status)
    if code in RETRY_CODES:
        return Fault(FaultKind.RETRY, code, message, status)
    if status == 401 or code in REAUTH_CODES:
        return Fault(FaultKind.REAUTH, code, message, status)
    return Fault(FaultKind.FATAL, code or f"HTTP_{status}", message, status)


#: Login answers worth trying again: rate limited (429) or the login service briefly down.
TRANSIENT_LOGIN_STATUSES = frozenset({429, 500, 502, 503, 504})
_SOAP_FAULT_CODE = re.compile(rb"<faultcode>(?:sf:)?([A-Z_]+)</faultcode>")
_TRANSIENT_SOAP_FAULTS = frozenset({b"SERVER_UNAVAILABLE"})


class TransientLoginError(RetriableConnectorError):
    """A login that failed for a reason that may pass; the client retries it with backoff."""

    def __init__(self, message: str, fault: Fault) -> None:
        super().__init__(message)
        self.fault = fault


def transient_login_fault(exc: BaseException, response: requests.Response | None) -> Fault | None:
    """A login failure that may pass (429, 5xx, timeout, no connection), or None when the
    login was refused for good (bad key, unapproved app, wrong host)."""
    if isinstance(exc, requests.RequestException):
        fault = classify_exception(exc)
        return fault if fault.kind is FaultKind.RETRY else None
    if response is None or response.status_code not in TRANSIENT_LOGIN_STATUSES:
        return None
    soap_fault = _SOAP_FAULT_CODE.search(response.content or b"")
    if soap_fault is not None and soap_fault.group(1) not in _TRANSIENT_SOAP_FAULTS:
        return None  # SOAP login() answers a refusal (INVALID_LOGIN, ...) with HTTP 500
    fault = classify_response(response)
    return attrs.evolve(fault, kind=FaultKind.RETRY)


def login_error(exc: BaseException, flow: str, redact: Redactor) -> FatalConnectorError:
    """A refused or failed login (simple-salesforce's exceptions or transport errors)."""
    from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError

    if isinstance(exc, SalesforceAuthenticationFailed):
        code = getattr(exc, "code", "") or "AUTHENTICATION_FAILED"
        text = getattr(exc, "auth_message", None)
        if not isinstance(text, str):
            content = getattr(exc, "content", b"")
            text = content.decode("utf-8", "replace") if isinstance(content, bytes) else ""
        message = " ".join(text.split())[:300] or "no reason given"
        hint = _login_hint(flow, str(code), message)
        return FatalConnectorError(
            redact(f"Salesforce refused the {flow} login: {code}: {message}{hint}")
        )
    if isinstance(exc, SalesforceError):
        return FatalConnectorError(redact(f"Salesforce login ({flow}) failed: {exc}"))
    if isinstance(exc, requests.RequestException):
        fault = classify_exception(exc)
        return FatalConnectorError(redact(f"Salesforce login ({flow}) failed: {fault.message}"))
    return FatalConnectorError(
        redact(f"Salesforce login ({flow}) failed: {type(exc).__name__}: {exc}")
    )


def _login_hint(flow: str, code: str, message: str) -> str:
    lowered = message.lower()
    if "approved" in lowered and "consumer" in lowered:
        return (
            " (pre-authorize the Connected App for the integration user's profile or permission"
            " set: Manage Connected Apps > OAuth Policies > Admin approved users are"
            " pre-authorized)"
        )
    if flow == "jwt" and code == "invalid_grant":
        return (
            " (check the username, the Connected App's certificate matches the private key,"
            " and sandbox/my_domain point at the right login host)"
        )
    if flow == "client_credentials" and code == "invalid_grant":
        return " (enable the client credentials flow and set its Run As user on the Connected App)"
    return ""
