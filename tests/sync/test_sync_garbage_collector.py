"""The sync pauses Python's automatic garbage collections while it reads and judges (they walked
every live record again and again), frees each batch's reference cycles after the batch, and
leaves the collector as it found it, even when the run fails."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import Any

import pytest

from tsos_rules.errors import ConnectorError
from tsos_rules.sync import job


class _Cycle:
    """An object in a reference cycle, counted while alive: only a collection frees it."""

    alive = 0

    def __init__(self) -> None:
        self.me = self
        self.payload = bytearray(1024)
        _Cycle.alive += 1

    def __del__(self) -> None:
        _Cycle.alive -= 1


@pytest.fixture
def restore_gc() -> Iterator[None]:
    enabled = gc.isenabled()
    yield
    (gc.enable if enabled else gc.disable)()


def test_cycles_a_batch_makes_are_freed_batch_by_batch(
    org: Any, monkeypatch: pytest.MonkeyPatch, restore_gc: None
) -> None:
    process = job._Job._process
    live_at_batch: list[int] = []

    def process_making_cycles(self: Any, batch: Any, as_of: Any, **kwargs: Any) -> None:
        live_at_batch.append(_Cycle.alive)
        for _ in range(50):
            _Cycle()
        assert not gc.isenabled()  # automatic collections are paused during the batches
        process(self, batch, as_of, **kwargs)

    monkeypatch.setattr(job._Job, "_process", process_making_cycles)
    gc.collect()
    summary = org.sync(batch_size=5)
    assert summary.batches > 10
    # Each batch starts with the cycles of the ones before it freed, never their sum.
    assert max(live_at_batch) == 0, live_at_batch
    assert gc.isenabled()


def test_the_collector_is_left_as_the_run_found_it(org: Any, restore_gc: None) -> None:
    gc.enable()
    org.sync()
    assert gc.isenabled()
    gc.disable()
    org.sync(full=True)
    assert not gc.isenabled()


def test_a_failed_run_restores_the_collector(
    org: Any, monkeypatch: pytest.MonkeyPatch, restore_gc: None
) -> None:
    def failing(self: Any, batch: Any, as_of: Any, **kwargs: Any) -> None:
        raise ConnectorError("the CRM went away")

    monkeypatch.setattr(job._Job, "_process", failing)
    gc.enable()
    with pytest.raises(ConnectorError):
        org.sync()
    assert gc.isenabled()
