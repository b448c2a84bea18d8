"""A full sync consumes the connector's batches one at a time: each batch is judged, written and
committed before the next one is read, so the org is never held whole."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from tsos_rules.connectors.base import Action, ActionResult, ReadResult
from tsos_rules.connectors.local.connector import LocalConnector
from tsos_rules.connectors.local.crm import LocalCRM
from tsos_rules.sync.state import StateStore

Org = Any


class _Recording(LocalConnector):
    """The local connector, noting when each batch is handed over and each write arrives."""

    def __init__(self, crm: LocalCRM, events: list[str]) -> None:
        super().__init__(crm)
        self.events = events

    def read_batches(
        self, since: str | None, *, until: Any = None, batch_size: int = 1000
    ) -> Iterator[ReadResult]:
        for batch in super().read_batches(since, until=until, batch_size=batch_size):
            self.events.append(f"read {len(batch.changed)}")
            yield batch

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        self.events.append("write")
        return super().write(actions)


def test_each_batch_is_written_and_committed_before_the_next_is_read(
    make_org: Callable[[Mapping[str, Any]], Org], demo_org: dict[str, Any]
) -> None:
    org = make_org(demo_org)
    events: list[str] = []
    connector = _Recording(LocalCRM(org.crm_path), events)
    try:
        summary = org.sync(batch_size=20, connector=connector)
    finally:
        connector.close()
    reads = [i for i, event in enumerate(events) if event.startswith("read")]
    writes = [i for i, event in enumerate(events) if event == "write"]
    assert summary.batches == len(reads) > 5
    assert writes and writes[0] < reads[1]  # the first batch was written before the second read
    assert sum(1 for w in writes if w < reads[-1]) > len(reads) // 2  # and so on, batch by batch
    state = StateStore(org.state_path)
    try:
        assert state.findings("local", status="open")
    finally:
        state.close()
