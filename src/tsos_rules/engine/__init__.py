"""The engine ④b: selects rules, judges each record's facts with every pack, returns findings."""

from tsos_rules.engine.engine import (
    PARALLEL_MIN_RECORDS,
    CompiledPythonPack,
    Engine,
    filter_severity,
    load_pack_dirs,
    select_rules,
)
from tsos_rules.engine.recipe import EXECUTORS, ExecutorSpec

__all__ = [
    "EXECUTORS",
    "PARALLEL_MIN_RECORDS",
    "CompiledPythonPack",
    "Engine",
    "ExecutorSpec",
    "filter_severity",
    "load_pack_dirs",
    "select_rules",
]
