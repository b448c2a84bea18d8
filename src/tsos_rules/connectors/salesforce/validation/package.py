"""Metadata API format (mdapi) zips: what ``deploy()`` sends and what ``retrieve()`` returns.

A deploy zip holds ``package.xml``, ``objects/Opportunity.object`` (a CustomObject carrying only
the ``validationRules``), the bypass custom permission and permission set, and, with ``--prune``,
a ``destructiveChanges.xml`` naming the stale ``Tsos_*`` rules (Metadata API Developer Guide,
"Deploying and Retrieving Metadata", "Deleting Components from an Organization").
"""

from __future__ import annotations

import io
import zipfile
from collections.abc import Iterable, Mapping
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from tsos_rules.connectors.salesforce.validation.metadata import (
    NAMESPACE,
    custom_permission_xml,
    permission_set_xml,
)
from tsos_rules.connectors.salesforce.validation.rules import BYPASS_PERMISSION, CompiledRule
from tsos_rules.errors import FatalConnectorError

OBJECT = "Opportunity"
OBJECT_FILE = f"objects/{OBJECT}.object"
#: Only validation rules whose name starts with this are ever compared, replaced or pruned.
PREFIX = "Tsos_"
#: The elements of a ValidationRule, in the order the Metadata API's schema lists them.
FIELDS = (
    "active",
    "description",
    "errorConditionFormula",
    "errorDisplayField",
    "errorMessage",
)


def rule_fields(rule: CompiledRule, *, active: bool) -> dict[str, str]:
    """A generated rule as the element values an org would hand back for it."""
    fields = {
        "active": "true" if active else "false",
        "description": rule.description,
        "errorConditionFormula": rule.formula,
        "errorMessage": rule.message,
    }
    if rule.display_field:
        fields["errorDisplayField"] = rule.display_field
    return fields


def manifest(types: Mapping[str, Iterable[str]], api_version: str | None) -> str:
    """A ``package.xml`` (or ``destructiveChanges.xml``, which has no version) listing members."""
    body = ""
    for name, members in sorted(types.items()):
        listed = "".join(f"        <members>{escape(m)}</members>\n" for m in sorted(members))
        if listed:
            body += f"    <types>\n{listed}        <name>{name}</name>\n    </types>\n"
    if api_version:
        body += f"    <version>{api_version}</version>\n"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Package xmlns="{NAMESPACE}">\n{body}</Package>\n'
    )


def object_xml(rules: Iterable[CompiledRule], *, active: bool) -> str:
    """``objects/Opportunity.object``: a CustomObject holding only the validation rules."""
    body = ""
    for rule in rules:
        inner = f"        <fullName>{escape(rule.name)}</fullName>\n"
        for tag, value in rule_fields(rule, active=active).items():
            inner += f"        <{tag}>{escape(value)}</{tag}>\n"
        body += f"    <validationRules>\n{inner}    </validationRules>\n"
    return (
        f'<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<CustomObject xmlns="{NAMESPACE}">\n{body}</CustomObject>\n'
    )


def deploy_zip(
    rules: tuple[CompiledRule, ...],
    *,
    active: bool,
    api_version: str,
    delete: Iterable[str] = (),
) -> bytes:
    """The zip for ``deploy()`` (``singlePackage``: files at the root); ``delete`` = rule names
    (``Tsos_*``) to remove through ``destructiveChanges.xml``."""
    doomed = sorted(delete)
    for name in doomed:
        if not name.startswith(PREFIX):
            raise ValueError(f"refusing to delete {name!r}: only {PREFIX}* rules are pruned")
    members = {
        "ValidationRule": [f"{OBJECT}.{r.name}" for r in rules],
        "CustomPermission": [BYPASS_PERMISSION],
        "PermissionSet": [BYPASS_PERMISSION],
    }
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("package.xml", manifest(members, api_version))
        archive.writestr(OBJECT_FILE, object_xml(rules, active=active))
        archive.writestr(
            f"customPermissions/{BYPASS_PERMISSION}.customPermission", custom_permission_xml()
        )
        archive.writestr(f"permissionsets/{BYPASS_PERMISSION}.permissionset", permission_set_xml())
        if doomed:
            archive.writestr(
                "destructiveChanges.xml",
                manifest({"ValidationRule": [f"{OBJECT}.{n}" for n in doomed]}, None),
            )
    return buffer.getvalue()


def retrieve_types(names: Iterable[str]) -> dict[str, list[str]]:
    """The ``unpackaged`` types of a ``retrieve()`` for these Opportunity rules."""
    return {"ValidationRule": [f"{OBJECT}.{n}" for n in sorted(names)]}


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def read_rules(data: bytes) -> dict[str, dict[str, str]]:
    """The ``Tsos_*`` validation rules in a retrieved zip, by name, as element values.

    The object file may sit at the root (``singlePackage``) or under ``unpackaged/``.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:
        raise FatalConnectorError("Salesforce retrieve: the zipFile is not a zip") from None
    with archive:
        names = [n for n in archive.namelist() if n.endswith(OBJECT_FILE)]
        if not names:
            return {}
        try:
            root = ET.fromstring(archive.read(names[0]))
        except ET.ParseError as exc:
            raise FatalConnectorError(
                f"Salesforce retrieve: {names[0]} is not XML ({exc})"
            ) from None
    out: dict[str, dict[str, str]] = {}
    for element in root:
        if _local(element.tag) != "validationRules":
            continue
        values = {_local(child.tag): (child.text or "") for child in element}
        name = values.pop("fullName", "")
        if name.startswith(PREFIX):
            out[name] = {key: values[key] for key in FIELDS if key in values}
    return out
