"""The read-only reader of ``exempt add`` exemptions that ``check`` and in-line use: it never
creates or migrates a state file, reads only the active ``state`` ones of one connector, names
a damaged file in one warning, and (cached) reads the file again only after its refresh time."""

from __future__ import annotations

import datetime as dt
import sqlite3
import threading
from pathlib import Path

from tsos_rules.sync.state import MIGRATIONS, StateStore
from tsos_rules.sync.state.exemptions import Exemption
from tsos_rules.sync.state.stored_exemptions import StoredExemptions, read_active

TODAY = dt.date.today()
SOON = TODAY + dt.timedelta(days=30)


def _add(store: StateStore, record_id: str, *, connector: str = "local", **kwargs: object) -> int:
    values: dict[str, object] = {
        "rule": "tsos.next-step-*",
        "record_type": "opportunity",
        "record_id": record_id,
        "reason": "buyer on leave",
        "approver": "Dana",
        "expires": SOON,
        **kwargs,
    }
    return store.add_exemption(connector, **values)  # type: ignore[arg-type]


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_no_state_file_reads_nothing_and_creates_nothing(tmp_path: Path) -> None:
    warnings: list[str] = []
    missing = tmp_path / "state" / "state.sqlite3"
    assert read_active(missing, "local", TODAY, warn=warnings.append) == []
    assert StoredExemptions(missing, "local", warn=warnings.append)() == ()
    assert not missing.parent.exists() and warnings == []


def test_only_the_active_state_exemptions_of_the_connector(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = StateStore(path)
    kept = _add(store, "o1")
    _add(store, "o2", connector="salesforce")
    revoked = _add(store, "o3")
    store.revoke_exemption("local", revoked, by="CFO")
    _add(store, "o4", expires=TODAY - dt.timedelta(days=1))
    mirrored = Exemption(
        id=0, connector="local", fingerprint=None, rule="tsos.*", record_type="opportunity",
        record_id="o5", reason="from the config", approver="ops", created_at="", expires=SOON,
        source="config", source_key="config entry 1",
    )  # fmt: skip
    store.mirror_exemptions("local", "config", [mirrored])  # a sync's copy of [[exemptions]]
    assert {e.source for e in store.exemptions("local")} == {"state", "config"}
    store.close()
    (found,) = read_active(path, "local", TODAY)
    assert (found.id, found.source, found.record_id, found.reason) == (
        str(kept),
        "state",
        "o1",
        "buyer on leave",
    )
    assert found.rule == "tsos.next-step-*" and found.expires == SOON


def test_reading_never_migrates_an_old_state_file(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    before_source = next(v for v, _, sql in MIGRATIONS if "ADD COLUMN source" in sql)
    db = sqlite3.connect(path, isolation_level=None)
    for version, _, sql in MIGRATIONS:
        if version < before_source:
            db.executescript(sql)
            db.execute(f"PRAGMA user_version = {version}")
    db.close()
    warnings: list[str] = []
    assert read_active(path, "local", TODAY, warn=warnings.append) == []
    assert warnings == []
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == before_source - 1
    db.close()


def test_a_damaged_file_is_named_in_one_warning(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"this is not a SQLite database" * 100)
    warnings: list[str] = []
    assert read_active(path, "local", TODAY, warn=warnings.append) == []
    (warning,) = warnings
    assert str(path) in warning and "not honoured" in warning and "Traceback" not in warning
    cached = StoredExemptions(path, "local", refresh_seconds=0, warn=warnings.append)
    assert cached() == () and cached() == ()
    assert len(warnings) == 2  # the cache says it once, not on every refresh
    assert path.read_bytes() == b"this is not a SQLite database" * 100


def test_the_cache_reads_again_only_after_its_refresh_time(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = StateStore(path)
    _add(store, "o1")
    now = [100.0]
    cached = StoredExemptions(path, "local", refresh_seconds=30, clock=lambda: now[0])
    assert [e.record_id for e in cached()] == ["o1"]
    _add(store, "o2")
    now[0] += 29
    assert [e.record_id for e in cached()] == ["o1"]  # within the window: from memory
    now[0] += 1
    assert [e.record_id for e in cached()] == ["o1", "o2"]
    store.close()


def test_the_cache_answers_many_threads_at_once(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = StateStore(path)
    _add(store, "o1")
    store.close()
    cached = StoredExemptions(path, "local", refresh_seconds=0)
    seen: list[tuple[str | None, ...]] = []

    def ask() -> None:
        for _ in range(20):
            seen.append(tuple(e.record_id for e in cached()))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [("o1",)] * 80
