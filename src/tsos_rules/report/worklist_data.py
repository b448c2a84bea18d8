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
    from tsos_rules.sync.state.worklist import WorklistRow
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


class _Names:
    """Distinct values in first-seen order, each row keeping an index (-1 for none)."""

    def __init__(self) -> None:
        self.index: dict[Any, int] = {}

    def __call__(self, value: Any) -> int:
        if not value:
            return -1
        found = self.index.get(value)
        if found is None:
            found = self.index[value] = len(self.index)
        return found

    def names(self) -> list[Any]:
        return list(self.index)


def worklist_payload(page: WorklistPage | None, *, as_of: str) -> dict[str, Any] | None:
    """What the page's script gets: rules, name tables and rows (None: no worklist given)."""
    if page is None:
        return None
    rules, owners, partners, accounts, types = _Names(), _Names(), _Names(), _Names(), _Names()
    links = _Names()
    rows = [_row(row, rules, owners, partners, accounts, types, links) for row in page.rows]
    return {
        "as_of": as_of,
        "fields": list(ROW_FIELDS),
        "statuses": list(STATUSES),
        "severities": list(SEVERITIES),
        "rules": [_rule(rule, page.rules.get(rule)) for rule in rules.names()],
        "owners": owners.names(),
        "partners": partners.names(),
        "accounts": accounts.names(),
        "types": types.names(),
        "links": [list(pair) for pair in links.names()],
        "rows": rows,
    }


def _row(
    row: WorklistRow,
    rules: _Names,
    owners: _Names,
    partners: _Names,
    accounts: _Names,
    types: _Names,
    links: _Names,
) -> list[Any]:
    return [
        _STATUS.get(row.status, 0),
        _SEVERITY.get(row.severity, 2),
        rules(row.rule),
        row.reason,
        types(row.record_type),
        row.record_id,
        row.record_name or "",
        owners(row.owner),
        partners(row.partner),
        accounts(row.account),
        row.first_seen,
        row.age_days,
        row.message,
        _link(safe_link(row.url), row.record_id, links),
        row.exemption_id,
    ]


def _link(url: str, record_id: str, links: _Names) -> int | str:
    """A record link as an index into ``links``, pairs of (before, after) the record id (one
    pair serves every record of a CRM object), or the whole URL when the id is not in it."""
    before, found, after = url.partition(record_id) if record_id else (url, "", "")
    if not found:
        return url
    return links((before, after))


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
