"""The HTML report renders in headless Chromium and its charts draw.

Skipped only when Chromium is missing *and* ``CI`` is unset: in CI a missing browser fails.
"""

from __future__ import annotations

import re
import struct
import subprocess
import zlib
from pathlib import Path
from typing import Any

import pytest

from chromium_support import chromium_path
from tsos_rules.report.html import render_html

#: The severity colours of the bars (block red, warn amber) and the pushes' blue.
BAR_COLOURS = ((0xC6, 0x28, 0x28), (0xF0, 0xA2, 0x02), (0x2F, 0x6F, 0xDE))
#: The charts with bars for this org (its deals have no unapproved move of a locked close date:
#: that chart says so in words, tests/report/test_report_charts.py draws it).
CHARTS = {"by-rule", "by-owner", "by-partner", "pushes", "trend-open", "trend-flow"}

pytestmark = pytest.mark.chromium


def _browser() -> str:
    return chromium_path()


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            _browser(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=90,
        check=False,
    )


@pytest.fixture
def report(org: Any, tmp_path: Path) -> Path:
    summary = org.sync(mode="enforce")
    path = tmp_path / "report.html"
    path.write_text(render_html(summary.to_dict()), encoding="utf-8")
    return path


def test_every_chart_draws_its_bars(report: Path, tmp_path: Path) -> None:
    done = _chromium(tmp_path, "--virtual-time-budget=3000", "--dump-dom", report.as_uri())
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    assert f'data-charts-drawn="{len(CHARTS)}"' in dom, "the page script missed a drawn chart"
    charts = re.findall(
        r'<svg class="chart" data-chart="([\w-]+)" data-bars="(\d+)" '
        r'data-drawn="(\d+)"',
        dom,
    )
    assert {name for name, _, _ in charts} == CHARTS
    assert "None: no locked deal's close date was moved without approval." in dom
    for name, bars, drawn in charts:
        assert int(bars) > 0 and drawn == bars, f"chart {name}: {drawn} of {bars} bars drawn"


def test_the_bars_are_painted(report: Path, tmp_path: Path) -> None:
    shot = tmp_path / "report.png"
    done = _chromium(
        tmp_path,
        "--window-size=1000,640",
        "--force-device-scale-factor=0.5",
        f"--screenshot={shot}",
        report.as_uri(),
    )
    assert done.returncode == 0 and shot.exists(), done.stderr[-2000:]
    width, height, pixels = _read_png(shot.read_bytes())
    painted = sum(1 for pixel in pixels if any(_near(pixel, c) for c in BAR_COLOURS))
    # The first row of charts is in view: bars of 18 px by up to 330 px, far more bar colour
    # than a stray icon could paint (a small viewport at half scale keeps the PNG decoding quick).
    assert painted > 1_500, f"only {painted} bar-coloured pixels in a {width}x{height} screenshot"


def _near(pixel: tuple[int, int, int], colour: tuple[int, int, int]) -> bool:
    return all(abs(a - b) <= 6 for a, b in zip(pixel, colour, strict=True))


def _read_png(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decode an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks, header = 8, [], b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    width, height, depth, colour_type, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour_type in (2, 6) and interlace == 0
    channels = 3 if colour_type == 2 else 4
    raw = zlib.decompress(b"".join(chunks))
    stride = width * channels
    previous = bytearray(stride)
    pixels: list[tuple[int, int, int]] = []
    offset = 0
    for _ in range(height):
        kind = raw[offset]
        line = bytearray(raw[offset + 1 : offset + 1 + stride])
        offset += 1 + stride
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up = previous[i]
            corner = previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                estimate = left + up - corner
                pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - corner)
                best = left if pa <= pb and pa <= pc else up if pb <= pc else corner
                line[i] = (line[i] + best) & 0xFF
        pixels.extend((line[i], line[i + 1], line[i + 2]) for i in range(0, stride, channels))
        previous = line
    return width, height, pixels
