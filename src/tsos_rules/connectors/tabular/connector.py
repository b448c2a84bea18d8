"""The ``tabular`` connector: any CRM whose data sits in CSV files or an SQL database.

``TabularConnector.from_settings(table)`` is the factory registered as ``tabular``; ``table`` is
the raw ``[connector]`` config table. See ``docs/tabular.md`` for the mapping reference.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from tsos_rules.config import read_secret
from tsos_rules.connectors.base import Action, ActionResult, Capabilities, Problem, ReadResult
from tsos_rules.connectors.tabular.check import check
from tsos_rules.connectors.tabular.mapping import Codec
from tsos_rules.connectors.tabular.reader import Reader
from tsos_rules.connectors.tabular.settings import NAME, TabularSettings, zone
from tsos_rules.connectors.tabular.source import CsvSource, Source, SqlSource
from tsos_rules.connectors.tabular.writer import Writer


def open_source(settings: TabularSettings) -> Source:
    """The CRM's storage the settings name (the URL's secret is resolved only here)."""
    if settings.url is not None:
        reference = settings.url
        url = (
            reference["value"] if "value" in reference else read_secret(reference, "connector.url")
        )
        return SqlSource(url, timeout_seconds=settings.timeout_seconds, zone=zone(settings))
    assert settings.folder is not None
    return CsvSource(settings.folder, encoding=settings.encoding, delimiter=settings.delimiter)


class TabularConnector:
    """Reads mapped tables into snapshots and writes findings to a task table or an outbox."""

    name = NAME

    def __init__(
        self,
        settings: TabularSettings,
        *,
        source: Source | None = None,
        now: Callable[[], dt.datetime] | None = None,
    ) -> None:
        self.settings = settings
        self.source = source or open_source(settings)
        self._now = now or (lambda: dt.datetime.now(dt.UTC))
        self.codecs = {
            name: Codec(
                mapping,
                zone(settings),
                date_format=settings.date_format,
                datetime_format=settings.datetime_format,
            )
            for name, mapping in settings.tables.items()
        }
        write = settings.write
        self.store: Source | None
        if write.mode == "none":
            self.store = None
        elif write.folder is not None:
            self.store = CsvSource(write.folder, encoding=settings.encoding)
        else:
            self.store = self.source
        self.reader = Reader(settings, self.source, self.codecs, now=self._now)
        self.writer = Writer(settings, self.source, self.store, self.codecs, now=self._now)
        self._closed = False

    @classmethod
    def from_settings(cls, table: Mapping[str, Any], **kwargs: Any) -> TabularConnector:
        """The factory registered as ``tabular``: validates the ``[connector]`` table."""
        return cls(TabularSettings.parse(table), **kwargs)

    def capabilities(self) -> Capabilities:
        write = self.settings.write
        repairs = write.repairs and any(m.conditional for m in self.settings.tables.values())
        return Capabilities(
            incremental=self.reader.incremental,
            tasks=write.mode != "none",
            field_updates=repairs,
            conditional_updates=repairs,
            idempotent_upsert=True,
            max_batch=500,
        )

    def read(self, since: str | None, *, until: dt.datetime | None = None) -> ReadResult:
        return self.reader.read(since, until)

    def read_batches(
        self, since: str | None, *, until: dt.datetime | None = None, batch_size: int = 1000
    ) -> Iterator[ReadResult]:
        """Like ``read``, in pages of ``batch_size`` company groups (SQL sources; a CSV folder
        comes whole, in one batch). Every page carries the same final watermark."""
        return self.reader.read_batches(since, until, batch_size)

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        if not actions:
            return []
        return self.writer.write(actions)

    def check(self, ladder: Sequence[str] = ()) -> list[Problem]:
        """Validate the mapping against the source: tables, columns and the values in them."""
        return check(self.settings, self.source, self.store, self.codecs, ladder)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.source.close()
        if self.store is not None and self.store is not self.source:
            self.store.close()
