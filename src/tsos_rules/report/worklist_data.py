"""The HTML report's worklist as compact JSON for the page's script: one array per finding,
with rules, owners, partners and accounts named once and referred to by index (100k findings
stay a few megabytes), embedded safely in a ``<script type="application/json">`` tag."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tsos_rules.rules.spec import RuleSpec
    from tsos_rules.sync.summary import WorklistPage

#: The fields of one row, in order (the page's script reads them by these positions). ``url``
#: is an index into ``links`` (the link is ``before + record_id + after``), "" for no link, or
#: the whole link.
ROW_FIELDS = (
    "status",
    "severity",
    "rule",
    "reason",
    "record_type",
    "record_id",
    "record_name",
    "owner",
    "partner",
    "account",
    "first_seen",
    "age_days",
    "message",
    "url",
    "exemption_id",
)
STATUSES = ("open", "exempt", "shadow")
SEVERITIES = ("block", "warn", "info")
#: An absolute http(s) URL with a host and no spaces (a CRM's record link).
_LINK = re.compile(r"https?://[^\s/?#]+(?:[/?#]\S*)?\Z", re.IGNORECASE)
_STATUS = {status: i for i, status in enumerate(STATUSES)}
_SEVERITY = {severity: i for i, severity in enumerate(SEVERITIES)}


def worklist_payload(page: WorklistPage | None, *, as_of: str) -> dict[str, Any] | None:
    """What the page's script gets: rules, name tables and rows (None: no worklist given)."""
    if page is None:
        return None
    # Distinct values in first-seen order; a row keeps each one's index (-1 for none). One
    # plain loop with dict.setdefault: 100k rows take a fraction of a second.
    rules: dict[str, int] = {}
    owners: dict[str, int] = {}
    partners: dict[str, int] = {}
    accounts: dict[str, int] = {}
    types: dict[str, int] = {}
    links: dict[tuple[str, str], int] = {}
    rows = []
    for row in page.rows:
        owner, partner, account = row.owner, row.partner, row.account
        rows.append(
            [
                _STATUS.get(row.status, 0),
                _SEVERITY.get(row.severity, 2),
                rules.setdefault(row.rule, len(rules)),
                row.reason,
                types.setdefault(row.record_type, len(types)),
                row.record_id,
                row.record_name or "",
                owners.setdefault(owner, len(owners)) if owner else -1,
                partners.setdefault(partner, len(partners)) if partner else -1,
                accounts.setdefault(account, len(accounts)) if account else -1,
                row.first_seen,
                row.age_days,
                row.message,
                _link(row.url, row.record_id, links),
                row.exemption_id,
            ]
        )
    return {
        "as_of": as_of,
        "fields": list(ROW_FIELDS),
        "statuses": list(STATUSES),
        "severities": list(SEVERITIES),
        "rules": [_rule(rule, page.rules.get(rule)) for rule in rules],
        "owners": list(owners),
        "partners": list(partners),
        "accounts": list(accounts),
        "types": list(types),
        "links": [list(pair) for pair in links],
        "rows": rows,
    }


def _link(url: str | None, record_id: str, links: dict[tuple[str, str], int]) -> int | str:
    """A record's http(s) link as an index into ``links``, pairs of (before, after) the record
    id (one pair serves every record of a CRM object); the whole link when the id is not in
    it; "" for none."""
    url = safe_link(url)
    before, found, after = url.partition(record_id) if url and record_id else (url, "", "")
    if not found:
        return url
    return links.setdefault((before, after), len(links))


def _rule(rule: str, spec: RuleSpec | None) -> dict[str, Any]:
    if spec is None:
        return {"id": rule, "title": rule, "doctrine": "", "remedy": "", "reasons": {}}
    return {
        "id": rule,
        "title": spec.title,
        "doctrine": spec.doctrine,
        "remedy": spec.remediation,
        "reasons": {code: _sentence(text) for code, text in spec.reasons.items()},
    }


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:] if text else text


def safe_link(url: str | None) -> str:
    """``url`` when it is an http(s) link, else "" (a ``javascript:`` URL never becomes a link)."""
    return url if url and _LINK.match(url) else ""


def script_json(data: Any) -> str:
    """``data`` as JSON that cannot end its ``<script>`` element early: every ``<``, ``>`` and
    ``&`` is a ``\\u`` escape, so ``</script>`` or ``<!--`` in a message stays text."""
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def reason_words(specs: Mapping[str, RuleSpec], rule: str, reason: str) -> str:
    """A reason in plain words ("A locked deal's close date moved without approval"), else the
    reason code with spaces."""
    spec = specs.get(rule)
    text = spec.reasons.get(reason) if spec is not None else None
    return _sentence(text) if text else reason.replace("_", " ")


def rule_titles(specs: Mapping[str, RuleSpec], rules: Iterable[str]) -> dict[str, str]:
    """Each rule's title for people, its id when the rule is not loaded."""
    return {rule: specs[rule].title if rule in specs else rule for rule in rules}
