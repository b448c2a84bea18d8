"""The local connector with some of its optional reads hidden, to test the sync's fallbacks.

The methods are declared on the classes (not forwarded by ``__getattr__``): since Python 3.12
``isinstance`` against a runtime protocol looks attributes up statically.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from typing import Any

from tsos_rules.connectors.base import ReadResult
from tsos_rules.connectors.local.connector import LocalConnector


class NoKeyedReads:
    """The local connector without ``read_where``: the job finds the readers in a full read."""

    name = "local"

    def __init__(self, inner: LocalConnector) -> None:
        self.inner = inner

    def capabilities(self) -> Any:
        return self.inner.capabilities()

    def read(self, since: str | None, *, until: Any = None) -> Any:
        return self.inner.read(since, until=until)

    def read_batches(self, since: str | None, *, until: Any = None, batch_size: int = 1000) -> Any:
        return self.inner.read_batches(since, until=until, batch_size=batch_size)

    def write(self, actions: Any) -> Any:
        return self.inner.write(actions)

    def close(self) -> None:
        self.inner.close()


class GroupReads(NoKeyedReads):
    """The local connector without ``stream_where``: readers come with their company groups."""

    def read_where(
        self, record_type: str, field: str, values: Collection[str], *, batch_size: int = 1000
    ) -> Iterator[ReadResult]:
        return self.inner.read_where(record_type, field, values, batch_size=batch_size)
