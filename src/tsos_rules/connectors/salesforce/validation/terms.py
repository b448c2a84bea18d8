"""Doctrine facts as formula terms, read through the connector's mapping and the org profile.

Each term mirrors one fact of ``tsos_rules.facts`` (open, locked, commit, channel deal, owner
role, next step) so that a formula judges the record the way the engine judges its snapshot
record after the mapping has translated it.
"""

from __future__ import annotations

from tsos_rules.connectors.salesforce.mapping import FORECAST_CATEGORIES, relationship_name
from tsos_rules.connectors.salesforce.validation import formula as f
from tsos_rules.connectors.salesforce.validation.source import ValidationSource
from tsos_rules.model import ForecastCategory, UserRole

#: Java regex (Salesforce ``REGEX``) for one character that ``org.normalise_text`` removes.
SEPARATOR = r"[^\p{L}\p{N}]*"
#: Java regex for a blank text, as ``str.strip()`` sees it.
BLANK = r"[\s\p{Z}]*"


class Terms:
    """Formula terms for the Opportunity, built from one :class:`ValidationSource`."""

    def __init__(self, source: ValidationSource) -> None:
        self.source = source
        self.org = source.org
        self.mapping = source.mapping

    def ref(self, key: str) -> f.Ref | None:
        field = self.source.field(key)
        return f.Ref(field) if field else None

    # -- state of the deal -----------------------------------------------------------------

    def is_open(self) -> f.Expr:
        closed = self.ref("opportunity.is_closed")
        return f.not_(closed) if closed else f.TRUE

    def stage_values(self, ladder: set[str]) -> list[str]:
        """Picklist values the mapping places on these ladder stages (unmapped ones pass as is)."""
        stages = self.mapping.stages
        values = [raw for raw, stage in stages.items() if stage in ladder]
        values += [
            name for name, _ in self.org.stage_ladder if name in ladder and name not in stages
        ]
        return values

    def stage_in(self, field: f.Expr, ladder: set[str]) -> f.Expr:
        return f.any_of(f.call("ISPICKVAL", field, f.Text(v)) for v in self.stage_values(ladder))

    def commit_values(self) -> list[str]:
        """Forecast category values (lower case) the mapping reads as ``commit``."""
        custom = self.mapping.values.get("opportunity.forecast_category", {})
        values = [raw for raw, target in custom.items() if target == ForecastCategory.COMMIT.value]
        values += [
            raw
            for raw, category in FORECAST_CATEGORIES.items()
            if category is ForecastCategory.COMMIT and raw not in custom
        ]
        return sorted(set(values))

    def is_commit(self, field: f.Expr) -> f.Expr:
        return f.any_of(
            f.compare("=", f.lower_text(field), f.Text(v)) for v in self.commit_values()
        )

    def locked_stages(self) -> set[str]:
        index = self.org.stage_index[self.org.lock_stage]
        return {name for name, i in self.org.stage_index.items() if i >= index}

    def locked_before_save(self) -> f.Expr:
        """Locked as the engine judges a move: from the stage and forecast before the save,
        each falling back to the current value when the prior one is blank."""
        terms: list[f.Expr] = []
        stage = self.ref("opportunity.stage")
        if stage is not None:
            locked = self.locked_stages()
            blank = f.compare("=", f.text_of(f.prior(stage)), f.Text(""))
            terms.append(f.and_(blank, self.stage_in(stage, locked)))
            terms.append(f.and_(f.not_(blank), self.stage_in(f.prior(stage), locked)))
        forecast = self.ref("opportunity.forecast_category")
        if forecast is not None:
            blank = f.compare("=", f.text_of(f.prior(forecast)), f.Text(""))
            terms.append(f.and_(blank, self.is_commit(forecast)))
            terms.append(f.and_(f.not_(blank), self.is_commit(f.prior(forecast))))
        return f.or_(*terms)

    def commit_now(self) -> f.Expr:
        forecast = self.ref("opportunity.forecast_category")
        return self.is_commit(forecast) if forecast is not None else f.FALSE

    def next_quarter_start(self) -> f.Expr:
        """The first day of the next fiscal quarter, from ``TODAY()`` and the fiscal year start."""
        start = self.org.fiscal_year_start_month
        offsets: list[f.Expr] = []
        for month in range(1, 13):
            offsets += [f.Number(month), f.Number(3 - (month - start) % 3)]
        first = f.call("DATE", f.call("YEAR", f.today()), f.call("MONTH", f.today()), f.Number(1))
        shift = f.Call("CASE", (f.call("MONTH", f.today()), *offsets, f.Number(0)))
        return f.call("ADDMONTHS", first, shift)

    # -- next step -------------------------------------------------------------------------

    def placeholder_regex(self) -> str:
        """A Java regex matching a blank text or one of ``org.placeholders`` after
        ``normalise_text`` (case and every non-letter, non-digit character ignored)."""
        keys = sorted(self.org.placeholder_keys)
        words = "|".join(SEPARATOR.join(key) for key in keys)
        return f"(?iu){BLANK}|{SEPARATOR}(?:{words}){SEPARATOR}"

    def next_step_bad(self) -> f.Expr | None:
        """The deal's own next step fails (placeholder, missing or past due); None when the
        mapping has no next-step text or date, so that every open deal would fail."""
        text = self.ref("opportunity.next_step")
        day = self.ref("opportunity.next_step_date")
        if text is None or day is None:
            return None
        return f.or_(
            f.is_blank(text),
            f.call("REGEX", text, f.Text(self.placeholder_regex())),
            f.is_blank(day),
            f.and_(f.not_(f.is_blank(day)), f.compare("<", day, f.today())),
        )

    # -- channel ---------------------------------------------------------------------------

    def channel_values(self, target: str) -> list[str]:
        custom = self.mapping.values.get("opportunity.channel", {})
        values = [raw for raw, value in custom.items() if value == target]
        if target not in custom:
            values.append(target)
        return sorted(set(values))

    def channel_is(self, field: f.Expr, target: str) -> f.Expr:
        return f.any_of(
            f.compare("=", f.lower_text(field), f.Text(v)) for v in self.channel_values(target)
        )

    def account_por(self) -> f.Ref | None:
        account = self.source.field("opportunity.account_id")
        por = self.source.field("account.partner_of_record_id")
        if not account or not por:
            return None
        return f.Ref(f"{relationship_name(account)}.{por}")

    def channel_now(self) -> f.Expr:
        """Channel markers a formula can see: the account's partner of record, channel = partner."""
        terms: list[f.Expr] = []
        por = self.account_por()
        if por is not None:
            terms.append(f.not_(f.is_blank(por)))
        channel = self.ref("opportunity.channel")
        if channel is not None:
            terms.append(self.channel_is(channel, "partner"))
        return f.or_(*terms)

    def channel_before(self) -> f.Expr:
        """A channel deal before the save stays one (the in-line transition rule)."""
        channel = self.ref("opportunity.channel")
        if channel is None:
            return f.FALSE
        return f.and_(f.not_(f.call("ISNEW")), self.channel_is(f.prior(channel), "partner"))

    def channel_deal(self) -> f.Expr:
        return f.or_(self.channel_now(), f.and_(self.is_open(), self.channel_before()))

    # -- owner -----------------------------------------------------------------------------

    def owner_direct(self) -> f.Expr:
        """The owner classifies as ``direct`` under ``[connector.users]``."""
        users = self.mapping.users
        owner = self.source.field("opportunity.owner_id")
        if not owner:
            return f.FALSE
        prefix = relationship_name(owner)
        user_type = f.text_of(f.Ref(f"{prefix}.UserType"))
        internal = f.or_(
            f.compare("=", user_type, f.Text("")), f.compare("=", user_type, f.Text("Standard"))
        )
        value: f.Expr
        if users.by == "user_type":
            value = user_type
        elif users.by == "role":
            value = f.Ref(f"{prefix}.UserRole.Name")
        elif users.by == "profile":
            value = f.Ref(f"{prefix}.Profile.Name")
        else:
            value = f.Ref(f"{prefix}.{users.field}")
        present = f.not_(f.is_blank(value))

        def matches(patterns: tuple[str, ...]) -> f.Expr:
            if not patterns:
                return f.FALSE
            regex = "(?isu)" + "|".join(glob_regex(p.casefold()) for p in patterns)
            return f.and_(present, f.call("REGEX", value, f.Text(regex)))

        direct = matches(users.direct)
        if users.unmatched is UserRole.DIRECT:
            others = f.or_(direct, matches(users.channel), matches(users.partner))
            direct = f.or_(direct, f.not_(others))
        return f.and_(internal, direct) if direct != f.FALSE else f.FALSE

    def consent_recorded(self) -> f.Expr:
        by = self.ref("opportunity.partner_consent_by")
        at = self.ref("opportunity.partner_consent_at")
        if by is None or at is None:
            return f.FALSE
        return f.and_(f.not_(f.is_blank(by)), f.not_(f.is_blank(at)))

    # -- partner of record -----------------------------------------------------------------

    def terminated(self, prefix: str) -> f.Expr:
        """The partner account at ``prefix`` reads as ``terminated`` (status field, else
        ``IsPartner`` false)."""
        status = self.source.field("partner.status")
        is_partner = self.source.field("partner.is_partner")
        not_partner = (
            f.compare("=", f.Ref(f"{prefix}.{is_partner}"), f.FALSE) if is_partner else f.FALSE
        )
        if not status:
            return not_partner
        value = f.Ref(f"{prefix}.{status}")
        custom = self.mapping.values.get("partner.status", {})
        values = [raw for raw, target in custom.items() if target == "terminated"]
        if "terminated" not in custom:
            values.append("terminated")
        blank = f.compare("=", f.text_of(value), f.Text(""))
        return f.or_(
            f.and_(blank, not_partner),
            f.any_of(f.compare("=", f.lower_text(value), f.Text(v)) for v in sorted(set(values))),
        )


def glob_regex(pattern: str) -> str:
    """An ``fnmatch`` glob as a Java regex: ``*``, ``?`` and ``[...]``; the rest literal."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        i += 1
        if char == "*":
            out.append(".*")
        elif char == "?":
            out.append(".")
        elif char == "[":
            j = i + 1 if i < n and pattern[i] == "!" else i
            j = pattern.find("]", j + 1 if j < n and pattern[j] == "]" else j)
            if j < 0:
                out.append(r"\[")
                continue
            inner, i = pattern[i:j], j + 1
            negate = inner.startswith("!")
            inner = inner[1:] if negate else inner
            escaped = "".join(c if c.isalnum() or c == "-" else "\\" + c for c in inner)
            out.append(f"[{'^' if negate else ''}{escaped}]")
        else:
            out.append(char if char.isalnum() else "\\" + char)
    return "(?:" + "".join(out) + ")"
