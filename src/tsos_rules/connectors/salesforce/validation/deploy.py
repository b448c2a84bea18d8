"""Review and deploy the generated rules: diff against the org's ``Tsos_*`` rules, deploy (or
validate with ``checkOnly``), and prune the ``Tsos_*`` rules the config no longer generates.

Only Opportunity validation rules whose name starts with ``Tsos_`` are ever read, compared or
deleted; an admin's own rules are never touched.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping

import attrs

from tsos_rules.connectors.salesforce.validation.mdapi import (
    DeployOptions,
    DeployResult,
    MetadataApi,
)
from tsos_rules.connectors.salesforce.validation.package import (
    FIELDS,
    OBJECT,
    PREFIX,
    deploy_zip,
    read_rules,
    retrieve_types,
    rule_fields,
)
from tsos_rules.connectors.salesforce.validation.rules import CompiledRule
from tsos_rules.errors import FatalConnectorError

NEW, CHANGED, UNCHANGED, STALE = "new", "changed", "unchanged", "stale"


@attrs.frozen
class RuleDiff:
    """One rule compared: its status and, when it differs, a unified diff (org -> generated)."""

    name: str
    status: str
    lines: tuple[str, ...] = ()


@attrs.frozen
class Deployment:
    """A finished deploy: the DeployResult and the rules deleted with it."""

    result: DeployResult
    deleted: tuple[str, ...]


def org_rule_names(api: MetadataApi) -> list[str]:
    """The org's Opportunity validation rules named ``Tsos_*`` (``listMetadata``)."""
    prefix = f"{OBJECT}.{PREFIX}"
    return [n.split(".", 1)[1] for n in api.list_metadata("ValidationRule") if n.startswith(prefix)]


def org_rules(api: MetadataApi) -> dict[str, dict[str, str]]:
    """The org's ``Tsos_*`` rules with their element values (``listMetadata`` + ``retrieve``)."""
    names = org_rule_names(api)
    if not names:
        return {}
    return read_rules(api.retrieve(retrieve_types(names)))


#: Calls laid out one argument per line in a diff; the others stay inline.
_STRUCTURE = frozenset({"AND", "OR", "NOT", "IF", "CASE"})


def formula_lines(formula: str, indent: str = "    ") -> list[str]:
    """A formula laid out for reading: AND/OR/NOT/IF/CASE one argument per line, indented;
    other calls, comparisons and string literals kept whole on their line."""
    lines: list[str] = []
    current = ""
    depth = 0
    inline = 0
    quote = escaped = False

    def emit(suffix: str = "") -> None:
        nonlocal current
        if current.strip():
            lines.append(indent * depth + current.strip() + suffix)
        elif suffix and lines:
            lines[-1] += suffix
        current = ""

    for char in formula.replace("\r\n", "\n"):
        if quote:
            current += char
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                quote = False
        elif char == '"':
            quote = True
            current += char
        elif char == "(" and not inline and current.strip().upper() in _STRUCTURE:
            emit("(")
            depth += 1
        elif char == "(":
            inline += 1
            current += char
        elif char == ")" and inline:
            inline -= 1
            current += char
        elif char == ")" and depth:
            emit()
            depth -= 1
            lines.append(indent * depth + ")")
        elif char == "," and not inline and depth:
            emit(",")
        elif char.isspace() and not current.strip():
            continue
        else:
            current += char
    emit()
    return lines


def _lines(fields: Mapping[str, str]) -> list[str]:
    out: list[str] = []
    for key in FIELDS:
        if key not in fields:
            continue
        if key == "errorConditionFormula":
            out.append(f"{key}:")
            out.extend(formula_lines(fields[key]))
        else:
            out.append(f"{key}: {fields[key]}")
    return out


def _same(a: Mapping[str, str], b: Mapping[str, str]) -> bool:
    def norm(fields: Mapping[str, str]) -> dict[str, str]:
        return {k: " ".join(v.replace("\r\n", "\n").split()) for k, v in fields.items() if v}

    return norm(a) == norm(b)


def compare(
    rules: tuple[CompiledRule, ...], org: Mapping[str, Mapping[str, str]], *, active: bool
) -> list[RuleDiff]:
    """Each generated rule against the org's copy, then the org's ``Tsos_*`` rules no longer
    generated (``stale``: what ``--prune`` deletes)."""
    out: list[RuleDiff] = []
    for rule in rules:
        wanted = rule_fields(rule, active=active)
        have = org.get(rule.name)
        if have is None:
            out.append(RuleDiff(rule.name, NEW, tuple(_lines(wanted))))
        elif _same(have, wanted):
            out.append(RuleDiff(rule.name, UNCHANGED))
        else:
            diff = difflib.unified_diff(
                _lines(have),
                _lines(wanted),
                f"org: {OBJECT}.{rule.name}",
                "generated",
                n=2,
                lineterm="",
            )
            out.append(RuleDiff(rule.name, CHANGED, tuple(diff)))
    generated = {rule.name for rule in rules}
    for name in sorted(set(org) - generated):
        out.append(RuleDiff(name, STALE, tuple(_lines(org[name]))))
    return out


def deploy(
    api: MetadataApi,
    rules: tuple[CompiledRule, ...],
    *,
    active: bool,
    check_only: bool,
    prune: bool,
) -> Deployment:
    """Deploy the rules, the bypass permission and its permission set (deleting stale
    ``Tsos_*`` rules with ``prune``); raises FatalConnectorError listing every component failure."""
    stale: list[str] = []
    if prune:
        generated = {rule.name for rule in rules}
        stale = [name for name in org_rule_names(api) if name not in generated]
    zipped = deploy_zip(rules, active=active, api_version=api.client.api_version, delete=stale)
    result = api.deploy(zipped, DeployOptions(check_only=check_only))
    if result.status != "Succeeded" or not result.success:
        raise FatalConnectorError(failure_message(result))
    return Deployment(result, tuple(stale))


def failure_message(result: DeployResult) -> str:
    """Why a deploy failed: the status, then each component failure on its own line."""
    kind = "check-only deploy" if result.check_only else "deploy"
    head = f"Salesforce {kind} {result.id}: {result.status or 'not done'}"
    if result.failures:
        head += f", {len(result.failures)} component failure(s)"
    if result.error_message:
        code = f"{result.error_status_code}: " if result.error_status_code else ""
        head += f" ({code}{result.error_message})"
    if result.status == "Failed":
        head += "; nothing was saved (rollbackOnError)"
    return "\n".join([head, *(f"  {f.describe()}" for f in result.failures)])
