"""Fixtures for the tabular connector: real PostgreSQL and MariaDB servers the tests start.

The servers are Debian's ``postgresql`` and ``mariadb-server`` packages (``.ci/run`` installs
both). Without one, its tests are skipped locally, with the reason; under CI (``CI`` set) they
fail.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from tabular_support import (
    fresh_database,
    fresh_mariadb_database,
    mariadb_bin,
    postgres_bin,
    run_mariadb,
    run_postgres,
)


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message + "; CI must run these tests")
    pytest.skip(message)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    bin_dir = postgres_bin()
    if bin_dir is None:
        _missing("PostgreSQL server binaries not found (apt-get install postgresql)")
    assert bin_dir is not None
    yield from run_postgres(bin_dir)


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """An empty database of its own for one test."""
    return fresh_database(postgres_server)


@pytest.fixture(scope="session")
def mariadb_server() -> Iterator[str]:
    sbin = mariadb_bin()
    if sbin is None:
        _missing("MariaDB server binaries not found (apt-get install mariadb-server)")
    try:
        import pymysql  # noqa: F401  (the mysql extra's driver)
    except ImportError:
        _missing("PyMySQL not installed (pip install 'tsos-rules[mysql]')")
    assert sbin is not None
    yield from run_mariadb(sbin)


@pytest.fixture
def mariadb_url(mariadb_server: str) -> str:
    """An empty database of its own for one test."""
    return fresh_mariadb_database(mariadb_server)
