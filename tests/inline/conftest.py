"""Fixtures for the Python in-line API tests: defaults only, and one checker per test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tsos_rules.inline import ChangeChecker


@pytest.fixture(autouse=True)
def _isolated(inline_env: None) -> None:
    """Defaults only, and no cached checker from another test (see tests/conftest.py)."""


@pytest.fixture
def checker() -> Iterator[ChangeChecker]:
    built = ChangeChecker.from_config(None)
    yield built
    built.close()
