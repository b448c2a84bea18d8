"""The real ``tsos-rules serve`` in a child process on 127.0.0.1, and raw sockets to poke it.

Raw sockets, not an HTTP client: the tests open connections that never finish their headers,
and time one request on a fresh connection each, as a CRM callout does.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from inline_support import TOKEN
from tsos_rules.testing import deal, snapshot

HOST = "127.0.0.1"
CHECK_BODY = json.dumps(
    {
        "change": {"record_type": "opportunity", "before": None, "after": deal("o1")},
        "context": snapshot(),
        "as_of": "2026-11-24",
    }
).encode()
PARTIAL_HEADERS = f"POST /v1/check HTTP/1.1\r\nHost: {HOST}\r\n".encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def raise_open_files(wanted: int) -> None:
    """This process opens the attack's sockets: lift its soft limit when it is too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


@contextlib.contextmanager
def running_serve(workdir: Path, serve: dict[str, Any]) -> Iterator[int]:
    """``tsos-rules serve`` with ``[serve]`` keys ``serve``; yields its port, stops it after."""
    port = free_port()
    lines = ['[serve]\ntoken = {env = "TSOS_GUARD_TOKEN"}\n']
    lines.append(f'decision_log = "{workdir / "decisions.jsonl"}"\n')
    lines += [f"{key} = {json.dumps(value)}\n" for key, value in serve.items()]
    config = workdir / "tsos.toml"
    config.write_text("".join(lines), encoding="utf-8")
    env = {**os.environ, "TSOS_GUARD_TOKEN": TOKEN}
    env.pop("TSOS_RULES_CONFIG", None)
    command = [sys.executable, "-m", "tsos_rules", "serve", "--config", str(config)]
    command += ["--host", HOST, "--port", str(port), "--log-level", "warning"]
    with (workdir / "access.log").open("wb") as out, (workdir / "server.err").open("wb") as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
    try:
        _wait_until_up(port, process, workdir)
        yield port
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _wait_until_up(port: int, process: subprocess.Popen[bytes], workdir: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError):
            if request(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200:
                return
        if process.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"serve did not start: {(workdir / 'server.err').read_text()}")
        time.sleep(0.1)


def check_request(body: bytes = CHECK_BODY, token: str = TOKEN) -> bytes:
    head = (
        f"POST /v1/check HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {token}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def read_response(sock: socket.socket) -> tuple[int, bytes]:
    """One response (status, body) from ``sock``; needs a content-length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a full response: {data[:80]!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value)
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed mid-body")
        body += chunk
    return int(lines[0].split()[1]), body


def request(port: int, raw: bytes, *, timeout: float = 10.0) -> tuple[int, bytes, float]:
    """Send ``raw`` on a fresh connection from 127.0.0.1: (status, body, seconds taken)."""
    started = time.perf_counter()
    with socket.create_connection((HOST, port), timeout=timeout) as sock:
        sock.sendall(raw)
        status, body = read_response(sock)
    return status, body, time.perf_counter() - started


def open_connections(port: int, source: str, count: int, first: bytes = b"") -> list[socket.socket]:
    """``count`` connections from address ``source`` (any 127.x.y.z), each sending ``first``."""
    opened: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            opened.append(sock)
            sock.settimeout(5)
            sock.bind((source, 0))
            sock.connect((HOST, port))
            if first:
                sock.sendall(first)
    except BaseException:
        close_all(opened)
        raise
    return opened


def close_all(sockets: list[socket.socket]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()


def still_open(sock: socket.socket) -> bool:
    """True when the server has neither closed ``sock`` nor answered on it."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)  # b"" (closed) or the start of an answer
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)
    return False


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
