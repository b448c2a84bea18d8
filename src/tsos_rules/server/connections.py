"""The connection guard of ``tsos-rules serve``: header deadline, connection caps, request cap.

uvicorn closes nothing that never finishes its headers (its keep-alive timer is reset by every
byte and not armed before the first request), and its ``limit_concurrency`` counts idle
connections, so a few hundred silent sockets turn every real request into a 503. This module
wraps uvicorn's own HTTP protocol class (httptools when installed, else h11) to close a
connection whose request headers are late, to cap connections in total and per client address,
and counts only requests in progress against ``max_concurrency`` (an ASGI middleware).
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, Final

import attrs
from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger("tsos_rules.server")

_REASONS: Final = {408: "Request Timeout", 503: "Service Unavailable"}


@attrs.frozen
class ConnectionLimits:
    """The limits the guard enforces (from ``[serve]``, see :class:`ServeSettings`)."""

    header_timeout_seconds: float = 5.0
    max_connections: int = 4096
    max_connections_per_client: int = 100


def _raw_response(status: int, code: str, message: str, *, retry_after: int | None = None) -> bytes:
    """A complete HTTP/1.1 error answer with ``Connection: close``, for a connection we drop."""
    body = json.dumps({"error": {"code": code, "message": message, "field": None}}).encode()
    head = [
        f"HTTP/1.1 {status} {_REASONS[status]}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
    ]
    if retry_after is not None:
        head.append(f"retry-after: {retry_after}")
    return ("\r\n".join(head) + "\r\n\r\n").encode() + body


def _client_of(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "" if peer is None else str(peer)  # a Unix socket: one client


class ConnectionGuard:
    """Counts the open connections, in total and per client address, and what it refused."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.open = 0
        self.refused = 0
        self.timed_out = 0
        self._per_client: dict[str, int] = {}

    def admit(self, client: str) -> str | None:
        """Count one more connection from ``client``; None, or why it is refused."""
        if self.open >= self.limits.max_connections:
            self.refused += 1
            return f"the server holds its limit of {self.limits.max_connections} connections"
        held = self._per_client.get(client, 0)
        if held >= self.limits.max_connections_per_client:
            self.refused += 1
            return f"this client holds its limit of {self.limits.max_connections_per_client}"
        self._per_client[client] = held + 1
        self.open += 1
        return None

    def release(self, client: str) -> None:
        """Forget one connection :meth:`admit` counted."""
        self.open -= 1
        held = self._per_client.pop(client, 0) - 1
        if held > 0:
            self._per_client[client] = held

    def status(self) -> dict[str, int]:
        return {
            "open": self.open,
            "clients": len(self._per_client),
            "refused": self.refused,
            "header_timeouts": self.timed_out,
        }

    def protocol(self, base: type[asyncio.Protocol] | None = None) -> type[asyncio.Protocol]:
        """uvicorn's HTTP protocol class (``base``, default: the one uvicorn picks) under guard."""
        return _guarded(base or default_http_protocol(), self)


def default_http_protocol() -> type[asyncio.Protocol]:
    """The class uvicorn's ``http="auto"`` picks: httptools when installed, else h11."""
    try:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
    except ImportError:  # httptools is optional
        from uvicorn.protocols.http.h11_impl import H11Protocol

        return H11Protocol
    return HttpToolsProtocol


def _guarded(base: type[asyncio.Protocol], guard: ConnectionGuard) -> type[asyncio.Protocol]:
    timeout = guard.limits.header_timeout_seconds

    class Guarded(base):  # type: ignore[valid-type,misc]
        """``base`` plus a deadline for each request's headers and the guard's connection caps.

        uvicorn sets ``self.cycle`` to a new request cycle once a request's headers are parsed
        (both protocols, inside ``data_received``): a new cycle is how headers are seen complete.
        """

        def connection_made(self, transport: asyncio.Transport) -> None:
            self._guard_client = _client_of(transport)
            self._guard_deadline: asyncio.TimerHandle | None = None
            self._guard_waiting = True  # for a request's headers
            self._guard_cycle: Any = None
            super().connection_made(transport)
            refusal = guard.admit(self._guard_client)
            self._guard_admitted = refusal is None
            if refusal is not None:
                transport.write(_raw_response(503, "too_many_connections", refusal, retry_after=1))
                transport.close()
                return
            self._guard_arm()

        def _guard_arm(self) -> None:
            self._guard_deadline = self.loop.call_later(timeout, self._guard_expired)

        def _guard_disarm(self) -> None:
            if self._guard_deadline is not None:
                self._guard_deadline.cancel()
                self._guard_deadline = None

        def _guard_expired(self) -> None:
            self._guard_deadline = None
            if not self._guard_waiting or self.transport.is_closing():
                return
            guard.timed_out += 1
            message = f"the request headers did not arrive within {timeout:g} s"
            self.transport.write(_raw_response(408, "header_timeout", message))
            self.transport.close()

        def _guard_check_headers(self) -> None:
            cycle = self.cycle
            if self._guard_waiting and cycle is not None and cycle is not self._guard_cycle:
                self._guard_waiting = False
                self._guard_disarm()

        def data_received(self, data: bytes) -> None:
            if self._guard_waiting and self._guard_deadline is None and self._guard_admitted:
                self._guard_arm()  # the first byte of a keep-alive connection's next request
            super().data_received(data)
            self._guard_check_headers()

        def on_response_complete(self) -> None:
            self._guard_waiting = True
            self._guard_cycle = self.cycle
            super().on_response_complete()
            # Idle until the next byte is uvicorn's keep-alive timeout; a pipelined request
            # may already have started inside the call above.
            self._guard_check_headers()

        def connection_lost(self, exc: Exception | None) -> None:
            self._guard_disarm()
            if self._guard_admitted:
                self._guard_admitted = False
                guard.release(self._guard_client)
            super().connection_lost(exc)

    Guarded.__name__ = Guarded.__qualname__ = f"Guarded{base.__name__}"
    return Guarded


class RequestLimit:
    """ASGI middleware: at most ``limit`` requests in progress; above it, 503 at once.

    Unlike uvicorn's ``limit_concurrency`` it counts requests, not connections, so idle
    sockets cannot use up the budget.
    """

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.active = 0
        self.rejected = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.active >= self.limit:
            self.rejected += 1
            body = json.dumps(
                {
                    "error": {
                        "code": "overloaded",
                        "message": f"{self.limit} requests are in progress; retry shortly",
                        "field": None,
                    }
                }
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 503,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                        (b"retry-after", b"1"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1
