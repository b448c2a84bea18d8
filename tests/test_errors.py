"""Every error lives in tsos_rules.errors under TsosRulesError; old import paths still work."""

from __future__ import annotations

import warnings

import pytest

import tsos_rules
from tsos_rules import errors
from tsos_rules.connectors.base import ActionStatus


def test_moved_errors_are_the_same_classes_at_their_old_paths() -> None:
    from tsos_rules.inline import ChangeError
    from tsos_rules.server.auth import SignatureProblem
    from tsos_rules.server.decision_log import DecisionLogError
    from tsos_rules.snapshot.document import SnapshotError
    from tsos_rules.sync.state import LockHeldError, StateError

    assert ChangeError is errors.ChangeError
    assert SignatureProblem is errors.SignatureProblem
    assert DecisionLogError is errors.DecisionLogError
    assert SnapshotError is errors.SnapshotError
    assert LockHeldError is errors.LockHeldError
    assert StateError is errors.StateError


@pytest.mark.parametrize(
    ("error", "group"),
    [
        (errors.ChangeError, errors.InputError),
        (errors.SnapshotError, errors.InputError),
        (errors.SignatureProblem, errors.InputError),
        (errors.StateError, errors.StorageError),
        (errors.DecisionLogError, errors.StorageError),
        (errors.LockHeldError, errors.TsosRulesError),
        (errors.FatalConnectorError, errors.ConnectorError),
    ],
)
def test_each_error_sits_in_the_group_of_what_to_do(error: type, group: type) -> None:
    assert issubclass(error, group) and issubclass(error, errors.TsosRulesError)


def test_connector_error_is_exported() -> None:
    assert tsos_rules.ConnectorError is errors.ConnectorError
    assert "ConnectorError" in tsos_rules.__all__


def test_stale_record_error_is_deprecated_in_favour_of_the_action_status() -> None:
    assert "StaleRecordError" not in tsos_rules.__all__
    with pytest.warns(DeprecationWarning, match="ActionStatus.STALE"):
        stale = tsos_rules.StaleRecordError
    assert issubclass(stale, errors.ConnectorError)
    with pytest.warns(DeprecationWarning):
        assert errors.StaleRecordError is stale
    assert ActionStatus.STALE.value == "stale"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AttributeError):
            _ = tsos_rules.NoSuchError


def test_a_config_error_names_its_file_once() -> None:
    error = errors.ConfigError("sync.mode: bad", table="sync", key="mode")
    named = error.in_file("/etc/tsos.toml")
    assert str(named) == "/etc/tsos.toml: sync.mode: bad"
    assert named.in_file("/other.toml") is named
    assert (named.table, named.key) == ("sync", "mode")
