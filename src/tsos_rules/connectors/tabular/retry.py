"""Transient source failures (a dropped connection, a locked SQLite file, a CSV file replaced
while it was read) retried a bounded number of times with exponential backoff.

A retried unit is always rebuilt whole (one table scan, one page of company groups): rows of a
failed attempt are dropped, never presented as the whole. The last failure is raised as a
:class:`RetriableConnectorError` naming the table or file, which the sync reports (exit 3).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TypeVar

from tsos_rules.errors import RetriableConnectorError

log = logging.getLogger(__name__)
T = TypeVar("T")
#: The longest wait between two attempts, in seconds.
MAX_DELAY = 30.0


def retrying(
    build: Callable[[], T],
    *,
    attempts: int,
    delay: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``build()``, tried up to ``attempts`` times while it raises a retriable error."""
    for attempt in range(1, attempts + 1):
        try:
            return build()
        except RetriableConnectorError as exc:
            if attempt >= attempts:
                raise RetriableConnectorError(
                    f"{exc} (gave up after {attempts} attempt{'s' if attempts > 1 else ''})"
                ) from None
            wait = min(MAX_DELAY, delay * 2 ** (attempt - 1))
            log.warning("%s; retrying in %.1f s (attempt %d of %d)", exc, wait, attempt, attempts)
            sleep(wait)
    raise AssertionError("unreachable")  # pragma: no cover
