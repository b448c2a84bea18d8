"""The engine: rule packs bound to one configuration, evaluated over facts.

An Engine is self-contained: it holds its own compiled packs (and, for declarative packs, its
own durable-rules rulesets, or Python predicates where durable-rules cannot load), so two
engines with different packs or parameters in one process never see each other's rules.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import logging
import uuid
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from tsos_rules.engine.aggregates import (
    BoundAggregate,
    Totals,
    totals_of_snapshot,
    totals_over_batches,
)
from tsos_rules.engine.recipe import EngineRecipe, ExecutorSpec
from tsos_rules.errors import ConfigError
from tsos_rules.facts import FactIndex, RecordFacts, build_index
from tsos_rules.findings import Finding, Findings, Severity
from tsos_rules.model import Snapshot
from tsos_rules.org import OrgProfile
from tsos_rules.rules.declarative.loader import load_declarative_pack
from tsos_rules.rules.spec import CheckFn, CompiledPack, PythonRule, RulePack, RuleSpec

log = logging.getLogger(__name__)

#: A record type's collection in a snapshot.
COLLECTIONS = {
    "account": "accounts",
    "activity": "activities",
    "lead": "leads",
    "opportunity": "opportunities",
}

#: Below this many judged records, ``--jobs`` workers cost more than they save.
PARALLEL_MIN_RECORDS = 20_000


@attrs.define
class CompiledPythonPack:
    """A Python pack bound to its parameter values, with its checks grouped by record type."""

    name: str
    parameters: Mapping[str, Any]
    checks: dict[str, list[tuple[RuleSpec, CheckFn]]]

    @classmethod
    def build(
        cls, pack: RulePack, rules: Sequence[PythonRule], parameters: Mapping[str, Any]
    ) -> CompiledPythonPack:
        checks: dict[str, list[tuple[RuleSpec, CheckFn]]] = {}
        for rule in rules:
            for record_type, check in rule.checks.items():
                checks.setdefault(record_type, []).append((rule.spec, check))
        return cls(pack.name, parameters, checks)

    def evaluate(self, record_type: str, facts: RecordFacts) -> list[Finding]:
        found: list[Finding] = []
        parameters = self.parameters
        for spec, check in self.checks.get(record_type, ()):
            for violation in check(facts, parameters):
                found.append(spec.finding(record_type, facts.record_id, violation))
        return found

    def close(self) -> None:
        """Nothing to release: Python checks hold no native state."""


def select_rules(
    specs: Iterable[RuleSpec], patterns: Sequence[str] | None, *, where: str = "--rules"
) -> set[str]:
    """Rule ids matching any glob in ``patterns`` (all rules when there are none)."""
    ids = {spec.id for spec in specs}
    if not patterns:
        return ids
    chosen = {rule_id for rule_id in ids for p in patterns if fnmatch.fnmatchcase(rule_id, p)}
    if not chosen:
        raise ConfigError(f"{where} {','.join(patterns)}: matches no loaded rule")
    return chosen


class Engine:
    """Evaluates rule packs over snapshots or single records. Build once, reuse many times."""

    def __init__(
        self,
        packs: Sequence[RulePack],
        *,
        org: OrgProfile | None = None,
        parameters: Mapping[str, Mapping[str, Any]] | None = None,
        rules: Sequence[str] | None = None,
        disabled_rules: Sequence[str] = (),
        rules_source: str = "--rules",
    ) -> None:
        self.org = org or OrgProfile()
        self.packs = tuple(packs)
        parameters = dict(parameters or {})
        unknown = set(parameters) - {pack.name for pack in self.packs}
        if unknown:
            raise ConfigError(f"packs.{sorted(unknown)[0]}: no such pack is loaded")
        all_specs = [spec for pack in self.packs for spec in pack.specs]
        for rule_id in disabled_rules:
            if rule_id not in {spec.id for spec in all_specs}:
                raise ConfigError(f"rules.disabled: {rule_id!r} is not a loaded rule")
        selected = select_rules(all_specs, rules, where=rules_source) - set(disabled_rules)
        self.specs: dict[str, RuleSpec] = {s.id: s for s in all_specs if s.id in selected}
        self.parameters: dict[str, dict[str, Any]] = {}
        self._compiled: list[CompiledPack] = []
        #: rule id -> its compiled pack's place: the order ``evaluate_facts`` finds in
        self.evaluation_rank: dict[str, int] = {}
        for pack in self.packs:
            values = pack.resolve_parameters(parameters.get(pack.name))
            self.parameters[pack.name] = values
            python_rules = [r for r in pack.python_rules if r.spec.id in selected]
            if python_rules:
                self.evaluation_rank.update((r.spec.id, len(self._compiled)) for r in python_rules)
                self._compiled.append(CompiledPythonPack.build(pack, python_rules, values))
            declarative = [r for r in pack.declarative_rules if r.spec.id in selected]
            if declarative:
                from tsos_rules.rules.declarative.backend import build_declarative_pack

                self.evaluation_rank.update((r.spec.id, len(self._compiled)) for r in declarative)
                self._compiled.append(build_declarative_pack(pack, declarative, values))
        self.aggregates = tuple(
            BoundAggregate(aggregate, self.parameters[pack.name])
            for pack in self.packs
            for aggregate in pack.aggregates
        )
        self.recipe = EngineRecipe(
            token=uuid.uuid4().hex,
            packs=self.packs,
            org=self.org,
            parameters=parameters,
            rules=tuple(rules) if rules is not None else None,
            disabled_rules=tuple(disabled_rules),
        )
        self.record_types = frozenset(t for spec in self.specs.values() for t in spec.record_types)
        #: The plugin manager the packs came from (set by ``from_config``), for report hooks.
        self.plugin_manager: Any = None

    @classmethod
    def from_config(cls, config: Any = None, *, rules: Sequence[str] | None = None) -> Engine:
        """An engine with every installed pack, configured by a :class:`tsos_rules.Config`."""
        from tsos_rules.config import Config, coerce_config
        from tsos_rules.plugins import collect_packs, get_plugin_manager

        cfg: Config = coerce_config(config)
        pm = get_plugin_manager(disabled=cfg.plugins_disabled)
        engine = cls(
            [*collect_packs(pm), *load_pack_dirs(cfg.pack_dirs)],
            org=cfg.org,
            parameters=cfg.packs,
            rules=rules or cfg.rules_selected or None,
            disabled_rules=cfg.rules_disabled,
            rules_source="--rules" if rules else "rules.select",
        )
        engine.plugin_manager = pm
        return engine

    def index(
        self,
        snapshot: Snapshot,
        as_of: dt.date | None = None,
        *,
        totals: Mapping[str, Mapping[str, float]] | None = None,
    ) -> FactIndex:
        """Index a snapshot. The packs' aggregates are ``totals`` when given (a sync's org-wide
        pre-pass), else computed over ``snapshot``, which must then hold the whole org."""
        index = build_index(snapshot, self.org, as_of)
        if totals is not None:
            index.totals = totals
        elif self.aggregates:
            index.totals = totals_of_snapshot(self.aggregates, snapshot)
        return index

    def org_totals(self, snapshots: Iterable[Snapshot]) -> Totals:
        """The packs' aggregates over an org read in batches (each record counted once)."""
        return totals_over_batches(self.aggregates, snapshots)

    def evaluate_facts(self, facts: RecordFacts) -> list[Finding]:
        """Every finding of every loaded rule on one record's facts."""
        record_type = facts.record_type
        out: list[Finding] = []
        for compiled in self._compiled:
            out.extend(compiled.evaluate(record_type, facts))
        return out

    def judge_each(
        self,
        index: FactIndex,
        keys: Collection[tuple[str, str]],
        *,
        rules: Collection[str] | None = None,
    ) -> Iterator[tuple[RecordFacts, list[Finding]]]:
        """Each record of ``index`` named in ``keys`` (record type, id), in judging order, with
        its findings in :meth:`evaluate_facts`'s order: a sync's batch, judged as ``judge``
        judges (facts built by the index's judging builders, Python checks called directly).
        With ``rules``, only those rules judge (a sync re-judging an aggregate's readers): the
        findings are those of every rule, less the other rules'."""
        compiled = self._compiled
        record_types = self.record_types
        if rules is not None:
            record_types = frozenset(
                t for rule in rules if rule in self.specs for t in self.specs[rule].record_types
            )
        for record_type, records, build in index.judged_records(record_types):
            steps: list[tuple[Any, ...]] = []
            for place, pack in enumerate(compiled):
                if isinstance(pack, CompiledPythonPack):
                    steps.extend(
                        (spec, check, pack.parameters)
                        for spec, check in pack.checks.get(record_type, ())
                        if rules is None or spec.id in rules
                    )
                elif rules is None or any(self.evaluation_rank.get(r) == place for r in rules):
                    steps.append((pack,))
            for record in records:
                if (record_type, record.id) not in keys:
                    continue
                facts = build(record)
                found: list[Finding] = []
                for step in steps:
                    if len(step) == 1:
                        found.extend(
                            finding
                            for finding in step[0].evaluate(record_type, facts)
                            if rules is None or finding.rule in rules
                        )
                        continue
                    spec, check, parameters = step
                    for violation in check(facts, parameters):
                        found.append(spec.finding(record_type, facts.record_id, violation))
                yield facts, found

    def evaluate(self, snapshot: Snapshot, as_of: dt.date | None = None) -> Findings:
        """Evaluate a whole snapshot: every judged record against every selected rule."""
        return self.evaluate_index(self.index(snapshot, as_of))

    def judge(self, index: FactIndex, own: Mapping[str, bytes] | None = None) -> list[Finding]:
        """Findings of every judged record of ``index``, unsorted; with ``own`` (a partition's
        masks by collection) only the records marked 1, the others being context."""
        found: list[Finding] = []
        others = [p for p in self._compiled if not isinstance(p, CompiledPythonPack)]
        for record_type, records, build in index.judged_records(self.record_types):
            # Python checks are called straight from here (what CompiledPythonPack.evaluate
            # does, without a call and a lookup per record and pack); other packs as usual.
            checks = [
                (spec, check, pack.parameters)
                for pack in self._compiled
                if isinstance(pack, CompiledPythonPack)
                for spec, check in pack.checks.get(record_type, ())
            ]
            if own is not None:
                mask = own[COLLECTIONS[record_type]]
                records = tuple(r for r, mine in zip(records, mask, strict=True) if mine)
            for record in records:
                facts = build(record)
                for spec, check, parameters in checks:
                    violations = check(facts, parameters)
                    if not violations:  # most checks find nothing: no iterator for that
                        continue
                    for violation in violations:
                        found.append(spec.finding(record_type, facts.record_id, violation))
                for pack in others:
                    found.extend(pack.evaluate(record_type, facts))
        return found

    def evaluate_index(
        self, index: FactIndex, *, executor: ExecutorSpec | str | None = None, jobs: int = 1
    ) -> Findings:
        """Evaluate every judged record of an indexed snapshot, on ``executor``.

        ``local`` judges here; ``processes`` and ``dask`` judge partitions by company group
        elsewhere (:mod:`tsos_rules.engine.executors`); the findings are the same either way.
        Without an executor, ``jobs`` > 1 means ``processes`` once the snapshot has at least
        :data:`PARALLEL_MIN_RECORDS` judged records (``--jobs``, kept for compatibility).
        """
        if executor is None:
            judged = index.judged_records(self.record_types)
            size = sum(len(records) for _, records, _ in judged)
            if jobs > 1 and size >= PARALLEL_MIN_RECORDS:
                executor = ExecutorSpec("processes", workers=jobs)
            else:
                executor = ExecutorSpec()
        elif isinstance(executor, str):
            executor = ExecutorSpec.parse(executor, where="--executor")
        if executor.kind == "local" and executor.partitions <= 1:
            found = self.judge(index)
        else:
            from tsos_rules.engine.executors import judge_partitioned

            found = judge_partitioned(self, index, executor)
        return Findings.collect(found, records=index.snapshot.record_count)

    def close(self) -> None:
        """Release native rulesets held by declarative packs."""
        for compiled in self._compiled:
            compiled.close()
        self._compiled = []


def load_pack_dirs(directories: Sequence[Path]) -> list[RulePack]:
    """Declarative packs from admins' own directories, in file-name order; errors name the file."""
    packs: list[RulePack] = []
    if not directories:
        return packs
    for directory in directories:
        if not directory.is_dir():
            raise ConfigError(f"rules.pack_dirs: {directory} is not a directory")
        for path in sorted(directory.iterdir()):
            if path.suffix in (".yaml", ".yml", ".json") and path.is_file():
                pack = load_declarative_pack(path)
                pack.validate()
                packs.append(pack)
    return packs


def filter_severity(findings: Findings, *, include_info: bool) -> Findings:
    """``info`` findings are reported only when asked for (DOCTRINE.md, severities)."""
    if include_info:
        return findings
    kept = [f for f in findings if f.severity is not Severity.INFO]
    return Findings(tuple(kept), findings.records)
