"""Choosing how declarative packs are evaluated: durable-rules (the reference) or Python.

``TSOS_RULES_DECLARATIVE_BACKEND`` selects it: ``auto`` (the default) and ``python`` use the
Python backend (each rule compiled to one Python function; measured 2.5x faster than
durable-rules on the shipped packs, see ``docs/declarative-backends.md``); ``durable-rules``
asks for the reference engine where its C extension loads. Both give the same findings.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from tsos_rules.errors import ConfigError
from tsos_rules.rules.declarative._language import DeclarativeRule
from tsos_rules.rules.spec import CompiledPack, RulePack

__all__ = ["BACKENDS", "ENV_VAR", "build_declarative_pack", "chosen_backend", "durable_problem"]


ENV_VAR = "TSOS_RULES_DECLARATIVE_BACKEND"
BACKENDS = ("auto", "durable-rules", "python")


@functools.cache
def durable_problem() -> str | None:
    """Why durable-rules' C extension cannot be imported here (None when it can)."""
    try:
        import durable_rules_engine  # noqa: F401
    except ImportError as exc:
        return str(exc) or type(exc).__name__
    return None


def chosen_backend() -> str:
    """``durable-rules`` or ``python``, as the environment asks; a bad or impossible ask is a
    ConfigError."""
    asked = os.environ.get(ENV_VAR, "").strip() or "auto"
    if asked not in BACKENDS:
        raise ConfigError(f"{ENV_VAR}={asked!r}: unknown backend (use {', '.join(BACKENDS)})")
    if asked != "durable-rules":
        return "python"  # auto: the faster of the two, on every Python
    problem = durable_problem()
    if problem is None:
        return "durable-rules"
    version = ".".join(map(str, sys.version_info[:2]))
    raise ConfigError(
        f"{ENV_VAR}=durable-rules: durable-rules cannot be loaded on Python {version} "
        f"({problem}); use auto or python"
    )


def build_declarative_pack(
    pack: RulePack, rules: Sequence[DeclarativeRule], parameters: Mapping[str, Any]
) -> CompiledPack:
    """``rules`` of ``pack`` compiled with ``parameters`` for the chosen backend."""
    if chosen_backend() == "durable-rules":
        from tsos_rules.rules.declarative.runtime import CompiledDeclarativePack

        return CompiledDeclarativePack.build(pack, rules, parameters)
    from tsos_rules.rules.declarative.interpreter import InterpretedDeclarativePack

    return InterpretedDeclarativePack.build(pack, rules, parameters)
