"""Per-rule compilers: each doctrine ``block`` rule, as the validation rules that can express it.

A compiler returns :class:`CompiledRule` records (one per group of reasons, so each error
message says exactly what to fix) or :class:`Skipped` notes saying why a formula would be wrong.
Every compiled rule states whether it is exact, and for an approximate one where it is stricter
or looser than the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import attrs

from tsos_rules.connectors.salesforce.validation import formula as f
from tsos_rules.connectors.salesforce.validation.source import ValidationSource
from tsos_rules.connectors.salesforce.validation.terms import Terms

#: The custom permission every generated formula lets through.
BYPASS_PERMISSION = "Tsos_Rules_Bypass"
BYPASS = f.Ref(f"$Permission.{BYPASS_PERMISSION}")


@attrs.frozen
class CompiledRule:
    """One validation rule: the doctrine rule and reasons it enforces, and how faithfully."""

    name: str
    rule_id: str
    reasons: tuple[str, ...]
    condition: f.Expr
    message: str
    display_field: str | None
    doctrine: str
    stricter: tuple[str, ...] = ()
    looser: tuple[str, ...] = ()
    #: The settings whose size the formula grows with, named when it is too long.
    settings: tuple[str, ...] = ()
    #: A waiver on the deal that lets it through (``[connector.exemptions]``); FALSE = none.
    exemption: f.Expr = f.FALSE

    @property
    def exact(self) -> bool:
        return not self.stricter and not self.looser

    @property
    def fidelity(self) -> str:
        return "exact" if self.exact else "approximate"

    @property
    def formula(self) -> str:
        """The error condition: the rule's condition, unless the user holds the bypass or the
        deal holds an honoured waiver of the rule."""
        return f.render(f.and_(f.not_(BYPASS), f.not_(self.exemption), self.condition))

    @property
    def description(self) -> str:
        reasons = ", ".join(self.reasons)
        return f'{self.rule_id} ({reasons}), {self.fidelity}. "{self.doctrine}"'


@attrs.frozen
class Skipped:
    """A rule or reason no formula is generated for, and why."""

    rule_id: str
    reasons: tuple[str, ...]
    why: str


Compiled = CompiledRule | Skipped

ACTIVITY_GAP = (
    "an open Task or Event on the deal due today or later counts as a next step for the engine; "
    "a formula cannot see activities, so it refuses the save"
)
CHANNEL_GAPS = (
    "a deal that is a channel deal only through its source lead (partner or partner source) is "
    "not seen as one: a formula cannot reach the lead from the opportunity",
    "a save that moves the deal to another account is judged by the new account's partner of "
    "record only (the engine also keeps the old account's channel status)",
)

GLOB_GAP = (
    "a waiver whose {field} names this rule only through a glob other than the rule id or a "
    "prefix ending in * (such as ?, [...] or a * inside) is not honoured by the formula"
)


def _message(terms: Terms, rule_id: str, what: str) -> str:
    spec = terms.source.specs[rule_id]
    return f"{spec.doctrine} {what} ({rule_id})"


def close_date(terms: Terms) -> Iterator[Compiled]:
    rule_id = "tsos.close-date-locked"
    spec = terms.source.specs[rule_id]
    day = terms.ref("opportunity.close_date")
    if day is None:
        yield Skipped(rule_id, tuple(spec.reasons), "connector.fields.close_date is switched off")
        return
    yield CompiledRule(
        name="Tsos_Close_Date_Required",
        rule_id=rule_id,
        reasons=("missing", "in_past"),
        condition=f.and_(
            terms.is_open(),
            f.or_(f.is_blank(day), f.and_(f.not_(f.is_blank(day)), f.compare("<", day, f.today()))),
        ),
        message=_message(terms, rule_id, "Set a close date that is not in the past."),
        display_field=day.path,
        doctrine=spec.doctrine,
    )
    approval = terms.source.approval_field
    approved: f.Expr = f.FALSE
    stricter = [
        "a save that puts the date back where an earlier unapproved move started (a restoration, "
        "possible only after a bypassed move) is refused unless approved"
    ]
    if approval is not None:
        field = f.Ref(approval)
        approved = f.and_(f.not_(f.is_blank(field)), f.call("ISCHANGED", field))
    elif terms.source.approval_source == "process_instance":
        stricter.append(
            "approvals come from approval processes completed after the save "
            "(connector.approvals.source = process_instance), so every move of a locked deal "
            "is refused; map an approval field (source = field) to let approved moves through"
        )
    else:
        stricter.append("no approval field is mapped (connector.approvals): every move is refused")
    yield CompiledRule(
        name="Tsos_Close_Date_Locked",
        rule_id=rule_id,
        reasons=("moved_unapproved",),
        condition=f.and_(
            terms.is_open(),
            f.call("ISCHANGED", day),
            f.not_(f.is_blank(f.prior(day))),
            f.not_(f.is_blank(day)),
            terms.locked_before_save(),
            f.not_(approved),
        ),
        message=_message(
            terms,
            rule_id,
            "This deal's close date is locked: get the move approved"
            + (f" ({approval})" if approval else "")
            + " or keep the previous date.",
        ),
        display_field=day.path,
        doctrine=spec.doctrine,
        stricter=tuple(stricter),
        looser=(
            "unapproved moves already in the deal's history (made before the rule was active, "
            "or by a bypassing user) do not refuse later saves, as they do for check_change",
        ),
        settings=("org.lock_stage", "org.stage_ladder", "connector.stages"),
    )


def next_step(terms: Terms) -> Iterator[Compiled]:
    rule_id = "tsos.next-step-required"
    spec = terms.source.specs[rule_id]
    bad = terms.next_step_bad()
    if bad is None:
        yield Skipped(
            rule_id,
            tuple(spec.reasons),
            "connector.fields.next_step or next_step_date is switched off: every open deal "
            "would be refused (map Next_Step_Date__c or similar)",
        )
        return
    text = terms.ref("opportunity.next_step")
    yield CompiledRule(
        name="Tsos_Next_Step_Required",
        rule_id=rule_id,
        reasons=tuple(spec.reasons),
        condition=f.and_(terms.is_open(), bad),
        message=_message(
            terms, rule_id, "Enter a real next step (not TBD) and a next-step date today or later."
        ),
        display_field=text.path if text else None,
        doctrine=spec.doctrine,
        stricter=(ACTIVITY_GAP,),
        settings=("org.placeholders",),
    )


def commit(terms: Terms) -> Iterator[Compiled]:
    rule_id = "tsos.commit-integrity"
    spec = terms.source.specs[rule_id]
    forecast = terms.ref("opportunity.forecast_category")
    if forecast is None:
        yield Skipped(rule_id, tuple(spec.reasons), "connector.fields.forecast_category is off")
        return
    base = f.and_(terms.is_open(), terms.commit_now())
    day = terms.ref("opportunity.close_date")
    if day is not None:
        yield CompiledRule(
            name="Tsos_Commit_Close_Date",
            rule_id=rule_id,
            reasons=("close_date_invalid", "beyond_quarter"),
            condition=f.and_(
                base,
                f.or_(
                    f.is_blank(day),
                    f.and_(
                        f.not_(f.is_blank(day)),
                        f.or_(
                            f.compare("<", day, f.today()),
                            f.compare(">=", day, terms.next_quarter_start()),
                        ),
                    ),
                ),
            ),
            message=_message(
                terms, rule_id, "A commit deal closes between today and the end of this quarter."
            ),
            display_field=day.path,
            doctrine=spec.doctrine,
        )
    stage = terms.ref("opportunity.stage")
    minimum = terms.source.parameters["commit_min_probability"]
    high = {name for name, p in terms.org.stage_ladder if p >= minimum}
    yield CompiledRule(
        name="Tsos_Commit_Stage",
        rule_id=rule_id,
        reasons=("stage_too_early",),
        condition=f.and_(base, f.not_(terms.stage_in(stage, high)) if stage else f.TRUE),
        message=_message(
            terms, rule_id, f"A commit deal sits at a stage of at least {minimum} % probability."
        ),
        display_field=stage.path if stage else None,
        doctrine=spec.doctrine,
        settings=("org.stage_ladder", "connector.stages"),
    )
    bad = terms.next_step_bad()
    if bad is None:
        yield Skipped(rule_id, ("no_next_step",), "next step text or date is not mapped")
        return
    text = terms.ref("opportunity.next_step")
    yield CompiledRule(
        name="Tsos_Commit_Next_Step",
        rule_id=rule_id,
        reasons=("no_next_step",),
        condition=f.and_(base, bad),
        message=_message(terms, rule_id, "A commit deal needs a real next step with a date."),
        display_field=text.path if text else None,
        doctrine=spec.doctrine,
        stricter=(ACTIVITY_GAP,),
        settings=("org.placeholders",),
    )


def channel(terms: Terms) -> Iterator[Compiled]:
    rule_id = "tsos.channel-lead-not-direct"
    spec = terms.source.specs[rule_id]
    deal = terms.channel_deal()
    if deal == f.FALSE:
        yield Skipped(
            rule_id,
            tuple(spec.reasons),
            "neither connector.fields.channel nor account.partner_of_record_id is mapped: "
            "a formula cannot tell a channel deal",
        )
        return
    partner = terms.ref("opportunity.partner_id")
    channel_field = terms.ref("opportunity.channel")
    stripped = f.or_(
        f.is_blank(partner) if partner else f.TRUE,
        terms.channel_is(channel_field, "direct") if channel_field else f.FALSE,
    )
    yield CompiledRule(
        name="Tsos_Channel_Deal_Keeps_Partner",
        rule_id=rule_id,
        reasons=("no_partner", "marked_direct"),
        condition=f.and_(terms.is_open(), deal, stripped),
        message=_message(
            terms,
            rule_id,
            "This is a channel deal: keep the partner on it and do not mark it direct.",
        ),
        display_field=partner.path if partner else None,
        doctrine=spec.doctrine,
        looser=CHANNEL_GAPS,
        settings=("connector.values.channel",),
    )
    direct = terms.owner_direct()
    if direct == f.FALSE:
        yield Skipped(
            rule_id,
            ("direct_owner",),
            "no owner classifies as direct under connector.users (set users.direct)",
        )
        return
    owner = terms.ref("opportunity.owner_id")
    yield CompiledRule(
        name="Tsos_Channel_Deal_Direct_Owner",
        rule_id=rule_id,
        reasons=("direct_owner",),
        condition=f.and_(terms.is_open(), deal, direct, f.not_(terms.consent_recorded())),
        message=_message(
            terms,
            rule_id,
            "A direct rep owns this channel deal: engage the partner and record their consent.",
        ),
        display_field=owner.path if owner else None,
        doctrine=spec.doctrine,
        looser=CHANNEL_GAPS,
        settings=("connector.users",),
    )


def partner_of_record(terms: Terms) -> Iterator[Compiled]:
    rule_id = "tsos.partner-of-record-required"
    spec = terms.source.specs[rule_id]
    deal = terms.channel_deal()
    partner_field = terms.source.field("opportunity.partner_id")
    if deal == f.FALSE or not partner_field:
        yield Skipped(
            rule_id,
            tuple(spec.reasons),
            "a formula cannot tell a channel deal, or opportunity.partner_id is off",
        )
        return
    from tsos_rules.connectors.salesforce.mapping import relationship_name

    partner = f.Ref(partner_field)
    por = terms.account_por()
    por_blank = f.is_blank(por) if por is not None else f.TRUE
    missing = f.and_(f.is_blank(partner), por_blank)
    terminated = f.or_(
        f.and_(f.not_(f.is_blank(partner)), terms.terminated(relationship_name(partner_field))),
        f.and_(
            f.is_blank(partner),
            f.not_(por_blank),
            terms.terminated(relationship_name(por.path)) if por is not None else f.FALSE,
        ),
    )
    yield CompiledRule(
        name="Tsos_Partner_Of_Record",
        rule_id=rule_id,
        reasons=("missing", "terminated_partner"),
        condition=f.and_(deal, f.or_(missing, terminated)),
        message=_message(terms, rule_id, "Name the active partner of record on this channel deal."),
        display_field=partner_field,
        doctrine=spec.doctrine,
        looser=CHANNEL_GAPS,
        settings=("connector.values.partner.status",),
    )
    yield Skipped(
        rule_id,
        ("unknown_partner",),
        "a lookup always names an existing account in Salesforce; leads and accounts are judged "
        "by the sync",
    )


COMPILERS: dict[str, Callable[[Terms], Iterator[Compiled]]] = {
    "tsos.close-date-locked": close_date,
    "tsos.next-step-required": next_step,
    "tsos.commit-integrity": commit,
    "tsos.channel-lead-not-direct": channel,
    "tsos.partner-of-record-required": partner_of_record,
}


def compile_rules(source: ValidationSource) -> list[Compiled]:
    """Every enabled tsos block rule a formula can express, in catalogue order."""
    terms = Terms(source)
    out: list[Compiled] = []
    for rule_id, compiler in COMPILERS.items():
        if rule_id in source.specs:
            out.extend(_with_exemption(source, c) for c in compiler(terms))
    return out


def _with_exemption(source: ValidationSource, compiled: Compiled) -> Compiled:
    """The rule with the deal's waiver term, where exemptions are mapped and the doctrine
    allows waiving it."""
    fields = source.exemptions
    if (
        fields is None
        or not isinstance(compiled, CompiledRule)
        or not fields.waivable(compiled.rule_id, compiled.reasons)
    ):
        return compiled
    stricter = compiled.stricter
    if fields.rules_field is not None:
        stricter = (*stricter, GLOB_GAP.format(field=fields.rules_field))
    return attrs.evolve(
        compiled,
        exemption=fields.exempt(compiled.rule_id),
        stricter=stricter,
        settings=(*compiled.settings, "connector.exemptions"),
    )
