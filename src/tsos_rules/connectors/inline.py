"""The in-line adapter contract: how a CRM plugin adds ``POST /v1/<name>/check`` to the service.

A plugin registers an :class:`InlineAdapter` through ``tsos_rules_register_inline_adapters``.
When ``tsos-rules serve`` starts it calls the adapter's ``bind`` once with a
:class:`ServeContext` (the ``[serve]`` settings, the config, the clock) and gets a
:class:`Binding`: ``adapt`` turns the parsed JSON body into a :class:`CheckRequest` (raising
:class:`~tsos_rules.errors.ChangeError` naming the field in the CRM's own vocabulary),
``verifier`` authenticates requests the CRM's own way (None: the service's bearer token), and
``render`` shapes the answer. The core server never names a particular CRM.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any, Final, Protocol

import attrs

from tsos_rules.config import Config
from tsos_rules.errors import ChangeError
from tsos_rules.findings import Decision
from tsos_rules.snapshot.change import ParsedChange, parse_change

#: An adapter's name: it becomes the route ``POST /v1/<name>/check``.
ROUTE_NAME: Final = re.compile(r"[a-z][a-z0-9-]{0,39}")


@attrs.frozen
class CheckRequest:
    """What an adapter hands the service: a validated change and how to answer."""

    adapter: str
    change: ParsedChange
    include_info: bool = False

    @classmethod
    def of(
        cls,
        adapter: str,
        record_type: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        context: Any = None,
        *,
        as_of: Any = None,
        include_info: bool = False,
        name_field: Callable[[str], str] | None = None,
    ) -> CheckRequest:
        """Validate a change given in the snapshot's shape (docs/contract.md's records).

        ``name_field`` turns a snapshot path in an error (``after.close_date``) into the CRM's
        own (``after.CloseDate``), so the caller sees the field it sent.
        """
        try:
            parsed = parse_change(record_type, before, after, context, as_of=as_of, prefix="")
        except ChangeError as exc:
            renamed = name_field(exc.field) if name_field is not None else exc.field
            if renamed == exc.field:
                raise
            raise ChangeError(renamed, exc.problem) from None
        return cls(adapter, parsed, include_info)


@attrs.frozen
class ServeContext:
    """What an adapter is bound with when the service starts."""

    #: The service's ``[serve]`` settings (:class:`tsos_rules.server.ServeSettings`).
    settings: Any
    #: The config the service was started with (its ``[connector]`` table holds the field map).
    config: Config
    #: Seconds since the epoch; tests pass a fixed one.
    clock: Callable[[], float]


@attrs.frozen
class InboundRequest:
    """A request as a :class:`Verifier` sees it, body included."""

    method: str
    #: The URL the caller called: ``[serve] public_url`` + path and query, else the request's.
    uri: str
    #: Header names in lower case.
    headers: Mapping[str, str]
    body: bytes


@attrs.frozen
class Refusal:
    """A verifier's no: ``401`` (``unauthorized``) or ``503`` when it cannot take more now."""

    message: str
    status: int = 401
    code: str = "unauthorized"


@attrs.frozen
class Admission:
    """A verifier's yes; ``settle`` is called with the answer's status before any other request
    runs (e.g. to remember a signature so a replay is refused)."""

    settle: Callable[[int], None] | None = None


class Verifier(Protocol):
    """Authenticates a route's requests the CRM's own way, once the body has arrived."""

    def verify(self, request: InboundRequest) -> Refusal | Admission:
        """Admit or refuse one request (never raise for a bad request: refuse it)."""


def render_with_message(decision: Decision, decision_id: str) -> dict[str, Any]:
    """The decision, its log id and the block findings' messages in one line (for CRM UIs)."""
    payload: dict[str, Any] = decision.to_dict()
    payload["decision_id"] = decision_id
    payload["message"] = " ".join(f.message for f in decision.blocking)
    return payload


@attrs.frozen
class Binding:
    """An adapter bound to one running service."""

    #: The parsed JSON body -> a validated change; raises ChangeError naming the field.
    adapt: Callable[[Any], CheckRequest]
    #: None: the service's bearer token. Otherwise a request with an ``Authorization`` header
    #: must carry that token, and one without is admitted or refused by this verifier.
    verifier: Verifier | None = None
    render: Callable[[Decision, str], dict[str, Any]] = render_with_message
    #: Releases what the binding holds (a file, a connection) when the service stops.
    close: Callable[[], None] | None = None


@attrs.frozen
class InlineAdapter:
    """One CRM's in-line route, ``POST /v1/<name>/check``, and its OpenAPI description."""

    name: str
    bind: Callable[[ServeContext], Binding]
    summary: str = ""
    operation_id: str | None = None
    #: OpenAPI component schemas the route adds; ``request_schema`` names its body's.
    schemas: Mapping[str, Any] = attrs.field(factory=dict)
    request_schema: str | None = None
    #: OpenAPI security schemes accepted besides the bearer token (a signature header).
    security_schemes: Mapping[str, Any] = attrs.field(factory=dict)
    #: The OpenAPI description of this route's 401 answer.
    unauthorized: str = "Missing or wrong bearer token."

    @property
    def path(self) -> str:
        return f"/v1/{self.name}/check"
