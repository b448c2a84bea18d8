"""Fixtures for the Salesforce connector tests: a fake org with ``responses`` active, and JWT
credentials made fresh for the session (the key lives in ``tmp_path``, never in the repo)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sf_support import NOW, Org, add_custom_fields

from tsos_rules.testing.fake_salesforce import FakeSalesforce, make_rsa_key


@pytest.fixture(scope="session")
def key_pair() -> tuple[str, str]:
    """One RSA key pair made in this test session (never stored in the repository)."""
    return make_rsa_key()


@pytest.fixture
def fake() -> Iterator[FakeSalesforce]:
    org = FakeSalesforce(now=NOW)
    add_custom_fields(org)
    with org.mock():
        yield org


@pytest.fixture
def org(fake: FakeSalesforce, tmp_path: Path, key_pair: tuple[str, str]) -> Iterator[Org]:
    creds = fake.setup_jwt(key_pair=key_pair)
    key_file = tmp_path / "integration.key"
    key_file.write_text(creds.private_key_pem)
    key_file.chmod(0o600)
    made = Org(fake, creds, key_file)
    yield made
    for connector in made.connectors:
        connector.close()
