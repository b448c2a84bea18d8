"""The ``sell-through.big-name-few-units`` rule: a big company buying a few units of ours
through a distributor, with no open deal of ours, is a prospect worth a call.

Seed 000's bonus: ask big-box partners for their sell-through reports, "skim for big name
companies that were buying a few copies of my software", call them "to see why they picked us
and what the potential was" ($250k from two such deals).
"""

from __future__ import annotations

import datetime as dt
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, cast

import attrs

from tsos_rules import Parameter, PythonRule, RulePack, RuleSpec, Severity, Violation
from tsos_rules.facts import AccountFacts, FactIndex
from tsos_rules.org import company_key
from tsos_rules.rules.spec import CheckFn
from tsos_rules_sell_through.reports import Purchase, SellThrough, purchases_in, read_reports

PACK_NAME = "sell-through"
RULE_ID = f"{PACK_NAME}.big-name-few-units"
Params = Mapping[str, Any]

PARAMETERS = (
    Parameter("reports", [], "Sell-through report files (CSV): paths or globs."),
    Parameter(
        "columns",
        {},
        "Report columns by field (reseller, end_customer, product, units, date); "
        "a field not given is read from the column of its own name.",
    ),
    Parameter("date_format", "%Y-%m-%d", "The reports' date format (strptime)."),
    Parameter("lookback_days", 365, "Only purchases this many days before the as-of date count."),
    Parameter("max_units", 10, "At most this many units bought in all is 'a few copies'."),
    Parameter(
        "size_thresholds",
        {"employees": 1000, "annual_revenue": 100_000_000},
        "Account fields and the least value that makes a company a big name.",
    ),
    Parameter("big_names", [], "Companies that are big names whatever their account says."),
)


@attrs.frozen
class _Context:
    """What every account's judgement needs, computed once per evaluation."""

    bought: Mapping[str, list[Purchase]]
    open_companies: frozenset[str]
    first_account: Mapping[str, str]


_REPORTS: dict[tuple[Any, ...], SellThrough] = {}
_CONTEXTS: weakref.WeakKeyDictionary[FactIndex, dict[tuple[Any, ...], _Context]] = (
    weakref.WeakKeyDictionary()
)


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.replace(",", "").strip())
        except ValueError:
            return None
    return None


def _reports(params: Params) -> SellThrough:
    """The parsed reports, read once per process for one set of files and their versions."""
    from tsos_rules_sell_through.reports import report_files

    files = report_files([str(p) for p in params["reports"]])
    key = (
        tuple((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in files),
        tuple(sorted((str(k), str(v)) for k, v in params["columns"].items())),
        params["date_format"],
    )
    found = _REPORTS.get(key)
    if found is None:
        found = read_reports([str(f) for f in files], params["columns"], params["date_format"])
        _REPORTS.clear()
        _REPORTS[key] = found
    return found


def _context(index: FactIndex, params: Params) -> _Context:
    key = (
        tuple(params["reports"]),
        tuple(sorted(params["columns"].items())),
        params["date_format"],
        params["lookback_days"],
    )
    per_index = _CONTEXTS.setdefault(index, {})
    found = per_index.get(key)
    if found is not None:
        return found
    until = index.as_of
    since = until - dt.timedelta(days=int(params["lookback_days"]))
    bought: dict[str, list[Purchase]] = {}
    for purchase in purchases_in(_reports(params).purchases, since, until):
        if purchase.company:
            bought.setdefault(purchase.company, []).append(purchase)
    names = {a.id: company_key(a.name or "") for a in index.snapshot.accounts}
    open_companies = frozenset(
        names[deal.account_id]
        for deal in index.snapshot.opportunities
        if not deal.is_closed and deal.account_id in names and names[deal.account_id]
    )
    first_account: dict[str, str] = {}
    for account_id in sorted(names):
        first_account.setdefault(names[account_id], account_id)
    found = _Context(bought, open_companies, first_account)
    per_index[key] = found
    return found


def big_name(account: Any, params: Params) -> tuple[str, float] | None:
    """Why the account is a big name (``employees 12,000``), with a number to rank by."""
    if company_key(account.name or "") in {company_key(str(n)) for n in params["big_names"]}:
        return "named in big_names", float("inf")
    for field, least in params["size_thresholds"].items():
        value = _number(account.extra.get(field))
        floor = _number(least)
        if value is not None and floor is not None and value >= floor:
            return f"{field} {value:,.0f}", value
    return None


def big_name_few_units(facts: AccountFacts, params: Params) -> Iterator[Violation]:
    if not params["reports"]:
        return
    account = facts.account
    company = company_key(account.name or "")
    if not company:
        return
    context = _context(facts.index, params)
    bought = context.bought.get(company)
    if not bought or company in context.open_companies:
        return
    if context.first_account.get(company) != account.id:
        return  # one finding per company, on its first account
    units = sum(p.units for p in bought)
    if units <= 0 or units > int(params["max_units"]):
        return
    size = big_name(account, params)
    if size is None:
        return
    resellers = sorted({p.reseller for p in bought if p.reseller})
    products = sorted({p.product for p in bought if p.product})
    first = min(p.date for p in bought)
    last = max(p.date for p in bought)
    name = account.name or account.id
    yield Violation(
        "prospect",
        f"{name} bought {units} unit(s) of {', '.join(products) or 'our product'} through "
        f"{', '.join(resellers) or 'a reseller'} ({first.isoformat()} to {last.isoformat()}) "
        "and has no open deal: call them to learn why they picked us and what the potential is.",
        details={
            "units": units,
            "resellers": resellers,
            "products": products,
            "first_purchase": first.isoformat(),
            "last_purchase": last.isoformat(),
            "size": size[0],
            "size_rank": size[1],
        },
    )


SPEC = RuleSpec(
    id=RULE_ID,
    severity=Severity.INFO,
    record_types=("account",),
    title="A big name buying a few units through the channel, with no deal of ours",
    doctrine=(
        "Skim for big name companies that were buying a few copies of my software. I'd then "
        "call those companies to see why they picked us and what the potential was."
    ),
    source="seed 000, BONUS (sell-through reports from big-box partners such as CDW, Insight)",
    semantics=(
        "Reads the distributor sell-through reports named by `reports` (CSV, columns mapped by "
        "`columns`). End customers are matched to accounts by company name, normalised as the "
        "doctrine rules match companies (case, punctuation and legal suffixes ignored). An "
        "account is flagged when its company bought between 1 and `max_units` units in all in "
        "the `lookback_days` before the as-of date, it is a big name (an account field in "
        "`size_thresholds` at or above its value, or the company is in `big_names`), and no "
        "account of that company has an open opportunity. One finding per company, on its "
        "first account by id. A malformed report row is skipped and named in the log."
    ),
    remediation=(
        "Call the company: why did they pick us, who uses it, what else could they use? Offer "
        "a free session on the most used features, with their managers and purchasing invited."
    ),
    reasons={"prospect": "big name, a few units, no open deal"},
    parameters=tuple(p.name for p in PARAMETERS),
)

PACK = RulePack(
    name=PACK_NAME,
    version="0.1.0",
    description="Prospects from distributors' sell-through reports (seed 000, BONUS).",
    parameters=PARAMETERS,
    python_rules=(PythonRule(SPEC, {"account": cast(CheckFn, big_name_few_units)}),),
)
