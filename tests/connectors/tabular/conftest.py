"""Fixtures for the tabular connector: a real PostgreSQL server the tests start themselves.

The server is Debian's ``postgresql`` package (``.ci/run`` installs it). Without it the
PostgreSQL tests are skipped locally, with the reason; under CI (``CI`` set) they fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from tabular_support import fresh_database, postgres_bin, run_postgres


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    bin_dir = postgres_bin()
    if bin_dir is None:
        message = "PostgreSQL server binaries not found (apt-get install postgresql)"
        if os.environ.get("CI"):
            pytest.fail(message + "; CI must run the PostgreSQL tests")
        pytest.skip(message)
    yield from run_postgres(bin_dir)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """An empty database of its own for one test."""
    return fresh_database(postgres_server)
