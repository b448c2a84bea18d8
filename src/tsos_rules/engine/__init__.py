"""The engine ④b: selects rules, judges each record's facts with every pack, returns findings."""

from tsos_rules.engine.engine import (
    PARALLEL_MIN_RECORDS,
    CompiledPythonPack,
    Engine,
    filter_severity,
    load_pack_dirs,
    select_rules,
)

__all__ = [
    "PARALLEL_MIN_RECORDS",
    "CompiledPythonPack",
    "Engine",
    "filter_severity",
    "load_pack_dirs",
    "select_rules",
]
