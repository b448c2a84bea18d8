"""The plugin: registers the pack and adds the "both calendars" section to sync reports."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from tsos_rules import RulePack, hookimpl
from tsos_rules.facts import FactIndex
from tsos_rules.report.sections import ReportSection
from tsos_rules_mutual_operating_period.calendars import FiscalCalendar, FiscalQuarter
from tsos_rules_mutual_operating_period.rules import PACK

COLUMNS = (
    "deal",
    "partner",
    "close date",
    "forecast",
    "vendor period",
    "partner period",
    "aligned",
)


@hookimpl
def tsos_rules_register_packs(register: Callable[[RulePack], None]) -> None:
    register(PACK)


@hookimpl
def tsos_rules_report_sections(index: FactIndex) -> list[ReportSection] | None:
    """Each open channel deal with a close date and a partner: its period in both calendars."""
    vendor_month = index.org.fiscal_year_start_month
    default_month = 1
    quarters: dict[tuple[int, dt.date], FiscalQuarter] = {}  # a batch has few distinct dates

    def quarter(month: int, day: dt.date) -> FiscalQuarter:
        found = quarters.get((month, day))
        if found is None:
            found = quarters[(month, day)] = FiscalCalendar(month).quarter_of(day)
        return found

    rows = []
    keys = []  # how shards' rows merge: by close date, then deal id (the rows' order)
    dated = [
        o
        for o in index.snapshot.opportunities
        if o.close_date is not None and o.partner_id and not o.is_closed
    ]
    for deal in sorted(dated, key=lambda o: (o.close_date, o.id)):
        if deal.close_date is None or not index.channel_reasons(deal):
            continue
        partner = index.partners.get(deal.partner_id) if deal.partner_id else None
        month = (partner.fiscal_year_start_month if partner else None) or default_month
        ours = quarter(vendor_month, deal.close_date)
        theirs = quarter(month, deal.close_date)
        rows.append(
            (
                deal.name or deal.id,
                (partner.name or partner.id) if partner else deal.partner_id,
                deal.close_date.isoformat(),
                deal.forecast_category.value if deal.forecast_category else "",
                ours.label,
                theirs.label,
                "yes" if ours.same_period(theirs) else "no",
            )
        )
        keys.append((deal.close_date.isoformat(), deal.id))
    if not rows:
        return None
    return [
        ReportSection.of(
            "Mutual operating period: channel deals in both calendars",
            COLUMNS,
            rows,
            description=(
                "Each open channel deal's close date in the vendor's fiscal quarter and in its "
                "partner's. 'aligned' is no where the partner's quarter ends on another day: "
                "the vendor's quarter-end urgency is not the partner's."
            ),
            row_keys=keys,
        )
    ]
