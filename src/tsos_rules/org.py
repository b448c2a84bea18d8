"""The org profile: how this org's CRM encodes the pipeline (stage ladder, lock stage, calendar).

These settings shape the facts every pack reads, so they live here rather than in one pack.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from collections.abc import Callable, Mapping
from typing import Any

import attrs

from tsos_rules.errors import ConfigError

#: tip #4's consultative dialogue, in order, with its probability column.
DEFAULT_STAGE_LADDER: tuple[tuple[str, int], ...] = (
    ("mql", 20),
    ("business_driver", 40),
    ("sql", 40),
    ("engagement", 40),
    ("single_sales_opportunity", 40),
    ("date_locked", 40),
    ("draft_proposal", 60),
    ("trial_close", 65),
    ("closing", 80),
    ("commitment", 90),
    ("closed_won", 100),
    ("closed_lost", 0),
)

DEFAULT_PLACEHOLDERS: tuple[str, ...] = ("tbd", "n/a", "none", "-", "?", "follow up", "followup")
DEFAULT_PARTNER_SOURCES: tuple[str, ...] = (
    "partner",
    "partner_referral",
    "partner_url",
    "deal_registration",
)
DEFAULT_QUALIFIED_LEAD_STATUSES: tuple[str, ...] = ("qualified", "closed")
DEFAULT_CLOSED_LEAD_STATUSES: tuple[str, ...] = ("qualified", "closed", "converted", "disqualified")

_NON_ALNUM = re.compile(r"[\W_]+", re.UNICODE)


def normalise_text(text: str) -> str:
    """Lowercase with punctuation and spaces removed: ``"Follow-up."`` -> ``"followup"``."""
    return _NON_ALNUM.sub("", text.casefold())


_LEGAL_SUFFIXES = re.compile(
    r"\b(inc|incorporated|llc|ltd|limited|corp|corporation|co|company|gmbh|ag|sa|plc|bv|nv)\b\.?"
)


def company_key(name: str) -> str:
    """A company name reduced for matching: case, punctuation and legal suffixes ignored."""
    lowered = name.casefold().replace("&", " and ")
    return normalise_text(_LEGAL_SUFFIXES.sub(" ", lowered))


def company_keys_for(
    account_id: str | None,
    account_name: str | None,
    lead_company: str | None,
    key_of: Callable[[str], str],
) -> list[str]:
    """A record's company keys: its account's, then its company name's (the account's name,
    else a lead's own company); ``key_of`` is :func:`company_key`, memoised by the caller."""
    keys = []
    if account_id:
        keys.append(f"account:{account_id}")
    name = None
    if account_name:
        name = key_of(account_name)
    elif lead_company:
        name = key_of(lead_company)
    if name:
        keys.append("name:" + name)
    return keys


@attrs.frozen
class OrgProfile:
    """Org-wide settings that facts depend on. Every one has the doctrine's default."""

    stage_ladder: tuple[tuple[str, int], ...] = DEFAULT_STAGE_LADDER
    lock_stage: str = "date_locked"
    placeholders: tuple[str, ...] = DEFAULT_PLACEHOLDERS
    partner_sources: tuple[str, ...] = DEFAULT_PARTNER_SOURCES
    qualified_lead_statuses: tuple[str, ...] = DEFAULT_QUALIFIED_LEAD_STATUSES
    closed_lead_statuses: tuple[str, ...] = DEFAULT_CLOSED_LEAD_STATUSES
    fiscal_year_start_month: int = 1
    timezone: str = "UTC"
    holidays: tuple[dt.date, ...] = ()

    stage_index: Mapping[str, int] = attrs.field(init=False, repr=False, eq=False)
    stage_probability: Mapping[str, int] = attrs.field(init=False, repr=False, eq=False)
    placeholder_keys: frozenset[str] = attrs.field(init=False, repr=False, eq=False)
    tz: dt.tzinfo = attrs.field(init=False, repr=False, eq=False)
    is_utc: bool = attrs.field(init=False, repr=False, eq=False)

    def __attrs_post_init__(self) -> None:
        if not 1 <= self.fiscal_year_start_month <= 12:
            raise ConfigError(
                f"org.fiscal_year_start_month: expected 1 to 12, got {self.fiscal_year_start_month}"
            )
        names = [stage for stage, _ in self.stage_ladder]
        if self.lock_stage not in names:
            raise ConfigError(f"org.lock_stage: {self.lock_stage!r} is not in org.stage_ladder")
        try:
            tz: dt.tzinfo = zoneinfo.ZoneInfo(self.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ConfigError(f"org.timezone: unknown time zone {self.timezone!r}") from None
        object.__setattr__(self, "stage_index", {name: i for i, name in enumerate(names)})
        object.__setattr__(self, "stage_probability", dict(self.stage_ladder))
        object.__setattr__(
            self, "placeholder_keys", frozenset(normalise_text(p) for p in self.placeholders)
        )
        object.__setattr__(self, "tz", tz)
        object.__setattr__(self, "is_utc", self.timezone in ("UTC", "Etc/UTC"))

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> OrgProfile:
        """Build from the ``[org]`` config table; unknown keys are an error naming the key."""
        known = {a.name for a in attrs.fields(cls) if a.init}
        values: dict[str, Any] = {}
        for key, value in data.items():
            if key not in known:
                raise ConfigError(f"org.{key}: unknown setting (known: {', '.join(sorted(known))})")
            values[key] = _coerce_org_value(key, value)
        return cls(**values)

    def is_placeholder(self, text: str) -> bool:
        return normalise_text(text) in self.placeholder_keys

    def local_date(self, moment: dt.datetime) -> dt.date:
        """The calendar date of a timestamp in the org's time zone."""
        if self.is_utc and moment.tzinfo is dt.UTC:
            return moment.date()
        return moment.astimezone(self.tz).date()

    def today(self) -> dt.date:
        return dt.datetime.now(self.tz).date()

    def fiscal_quarter_end(self, day: dt.date) -> dt.date:
        """The last day of the fiscal quarter containing ``day``."""
        months_into_quarter = (day.month - self.fiscal_year_start_month) % 3
        start_month_index = day.year * 12 + day.month - 1 - months_into_quarter
        next_start = start_month_index + 3
        return dt.date(next_start // 12, next_start % 12 + 1, 1) - dt.timedelta(days=1)

    def business_days_between(self, start: dt.date, end: dt.date) -> int:
        """Working days after ``start`` up to and including ``end`` (Mon-Fri, less holidays)."""
        if end <= start:
            return 0
        days = (end - start).days
        weeks, rest = divmod(days, 7)
        count = weeks * 5
        weekday = start.weekday()
        for offset in range(1, rest + 1):
            if (weekday + offset) % 7 < 5:
                count += 1
        if self.holidays:
            count -= sum(1 for h in self.holidays if start < h <= end and h.weekday() < 5)
        return count


def _coerce_org_value(key: str, value: Any) -> Any:
    if key == "stage_ladder":
        if isinstance(value, Mapping):
            value = list(value.items())
        try:
            return tuple((str(stage), int(probability)) for stage, probability in value)
        except (TypeError, ValueError):
            raise ConfigError(
                "org.stage_ladder: expected a table of stage = probability, in ladder order"
            ) from None
    if key == "holidays":
        try:
            return tuple(
                v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)) for v in value
            )
        except (TypeError, ValueError):
            raise ConfigError("org.holidays: expected a list of dates YYYY-MM-DD") from None
    if key in {
        "placeholders",
        "partner_sources",
        "qualified_lead_statuses",
        "closed_lead_statuses",
    }:
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"org.{key}: expected a list of strings, got {value!r}")
        return tuple(value)
    if key == "fiscal_year_start_month":
        if type(value) is not int:
            raise ConfigError(f"org.{key}: expected a whole number 1 to 12, got {value!r}")
        return value
    if not isinstance(value, str):
        raise ConfigError(f"org.{key}: expected a string, got {value!r}")
    return value
