"""Rule reload without restart: the admin endpoint, SIGHUP on a real server, refusals."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from inline_support import AUTH, TOKEN
from tsos_rules import hookimpl
from tsos_rules.config import Config, load_config
from tsos_rules.engine import Engine
from tsos_rules.findings import Severity
from tsos_rules.plugins import collect_packs, get_plugin_manager
from tsos_rules.rules.spec import PythonRule, RulePack, RuleSpec, Violation
from tsos_rules.server.rules import strict_engine
from tsos_rules.testing import deal, snapshot

PLACEHOLDER = {
    "change": {"record_type": "opportunity", "before": None, "after": deal("o1", next_step="TBD")},
    "context": snapshot(),
    "as_of": "2026-11-24",
}


def reasons(response: httpx.Response) -> set[str]:
    return {f"{f['rule']}:{f['reason']}" for f in response.json()["findings"]}


def write_config(path: Path, body: str) -> None:
    path.write_text(body, encoding="utf-8")


def test_reload_picks_up_a_new_config_and_refuses_a_bad_one(make_client, tmp_path):
    config_file = tmp_path / "tsos.toml"
    write_config(config_file, "")
    client = make_client(app_kwargs={"load_config": lambda: load_config(config_file)})
    assert "tsos.next-step-required:placeholder" in reasons(
        client.post("/v1/check", json=PLACEHOLDER, headers=AUTH)
    )

    write_config(config_file, '[rules]\ndisabled = ["tsos.next-step-required"]\n')
    reloaded = client.post("/v1/admin/reload", headers=AUTH)
    assert reloaded.status_code == 200
    assert reloaded.json()["rules"]["reloads"] == 1
    assert client.post("/v1/check", json=PLACEHOLDER, headers=AUTH).json()["allowed"] is True

    write_config(config_file, '[rules]\ndisabled = ["tsos.no-such-rule"]\n')
    refused = client.post("/v1/admin/reload", headers=AUTH)
    assert refused.status_code == 422
    assert "tsos.no-such-rule" in refused.json()["error"]["message"]
    # The previous rules keep serving.
    assert client.post("/v1/check", json=PLACEHOLDER, headers=AUTH).json()["allowed"] is True
    health = client.get("/healthz").json()
    assert "tsos.no-such-rule" in health["rules"]["last_reload_error"]
    assert health["rules"]["reloads"] == 1

    write_config(config_file, "[org]\nlock_stage = 'nowhere'\n")
    assert client.post("/v1/admin/reload", headers=AUTH).status_code == 422


# -- a third-party pack that fails validation ---------------------------------------------------


def _always(facts: Any, params: Any) -> Any:
    yield Violation("always", "A test rule that always fires.")


def make_pack(rule_id: str) -> RulePack:
    spec = RuleSpec(
        id=rule_id,
        severity=Severity.BLOCK,
        record_types=("opportunity",),
        title="Always",
        doctrine="Test.",
    )
    return RulePack(
        name="extra",
        version="1",
        description="test",
        python_rules=(PythonRule(spec=spec, checks={"opportunity": _always}),),
    )


class Plugin:
    """A third-party plugin whose pack the test swaps between valid and invalid."""

    def __init__(self) -> None:
        self.pack = make_pack("extra.always")

    @hookimpl
    def tsos_rules_register_packs(self, register: Any) -> None:
        register(self.pack)


def test_a_pack_that_fails_validation_is_refused_and_the_old_rules_keep_serving(make_client):
    plugin = Plugin()

    def build(config: Config) -> Engine:
        pm = get_plugin_manager(entry_points=False)
        pm.register(plugin, name="extra-plugin")
        packs = collect_packs(pm)
        if pm.failures:
            from tsos_rules.errors import PackValidationError

            raise PackValidationError("; ".join(f.error for f in pm.failures))
        return Engine(packs, org=config.org)

    client = make_client(app_kwargs={"build_engine": build})
    assert "extra.always:always" in reasons(
        client.post("/v1/check", json=PLACEHOLDER, headers=AUTH)
    )

    plugin.pack = make_pack("Extra.Not A Valid Id")
    refused = client.post("/v1/admin/reload", headers=AUTH)
    assert refused.status_code == 422
    assert "id" in refused.json()["error"]["message"]
    assert "extra.always:always" in reasons(
        client.post("/v1/check", json=PLACEHOLDER, headers=AUTH)
    )

    plugin.pack = make_pack("extra.renamed")
    assert client.post("/v1/admin/reload", headers=AUTH).status_code == 200
    assert "extra.renamed:always" in reasons(
        client.post("/v1/check", json=PLACEHOLDER, headers=AUTH)
    )


def test_a_pack_that_crashes_when_evaluated_is_refused(make_client):
    crash = {"on": False}

    def build(config: Config) -> Engine:
        engine = strict_engine(config)
        if crash["on"]:

            def explode(facts: Any) -> Any:
                raise RuntimeError("bug in a pack")

            engine.evaluate_facts = explode  # type: ignore[method-assign]
        return engine

    client = make_client(app_kwargs={"build_engine": build})
    crash["on"] = True
    refused = client.post("/v1/admin/reload", headers=AUTH)
    assert refused.status_code == 422
    assert "smoke evaluation" in refused.json()["error"]["message"]
    assert client.post("/v1/check", json=PLACEHOLDER, headers=AUTH).status_code == 200


# -- SIGHUP on the real server (uvicorn in a child process) ---------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_for(url: str, deadline: float) -> httpx.Response:
    while True:
        try:
            return httpx.get(url, timeout=1)
        except httpx.TransportError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="POSIX signals")
def test_tsos_rules_serve_reloads_on_sighup_and_logs_no_secret(tmp_path):
    port = _free_port()
    config_file = tmp_path / "tsos.toml"
    serve = (
        '[serve]\ntoken = {env = "TSOS_SERVE_TOKEN"}\n'
        f'decision_log = "{tmp_path / "decisions.jsonl"}"\n'
    )
    write_config(config_file, serve)
    env = {**os.environ, "TSOS_SERVE_TOKEN": TOKEN}
    env.pop("TSOS_RULES_CONFIG", None)
    command = [sys.executable, "-m", "tsos_rules", "serve", "--config", str(config_file)]
    command += ["--port", str(port)]
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        assert _wait_for(f"{base}/healthz", time.monotonic() + 20).status_code == 200
        first = httpx.post(f"{base}/v1/check", json=PLACEHOLDER, headers=AUTH, timeout=5)
        assert first.json()["allowed"] is False

        write_config(config_file, serve + '[rules]\ndisabled = ["tsos.next-step-required"]\n')
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while httpx.get(f"{base}/healthz", timeout=2).json()["rules"]["reloads"] < 1:
            assert time.monotonic() < deadline, "SIGHUP did not reload the rules"
            time.sleep(0.05)
        second = httpx.post(f"{base}/v1/check", json=PLACEHOLDER, headers=AUTH, timeout=5)
        assert second.json()["allowed"] is True

        write_config(config_file, serve + "[rules]\nunknown = 1\n")
        process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 10
        while not httpx.get(f"{base}/healthz", timeout=2).json()["rules"]["last_reload_error"]:
            assert time.monotonic() < deadline, "the bad config was not reported"
            time.sleep(0.05)
        third = httpx.post(f"{base}/v1/check", json=PLACEHOLDER, headers=AUTH, timeout=5)
        assert third.json()["allowed"] is True
        assert httpx.post(f"{base}/v1/check", json=PLACEHOLDER, timeout=5).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=20)
    # uvicorn shuts down gracefully, then re-raises SIGTERM (as systemd expects).
    assert process.returncode in (0, -signal.SIGTERM), err.decode()
    assert "Application shutdown complete" in err.decode()
    logs = out.decode() + err.decode()
    assert TOKEN not in logs
    access = [json.loads(line) for line in out.decode().splitlines() if line.startswith("{")]
    assert [a["path"] for a in access if a["path"] == "/v1/check"] == ["/v1/check"] * 4
    assert "rule reload refused" in err.decode()
    decisions = (tmp_path / "decisions.jsonl").read_text().splitlines()
    assert len(decisions) == 3
