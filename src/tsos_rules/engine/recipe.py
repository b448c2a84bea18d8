"""What a worker needs to rebuild an engine, and which executor judges a snapshot.

Engines hold native rulesets that cannot travel between processes; a recipe (the packs, org
profile and rule selection, all plain data or module-level functions) can, and each worker
process or thread builds its engine from it once.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from tsos_rules.errors import ConfigError
from tsos_rules.org import OrgProfile
from tsos_rules.rules.spec import RulePack

if TYPE_CHECKING:
    from tsos_rules.engine.engine import Engine

#: The executors ``--executor`` and ``[engine] executor`` accept.
EXECUTORS = ("local", "processes", "dask")

_built = threading.local()


def available_cpus() -> int:
    """CPUs this process may run on (its affinity mask where the OS has one)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


@attrs.frozen(eq=False)
class EngineRecipe:
    """The arguments an :class:`Engine` was built with; ``token`` names that one engine."""

    token: str
    packs: tuple[RulePack, ...]
    org: OrgProfile
    parameters: Mapping[str, Mapping[str, Any]]
    rules: Sequence[str] | None
    disabled_rules: Sequence[str]

    def engine(self) -> Engine:
        """This recipe's engine, built once per thread (rulesets are not shared by threads)."""
        engines: dict[str, Engine] = _built.__dict__.setdefault("engines", {})
        engine = engines.get(self.token)
        if engine is None:
            from tsos_rules.engine.engine import Engine

            engine = Engine(
                self.packs,
                org=self.org,
                parameters=self.parameters,
                rules=self.rules,
                disabled_rules=self.disabled_rules,
            )
            engines.clear()  # one run's engine at a time per worker thread
            engines[self.token] = engine
        return engine

    def adopt(self, engine: Engine) -> None:
        """Use an engine already built from this recipe in this thread (a forked pool's
        workers inherit it instead of building their own)."""
        _built.__dict__.setdefault("engines", {})[self.token] = engine


@attrs.frozen
class ExecutorSpec:
    """Where judging runs: ``local`` (this process), ``processes`` (a pool on this machine) or
    ``dask`` (a new LocalCluster, or the cluster whose scheduler is at ``address``)."""

    kind: str = "local"
    address: str | None = None
    #: worker processes (``processes``, or a new LocalCluster); 0: one per CPU, at most 2
    workers: int = 0
    #: a new LocalCluster's workers are processes (False: threads of this process, for tests)
    cluster_processes: bool = True
    #: partitions to cut (0: two per worker); ``local`` with 2+ judges them one by one here
    partitions: int = 0
    #: seconds to reach the Dask scheduler at ``address`` before the run fails (exit 3)
    connect_timeout: float = 20.0

    @classmethod
    def parse(
        cls, text: str, *, where: str, workers: int = 0, connect_timeout: float = 20.0
    ) -> ExecutorSpec:
        """``local``, ``processes``, ``dask`` or ``dask=tcp://host:8786``; errors name ``where``."""
        name, equals, address = text.strip().partition("=")
        name = name.strip().lower()
        if name not in EXECUTORS:
            raise ConfigError(
                f"{where}: unknown executor {text!r} (use local, processes, dask or dask=ADDRESS)"
            )
        address = address.strip()
        if equals and name != "dask":
            raise ConfigError(f"{where}: only dask takes an address, got {text!r}")
        if equals and not address:
            raise ConfigError(f"{where}: dask= needs a scheduler address, e.g. tcp://host:8786")
        return cls(name, address or None, workers, connect_timeout=connect_timeout)

    def __str__(self) -> str:
        return f"dask={self.address}" if self.address else self.kind
