"""Issue 14 item 2: idle and slow-header sockets cannot lock callers out of the real ``serve``.

Each test starts ``tsos-rules serve`` (uvicorn) in a child process on 127.0.0.1 and talks to it
over real sockets. Before the guard, 200 idle connections made every request a 503 (uvicorn's
``limit_concurrency`` counts connections) and nothing ever closed them.
"""

from __future__ import annotations

import json
import socket
import sys
import time

import pytest
from serve_guard_support import (
    PARTIAL_HEADERS,
    check_request,
    close_all,
    open_connections,
    percentile,
    raise_open_files,
    read_response,
    request,
    running_serve,
    still_open,
)

from inline_support import TOKEN
from tsos_rules.errors import ConfigError
from tsos_rules.server import ServeSettings

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="binds 127.0.0.x sources")

ATTACKERS = [f"127.0.0.{n}" for n in range(2, 8)]  # 6 addresses x 50 connections = 300


def test_300_idle_and_slow_header_connections_leave_a_real_caller_served(tmp_path):
    raise_open_files(2048)
    held: list[socket.socket] = []
    with running_serve(tmp_path, {"header_timeout_seconds": 60}) as port:
        try:
            for n, source in enumerate(ATTACKERS):
                first = PARTIAL_HEADERS if n % 2 else b""  # half idle, half half-sent
                held += open_connections(port, source, 50, first)
            latencies: list[float] = []
            statuses: list[int] = []
            for i in range(100):
                if i % 25 == 0:  # the slow ones keep trickling a header line
                    for sock in held[50:100] + held[150:200] + held[250:300]:
                        sock.sendall(b"X-Slow: 1\r\n")
                status, body, seconds = request(port, check_request())
                statuses.append(status)
                latencies.append(seconds)
            assert statuses == [200] * 100, sorted(set(statuses))
            assert json.loads(body)["allowed"] in (True, False)
            # Generous for a loaded 2-core CI box; bench/bench_serve_slowloris.py measures it.
            assert percentile(latencies, 99) < 0.5
            assert sum(still_open(sock) for sock in held) == 300  # held, not dropped
        finally:
            close_all(held)


def test_a_connection_that_does_not_finish_its_headers_in_time_gets_408_and_is_closed(tmp_path):
    with running_serve(tmp_path, {"header_timeout_seconds": 0.5}) as port:
        silent = open_connections(port, "127.0.0.1", 1)
        trickling = open_connections(port, "127.0.0.1", 1, PARTIAL_HEADERS)
        try:
            started = time.monotonic()
            for _ in range(8):  # a header line every 0.1 s does not buy more time
                time.sleep(0.1)
                try:
                    trickling[0].sendall(b"X-Slow: 1\r\n")
                except OSError:
                    break
            for sock in silent + trickling:
                sock.settimeout(5)
                status, body = read_response(sock)
                assert status == 408
                assert json.loads(body)["error"]["code"] == "header_timeout"
                assert sock.recv(1) == b""  # then closed
            assert time.monotonic() - started < 4
            assert request(port, check_request())[0] == 200
        finally:
            close_all(silent + trickling)


def test_a_kept_alive_connection_may_idle_between_requests_beyond_the_header_deadline(tmp_path):
    settings = {"header_timeout_seconds": 0.3, "keep_alive_seconds": 5}
    with running_serve(tmp_path, settings) as port:
        (sock,) = open_connections(port, "127.0.0.1", 1)
        try:
            for _ in range(3):
                sock.sendall(check_request())
                assert read_response(sock)[0] == 200
                time.sleep(0.6)  # idle: uvicorn's keep-alive timeout governs, not ours
        finally:
            close_all([sock])


def test_one_client_address_cannot_hold_more_than_its_share(tmp_path):
    settings = {"max_connections_per_client": 5, "header_timeout_seconds": 30}
    with running_serve(tmp_path, settings) as port:
        held = open_connections(port, "127.0.0.9", 5)
        try:
            (extra,) = open_connections(port, "127.0.0.9", 1)
            held.append(extra)
            status, body = read_response(extra)
            assert status == 503
            assert json.loads(body)["error"]["code"] == "too_many_connections"
            assert all(still_open(sock) for sock in held[:5])
            assert request(port, check_request())[0] == 200  # another address is served
            close_all(held[:1])
            deadline = time.monotonic() + 5
            while True:  # the freed slot is given back once the server saw the close
                (again,) = open_connections(port, "127.0.0.9", 1)
                held.append(again)
                again.sendall(check_request())
                status = read_response(again)[0]
                if status == 200 or time.monotonic() > deadline:
                    break
                time.sleep(0.05)
            assert status == 200
        finally:
            close_all(held)


def test_a_total_connection_cap_refuses_the_surplus_with_503(tmp_path):
    settings = {"max_connections": 8, "header_timeout_seconds": 30}
    with running_serve(tmp_path, settings) as port:
        held = open_connections(port, "127.0.0.3", 8)
        try:
            (extra,) = open_connections(port, "127.0.0.4", 1)
            held.append(extra)
            assert read_response(extra)[0] == 503
        finally:
            close_all(held)


def test_max_concurrency_counts_requests_in_progress_not_connections(tmp_path):
    settings = {"max_concurrency": 1, "header_timeout_seconds": 30, "body_timeout_seconds": 30}
    with running_serve(tmp_path, settings) as port:
        idle = open_connections(port, "127.0.0.5", 3)
        try:
            assert request(port, check_request())[0] == 200  # 3 idle sockets take no slot
            (slow,) = open_connections(port, "127.0.0.6", 1)
            idle.append(slow)
            whole = check_request()
            slow.sendall(whole[: len(whole) - 10])  # headers done, body held back: in progress
            deadline = time.monotonic() + 5
            while (status := request(port, check_request())[0]) == 200:
                assert time.monotonic() < deadline, "the slow request never took the slot"
                time.sleep(0.05)
            assert status == 503
            slow.sendall(whole[-10:])
            assert read_response(slow)[0] == 200
            assert request(port, check_request())[0] == 200
        finally:
            close_all(idle)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("header_timeout_seconds", 0),
        ("header_timeout_seconds", 301),
        ("max_connections", 0),
        ("max_connections_per_client", 0),
        ("offload_body_bytes", -1),
        ("max_connections", "many"),
    ],
)
def test_a_bad_limit_names_the_table_and_key(tmp_path, monkeypatch, key, value):
    monkeypatch.setenv("TSOS_GUARD_TOKEN", TOKEN)
    with pytest.raises(ConfigError, match=rf"serve.*{key}"):
        ServeSettings.from_mapping({"token": {"env": "TSOS_GUARD_TOKEN"}, key: value})


def test_the_limits_have_sane_defaults(monkeypatch):
    monkeypatch.setenv("TSOS_GUARD_TOKEN", TOKEN)
    settings = ServeSettings.from_mapping({"token": {"env": "TSOS_GUARD_TOKEN"}})
    assert settings.header_timeout_seconds == 5.0
    assert (settings.max_connections, settings.max_connections_per_client) == (4096, 100)
    assert settings.offload_body_bytes == 16384
