"""In-line honours the exemptions ``tsos-rules exempt add`` stored, as ``check`` and ``sync``
do: the app ``tsos-rules serve`` builds refuses a block, allows the same change once the
record is exempt (listing the finding as exempt with the exemption), and refuses it again
after ``exempt revoke``. The refresh window is 0 here; within a window the app answers from
memory (tests/sync/test_stored_exemptions_reader.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from anyio.from_thread import BlockingPortal

from inline_support import AUTH, TOKEN
from tsos_rules.cli.serve import serve_app
from tsos_rules.config import load_config
from tsos_rules.server import ServeSettings
from tsos_rules.testing import deal, snapshot

TODAY = dt.date.today().isoformat()
SOON = (dt.date.today() + dt.timedelta(days=30)).isoformat()
Serve = Callable[[str], tuple[ServeSettings, "_Client"]]
CHANGE = {
    "change": {"record_type": "opportunity", "before": None, "after": deal("o1", next_step="TBD")},
    "context": snapshot(),
    "as_of": TODAY,
}


def _write_config(tmp_path: Path, refresh: str) -> tuple[str, Path]:
    state = tmp_path / "state.sqlite3"
    path = tmp_path / "tsos.toml"
    path.write_text(
        "[connector]\ntype = 'local'\n"
        f"[state]\npath = '{state}'\n"
        "[serve]\ntoken = {env = 'TSOS_TEST_TOKEN'}\n"
        f"decision_log = '{tmp_path / 'decisions.jsonl'}'\n{refresh}",
        encoding="utf-8",
    )
    return str(path), state


class _Client:
    """POSTs to an ASGI app through its whole middleware stack (no socket), from sync code."""

    def __init__(self, portal: BlockingPortal, app: Any) -> None:
        self.portal, self.app = portal, app
        self._http = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://testserver"
        )

    def check(self) -> dict[str, Any]:
        async def post() -> httpx.Response:
            return await self._http.post("/v1/check", json=CHANGE, headers=AUTH)

        response = self.portal.call(post)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def close(self) -> None:
        self.portal.call(self._http.aclose)
        self.app.state.service.close()


@pytest.fixture
def serving(portal: BlockingPortal, monkeypatch: pytest.MonkeyPatch) -> Iterator[Serve]:
    """``serving(config)``: the app ``tsos-rules serve`` runs for that config file."""
    monkeypatch.setenv("TSOS_TEST_TOKEN", TOKEN)
    clients: list[_Client] = []

    def serve(config: str) -> tuple[ServeSettings, _Client]:
        settings, app = serve_app(load_config(config))
        clients.append(_Client(portal, app))
        return settings, clients[-1]

    yield serve
    for client in clients:
        client.close()


def test_an_exempt_add_lets_the_change_through_until_revoked(
    serving: Serve, cli: Callable[..., Any], tmp_path: Path
) -> None:
    config, _ = _write_config(tmp_path, "exemptions_refresh_seconds = 0\n")
    settings, client = serving(config)
    assert settings.exemptions_refresh_seconds == 0
    refused = client.check()
    assert refused["allowed"] is False
    assert "tsos.next-step-required" in {f["rule"] for f in refused["findings"]}

    added = cli(
        "exempt", "add", "--rule", "tsos.next-step-required", "--record", "opportunity:o1",
        "--reason", "buyer on leave", "--until", SOON, "--by", "Dana (RVP)", "--config", config,
    )  # fmt: skip
    assert added.code == 0, added.err
    allowed = client.check()
    assert allowed["allowed"] is True
    (waived,) = allowed["exempt"]
    assert waived["rule"] == "tsos.next-step-required"
    assert waived["exemption"] == {
        "id": "1",
        "source": "state",
        "reason": "buyer on leave",
        "approver": "Dana (RVP)",
        "expires": SOON,
    }

    assert cli("exempt", "revoke", "1", "--by", "Dana (RVP)", "--config", config).code == 0
    assert client.check()["allowed"] is False


def test_serve_reads_no_state_file_that_is_not_there(serving: Serve, tmp_path: Path) -> None:
    config, state = _write_config(tmp_path, "")
    settings, client = serving(config)
    assert settings.exemptions_refresh_seconds == 30
    assert client.check()["allowed"] is False
    assert not state.exists()


def test_a_bad_refresh_setting_names_the_key(serving: Serve, tmp_path: Path) -> None:
    from tsos_rules.errors import ConfigError

    config, _ = _write_config(tmp_path, "exemptions_refresh_seconds = -1\n")
    with pytest.raises(ConfigError, match=r"serve\.exemptions_refresh_seconds"):
        serving(config)


def test_within_the_refresh_window_the_service_answers_from_memory(
    serving: Serve, cli: Callable[..., Any], tmp_path: Path
) -> None:
    config, _ = _write_config(tmp_path, "exemptions_refresh_seconds = 600\n")
    _, client = serving(config)
    assert client.check()["allowed"] is False
    added = cli(
        "exempt", "add", "--rule", "tsos.next-step-required", "--record", "opportunity:o1",
        "--reason", "buyer on leave", "--until", SOON, "--by", "Dana (RVP)", "--config", config,
    )  # fmt: skip
    assert added.code == 0, added.err
    assert client.check()["allowed"] is False  # read again only after 600 s (or a reload)
    assert client.portal.call(client.app.state.service.reload_serialized) is None
    assert client.check()["allowed"] is True
