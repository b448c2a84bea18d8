"""The plugin module named by the ``tsos_rules`` entry point: registers the pack."""

from __future__ import annotations

from collections.abc import Callable

from tsos_rules import RulePack, hookimpl
from tsos_rules_channel_economics.rules import PACK


@hookimpl
def tsos_rules_register_packs(register: Callable[[RulePack], None]) -> None:
    register(PACK)
