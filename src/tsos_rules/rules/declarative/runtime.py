"""Evaluating compiled declarative packs on the durable-rules C extension.

Drives ``durable_rules_engine`` directly (see ``notes/durable-rules.md``): per compiled pack, per
thread, per record type one ruleset (more when a pack outgrows durable's limits: 64 firings per
fact, ~511 alternatives per ruleset), one fixed session; each record is asserted as one fact, its
actions drained, then retracted. Any other answer than "matched" or "matched no rule" is a
:class:`TsosRulesError`, never "no finding". Packs that could break a limit at run time
(firings, alternatives, 254 properties per fact) are refused when loaded.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import threading
import uuid
import weakref
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import durable_rules_engine

from tsos_rules.errors import TsosRulesError
from tsos_rules.facts.records import FlatView
from tsos_rules.findings import Finding
from tsos_rules.rules.declarative._language import DeclarativeRule, MessageValues
from tsos_rules.rules.declarative.compiler import Plan, Shard, compile_plans
from tsos_rules.rules.spec import RulePack

if TYPE_CHECKING:
    from tsos_rules.facts import RecordFacts

__all__ = ["CompiledDeclarativePack"]

_RESULTS = {1: "not handled", 2: "already observed", 3: "deferred"}


def _code(result: Any) -> int:
    return int(result[0] if isinstance(result, tuple) else result)


class _Slot:
    """One thread's rulesets (by record type and shard), its message ids, and their lock."""

    def __init__(self) -> None:
        self.handles: dict[tuple[str, int], int] = {}
        self.ids = itertools.count(1)
        self.lock = threading.Lock()


def _release(slots: list[_Slot], lock: threading.Lock) -> None:
    """Delete every ruleset of every thread; each waits for its thread's evaluation to end."""
    with lock:
        for slot in slots:
            with slot.lock:
                for handle in slot.handles.values():
                    with contextlib.suppress(Exception):
                        durable_rules_engine.delete_ruleset(handle)
                slot.handles.clear()
        slots.clear()


def _rule_name(message: str) -> str:
    """The fired rule of an action message ``{"r3": {"m": ...}}`` (one rule per action)."""
    end = message.find('":{', 2)
    if message.startswith('{"r') and end > 2 and message[3:end].isdigit():
        return message[2:end]
    (name,) = json.loads(message)
    return str(name)


def _fire(handle: int, fact: str) -> set[str]:
    """Assert one fact, drain its actions (the fired rule names), retract it; errors raise."""
    try:
        result = durable_rules_engine.assert_fact(handle, fact)
    except durable_rules_engine.error as exc:
        with contextlib.suppress(Exception):  # it may be stored even so (error 303 does)
            durable_rules_engine.retract_fact(handle, fact)
        raise TsosRulesError(f"durable-rules refused the fact: {exc}") from None
    code, state = _code(result), result[1]
    fired: set[str] = set()
    failed = True
    try:
        if code not in (0, 1):  # 1: the fact matched no rule; anything else loses results
            raise TsosRulesError(f"durable-rules answered {code} ({_RESULTS.get(code, '?')})")
        action = durable_rules_engine.start_action_for_state(handle, state)
        while action:
            try:
                fired.add(_rule_name(action[1] if isinstance(action, tuple) else action))
                action = durable_rules_engine.complete_and_start_action(handle, state)
            except Exception as exc:
                with contextlib.suppress(Exception):
                    durable_rules_engine.abandon_action(handle, state)
                raise TsosRulesError(f"durable-rules action failed: {exc}") from exc
        failed = False
    finally:
        try:
            retracted = _code(durable_rules_engine.retract_fact(handle, fact))
        except durable_rules_engine.error as exc:
            if not failed:
                raise TsosRulesError(f"durable-rules refused the retraction: {exc}") from None
        else:
            if retracted not in (0, 1) and not failed:
                raise TsosRulesError(f"durable-rules answered {retracted} to the retraction")
    return fired


class CompiledDeclarativePack:
    """A declarative pack bound to parameter values; owns its durable rulesets (per thread)."""

    def __init__(self, name: str, parameters: Mapping[str, Any], plans: Mapping[str, Plan]) -> None:
        self.name = name
        self.parameters = dict(parameters)
        self._plans = dict(plans)
        self._local = threading.local()
        self._slots: list[_Slot] = []
        self._lock = threading.Lock()
        self._closed = False
        self._finalizer = weakref.finalize(self, _release, self._slots, self._lock)

    @classmethod
    def build(
        cls,
        pack: RulePack,
        rules: Sequence[DeclarativeRule],
        parameters: Mapping[str, Any],
    ) -> CompiledDeclarativePack:
        """Compile ``rules`` with resolved ``parameters``; a bad value is a ConfigError."""
        return cls(pack.name, parameters, compile_plans(pack, rules, parameters))

    def _slot(self) -> _Slot:
        slot: _Slot | None = getattr(self._local, "slot", None)
        if slot is None:
            slot = self._local.slot = _Slot()
            with self._lock:
                self._slots.append(slot)
        return slot

    def evaluate(self, record_type: str, facts: RecordFacts) -> list[Finding]:
        """The findings of this pack's rules on one record (assert, drain, retract)."""
        plan = self._plans.get(record_type)
        if plan is None:
            return []
        flat = FlatView(facts)  # only the fields the rules and their messages read
        slot = self._slot()
        fired: list[DeclarativeRule] = []
        with slot.lock:
            if self._closed:
                raise TsosRulesError(f"pack {self.name}: evaluated after close()")
            fact = plan.fact(flat, next(slot.ids))
            for index, shard in enumerate(plan.shards):
                handle = slot.handles.get((record_type, index))
                if handle is None:
                    handle = slot.handles[(record_type, index)] = self._create(
                        record_type, index, shard
                    )
                try:
                    names = _fire(handle, fact)
                except TsosRulesError as exc:
                    raise TsosRulesError(
                        f"pack {self.name}: {record_type} {facts.record_id}: {exc}"
                    ) from exc.__cause__
                if not names <= shard.rules.keys():
                    raise TsosRulesError(
                        f"pack {self.name}: {record_type} {facts.record_id}: durable-rules "
                        f"fired unknown rules {sorted(names - shard.rules.keys())}"
                    )
                fired.extend(rule for name, rule in shard.rules.items() if name in names)
        if not fired:
            return []
        values = MessageValues(flat, self.parameters)
        return [rule.finding(record_type, facts.record_id, values) for rule in fired]

    def _create(self, record_type: str, index: int, shard: Shard) -> int:
        name = f"tsos-{self.name}-{record_type}-{index}-{uuid.uuid4().hex}"
        try:
            handle: int = durable_rules_engine.create_ruleset(name, shard.definition)
        except durable_rules_engine.error as exc:
            raise TsosRulesError(
                f"pack {self.name}: durable-rules refused the ruleset: {exc}"
            ) from None
        return handle

    def close(self) -> None:
        """Delete the rulesets this pack created, in every thread; evaluating again raises."""
        self._closed = True
        self._finalizer()
