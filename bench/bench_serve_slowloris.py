#!/usr/bin/env python3
"""Benchmark ``tsos-rules serve`` under a slowloris: idle and slow-header sockets held open.

    python bench/bench_serve_slowloris.py                  # 1,000 held + 200 from one address
    python bench/bench_serve_slowloris.py --held 1000 --requests 200 --json
    python bench/bench_serve_slowloris.py --large-kb 190   # also: small checks beside 190 KB ones
    python bench/bench_serve_slowloris.py --serve 'max_concurrency = 200'   # extra [serve] lines

The driver starts ``tsos-rules serve`` (uvicorn) as a child process on 127.0.0.1 with a
throw-away config, then, from this process:

1. opens ``--held`` connections spread over ``--sources`` loopback addresses (127.0.0.10, ...;
   each address stays under ``max_connections_per_client``): half send nothing, half send part
   of a request's headers and then one more header line every second (slow headers), plus
   ``--one-address`` more from a single address (127.0.0.250), which the per-client cap refuses
   beyond its limit;
2. sends ``--requests`` authenticated ``POST /v1/check``, each on a fresh connection from
   127.0.0.1, one after another, and reports p50/p95/p99/max, the statuses, and how many of the
   attack's connections the server still holds (a held socket is neither answered nor closed);
3. with ``--large-kb``, repeats step 2 while another thread posts bodies of that size back to back,
   and reports the small checks' latencies (the loop lag a large body causes).

The header deadline is set to ``--header-timeout`` (default 120 s) so that every idle socket stays
held for the whole run: the worst case, not the default 5 s. Bounded: a fixed number of sockets
and requests, 127.0.0.1 only, everything closed at the end. Exit 1 when p99 > 50 ms or any check
is not 200.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inline import realistic_change

HOST = "127.0.0.1"
TARGET_P99_MS = 50.0
TOKEN = "bench-token-" + os.urandom(8).hex()
PARTIAL = f"POST /v1/check HTTP/1.1\r\nHost: {HOST}\r\n".encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def raise_open_files(wanted: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        ceiling = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (ceiling, hard))


def start_server(workdir: Path, port: int, extra: list[str]) -> subprocess.Popen[bytes]:
    config = workdir / "tsos.toml"
    lines = ['[serve]\ntoken = {env = "TSOS_BENCH_TOKEN"}\n']
    lines.append(f'decision_log = "{workdir / "decisions.jsonl"}"\n')
    lines += [line + "\n" for line in extra]
    config.write_text("".join(lines), encoding="utf-8")
    env = {**os.environ, "TSOS_BENCH_TOKEN": TOKEN}
    env.pop("TSOS_RULES_CONFIG", None)
    command = [sys.executable, "-m", "tsos_rules", "serve", "--config", str(config)]
    command += ["--host", HOST, "--port", str(port), "--log-level", "warning"]
    with (workdir / "access.log").open("wb") as out, (workdir / "server.err").open("wb") as err:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=err)
    deadline = time.monotonic() + 30
    while True:
        with contextlib.suppress(OSError):
            if post(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")[0] == 200:
                return process
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start: {(workdir / 'server.err').read_text()}")
        time.sleep(0.1)


def check_request(body: bytes) -> bytes:
    head = (
        f"POST /v1/check HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {TOKEN}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


def read_status(sock: socket.socket) -> int:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed before a response")
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
    return int(lines[0].split()[1])


def post(port: int, raw: bytes) -> tuple[int, float]:
    started = time.perf_counter()
    try:
        with socket.create_connection((HOST, port), timeout=10) as sock:
            sock.sendall(raw)
            status = read_status(sock)
    except OSError:
        status = 0
    return status, time.perf_counter() - started


def open_from(port: int, source: str, count: int, first: bytes) -> tuple[list[socket.socket], int]:
    """Up to ``count`` connections from ``source``; (the ones opened, how many failed)."""
    opened, failed = [], 0
    for _ in range(count):
        sock = socket.socket()
        sock.settimeout(5)
        try:
            sock.bind((source, 0))
            sock.connect((HOST, port))
            if first:
                sock.sendall(first)
        except OSError:
            sock.close()
            failed += 1
            continue
        opened.append(sock)
    return opened, failed


def held(sock: socket.socket) -> bool:
    """Neither answered nor closed by the server."""
    sock.setblocking(False)
    try:
        sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)
    return False


def percentiles(seconds: list[float]) -> dict[str, float]:
    ordered = sorted(s * 1000 for s in seconds)

    def at(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))], 2)

    return {"p50": at(50), "p95": at(95), "p99": at(99), "max": round(ordered[-1], 2)}


def measure(port: int, count: int, body: bytes) -> dict[str, Any]:
    statuses: dict[int, int] = {}
    latencies = []
    for _ in range(count):
        status, seconds = post(port, check_request(body))
        statuses[status] = statuses.get(status, 0) + 1
        latencies.append(seconds)
    return {"requests": count, "statuses": statuses, **percentiles(latencies)}


def large_body(kilobytes: int) -> bytes:
    change = realistic_change()
    activities = change["context"]["activities"]
    template = activities[0]
    index = 0
    while len(json.dumps(change)) < kilobytes * 1024:
        for _ in range(100):
            activities.append(dict(template, id=f"00TX{index:011d}", subject=f"Call {index}"))
            index += 1
    return json.dumps(change).encode()


def run(args: argparse.Namespace) -> dict[str, Any]:
    raise_open_files(args.held + args.one_address + 512)
    port = free_port()
    extra = list(args.serve)
    if args.header_timeout > 0:  # 0: leave it out (a build from before the setting existed)
        extra.append(f"header_timeout_seconds = {args.header_timeout}")
    if args.large_kb:
        extra.append(f"max_body_bytes = {max(262144, (args.large_kb + 64) * 1024)}")
    body = json.dumps(realistic_change()).encode()
    sockets: list[socket.socket] = []
    stop = threading.Event()
    with tempfile.TemporaryDirectory(prefix="tsos-slowloris-") as tmp:
        process = start_server(Path(tmp), port, extra)
        try:
            per_source = -(-args.held // args.sources)
            failed = 0
            for n in range(args.sources):
                count = min(per_source, args.held - n * per_source)
                first = PARTIAL if n % 2 else b""
                opened, lost = open_from(port, f"127.0.0.{10 + n}", count, first)
                sockets += opened
                failed += lost
            spread = list(sockets)
            crowd, lost = open_from(port, "127.0.0.250", args.one_address, b"")
            sockets += crowd
            failed += lost
            slow = [s for n, s in enumerate(spread) if (n // per_source) % 2]

            def trickle() -> None:
                while not stop.wait(1.0):
                    for sock in slow:
                        with contextlib.suppress(OSError):
                            sock.sendall(b"X-Slow: 1\r\n")

            trickler = threading.Thread(target=trickle, daemon=True)
            trickler.start()
            time.sleep(0.5)  # let the server see (and refuse) the crowd
            report: dict[str, Any] = {
                "attack": {
                    "opened": len(sockets) + failed,
                    "spread_over_addresses": args.sources,
                    "slow_header": len(slow),
                    "one_address": args.one_address,
                },
                "with_attack": measure(port, args.requests, body),
            }
            if args.large_kb:
                big = check_request(large_body(args.large_kb))
                large_latencies: list[float] = []

                def hammer() -> None:
                    for _ in range(10_000):  # bounded; stops when the small run ends
                        if stop.is_set():
                            return
                        large_latencies.append(post(port, big)[1])

                heavy = threading.Thread(target=hammer, daemon=True)
                heavy.start()
                report["beside_large_bodies"] = measure(port, args.requests, body)
                report["beside_large_bodies"]["large_kb"] = args.large_kb
                report["beside_large_bodies"]["large_p50_ms"] = percentiles(large_latencies)["p50"]
                stop.set()
                heavy.join(timeout=30)
            still = sum(held(s) for s in sockets)
            report["attack"]["held_by_server_at_end"] = still
            report["attack"]["refused_or_closed"] = len(sockets) + failed - still
        finally:
            stop.set()
            for sock in sockets:
                with contextlib.suppress(OSError):
                    sock.close()
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--held", type=int, default=1000, help="idle/slow sockets to hold")
    parser.add_argument("--sources", type=int, default=20, help="loopback addresses they use")
    parser.add_argument("--one-address", type=int, default=200, help="more, from one address")
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument(
        "--header-timeout", type=float, default=120.0, help="seconds; 0: the server's default"
    )
    parser.add_argument("--large-kb", type=int, default=0, help="also measure beside large bodies")
    parser.add_argument("--serve", action="append", default=[], help="an extra [serve] line")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    report = run(args)
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        attack = report["attack"]
        print(
            f"attack: {attack['opened']} sockets ({attack['slow_header']} slow-header) over "
            f"{attack['spread_over_addresses']} addresses + {attack['one_address']} from one; "
            f"held by the server at the end: {attack['held_by_server_at_end']}, "
            f"refused or closed: {attack['refused_or_closed']}"
        )
        for name in ("with_attack", "beside_large_bodies"):
            if name in report:
                r = report[name]
                print(
                    f"{name}: {r['requests']} checks, statuses {r['statuses']}, p50 {r['p50']} ms, "
                    f"p95 {r['p95']} ms, p99 {r['p99']} ms, max {r['max']} ms"
                )
    runs = [report[n] for n in ("with_attack", "beside_large_bodies") if n in report]
    ok = all(r["statuses"] == {200: r["requests"]} and r["p99"] <= TARGET_P99_MS for r in runs)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
