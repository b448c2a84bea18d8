"""The in-line HTTP service (Starlette): routes, body limits, auth, decision log, access log.

A small body is judged on the event loop's thread, without awaiting (a check takes well under a
millisecond; a thread hop would cost more than it saves); a body above ``offload_body_bytes`` is
judged on a worker thread, one at a time, so the loop keeps serving the small ones meanwhile
(the checker is thread-safe). A reload waits for the worker's judgement, then swaps on the loop:
no judgement ever runs on rules being swapped. Everything that waits on the network (reading the
body) is bounded in size and time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import asynccontextmanager
from typing import Any, Final

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tsos_rules.config import Config
from tsos_rules.connectors.inline import (
    Admission,
    Binding,
    CheckRequest,
    InboundRequest,
    InlineAdapter,
    Refusal,
    ServeContext,
)
from tsos_rules.engine import Engine
from tsos_rules.errors import ChangeError, ConfigError
from tsos_rules.findings import Decision
from tsos_rules.inline import ExemptionSource
from tsos_rules.plugins import collect_inline_adapters, get_plugin_manager
from tsos_rules.server import adapters
from tsos_rules.server.auth import bearer_ok
from tsos_rules.server.decision_log import DecisionLog, DecisionLogError
from tsos_rules.server.json_body import parse_body
from tsos_rules.server.openapi import build_openapi
from tsos_rules.server.rules import RuleHolder, strict_engine
from tsos_rules.server.settings import ServeSettings

log = logging.getLogger("tsos_rules.server")
access_log = logging.getLogger("tsos_rules.server.access")

#: The core's paths; the in-line adapters' ``/v1/<name>/check`` routes come from plugins.
CORE_ROUTES: Final = ("/v1/check", "/v1/admin/reload", "/healthz", "/openapi.json")
_LOG_SLOT: Final = "tsos.access"


def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    return Response(
        _encoded(payload), status_code=status, media_type="application/json", headers=headers
    )


def _encoded(payload: Any) -> bytes:
    """UTF-8 JSON; text that UTF-8 cannot hold (a lone surrogate) goes out as a JSON escape."""
    text = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    try:
        return text.encode()
    except UnicodeEncodeError:
        return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


def _error(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return _json(
        status, {"error": {"code": code, "message": message, "field": field}}, headers=headers
    )


def _unauthorized(message: str) -> Response:
    return _error(401, "unauthorized", message, headers={"WWW-Authenticate": "Bearer"})


class AccessLogMiddleware:
    """One JSON line per request: method, path, status, duration, size. No body, no header.

    A path that is not one of ``routes`` is logged as "(unmatched)" (it may hold anything).
    """

    def __init__(self, app: ASGIApp, routes: Iterable[str] = CORE_ROUTES) -> None:
        self.app = app
        self.routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0
        slot: dict[str, Any] = {}
        scope[_LOG_SLOT] = slot

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            path = scope.get("path", "")
            client = scope.get("client")
            entry = {
                "event": "request",
                "method": scope.get("method"),
                "path": path if path in self.routes else "(unmatched)",
                "status": status or 500,
                "ms": round((time.perf_counter() - started) * 1000, 3),
                "client": client[0] if client else None,
                **slot,
            }
            access_log.info(json.dumps(entry, separators=(",", ":")))


class Service:
    """The handlers, with the state they share (rules, decision log, bound in-line adapters)."""

    def __init__(
        self,
        settings: ServeSettings,
        rules: RuleHolder,
        decisions: DecisionLog,
        *,
        clock: Callable[[], float] = time.time,
        version: str = "0",
        inline_adapters: Mapping[str, InlineAdapter] | None = None,
        config: Config | None = None,
    ) -> None:
        self.settings = settings
        self.rules = rules
        self.decisions = decisions
        self.clock = clock
        self.version = version
        self.adapters = dict(inline_adapters or {})
        context = ServeContext(settings, config or Config(), clock)
        #: Each adapter bound to this service, by name (``generic`` is the core's /v1/check).
        self.bindings: dict[str, Binding] = {
            name: adapter.bind(context) for name, adapter in self.adapters.items()
        }
        self._generic = Binding(adapters.generic, render=adapters.render_plain)
        #: Held while a large body is judged on a worker thread, and while reloading.
        self._offloaded = anyio.Lock()
        self._openapi = json.dumps(
            build_openapi(
                max_body_bytes=settings.max_body_bytes,
                version=version,
                adapters=[self.adapters[name] for name in sorted(self.adapters)],
            )
        ).encode()

    # -- shared steps --------------------------------------------------------------------------

    async def _read_body(self, request: Request) -> bytes | Response:
        limit = self.settings.max_body_bytes
        too_large = _error(
            413,
            "body_too_large",
            f"the body exceeds the limit of {limit} bytes",
            "body",
            headers={"Connection": "close"},
        )
        declared = request.headers.get("content-length")
        if declared is not None:
            declared = declared.strip(" \t")
            if not (declared.isascii() and declared.isdigit()):
                return _error(400, "bad_request", "Content-Length: not a number", "Content-Length")
            if int(declared) > limit:
                return too_large
        chunks: list[bytes] = []
        size = 0
        try:
            with anyio.fail_after(self.settings.body_timeout_seconds):
                async for chunk in request.stream():
                    size += len(chunk)
                    if size > limit:
                        return too_large
                    chunks.append(chunk)
        except TimeoutError:
            return _error(
                408,
                "body_timeout",
                f"the body did not arrive within {self.settings.body_timeout_seconds:g} s",
                "body",
                headers={"Connection": "close"},
            )
        except ClientDisconnect:
            return _error(400, "bad_request", "the client went away mid-body", "body")
        return b"".join(chunks)

    def _slot(self, request: Request) -> dict[str, Any]:
        slot = request.scope.get(_LOG_SLOT)
        return slot if isinstance(slot, dict) else {}

    def _decide(
        self,
        request: Request,
        body: bytes,
        binding: Binding,
    ) -> Response:
        """Parse, adapt, judge, log: the synchronous heart of every check route."""
        slot = self._slot(request)
        try:
            check = binding.adapt(parse_body(body))
        except ChangeError as exc:
            slot["error_field"] = exc.field
            return _error(400, "bad_request", str(exc), exc.field)
        except RecursionError:
            return _error(400, "bad_request", "body: nested too deeply", "body")
        checker = self.rules.checker
        decision = checker.judge(check.change, include_info=check.include_info)
        decision_id = uuid.uuid4().hex
        entry = self._entry(decision_id, check, decision, body)
        slot.update(decision_id=decision_id, adapter=check.adapter, allowed=decision.allowed)
        # The answer is complete before the decision is logged: nothing can fail after that.
        answer = _json(200, binding.render(decision, decision_id), {"X-Decision-Id": decision_id})
        try:
            self.decisions.write(entry)
        except DecisionLogError as exc:
            if self.settings.decision_log_required:
                log.error("decision %s refused: the decision log failed: %s", decision_id, exc)
                return _error(
                    503,
                    "decision_log_unavailable",
                    "the decision could not be recorded, so none is given; see /healthz",
                    headers={"Retry-After": "5"},
                )
            self.decisions.count_unlogged()
            log.error("decision %s answered but NOT logged: %s", decision_id, exc)
        return answer

    def _entry(
        self, decision_id: str, check: CheckRequest, decision: Decision, body: bytes
    ) -> dict[str, Any]:
        checker = self.rules.checker
        return {
            "id": decision_id,
            "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock())),
            "adapter": check.adapter,
            "record_type": decision.record_type,
            "record_id": decision.record_id,
            "as_of": decision.as_of.isoformat(),
            "allowed": decision.allowed,
            "blocking": sorted({f"{f.rule}:{f.reason}" for f in decision.blocking}),
            "findings": len(decision.findings),
            "packs": checker.rule_versions,
            "rules_digest": checker.rules_digest,
            "input_sha256": hashlib.sha256(body).hexdigest(),
        }

    async def _guarded(
        self, request: Request, handler: Callable[[Request], Awaitable[Response]]
    ) -> Response:
        try:
            return await handler(request)
        except Exception:
            log.exception("internal error on %s", request.url.path)
            return _error(500, "internal_error", "internal error; it has been logged")

    # -- routes --------------------------------------------------------------------------------

    async def check(self, request: Request) -> Response:
        return await self._guarded(request, lambda r: self._judge(r, self._generic))

    def adapter_route(self, name: str) -> Callable[[Request], Awaitable[Response]]:
        """The handler of ``POST /v1/<name>/check`` for one registered in-line adapter."""
        binding = self.bindings[name]

        async def handle(request: Request) -> Response:
            return await self._guarded(request, lambda r: self._judge(r, binding))

        return handle

    async def _judge(self, request: Request, binding: Binding) -> Response:
        """Authenticate, read, adapt, judge, log: one check route."""
        authorization = request.headers.get("authorization")
        verifier = binding.verifier
        checks_token = verifier is None or authorization is not None
        if checks_token and not bearer_ok(authorization, self.settings.token):
            # A route with its own verifier only gets here with a token that is wrong.
            missing = "" if verifier is not None else "missing or "
            return _unauthorized(f"{missing}wrong bearer token")
        body = await self._read_body(request)
        if isinstance(body, Response):
            return body
        if len(body) <= self.settings.offload_body_bytes:
            return self._admit_and_decide(request, body, binding, authorization)
        async with self._offloaded:
            return await anyio.to_thread.run_sync(
                self._admit_and_decide, request, body, binding, authorization
            )

    def _admit_and_decide(
        self, request: Request, body: bytes, binding: Binding, authorization: str | None
    ) -> Response:
        """Verify (the adapter's own way), judge, settle: one synchronous step.

        A replay carries the same body, so it takes the same path as the original: on the loop
        (atomic) or on the worker (one at a time); it cannot slip between verify and settle.
        """
        verifier = binding.verifier
        admission = Admission()
        if verifier is not None and authorization is None:
            uri = self._public_uri(request)
            outcome = verifier.verify(InboundRequest(request.method, uri, request.headers, body))
            if isinstance(outcome, Refusal):
                if outcome.status == 401:
                    return _unauthorized(outcome.message)
                return _error(outcome.status, outcome.code, outcome.message)
            admission = outcome
        status = 500  # an exception below is answered 500 by _guarded: settle it so
        try:
            response = self._decide(request, body, binding)
            status = response.status_code
        finally:
            if admission.settle is not None:
                admission.settle(status)
        return response

    def _public_uri(self, request: Request) -> str:
        """The URL HubSpot called: the configured public base URL, else the request's own."""
        scope = request.scope
        raw = scope.get("raw_path") or scope["path"].encode()
        path = raw.decode("latin-1")
        query = scope.get("query_string", b"").decode("latin-1")
        base = self.settings.public_url
        if base is None:
            base = f"{request.url.scheme}://{request.url.netloc}"
        return f"{base}{path}" + (f"?{query}" if query else "")

    def close(self) -> None:
        """Release what the service holds: the decision log, the checker, each adapter's own."""
        self.decisions.close()
        self.rules.checker.close()
        for binding in self.bindings.values():
            if binding.close is not None:
                binding.close()

    async def reload(self, request: Request) -> Response:
        return await self._guarded(request, self._reload)

    async def _reload(self, request: Request) -> Response:
        if not bearer_ok(request.headers.get("authorization"), self.settings.token):
            return _unauthorized("missing or wrong bearer token")
        refused = await self.reload_serialized()
        status = self.rules.status()
        if refused is not None:
            return _json(
                422,
                {
                    "error": {
                        "code": "reload_refused",
                        "message": f"{refused}; the previous rules keep serving",
                        "field": None,
                    },
                    "rules": status,
                },
            )
        return _json(200, {"reloaded": True, "rules": status})

    async def reload_serialized(self) -> str | None:
        """:meth:`reload_all` once no large body is being judged (SIGHUP, the admin endpoint)."""
        async with self._offloaded:
            return self.reload_all()

    def reload_all(self) -> str | None:
        """Reload the rules and reopen the decision log (SIGHUP and the admin endpoint)."""
        self.decisions.reopen()
        return self.rules.reload()

    async def healthz(self, request: Request) -> Response:
        decisions = self.decisions.status()
        healthy = decisions["ok"]
        payload = {
            "status": "ok" if healthy else "degraded",
            "version": self.version,
            "decision_log": decisions,
            "fail_closed": self.settings.decision_log_required,
            "rules": self.rules.status(),
        }
        return _json(200 if healthy else 503, payload)

    async def openapi(self, request: Request) -> Response:
        return Response(self._openapi, media_type="application/json")


def create_app(
    settings: ServeSettings,
    *,
    load_config: Callable[[], Config] | None = None,
    build_engine: Callable[[Config], Engine] = strict_engine,
    clock: Callable[[], float] = time.time,
    inline_adapters: Mapping[str, InlineAdapter] | None = None,
    exemption_source: Callable[[Config], ExemptionSource] | None = None,
) -> Starlette:
    """The ASGI app. ``load_config`` is called at start and on every reload (default: defaults).

    ``inline_adapters`` defaults to the adapters plugins register (one ``POST /v1/<name>/check``
    route each). ``exemption_source`` gives, for each loaded config, a callable answering the
    extra exemptions to honour (``tsos-rules serve``: the state store's). Raises a
    TsosRulesError when the rules cannot be loaded or an adapter plugin fails: the service does
    not start without its rules or with a route silently missing.
    """
    from tsos_rules import __version__

    read_config = load_config or Config
    config = read_config()
    if inline_adapters is None:
        inline_adapters = _registered_adapters(config)
    rules = RuleHolder(read_config, build_engine, exemption_source)
    decisions = DecisionLog(settings.decision_log, fsync=settings.decision_log_fsync)
    if not decisions.ok:
        log.error("the decision log cannot be written: %s", decisions.last_error)
    service = Service(
        settings,
        rules,
        decisions,
        clock=clock,
        version=__version__,
        inline_adapters=inline_adapters,
        config=config,
    )

    @asynccontextmanager
    async def lifespan(app: Starlette) -> Any:
        yield
        service.close()

    routes = [Route("/v1/check", service.check, methods=["POST"])]
    for name in sorted(service.adapters):
        path = service.adapters[name].path
        routes.append(Route(path, service.adapter_route(name), methods=["POST"]))
    routes += [
        Route("/v1/admin/reload", service.reload, methods=["POST"]),
        Route("/healthz", service.healthz, methods=["GET"]),
        Route("/openapi.json", service.openapi, methods=["GET"]),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(AccessLogMiddleware, routes=[route.path for route in routes])
    app.state.service = service
    return app


def _registered_adapters(config: Config) -> dict[str, InlineAdapter]:
    """Every in-line adapter the installed plugins register; a failing plugin stops the start."""
    pm = get_plugin_manager(disabled=config.plugins_disabled)
    found = collect_inline_adapters(pm)
    if pm.failures:
        failed = "; ".join(f"{f.name}: {f.error}" for f in pm.failures)
        raise ConfigError(f"plugin(s) failed to load, the service does not start: {failed}")
    return found
