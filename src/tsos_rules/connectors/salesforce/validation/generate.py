"""From a config to checked validation rules: the one entry point the command and tests use."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from tsos_rules.config import Config, coerce_config
from tsos_rules.connectors.salesforce.validation.limits import check_limits
from tsos_rules.connectors.salesforce.validation.rules import (
    CompiledRule,
    Skipped,
    compile_rules,
)
from tsos_rules.connectors.salesforce.validation.source import ValidationSource


@attrs.frozen
class Generation:
    """The validation rules for one config, and what could not be compiled (with why)."""

    rules: tuple[CompiledRule, ...]
    skipped: tuple[Skipped, ...]


def generate(config: Config | Mapping[str, Any] | str | Path | None = None) -> Generation:
    """Compile every reachable block rule; raises ConfigError when one breaks a limit."""
    source = ValidationSource.from_config(coerce_config(config))
    compiled = compile_rules(source)
    rules = tuple(c for c in compiled if isinstance(c, CompiledRule))
    for rule in rules:
        check_limits(rule)
    return Generation(rules, tuple(c for c in compiled if isinstance(c, Skipped)))
