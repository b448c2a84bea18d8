"""ConnectorContract is worth inheriting only if it fails broken connectors: each classic
connector bug below must make the matching contract check fail."""

from __future__ import annotations

import datetime as dt
import inspect
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import pytest

from tsos_rules.connectors.base import Action, ActionKind, ActionResult, Connector, ReadResult
from tsos_rules.model import Snapshot
from tsos_rules.testing import ConnectorContract, FakeConnector, FakeCRM
from tsos_rules.testing.contract import CONTRACT_SNAPSHOT

#: These tests run as a plugin author's suite would: no config, no installed plugins.
pytestmark = pytest.mark.usefixtures("isolated_env")

MICROSECOND = dt.timedelta(microseconds=1)


class InclusiveSince(FakeConnector):
    """Reads ``[since, until]``: records at the watermark come back as new."""

    def read(self, since: str | None, *, until: dt.datetime | None = None) -> ReadResult:
        if since is not None:
            since = (dt.datetime.fromisoformat(since) - MICROSECOND).isoformat()
        return super().read(since, until=until)


class ExclusiveUntil(FakeConnector):
    """Reads ``(since, until)`` but moves the watermark to ``until``: a gap."""

    def read(self, since: str | None, *, until: dt.datetime | None = None) -> ReadResult:
        result = super().read(since, until=until - MICROSECOND if until else None)
        return attrs.evolve(result, watermark=until.isoformat() if until else result.watermark)


class OnlyChangedRecords(FakeConnector):
    """Returns the changed records without the records they relate to."""

    def read(self, since: str | None, *, until: dt.datetime | None = None) -> ReadResult:
        result = super().read(since, until=until)
        keep = {record_id for _, record_id in result.changed}
        snap = result.snapshot
        trimmed = Snapshot(
            as_of=snap.as_of,
            accounts=tuple(r for r in snap.accounts if r.id in keep),
            leads=tuple(r for r in snap.leads if r.id in keep),
            opportunities=tuple(r for r in snap.opportunities if r.id in keep),
            activities=tuple(r for r in snap.activities if r.id in keep),
        )
        return attrs.evolve(result, snapshot=trimmed)


class DuplicateTasks(FakeConnector):
    """Creates a new task every time, ignoring the fingerprint."""

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        for action in actions:
            if action.kind is ActionKind.CREATE_TASK:
                self.crm.tasks.pop(action.fingerprint, None)
        return super().write(actions)


class IgnoresVersions(FakeConnector):
    """Applies repairs whatever changed since the read."""

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        return super().write([attrs.evolve(a, expected_version=None) for a in actions])


class RaisesOnBadItem(FakeConnector):
    """Lets one refused item's exception escape ``write``."""

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        for action in actions:
            if action.record_id == "o404":
                raise KeyError(action.record_id)
        return super().write(actions)


class Harness(ConnectorContract):
    """Not collected (no ``Test`` prefix): the checks are called one by one below."""

    def __init__(self, connector_class: type[FakeConnector]) -> None:
        self.connector_class = connector_class
        self.crms: dict[Path, FakeCRM] = {}

    def make_connector(self, tmp_path: Path) -> Connector:
        return self.connector_class(self.crms.setdefault(tmp_path, FakeCRM()))

    def seed(self, connector: Connector, snapshot: Snapshot, *, at: dt.datetime) -> None:
        assert isinstance(connector, FakeConnector)
        connector.crm.load(snapshot, at=at)

    def change_record(
        self,
        connector: Connector,
        record_type: str,
        record_id: str,
        changes: Mapping[str, Any],
        *,
        at: dt.datetime,
    ) -> None:
        assert isinstance(connector, FakeConnector)
        connector.crm.update(record_type, record_id, changes, at=at)


def run_check(connector_class: type[FakeConnector], check: str, tmp_path: Path) -> None:
    harness = Harness(connector_class)
    connector = harness.make_connector(tmp_path)
    harness.seed(connector, CONTRACT_SNAPSHOT, at=harness.T0)
    method = getattr(harness, check)
    arguments: dict[str, Any] = {"seeded": connector, "connector": connector, "tmp_path": tmp_path}
    wanted = inspect.signature(method).parameters
    method(**{name: arguments[name] for name in wanted})


@pytest.mark.parametrize(
    ("connector_class", "check"),
    [
        (InclusiveSince, "test_no_gap_and_no_duplicate_at_the_watermark"),
        (ExclusiveUntil, "test_nothing_new_reads_nothing"),
        (ExclusiveUntil, "test_no_gap_and_no_duplicate_at_the_watermark"),
        (OnlyChangedRecords, "test_related_records_arrive_with_a_changed_deal"),
        (DuplicateTasks, "test_create_task_is_idempotent"),
        (IgnoresVersions, "test_stale_write_is_refused"),
        (RaisesOnBadItem, "test_results_in_order_and_one_bad_item_fails_alone"),
    ],
)
def test_the_contract_fails_a_broken_connector(
    connector_class: type[FakeConnector], check: str, tmp_path: Path
) -> None:
    with pytest.raises((AssertionError, KeyError)):
        run_check(connector_class, check, tmp_path)


@pytest.mark.parametrize(
    "check",
    [
        "test_no_gap_and_no_duplicate_at_the_watermark",
        "test_nothing_new_reads_nothing",
        "test_related_records_arrive_with_a_changed_deal",
        "test_create_task_is_idempotent",
        "test_stale_write_is_refused",
        "test_results_in_order_and_one_bad_item_fails_alone",
    ],
)
def test_the_same_checks_pass_the_sound_fake(check: str, tmp_path: Path) -> None:
    run_check(FakeConnector, check, tmp_path)
