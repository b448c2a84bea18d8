"""Rule and pack metadata as data: what ``rules``, ``explain``, reports and config all read."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

import attrs

from tsos_rules.errors import ConfigError, PackValidationError
from tsos_rules.findings import Finding, Severity
from tsos_rules.org import OrgProfile

if TYPE_CHECKING:
    from tsos_rules.facts import RecordFacts

#: The record types rules can judge.
RECORD_TYPES = ("opportunity", "lead", "account", "activity")

#: The ``[org]`` settings a rule may declare that it reads.
ORG_SETTINGS = frozenset(a.name for a in attrs.fields(OrgProfile) if a.init)

RULE_ID = re.compile(r"^[a-z][a-z0-9_]*(-[a-z0-9_]+)*\.[a-z][a-z0-9]*(-[a-z0-9]+)*$")


@attrs.frozen
class Parameter:
    """A tunable value of a pack, with its default, the type an override must have and, for a
    number, the range it must lie in (``low``/``high``, inclusive; None: unbounded)."""

    name: str
    default: Any
    description: str
    low: int | float | None = None
    high: int | float | None = None

    def coerce(self, value: Any, *, pack: str) -> Any:
        """Check an override against the default's type and the range; config errors name
        pack and key."""
        expected = type(self.default)
        ok = isinstance(value, expected) and not (isinstance(value, bool) and expected is not bool)
        if expected is float and type(value) is int:
            value, ok = float(value), True
        if not ok:
            raise ConfigError(
                f"packs.{pack}.{self.name}: expected {expected.__name__}, got {value!r}"
            )
        if self.out_of_range(value):
            raise ConfigError(f"packs.{pack}.{self.name}: expected {self.range}, got {value!r}")
        return value

    def out_of_range(self, value: Any) -> bool:
        """True when a number lies outside ``low``..``high`` (or is not a number at all)."""
        if self.low is None and self.high is None:
            return False
        if isinstance(value, float) and value != value:  # NaN compares false to everything
            return True
        return (self.low is not None and value < self.low) or (
            self.high is not None and value > self.high
        )

    @property
    def range(self) -> str:
        """The allowed range, as error messages say it (``1 to 1,000``, ``>= 0``)."""
        if self.low is not None and self.high is not None:
            return f"{self.low:,} to {self.high:,}"
        if self.low is not None:
            return f">= {self.low:,}"
        return f"<= {self.high:,}"


@attrs.frozen
class Violation:
    """What a Python rule returns: the engine adds the rule's metadata to make a Finding."""

    reason: str
    message: str
    severity: Severity | None = None
    details: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(kw_only=True)
class RuleSpec:
    """A rule's metadata. ``id`` is public and never changes once shipped."""

    id: str
    severity: Severity
    record_types: tuple[str, ...]
    title: str
    doctrine: str
    source: str = ""
    semantics: str = ""
    remediation: str = ""
    reasons: Mapping[str, str] = attrs.field(factory=dict)
    parameters: tuple[str, ...] = ()
    #: The ``[org]`` settings (OrgProfile fields) this rule's facts depend on, for ``explain``.
    org_settings: tuple[str, ...] = ()

    @property
    def pack(self) -> str:
        return self.id.split(".", 1)[0]

    def finding(self, record_type: str, record_id: str, violation: Violation) -> Finding:
        return Finding(
            rule=self.id,
            severity=violation.severity or self.severity,
            record_type=record_type,
            record_id=record_id,
            reason=violation.reason,
            message=violation.message,
            doctrine=self.doctrine,
            details=violation.details,
        )


#: A Python rule's check for one record type; it receives that type's facts class
#: (``OpportunityFacts``, ``LeadFacts``, ...) and the pack's resolved parameters.
CheckFn = Callable[[Any, Mapping[str, Any]], Iterable[Violation]]


#: An aggregate's contribution of one record: ``(key, value)`` to add, or None to add nothing.
ContributionFn = Callable[[Any, Mapping[str, Any]], "tuple[str, float] | None"]

#: Whether a record's verdict reads an aggregate at all (an open deal does, a closed one not).
ReadsWhenFn = Callable[[Any, Mapping[str, Any]], bool]

#: The total of its key above which a reader's rules would flag it (``flags_above(facts,
#: parameters)``), or None when no total would.
FlagsAboveFn = Callable[[Any, Mapping[str, Any]], "float | None"]

#: A reader's stored finding with its key's total now ``total`` (``restate(finding, key, total,
#: own, parameters)``; ``own``: the reader's own share of that total), or None to judge it.
RestateFn = Callable[[Finding, str, float, float, Mapping[str, Any]], "Finding | None"]


@attrs.frozen(kw_only=True)
class Aggregate:
    """A total a pack's rules read over a key wider than one company (a partner, an owner).

    The engine sums ``contribution(record, parameters)`` over every record of ``record_type``
    in the org (a reduce over all partitions, exact whatever the order), so a rule reading it
    with ``facts.index.total(name, key)`` never depends on batching or partitioning.
    """

    name: str
    record_type: str
    contribution: ContributionFn
    description: str = ""
    #: The field of ``record_type`` records holding the key whose total they read (a deal's
    #: ``partner_id``): when an incremental sync moves a total, it re-judges the records whose
    #: field holds that key. None: the records that add to a key are the ones that read it.
    read_by: str | None = None
    #: The ids of the rules that read this total. When it moves, an incremental sync judges its
    #: readers again with these rules only, from the reader and its account, owner and partner
    #: (no company group read), and keeps every other rule's findings on them as stored. These
    #: rules must judge a reader from those records alone. Empty: every rule, with the readers'
    #: company groups as context (slower, and right for any rule).
    read_by_rules: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    #: Which readers can be affected at all (``reads_when(record, parameters)``: an open deal,
    #: not a closed one); the others are not judged again. None: every reader.
    reads_when: ReadsWhenFn | None = None
    #: The rules of ``read_by_rules`` flag a reader only more as its key's total rises
    #: (partner-credit-limit: a smaller commit total leaves the partner more credit). When a
    #: total falls, a reader holding none of their findings cannot get one, so an incremental
    #: sync judges again only the readers that hold one open. False: every reader of a moved
    #: total, whichever way it moved.
    findings_rise_with_total: bool = False
    #: With ``findings_rise_with_total``: ``flags_above(facts, parameters)``, the total of the
    #: reader's key above which the rules of ``read_by_rules`` would flag this reader, which
    #: they do not flag now (None: no total would). An incremental sync keeps, for each key,
    #: the lowest such total over its readers without a finding; while a rising total stays
    #: at or below it, only the readers holding a finding are judged again. A value too low
    #: only judges more; too high would miss a finding, so round down.
    flags_above: FlagsAboveFn | None = None
    #: ``restate(finding, key, total, own, parameters)``: a stored finding of
    #: ``read_by_rules`` on a reader of ``key``, whose total moved to ``total`` while neither
    #: the reader nor the key's record changed, as the rules would word it now (its quoted
    #: figures brought up to date), from the finding alone: an incremental sync then neither
    #: reads nor judges that reader again. ``own`` is the reader's own share of ``total``.
    #: Return None (the reader is read and judged) unless the result is exactly what judging
    #: would give, byte for byte: when the new total would clear the finding or change it
    #: otherwise, or the finding is not one the code knows.
    restate: RestateFn | None = None


@attrs.frozen
class PythonRule:
    """A rule written as Python functions, one per record type it judges."""

    spec: RuleSpec
    checks: Mapping[str, CheckFn]


class CompiledPack(Protocol):
    """A pack ready to evaluate, bound to resolved parameter values."""

    name: str

    def evaluate(self, record_type: str, facts: RecordFacts) -> Iterable[Finding]: ...

    def close(self) -> None: ...


@attrs.frozen(kw_only=True)
class RulePack:
    """A named set of rules sharing parameters; ``compile`` binds them to one configuration."""

    name: str
    version: str
    description: str
    parameters: tuple[Parameter, ...] = ()
    python_rules: tuple[PythonRule, ...] = ()
    #: Declarative rules (data) evaluated by the durable-rules backend.
    declarative_rules: tuple[Any, ...] = ()
    #: Totals over keys wider than a company that the rules read (see :class:`Aggregate`).
    aggregates: tuple[Aggregate, ...] = ()

    @property
    def specs(self) -> tuple[RuleSpec, ...]:
        return tuple(rule.spec for rule in self.python_rules) + tuple(
            rule.spec for rule in self.declarative_rules
        )

    def resolve_parameters(self, overrides: Mapping[str, Any] | None) -> dict[str, Any]:
        """Defaults overlaid with ``overrides``; an unknown name is a ConfigError naming it."""
        declared = {parameter.name: parameter for parameter in self.parameters}
        values = {parameter.name: parameter.default for parameter in self.parameters}
        for name, value in (overrides or {}).items():
            if name not in declared:
                known = ", ".join(sorted(declared)) or "none"
                raise ConfigError(f"packs.{self.name}: unknown parameter {name!r} (known: {known})")
            values[name] = declared[name].coerce(value, pack=self.name)
        return values

    def validate(self) -> None:
        """Refuse a malformed pack before anything loads it; errors name the rule and key."""
        if not re.fullmatch(r"[a-z][a-z0-9_-]*", self.name):
            raise PackValidationError(f"pack {self.name!r}: name: use lowercase letters, digits, -")
        seen: set[str] = set()
        declared = {parameter.name for parameter in self.parameters}
        for parameter in self.parameters:
            if parameter.out_of_range(parameter.default):
                raise PackValidationError(
                    f"pack {self.name}: parameter {parameter.name}: the default "
                    f"{parameter.default!r} is outside {parameter.range}"
                )
        for spec in self.specs:
            if not RULE_ID.match(spec.id) or spec.pack != self.name:
                raise PackValidationError(
                    f"{spec.id}: id: must read '{self.name}.<rule-name>' in lowercase"
                )
            if spec.id in seen:
                raise PackValidationError(f"{spec.id}: id: defined twice in pack {self.name}")
            seen.add(spec.id)
            for record_type in spec.record_types:
                if record_type not in RECORD_TYPES:
                    raise PackValidationError(
                        f"{spec.id}: record_types: unknown record type {record_type!r}"
                    )
            for name in spec.parameters:
                if name not in declared:
                    raise PackValidationError(f"{spec.id}: parameters: {name!r} is not declared")
            for name in spec.org_settings:
                if name not in ORG_SETTINGS:
                    raise PackValidationError(f"{spec.id}: org_settings: no [org] setting {name!r}")
        for aggregate in self.aggregates:
            if not aggregate.name.startswith(f"{self.name}."):
                raise PackValidationError(
                    f"aggregate {aggregate.name!r}: name: must read '{self.name}.<name>'"
                )
            if aggregate.record_type not in RECORD_TYPES:
                raise PackValidationError(
                    f"aggregate {aggregate.name}: record_type: unknown {aggregate.record_type!r}"
                )
            if aggregate.findings_rise_with_total and not aggregate.read_by_rules:
                raise PackValidationError(
                    f"aggregate {aggregate.name}: findings_rise_with_total: needs the rules it "
                    "is true of, in read_by_rules"
                )
            if aggregate.flags_above is not None and not (
                aggregate.findings_rise_with_total and aggregate.read_by
            ):
                raise PackValidationError(
                    f"aggregate {aggregate.name}: flags_above: needs findings_rise_with_total "
                    "and read_by (the field holding the key its readers read)"
                )
            if aggregate.restate is not None and not (
                aggregate.read_by_rules and aggregate.read_by
            ):
                raise PackValidationError(
                    f"aggregate {aggregate.name}: restate: needs read_by_rules (the rules whose "
                    "findings it rewords) and read_by (the field holding the key)"
                )
            for rule_id in aggregate.read_by_rules:
                if rule_id not in seen:
                    raise PackValidationError(
                        f"aggregate {aggregate.name}: read_by_rules: {rule_id!r} is not a rule "
                        f"of pack {self.name}"
                    )
        for rule in self.python_rules:
            missing = set(rule.spec.record_types) ^ set(rule.checks)
            if missing:
                raise PackValidationError(
                    f"{rule.spec.id}: checks: record types and checks differ on {sorted(missing)}"
                )
