"""The browser tests' Chromium lookup: a missing browser skips a local run and fails CI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from chromium_support import ENV, chromium_path


def test_a_missing_chromium_fails_under_ci_and_skips_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(ENV, str(tmp_path / "no-chromium"))
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="CI must render the HTML report"):
        chromium_path()
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception, match="is not an executable"):
        chromium_path()


def test_the_named_binary_is_used(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    binary = tmp_path / "my-chromium"
    binary.write_text("#!/bin/sh\n", encoding="utf-8")
    binary.chmod(0o755)
    monkeypatch.setenv(ENV, str(binary))
    assert chromium_path() == str(binary)
    monkeypatch.delenv(ENV)
    monkeypatch.setenv("PATH", str(tmp_path))
    os.rename(binary, tmp_path / "chromium")
    assert chromium_path() == str(tmp_path / "chromium")
