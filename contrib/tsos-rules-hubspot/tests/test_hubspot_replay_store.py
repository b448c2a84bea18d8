"""Issue 14 item 7: a signed request cannot be replayed across a restart or another instance.

Every app here is a separate ``create_app`` (its own verifier, its own connection to the store):
what two processes behind a load balancer, or one process before and after a restart, are.
Also item 3's reproduction: a timestamp of non-ASCII digits is a 401, never a traceback.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from tsos_rules_hubspot.inline import REPLAY_STORE_NAME, hubspot_signature_v3
from tsos_rules_hubspot.replays import ReplayStore

from tsos_rules.inline import clear_checkers
from tsos_rules.plugins import DISABLE_ENV
from tsos_rules.server import ServeSettings, create_app

TOKEN = "tok-9f3a1c77e2b54d0c8e1f-not-a-real-token"
SECRET = "hs-secret-0b6d2e44-71aa-4f0e-9c3b-not-real"
NOW = 1_790_000_000.0
DEAL = {
    "hs_object_id": "9001",
    "dealname": "Fleet renewal",
    "dealstage": "closing",
    "amount": "120000",
    "closedate": "2026-12-15T00:00:00Z",
    "hs_next_step": "Legal review of the MSA",
    "notes_next_activity_date": "2026-11-28",
    "as_of": "2026-11-24",
}


def body_of(payload: Any) -> bytes:
    return json.dumps(payload).encode()


def signed(body: bytes, at: float = NOW) -> dict[str, Any]:
    timestamp = str(int(at * 1000))
    uri = "http://testserver/v1/hubspot/check"
    return {
        "Content-Type": "application/json",
        "X-HubSpot-Request-Timestamp": timestamp,
        "X-HubSpot-Signature-v3": hubspot_signature_v3(SECRET, "POST", uri, body, timestamp),
    }


class App:
    """One service instance (its own verifier and store connection), driven in-process."""

    def __init__(self, portal: BlockingPortal, app: Any) -> None:
        self.portal = portal
        self.app = app
        transport = httpx.ASGITransport(app=app)
        self._client = httpx.AsyncClient(transport=transport, base_url="http://testserver")

    def post(self, url: str, **kwargs: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            return await self._client.post(url, **kwargs)

        return self.portal.call(call)

    def close(self) -> None:
        """What a stopped process leaves: nothing in memory (the lifespan's shutdown)."""
        self.portal.call(self._client.aclose)
        self.app.state.service.close()


@pytest.fixture(autouse=True)
def _only_this_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    others = sorted({ep.name for ep in entry_points(group="tsos_rules")} - {"hubspot"})
    monkeypatch.setenv(DISABLE_ENV, ",".join(others))
    monkeypatch.delenv("TSOS_RULES_CONFIG", raising=False)
    clear_checkers()
    yield
    clear_checkers()


@pytest.fixture
def make_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., App]]:
    apps: list[App] = []
    monkeypatch.setenv("TSOS_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("TSOS_TEST_HUBSPOT", SECRET)
    with start_blocking_portal() as portal:

        def make(*, app_kwargs: dict[str, Any] | None = None, **serve: Any) -> App:
            table: dict[str, Any] = {
                "token": {"env": "TSOS_TEST_TOKEN"},
                "hubspot_app_secret": {"env": "TSOS_TEST_HUBSPOT"},
                "decision_log": str(tmp_path / "decisions.jsonl"),
            }
            table.update(serve)
            app = create_app(ServeSettings.from_mapping(table), **(app_kwargs or {}))
            apps.append(App(portal, app))
            return apps[-1]

        yield make
        for app in apps:
            app.close()


ROUTE = "/v1/hubspot/check"


def test_a_replay_against_another_instance_sharing_the_store_is_refused(make_client, tmp_path):
    store = str(tmp_path / "shared" / "replays.sqlite3")
    one = make_client(hubspot={"replay_store": store}, app_kwargs={"clock": lambda: NOW})
    two = make_client(hubspot={"replay_store": store}, app_kwargs={"clock": lambda: NOW})
    body = body_of(DEAL)
    headers = signed(body)
    assert one.post(ROUTE, content=body, headers=headers).status_code == 200
    replay = two.post(ROUTE, content=body, headers=headers)
    assert replay.status_code == 401
    assert "replayed" in replay.json()["error"]["message"]
    other = body_of({**DEAL, "dealname": "Another"})
    assert two.post(ROUTE, content=other, headers=signed(other)).status_code == 200


def test_a_restarted_app_refuses_a_replay(make_client, tmp_path):
    """Default store: a file next to the decision log, which survives the process."""
    body = body_of(DEAL)
    headers = signed(body)
    before = make_client(app_kwargs={"clock": lambda: NOW})
    assert before.post(ROUTE, content=body, headers=headers).status_code == 200
    before.close()
    assert (tmp_path / REPLAY_STORE_NAME).is_file()
    after = make_client(app_kwargs={"clock": lambda: NOW + 60})
    assert after.post(ROUTE, content=body, headers=headers).status_code == 401


def test_concurrent_identical_requests_to_several_instances_admit_exactly_one(
    make_client, tmp_path
):
    apps = [make_client(app_kwargs={"clock": lambda: NOW}) for _ in range(4)]
    body = body_of(DEAL)
    headers = signed(body)
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(
            pool.map(
                lambda i: apps[i % 4].post(ROUTE, content=body, headers=headers).status_code,
                range(16),
            )
        )
    assert sorted(statuses) == [200] + [401] * 15


def test_concurrent_claims_on_separate_connections_admit_exactly_one(tmp_path):
    stores = [ReplayStore(tmp_path / "r.sqlite3") for _ in range(8)]
    start = threading.Barrier(len(stores))

    def claim(store: ReplayStore) -> bool:
        start.wait()
        return store.claim("sig", NOW + 300, NOW)

    with ThreadPoolExecutor(max_workers=len(stores)) as pool:
        won = list(pool.map(claim, stores))
    assert won.count(True) == 1
    for store in stores:
        store.close()


def test_an_expired_signature_is_pruned_and_can_no_longer_be_replayed_anyway(tmp_path):
    store = ReplayStore(tmp_path / "r.sqlite3")
    assert store.claim("old", NOW + 300, NOW)
    assert not store.claim("old", NOW + 300, NOW + 299)
    # Past its window the row may be claimed again (the timestamp check refuses it first).
    assert store.claim("old", NOW + 700, NOW + 301)
    assert store.claim("new", NOW + 1000, NOW + 700)
    with closing(sqlite3.connect(tmp_path / "r.sqlite3")) as db:
        rows = db.execute("SELECT signature FROM hubspot_signatures").fetchall()
        mode = db.execute("PRAGMA journal_mode").fetchone()
    assert [r[0] for r in rows] == ["new"]
    assert mode == ("wal",)
    store.close()


def test_a_broken_store_refuses_signed_requests_with_503_not_admits_them(make_client, tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    app = make_client(
        hubspot={"replay_store": str(blocker / "r.sqlite3")}, app_kwargs={"clock": lambda: NOW}
    )
    body = body_of(DEAL)
    response = app.post(ROUTE, content=body, headers=signed(body))
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "replay_store_unavailable"
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert app.post(ROUTE, content=body, headers=bearer).status_code == 200


def test_a_server_error_releases_the_signature_in_the_shared_store(make_client, tmp_path):
    store = str(tmp_path / "replays.sqlite3")
    broken = make_client(
        decision_log="/dev/full", hubspot={"replay_store": store}, app_kwargs={"clock": lambda: NOW}
    )
    body = body_of(DEAL)
    headers = signed(body)
    assert broken.post(ROUTE, content=body, headers=headers).status_code == 503
    healthy = make_client(hubspot={"replay_store": store}, app_kwargs={"clock": lambda: NOW})
    assert healthy.post(ROUTE, content=body, headers=headers).status_code == 200


def test_the_store_path_must_be_text(monkeypatch, tmp_path):
    from tsos_rules.errors import ConfigError
    from tsos_rules.server import ServeSettings

    monkeypatch.setenv("T", "x")
    with pytest.raises(ConfigError, match=r"serve\.hubspot\.replay_store"):
        ServeSettings.from_mapping({"token": {"env": "T"}, "hubspot": {"replay_store": 3}})


@pytest.mark.parametrize("timestamp", ["²", "¹²³", "1790000000000²"])
def test_a_timestamp_of_non_ascii_digits_is_a_401_and_no_traceback(hub_log, timestamp):
    hub, caplog = hub_log
    body = body_of(DEAL)
    headers = {**signed(body), "X-HubSpot-Request-Timestamp": timestamp.encode("latin-1")}
    response = hub.post(ROUTE, content=body, headers=headers)
    assert response.status_code == 401
    assert "milliseconds" in response.json()["error"]["message"]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []


@pytest.fixture
def hub_log(make_client, caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)
    return make_client(app_kwargs={"clock": lambda: NOW}), caplog


def test_no_store_file_is_made_for_a_decision_log_on_a_device(make_client):
    app = make_client(decision_log="/dev/null", app_kwargs={"clock": lambda: NOW})
    body = body_of(DEAL)
    assert app.post(ROUTE, content=body, headers=signed(body)).status_code == 200
    assert not Path("/dev", REPLAY_STORE_NAME).exists()


_CLAIM = """
import sys, time
from pathlib import Path
from tsos_rules_hubspot.replays import ReplayStore
store = ReplayStore(Path(sys.argv[1]))
while time.time() < float(sys.argv[2]):
    time.sleep(0.001)
print(store.claim("sig", 2e9, 1e9))
"""


def test_separate_processes_claiming_at_once_admit_exactly_one(tmp_path):
    import subprocess
    import sys
    import time

    start = str(time.time() + 1.5)
    runs = [
        subprocess.Popen(
            [sys.executable, "-c", _CLAIM, str(tmp_path / "r.sqlite3"), start],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [run.communicate(timeout=60) for run in runs]
    answers = [out.strip() for out, _ in outputs]
    assert sorted(answers) == ["False", "False", "False", "True"], outputs
