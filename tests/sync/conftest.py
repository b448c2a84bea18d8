"""Fixtures for the sync job: a demo CRM and a state file in tmp_path, never the user's dirs."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from tsos_rules.config import DATA_DIR_ENV
from tsos_rules.connectors.local.crm import LocalCRM
from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.sync.job import run_sync
from tsos_rules.sync.state import StateStore
from tsos_rules.sync.summary import SyncSummary

AS_OF = dt.date(2026, 11, 24)


@pytest.fixture(autouse=True)
def data_dir(isolated_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point the default data directory at tmp_path, so nothing touches the real one."""
    path = tmp_path / "data"
    monkeypatch.setenv(DATA_DIR_ENV, str(path))
    return path


@pytest.fixture
def contrib_packs(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every installed pack, contrib packs included (``data_dir``'s isolation turns third-party
    plugins off): ``pytestmark = pytest.mark.usefixtures("contrib_packs")``."""
    monkeypatch.delenv("TSOS_RULES_DISABLE_PLUGINS", raising=False)


@pytest.fixture(scope="session")
def demo_org() -> dict[str, Any]:
    """A generated org of 300 deals (about 1,400 records), as of AS_OF."""
    return generate_org(opportunities=300, seed=7, as_of=AS_OF)


class Org:
    """One test's CRM file and state file, with a helper to run the sync against them."""

    def __init__(self, tmp_path: Path, document: Mapping[str, Any]) -> None:
        self.crm_path = tmp_path / "crm.sqlite3"
        self.state_path = tmp_path / "state.sqlite3"
        self.crm = LocalCRM(self.crm_path)
        self.crm.seed(copy.deepcopy(dict(document)))

    def config(self, **sync: Any) -> dict[str, Any]:
        return {
            "connector": {"type": "local", "path": str(self.crm_path)},
            "state": {"path": str(self.state_path)},
            "sync": sync,
        }

    def sync(self, *, as_of: dt.date = AS_OF, full: bool = False, **kwargs: Any) -> SyncSummary:
        options = {k: kwargs.pop(k) for k in ("dry_run", "connector", "mode") if k in kwargs}
        return run_sync(self.config(**kwargs), as_of=as_of, full=full, **options)

    def state(self) -> StateStore:
        return StateStore(self.state_path)

    def open_findings(self) -> dict[str, Any]:
        state = self.state()
        try:
            return {f.fingerprint: f for f in state.findings("local", status="open")}
        finally:
            state.close()


@pytest.fixture
def make_org(tmp_path: Path) -> Iterator[Callable[[Mapping[str, Any]], Org]]:
    """Build an Org from a snapshot document (several per test get their own folders)."""
    made: list[Org] = []

    def make(document: Mapping[str, Any]) -> Org:
        folder = tmp_path / f"org{len(made)}"
        folder.mkdir()
        org = Org(folder, document)
        made.append(org)
        return org

    yield make
    for org in made:
        org.crm.close()


@pytest.fixture
def org(make_org: Callable[[Mapping[str, Any]], Org], demo_org: dict[str, Any]) -> Org:
    """The 300-deal demo org in a fresh CRM."""
    return make_org(demo_org)
