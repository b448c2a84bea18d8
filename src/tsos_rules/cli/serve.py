"""``tsos-rules serve``: the in-line endpoint on uvicorn."""

from __future__ import annotations

import logging
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any

import click

from tsos_rules.cli._common import config_option
from tsos_rules.config import Config, load_config

if TYPE_CHECKING:
    import asyncio

    from starlette.applications import Starlette

    from tsos_rules.inline import ExemptionSource
    from tsos_rules.server import ServeSettings

log = logging.getLogger("tsos_rules.server")


def stored_exemptions(refresh_seconds: float) -> Callable[[Config], ExemptionSource]:
    """For each loaded config, the active exemptions ``tsos-rules exempt add`` stored for its
    connector in its state file, read again at most every ``refresh_seconds``."""
    from tsos_rules.sync.settings import SyncSettings
    from tsos_rules.sync.state.stored_exemptions import StoredExemptions

    def source(config: Config) -> ExemptionSource:
        sync = SyncSettings.from_config(config)
        return StoredExemptions(
            sync.state_path, sync.connector_type, refresh_seconds=refresh_seconds
        )

    return source


def _logging(level: str) -> dict[str, Any]:
    """Access lines are JSON already; everything else gets a timestamp, level and logger."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"format": "%(message)s"},
            "default": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        },
        "handlers": {
            "access": {
                "class": "logging.StreamHandler",
                "formatter": "plain",
                "stream": "ext://sys.stdout",
            },
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            },
        },
        "loggers": {
            "tsos_rules.server.access": {
                "handlers": ["access"],
                "level": "INFO",
                "propagate": False,
            },
            "tsos_rules": {"handlers": ["default"], "level": level.upper(), "propagate": False},
            "uvicorn": {"handlers": ["default"], "level": level.upper(), "propagate": False},
        },
    }


def _raise_open_files(wanted: int) -> None:
    """Lift the soft open-files limit towards ``wanted`` (connections need descriptors)."""
    try:
        import resource
    except ImportError:  # not POSIX
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft != resource.RLIM_INFINITY and soft < wanted:
        log.warning(
            "open-files limit %d is below max_connections + 64 = %d: connections above it fail",
            soft,
            wanted,
        )


async def _run(server: Any, reload_all: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    pending: set[asyncio.Task[Any]] = set()

    def on_hangup() -> None:
        log.info("SIGHUP: reloading the rules and reopening the decision log")
        task = loop.create_task(reload_all())  # waits for the check being judged, if any
        pending.add(task)
        task.add_done_callback(pending.discard)

    loop.add_signal_handler(signal.SIGHUP, on_hangup)
    try:
        await server.serve()
    finally:
        loop.remove_signal_handler(signal.SIGHUP)


def serve_app(config: Config) -> tuple[ServeSettings, Starlette]:
    """The service ``serve`` runs for ``config``: its ``[serve]`` settings and the app, which
    reads the config file again on reload and honours the state store's exemptions."""
    from tsos_rules.server import ServeSettings, create_app

    settings = ServeSettings.from_mapping(config.serve, file=config.path)
    path = config.path

    def reload_config() -> Config:
        return load_config(path) if path is not None else Config()

    app = create_app(
        settings,
        load_config=reload_config,
        exemption_source=stored_exemptions(settings.exemptions_refresh_seconds),
    )
    return settings, app


@click.command("serve")
@config_option
@click.option("--host", default=None, help="Listen address (default: [serve] host, 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (default: [serve] port, 8787).")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
)
def serve(config_path: str | None, host: str | None, port: int | None, log_level: str) -> None:
    """Run the in-line endpoint that CRM validation hooks call before a save.

    POST /v1/check, /v1/hubspot/check and /v1/salesforce/check answer {"allowed", "findings"};
    GET /healthz and /openapi.json. The [serve] table of the config holds the bearer token
    reference (token = {env = "NAME"}), limits and the decision log path. SIGHUP (or POST
    /v1/admin/reload) reloads the rules: a pack that fails validation is refused and the old
    rules keep serving. A connection that has not sent its request headers within
    header_timeout_seconds is answered 408 and closed; connections are capped in total and per
    client address, and only requests in progress count against max_concurrency (the Limits
    section of docs/inline.md lists every limit and what the client sees).

    \b
    Examples:
      TSOS_TOKEN=... tsos-rules serve --config tsos.toml
      tsos-rules serve --config tsos.toml --host 0.0.0.0 --port 8787
      kill -HUP $(pidof tsos-rules)   # reload the rules
    """
    import asyncio
    import logging.config

    import uvicorn

    from tsos_rules.server.connections import ConnectionGuard, ConnectionLimits, RequestLimit

    config = load_config(config_path)
    logging.config.dictConfig(_logging(log_level))
    settings, app = serve_app(config)
    guard = ConnectionGuard(
        ConnectionLimits(
            header_timeout_seconds=settings.header_timeout_seconds,
            max_connections=settings.max_connections,
            max_connections_per_client=settings.max_connections_per_client,
        )
    )
    _raise_open_files(settings.max_connections + 64)
    server = uvicorn.Server(
        uvicorn.Config(
            RequestLimit(app, settings.max_concurrency),
            http=guard.protocol(),
            host=host or settings.host,
            port=settings.port if port is None else port,
            access_log=False,  # ours logs no query string (it may carry a key); uvicorn's does
            log_config=None,
            lifespan="on",
            timeout_keep_alive=settings.keep_alive_seconds,
            timeout_graceful_shutdown=10,
            limit_concurrency=None,  # it counts idle connections; RequestLimit counts requests
            server_header=False,
            proxy_headers=False,
        )
    )
    asyncio.run(_run(server, app.state.service.reload_serialized))
