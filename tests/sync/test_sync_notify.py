"""Notifications after a sync, through apprise's real machinery: ``json://`` URLs posted to a
tiny HTTP server on 127.0.0.1, a closed port for a failing service, and secrets that never
reach the output or the logs."""

from __future__ import annotations

import copy
import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tsos_rules.sync.job import run_sync

Cli = Callable[..., Any]
SECRET = "S3cr3tT0kenXyZ42"


class _Receiver(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = json.loads(self.rfile.read(length) or b"null")
        self.server.posts.append((self.path, body))  # type: ignore[attr-defined]
        self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[Any]:
    """A real HTTP server on a free 127.0.0.1 port; ``.posts`` holds (path, JSON body)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    server.posts = []  # type: ignore[attr-defined]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _url(server: Any, path: str) -> str:
    return f"json://127.0.0.1:{server.server_address[1]}/{path}"


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


def _config(org: Any, notify: Mapping[str, Any], **sync: Any) -> dict[str, Any]:
    config = org.config(**sync)
    config["notify"] = dict(notify)
    return config


def test_after_a_sync_the_admin_summary_is_posted(
    org: Any, receiver: Any, monkeypatch: pytest.MonkeyPatch, caplog: Any
) -> None:
    monkeypatch.setenv("TSOS_TEST_NOTIFY_URLS", _url(receiver, f"hook/{SECRET}"))
    config = _config(org, {"urls_env": "TSOS_TEST_NOTIFY_URLS", "on": "always"})
    caplog.set_level(logging.DEBUG)
    summary = run_sync(config, report="/srv/reports/today.html")
    assert SECRET not in caplog.text  # not even in apprise's or urllib3's debug lines
    assert summary.notifications == [{"service": "json", "status": "sent"}]
    [(path, body)] = receiver.posts
    assert path == f"/hook/{SECRET}"
    assert f"{summary.open_block:,} open block(s)" in body["title"]
    message = body["message"]
    assert f"Open: {summary.open_block:,} block" in message
    assert f"This run: {summary.findings_new:,} new" in message
    top = max(summary.owners.values(), key=lambda c: c.open_block)
    assert f"Owners with the most open blocks:\n  {top.name}: {top.open_block}" in message
    assert "Report: /srv/reports/today.html" in message


def test_a_failing_service_never_fails_the_sync_and_is_named_in_the_summary(
    org: Any, make_org: Any, demo_org: Any, tmp_path: Path, cli: Cli, caplog: Any
) -> None:
    plain = make_org(demo_org).sync()
    url = f"json://user:{SECRET}@127.0.0.1:{_closed_port()}/hook/{SECRET}"
    path = tmp_path / "tsos.toml"
    path.write_text(
        f"[connector]\ntype = 'local'\npath = '{org.crm_path}'\n"
        f"[state]\npath = '{org.state_path}'\n"
        f"[notify]\nurls_file = '{tmp_path / 'urls'}'\non = 'always'\n",
        encoding="utf-8",
    )
    (tmp_path / "urls").write_text(f"# the ops channel\n{url}\n", encoding="utf-8")
    caplog.set_level(logging.DEBUG)
    result = cli("sync", "--config", str(path))
    assert result.code == plain.exit_code  # exit 1: blocks open, as without notifications
    assert "notification failed: json, " in result.out
    as_json = cli("sync", "--config", str(path), "--format", "json")
    [entry] = json.loads(as_json.out)["notifications"]
    assert entry["service"] == "json" and entry["status"] == "failed"
    assert "connection error" in entry["reason"].lower()
    everything = result.out + result.err + as_json.out + as_json.err + caplog.text
    assert SECRET not in everything
    assert "tsos-rules: notification failed: json" in result.err  # logged, redacted


def test_owner_digests_list_each_owners_open_findings(
    org: Any, receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = org.sync(mode="report")
    owner_id, owner = max(first.owners.items(), key=lambda item: item[1].open_block)
    monkeypatch.setenv("TSOS_TEST_OWNER_TOKEN", SECRET)
    notify = {
        "on": "always",
        "owner_digest": True,
        "owner_limit": 3,
        "owners": {owner.name: _url(receiver, "owner/${TSOS_TEST_OWNER_TOKEN}")},
    }
    summary = run_sync(_config(org, notify, mode="report"))
    assert summary.notifications == [{"service": "json", "status": "sent", "owner": owner.name}]
    [(path, body)] = receiver.posts
    assert path == f"/owner/{SECRET}"
    lines = body["message"].splitlines()
    assert lines[0].startswith(owner.name)
    assert len([line for line in lines if line.startswith("- [")]) == 3
    assert lines[1].startswith("- [block]")  # blocks first
    assert f"and {summary.owners[owner_id].open - 3:,} more" in lines[-1]


def test_owner_url_template_uses_the_email_in_the_snapshot(
    make_org: Any, demo_org: Any, receiver: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The documented shape: a token from ${VAR} beside the owner's {email}."""
    monkeypatch.setenv("TSOS_TEST_MAIL_TOKEN", SECRET)
    document = copy.deepcopy(demo_org)
    for user in document["users"]:
        user["email"] = f"{user['id']}@example.com"
    org = make_org(document)
    notify = {
        "owner_digest": True,
        "owner_limit": 1,
        "owner_url_template": _url(receiver, "mail/${TSOS_TEST_MAIL_TOKEN}/{email}"),
    }
    summary = run_sync(_config(org, notify, mode="report"))
    sent = [n for n in summary.notifications if n["status"] == "sent"]
    with_findings = [k for k, c in summary.owners.items() if k and c.open > 0]
    assert len(sent) == len(with_findings) > 0
    assert sorted(path for path, _ in receiver.posts) == sorted(
        f"/mail/{SECRET}/{owner_id}@example.com" for owner_id in with_findings
    )


def test_nothing_is_sent_on_a_dry_run_or_when_nothing_changed(org: Any, receiver: Any) -> None:
    notify = {"urls": [_url(receiver, "hook")], "on": "changes"}
    dry = run_sync(_config(org, notify), dry_run=True)
    assert dry.notifications == [] and receiver.posts == []
    first = run_sync(_config(org, notify))
    assert len(receiver.posts) == 1 and first.findings_new > 0
    again = run_sync(_config(org, notify))  # same day, nothing changed in the CRM
    assert again.findings_new == again.findings_resolved == 0
    assert again.notifications == [] and len(receiver.posts) == 1


def test_a_missing_url_variable_is_a_failed_notification_not_a_failed_sync(
    org: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TSOS_TEST_NOTIFY_URLS", raising=False)
    summary = run_sync(_config(org, {"urls_env": "TSOS_TEST_NOTIFY_URLS", "on": "always"}))
    assert summary.outcome == "ok"
    [entry] = summary.notifications
    assert entry["service"] == "config" and entry["status"] == "failed"
    assert "TSOS_TEST_NOTIFY_URLS is not set" in entry["reason"]


@pytest.mark.parametrize(
    ("body", "key"),
    [
        ("on = 'sometimes'", "notify.on"),
        (f"urls = 'json://example.org/{SECRET}'", "notify.urls"),
        (f"owner_url_template = 'mailtos://x/{SECRET}?to={{mail}}'", "notify.owner_url_template"),
        ("[notify.owners]\nJane = 3", "notify.owners"),
    ],
)
def test_bad_notify_settings_exit_2_naming_the_key_never_the_url(
    body: str, key: str, cli: Cli, tmp_path: Path
) -> None:
    path = tmp_path / "tsos.toml"
    path.write_text(f"[notify]\n{body}\n", encoding="utf-8")
    result = cli("sync", "--config", str(path), "--dry-run")
    assert result.code == 2 and key in result.err
    assert SECRET not in result.err + result.out and "Traceback" not in result.err


@pytest.mark.parametrize(
    "url",
    [
        f"slack://{SECRET}/B0000/C0000/#sales",  # Slack's tokens sit where a host would
        f"mailtos://ops:{SECRET}@smtp.example.com?to=jane@example.com",
        f"msteams://team/{SECRET}/abc/def",
        f"json://127.0.0.1:9/hook?token={SECRET}",
    ],
)
def test_a_failure_reason_never_holds_a_token(url: str) -> None:
    from tsos_rules.sync.notify import redact, service_of

    said = f"Failed to send to {url} ({SECRET}): refused"
    assert SECRET not in redact(said, [url])
    assert service_of(url) == url.split("://")[0]
