"""Logging in: JWT bearer (the default), client credentials, a session id, or legacy password.

The OAuth and SOAP exchanges go through simple-salesforce's ``SalesforceLogin``, on our own
``requests.Session`` with a timeout, so tests can mock them and a hung login cannot hang the job.
The token answer's identity URL gives the integration user's id (to ignore its own changes).
Secrets are read from the environment or files only when logging in, and registered with the
:class:`~tsos_rules.connectors.salesforce.faults.Redactor` so they never reach a log or an error.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import re
import warnings
from collections.abc import Mapping
from typing import Any, cast

import attrs
import requests

from tsos_rules.config import read_secret
from tsos_rules.connectors.salesforce.faults import (
    Redactor,
    TransientLoginError,
    login_error,
    transient_login_fault,
)
from tsos_rules.connectors.salesforce.settings import AuthSettings
from tsos_rules.errors import ConfigError

log = logging.getLogger("tsos_rules.connectors.salesforce")

_USER_ID = re.compile(r"/(005[a-zA-Z0-9]{12}(?:[a-zA-Z0-9]{3})?)/?$")
_SOAP_USER_ID = re.compile(rb"<userId>(005[a-zA-Z0-9]{12,15})</userId>")

#: My Domain hosts of sandboxes end with this (``acme--uat.sandbox.my.salesforce.com``).
SANDBOX_HOST_SUFFIX = ".sandbox.my.salesforce.com"


@attrs.define
class Session:
    """A live API session: where to send requests and the bearer token to send."""

    instance_url: str
    access_token: str = attrs.field(repr=False)
    user_id: str | None = None
    server_time: dt.datetime | None = None


class _LoginTransport:
    """What ``SalesforceLogin`` sees as its session: our Session with a timeout, recording the
    answer so we can read the identity URL and the server's clock from it."""

    def __init__(self, session: requests.Session, timeout: float) -> None:
        self._session = session
        self._timeout = timeout
        self.last: requests.Response | None = None

    def post(
        self,
        url: str,
        data: Any = None,
        headers: Mapping[str, str] | None = None,
        proxies: Any = None,
    ) -> requests.Response:
        response = self._session.post(
            url, data=data, headers=dict(headers or {}), proxies=proxies, timeout=self._timeout
        )
        self.last = response
        return response


class Authenticator:
    """Logs in with the configured flow; :meth:`login` again when the session expires."""

    def __init__(
        self,
        settings: AuthSettings,
        *,
        session: requests.Session,
        api_version: str,
        sandbox: bool,
        my_domain: str | None,
        timeout: float,
        redact: Redactor,
    ) -> None:
        self.settings = settings
        self._http = session
        self.api_version = api_version
        self.sandbox = sandbox
        self.my_domain = my_domain
        self.timeout = timeout
        self.redact = redact
        self.logins = 0
        self.current: Session | None = None

    @property
    def flow(self) -> str:
        return self.settings.flow

    @property
    def can_refresh(self) -> bool:
        """A session id given from outside cannot be renewed by us."""
        return self.settings.flow != "session"

    @property
    def is_sandbox(self) -> bool:
        """``sandbox = true``, or a sandbox My Domain host (``*.sandbox.my.salesforce.com``):
        the host is authoritative, since a sandbox refuses the production audience."""
        host = (self.my_domain or "").lower().removeprefix("https://").split("/", 1)[0]
        return self.sandbox or host.endswith(SANDBOX_HOST_SUFFIX)

    @property
    def login_domain(self) -> str:
        """``login`` or ``test``: the OAuth audience and the default login host."""
        return "test" if self.is_sandbox else "login"

    def _secret(self, ref: Mapping[str, str] | None, what: str) -> str:
        if ref is None:
            raise ConfigError(f"connector.auth.{what}: required for flow = {self.flow!r}")
        value = ref["value"] if "value" in ref else read_secret(ref, f"connector.auth.{what}")
        self.redact.add(value)
        return value

    def login(self) -> Session:
        """A fresh session. Raises FatalConnectorError (never with a secret in it)."""
        settings = self.settings
        self.logins += 1
        if settings.flow == "session":
            token = self._secret(settings.session_id, "session_id")
            instance = settings.instance_url or ""
            if not instance.startswith("https://"):
                instance = "https://" + instance.removeprefix("http://")
            self.current = Session(instance.rstrip("/"), token, settings.integration_user_id)
            return self.current
        if settings.flow == "password":
            log.warning(
                "connector.auth.flow = 'password' is deprecated: Salesforce is retiring the SOAP "
                "login() call (removed in API 65.0, fully retired in Summer '27); switch to "
                "flow = 'jwt' (see docs/salesforce.md)"
            )
        kwargs = self._login_arguments()
        transport = _LoginTransport(self._http, self.timeout)
        from simple_salesforce.login import SalesforceLogin

        try:
            with warnings.catch_warnings():
                # simple-salesforce warns about unapproved apps; our error message says it.
                warnings.simplefilter("ignore")
                token, instance = SalesforceLogin(
                    session=cast(requests.Session, transport),
                    sf_version=self.api_version,
                    **kwargs,
                )
        except Exception as exc:
            transient = transient_login_fault(exc, transport.last)
            if transient is not None:
                message = str(transient.error(f"{settings.flow} login", self.redact))
                raise TransientLoginError(message, transient) from None
            raise login_error(exc, settings.flow, self.redact) from None
        self.redact.add(token)
        user_id = settings.integration_user_id or _user_id(transport.last)
        self.current = Session(
            "https://" + str(instance).rstrip("/"),
            str(token),
            user_id,
            _server_time(transport.last),
        )
        log.info(
            "logged in to Salesforce (%s) at %s%s",
            settings.flow,
            self.current.instance_url,
            f" as user {user_id}" if user_id else "",
        )
        return self.current

    def _login_arguments(self) -> dict[str, Any]:
        settings = self.settings
        my_domain = self.my_domain
        prefix = my_domain.removesuffix(".salesforce.com") if my_domain else None
        if my_domain and prefix == my_domain:
            raise ConfigError(
                f"connector.my_domain: {my_domain!r} must end with .salesforce.com "
                "(e.g. acme.my.salesforce.com or acme--uat.sandbox.my.salesforce.com)"
            )
        if settings.flow == "jwt":
            arguments: dict[str, Any] = {
                "username": settings.username,
                "consumer_key": self._secret(settings.consumer_key, "consumer_key"),
                "privatekey": self._secret(settings.private_key, "private_key"),
                "domain": self.login_domain,
            }
            if prefix:
                arguments["instance_url"] = prefix
            return arguments
        if settings.flow == "client_credentials":
            if not prefix:
                raise ConfigError(
                    "connector.my_domain: required for flow = 'client_credentials' "
                    "(Salesforce only accepts it on the org's My Domain host)"
                )
            return {
                "consumer_key": self._secret(settings.consumer_key, "consumer_key"),
                "consumer_secret": self._secret(settings.consumer_secret, "consumer_secret"),
                "domain": prefix,
            }
        # Legacy username + password (+ security token) through SOAP login().
        arguments = {
            "username": settings.username,
            "password": self._secret(settings.password, "password"),
            "domain": prefix or self.login_domain,
        }
        if settings.security_token is not None:
            arguments["security_token"] = self._secret(settings.security_token, "security_token")
        else:
            arguments["security_token"] = ""
        return arguments


def _user_id(response: requests.Response | None) -> str | None:
    """The user id from an OAuth token answer's identity URL or a SOAP login answer."""
    if response is None:
        return None
    content = response.content or b""
    match = _SOAP_USER_ID.search(content)
    if match:
        return match.group(1).decode()
    try:
        body = response.json()
    except ValueError:
        return None
    identity = body.get("id") if isinstance(body, dict) else None
    if isinstance(identity, str):
        found = _USER_ID.search(identity)
        if found:
            return found.group(1)
    return None


def _server_time(response: requests.Response | None) -> dt.datetime | None:
    """The ``Date`` header of a response: Salesforce's clock, to bound the read window."""
    if response is None:
        return None
    return parse_http_date(response.headers.get("Date"))


def parse_http_date(value: str | None) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed


def http_date(moment: dt.datetime) -> str:
    """An RFC 1123 date for ``If-Unmodified-Since``: ``Tue, 24 Nov 2026 10:00:00 GMT``."""
    return email.utils.format_datetime(moment.astimezone(dt.UTC), usegmt=True)
