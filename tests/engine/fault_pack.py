"""A test-only rule pack whose check misbehaves on one deal, to test executors' fault handling.

The worker processes import this module by name (it travels in the engine's recipe), and read
what to do from the environment they inherit:

- ``TSOS_FAULT_DEAL``: the deal id the check misbehaves on (no variable: it never does);
- ``TSOS_FAULT_MODE``: ``stall`` (write this process's pid to ``TSOS_FAULT_MARKER`` and wait
  to be killed, once: a later attempt finds the marker and judges normally), ``die`` (the
  process kills itself, every attempt) or ``raise`` (the check raises, every attempt).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from tsos_rules.findings import Severity
from tsos_rules.markers import hookimpl
from tsos_rules.rules.spec import PythonRule, RulePack, RuleSpec, Violation

#: How long a stalled check waits to be killed before giving up (a bounded loop).
STALL_SECONDS = 120.0


def _misbehave() -> None:
    mode = os.environ.get("TSOS_FAULT_MODE", "raise")
    if mode == "raise":
        raise RuntimeError("this partition cannot be judged")
    if mode == "die":
        os.kill(os.getpid(), signal.SIGKILL)
    marker = Path(os.environ["TSOS_FAULT_MARKER"])
    if marker.exists():
        return  # the retry, after the first attempt's process was killed
    marker.write_text(str(os.getpid()))
    deadline = time.monotonic() + STALL_SECONDS
    while time.monotonic() < deadline:
        time.sleep(0.05)


def _check(facts: Any, params: Mapping[str, Any]) -> Iterator[Violation]:
    if facts.opportunity.id == os.environ.get("TSOS_FAULT_DEAL"):
        _misbehave()
    return iter(())


FAULT_PACK = RulePack(
    name="fault",
    version="1",
    description="Misbehaves on one deal (tests of executors' fault handling).",
    python_rules=(
        PythonRule(
            spec=RuleSpec(
                id="fault.misbehaves",
                severity=Severity.WARN,
                record_types=("opportunity",),
                title="misbehaves on one deal",
                doctrine="-",
            ),
            checks={"opportunity": _check},
        ),
    ),
)


@hookimpl
def tsos_rules_register_packs(register: Callable[[RulePack], None]) -> None:
    register(FAULT_PACK)
