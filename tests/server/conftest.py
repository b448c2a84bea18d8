"""Fixtures for the in-line tests: a checker, the service app and a synchronous HTTP client.

The client drives the ASGI app through ``httpx.ASGITransport`` on an anyio blocking portal (no
network, no sockets): the same path a request takes under uvicorn, minus the socket.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal

from inline_support import HUBSPOT_SECRET, TOKEN
from tsos_rules.inline import ChangeChecker
from tsos_rules.server import ServeSettings, create_app


@pytest.fixture(autouse=True)
def _isolated(inline_env: None) -> None:
    """Defaults only, but the CRM plugins' in-line routes on (see tests/conftest.py)."""


@pytest.fixture
def checker() -> Iterator[ChangeChecker]:
    built = ChangeChecker.from_config(None)
    yield built
    built.close()


class Client:
    """A synchronous client for an ASGI app (requests go through the real middleware stack)."""

    def __init__(self, portal: BlockingPortal, app: Any) -> None:
        self.portal = portal
        self.app = app
        transport = httpx.ASGITransport(app=app)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://testserver")

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            return await self._client.request(method, url, **kwargs)

        return self.portal.call(call)

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("POST", url, **kwargs)

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.request("GET", url, **kwargs)

    def close(self) -> None:
        self.portal.call(self._client.aclose)


@pytest.fixture
def portal() -> Iterator[BlockingPortal]:
    with start_blocking_portal() as running:
        yield running


def make_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **serve: Any) -> ServeSettings:
    monkeypatch.setenv("TSOS_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("TSOS_TEST_HUBSPOT", HUBSPOT_SECRET)
    table: dict[str, Any] = {
        "token": {"env": "TSOS_TEST_TOKEN"},
        "hubspot_app_secret": {"env": "TSOS_TEST_HUBSPOT"},
        "decision_log": str(tmp_path / "decisions.jsonl"),
        "max_body_bytes": 64 * 1024,
    }
    table.update(serve)
    return ServeSettings.from_mapping(table)


@pytest.fixture
def make_client(
    portal: BlockingPortal, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Callable[..., Client]]:
    """``make_client(**serve_settings, app_kwargs={...})`` -> a Client on a fresh app."""
    clients: list[Client] = []

    def make(*, app_kwargs: dict[str, Any] | None = None, **serve: Any) -> Client:
        settings = make_settings(tmp_path, monkeypatch, **serve)
        client = Client(portal, create_app(settings, **(app_kwargs or {})))
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()
        client.app.state.service.close()


@pytest.fixture
def client(make_client: Callable[..., Client]) -> Client:
    return make_client()


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Capture every log record, access lines included, at DEBUG."""
    caplog.set_level(logging.DEBUG)
    yield caplog
