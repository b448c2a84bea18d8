"""Declarative rule packs: rules as data (YAML or JSON), evaluated by durable-rules or Python.

One job per module: :mod:`.loader` reads and validates a pack (no native code),
:mod:`.compiler` turns its conditions into durable-rules rulesets, :mod:`.runtime` evaluates
them on the durable-rules C extension (the reference engine), :mod:`.interpreter` evaluates the
same compiled packs in pure Python (where that extension cannot load: Python 3.13+), and
:mod:`.backend` chooses between the two. Importing this package loads none of them.

The names this package used to hold still resolve, for one release, with a DeprecationWarning
naming their new module.
"""

from __future__ import annotations

import importlib
import warnings

#: Each old public name of this package and the module that holds it now.
_MOVED = {
    "load_declarative_pack": "tsos_rules",
    **dict.fromkeys(
        (
            "OPERATORS",
            "PACK_KEYS",
            "REQUIRED_PACK_KEYS",
            "RULE_KEYS",
            "REQUIRED_RULE_KEYS",
            "PARAMETER_KEYS",
            "MAX_DEPTH",
            "FIELD_NAME",
            "REASON",
            "PACK_NAME",
            "RESERVED_FIELDS",
            "Condition",
            "DeclarativeRule",
            "describe_condition",
            "fact_fields",
        ),
        "tsos_rules.rules.declarative.loader",
    ),
    **dict.fromkeys(
        ("MAX_FIRINGS", "MAX_ALTERNATIVES", "MAX_PROPERTIES"),
        "tsos_rules.rules.declarative.compiler",
    ),
    "CompiledDeclarativePack": "tsos_rules.rules.declarative.runtime",
}


def __getattr__(name: str) -> object:
    """An old name, loaded from its new module with a DeprecationWarning saying where."""
    home = _MOVED.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"tsos_rules.rules.declarative.{name} is deprecated; import it from {home}",
        DeprecationWarning,
        stacklevel=2,
    )
    return getattr(importlib.import_module(home), name)
