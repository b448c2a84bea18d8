"""Judging in forked workers gives exactly the findings of judging in one process."""

from __future__ import annotations

import datetime as dt
import logging
import os

import pytest

from tsos_rules.connectors.local.demo import generate_org
from tsos_rules.engine import Engine
from tsos_rules.engine import engine as engine_module
from tsos_rules.engine._forked import can_fork, run_slices
from tsos_rules.snapshot.document import snapshot_from_dict

pytestmark = pytest.mark.skipif(not can_fork(), reason="forked workers need fork (Linux)")


def test_slices_come_back_in_order_from_their_workers() -> None:
    parent = os.getpid()
    results = run_slices(lambda k, n: (k, n, os.getpid() == parent), 3)
    assert results == [(0, 3, True), (1, 3, False), (2, 3, False)]


def test_a_failing_worker_has_its_slice_redone_here(caplog: pytest.LogCaptureFixture) -> None:
    parent = os.getpid()

    def work(k: int, n: int) -> list[int]:
        if os.getpid() != parent:
            raise RuntimeError("worker crashed")
        return list(range(k, 10, n))

    with caplog.at_level(logging.WARNING):
        results = run_slices(work, 2)
    assert results == [[0, 2, 4, 6, 8], [1, 3, 5, 7, 9]]
    assert "worker 1 of 2 failed" in caplog.text


def test_findings_are_the_same_with_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    org = generate_org(opportunities=800, seed=5, as_of=dt.date(2026, 11, 24))
    snapshot, _ = snapshot_from_dict(org)
    monkeypatch.setattr(engine_module, "PARALLEL_MIN_RECORDS", 0)
    engine = Engine.from_config(None)
    index = engine.index(snapshot)
    alone = engine.evaluate_index(index)
    assert len(alone) > 100
    for jobs in (2, 3):
        assert engine.evaluate_index(index, jobs=jobs).to_dict() == alone.to_dict()


def test_small_snapshots_are_judged_without_workers(monkeypatch: pytest.MonkeyPatch) -> None:
    org = generate_org(opportunities=50, seed=5, as_of=dt.date(2026, 11, 24))
    snapshot, _ = snapshot_from_dict(org)
    forks: list[int] = []
    real_fork = os.fork
    monkeypatch.setattr(os, "fork", lambda: forks.append(1) or real_fork())
    engine = Engine.from_config(None)
    engine.evaluate_index(engine.index(snapshot), jobs=4)
    assert forks == []
