#!/usr/bin/env python3
"""Benchmark the in-line endpoint over HTTP on loopback, with an open-loop load generator.

    python bench/bench_http.py                         # 200 req/s, then higher rates
    python bench/bench_http.py --rates 200,500,1000 --duration 10 --json
    python bench/bench_http.py --wrk 10                # also a closed-loop wrk run (if installed)

The driver starts ``tsos-rules serve`` (uvicorn) as a child process on 127.0.0.1 with a
throw-away config (bearer token from the environment, decision log and access log in a temp
directory), waits for ``/healthz``, and then acts as the load generator in this, a second,
process: each step sends ``POST /v1/check`` with the realistic body of ``bench_inline.py``
(a deal change with its account, lead, partner, owner, 10 history rows and 5 activities) at a
fixed rate for a fixed time, over a pool of keep-alive connections.

The generator is open-loop: request *i* is due at ``start + i / rate`` and its latency is
measured from that due time, not from when a connection became free, so a slow server cannot
hide its queueing (no coordinated omission). A request counts as an error unless it answers
200 with a JSON decision. Steps run in the order given and stop at the first rate that misses
p99 <= 10 ms or has an error; the report gives each step's p50/p90/p99/max, the achieved rate
and the errors, then the highest rate that kept p99 <= 10 ms. Everything is bounded: at most
``rate x duration`` requests per step, 127.0.0.1 only. Exit 1 when 200 req/s misses the target.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_inline import realistic_change

HOST = "127.0.0.1"
TARGET_P99_MS = 10.0
TOKEN = "bench-token-" + os.urandom(8).hex()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_server(workdir: Path, port: int) -> subprocess.Popen[bytes]:
    config = workdir / "tsos.toml"
    config.write_text(
        '[serve]\ntoken = {env = "TSOS_BENCH_TOKEN"}\n'
        f'decision_log = "{workdir / "decisions.jsonl"}"\n'
        "max_concurrency = 1000\n",
        encoding="utf-8",
    )
    env = {**os.environ, "TSOS_BENCH_TOKEN": TOKEN}
    env.pop("TSOS_RULES_CONFIG", None)
    access = (workdir / "access.log").open("wb")
    errors = (workdir / "server.err").open("wb")
    command = [sys.executable, "-m", "tsos_rules", "serve", "--config", str(config)]
    command += ["--host", HOST, "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, env=env, stdout=access, stderr=errors)
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(f"http://{HOST}:{port}/healthz", timeout=1).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"the server did not start: {(workdir / 'server.err').read_text()}")
        time.sleep(0.1)


def raw_request(port: int, body: bytes) -> bytes:
    head = (
        f"POST /v1/check HTTP/1.1\r\nHost: {HOST}:{port}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    if not status_line:
        raise ConnectionError("connection closed")
    status = int(status_line.split()[1])
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    payload = await reader.readexactly(length)
    if status == 200 and not payload.startswith(b'{"allowed":'):
        return -1
    return status


async def run_step(port: int, request: bytes, rate: float, duration: float, connections: int):
    clock = time.perf_counter  # uvloop's loop.time() ticks in whole milliseconds
    pool: asyncio.Queue[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection(HOST, port))
    total = int(rate * duration)
    latencies: list[float] = []
    errors: Counter[str] = Counter()
    tasks: list[asyncio.Task[None]] = []
    start = clock() + 0.05

    async def one(due: float) -> None:
        reader, writer = await pool.get()
        try:
            status = await _exchange(reader, writer, request)
            if status != 200:
                errors[f"status {status}"] += 1
        except (OSError, ConnectionError, asyncio.IncompleteReadError, ValueError) as exc:
            errors[type(exc).__name__] += 1
            writer.close()
            reader, writer = await asyncio.open_connection(HOST, port)
        finally:
            pool.put_nowait((reader, writer))
        latencies.append(clock() - due)

    for index in range(total):
        due = start + index / rate
        delay = due - clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(due)))
    await asyncio.gather(*tasks)
    finished = clock()
    while not pool.empty():
        pool.get_nowait()[1].close()
    ordered = sorted(latencies)

    def ms(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 3)

    return {
        "rate": rate,
        "requests": total,
        "achieved_rps": round(total / (finished - start), 1),
        "p50_ms": ms(0.50),
        "p90_ms": ms(0.90),
        "p99_ms": ms(0.99),
        "max_ms": round(ordered[-1] * 1000, 3),
        "errors": dict(errors),
    }


def run_wrk(port: int, body: bytes, seconds: int, workdir: Path) -> str | None:
    wrk = shutil.which("wrk")
    if wrk is None:
        return None
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(body.decode())}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {TOKEN}"\n',
        encoding="utf-8",
    )
    command = [wrk, "-t1", "-c8", f"-d{seconds}s", "--latency", "-s", str(script)]
    command.append(f"http://{HOST}:{port}/v1/check")
    done = subprocess.run(command, capture_output=True, text=True, timeout=seconds + 30)
    return done.stdout


USE_UVLOOP = False


def _run(coroutine: Any) -> Any:
    """Plain asyncio by default: uvloop's timers tick in whole milliseconds, which bunches the
    generator's sends into bursts and inflates the tails it measures."""
    if USE_UVLOOP:
        import uvloop

        return uvloop.run(coroutine)
    return asyncio.run(coroutine)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="200,400,600,800,1000,1200,1500,2000")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per step")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--wrk", type=int, default=0, help="seconds of closed-loop wrk (0: no)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--uvloop", action="store_true", help="run the generator on uvloop")
    options = parser.parse_args(argv)
    global USE_UVLOOP
    USE_UVLOOP = options.uvloop
    rates = [float(r) for r in options.rates.split(",")]
    if not 0 < options.duration <= 60 or any(not 0 < r <= 20_000 for r in rates):
        parser.error("keep it bounded: 0 < duration <= 60 s, 0 < rate <= 20000")

    body = json.dumps(realistic_change(), separators=(",", ":")).encode()
    steps: list[dict[str, Any]] = []
    wrk_out = None
    with tempfile.TemporaryDirectory(prefix="tsos-bench-") as tmp:
        workdir = Path(tmp)
        port = free_port()
        server = start_server(workdir, port)
        try:
            request = raw_request(port, body)
            _run(run_step(port, request, 100, 2, 8))  # warm-up
            for rate in rates:
                step = _run(run_step(port, request, rate, options.duration, options.connections))
                steps.append(step)
                if not options.json:
                    print(json.dumps(step), flush=True)
                if step["errors"] or step["p99_ms"] > TARGET_P99_MS:
                    break
            if options.wrk:
                wrk_out = run_wrk(port, body, options.wrk, workdir)
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(timeout=30)
        logged = sum(1 for _ in (workdir / "decisions.jsonl").open())
    good = [s for s in steps if not s["errors"] and s["p99_ms"] <= TARGET_P99_MS]
    first = steps[0] if steps else None
    met = bool(first and first["rate"] == 200 and first in good)
    summary = {
        "body_bytes": len(body),
        "cpus": os.cpu_count(),
        "load_average": os.getloadavg(),
        "steps": steps,
        "highest_rate_p99_within_target": max((s["rate"] for s in good), default=None),
        "decisions_logged": logged,
        "target_200rps_met": met,
    }
    if options.json:
        summary["wrk"] = wrk_out
        print(json.dumps(summary, indent=1))
    else:
        print(f"body {len(body)} bytes; {logged} decisions logged; load {summary['load_average']}")
        print(
            f"highest rate with p99 <= {TARGET_P99_MS:g} ms and no error: "
            f"{summary['highest_rate_p99_within_target']} req/s"
        )
        print(f"200 req/s target: {'met' if met else 'MISSED'}")
        if wrk_out:
            print("\nwrk (closed loop, 8 connections):\n" + wrk_out)
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
