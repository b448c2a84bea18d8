"""Where the browser tests find Chromium (importable: this directory is on sys.path).

``TSOS_RULES_CHROMIUM`` names the binary, else ``chromium`` (Debian's package, which ``.ci/run``
installs) on the PATH. When it is missing the test is skipped, except under ``CI``, where a
missing browser fails: CI must render the report.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

ENV = "TSOS_RULES_CHROMIUM"


def chromium_path() -> str:
    """The Chromium binary to run (skips or fails the calling test when there is none)."""
    named = os.environ.get(ENV)
    path = named if named and os.access(named, os.X_OK) else None
    if path is None and not named:
        path = next(
            (found for name in ("chromium", "chromium-browser") if (found := shutil.which(name))),
            None,
        )
    if path is None:
        why = f"{ENV}={named!r} is not an executable" if named else "chromium is not installed"
        if os.environ.get("CI"):
            pytest.fail(f"{why}, and CI must render the HTML report in a real browser")
        pytest.skip(f"{why} (apt-get install chromium, or set {ENV}); CI runs this test")
    return path


@contextmanager
def browser() -> Iterator[Any]:
    """Headless Chromium driven by Playwright (Debian's binary: never ``playwright install``)."""
    path = chromium_path()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip("playwright is not installed (pip install -e '.[dev]'); CI runs this test")

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=path, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()
