"""The fake org's Metadata API (SOAP, ``/services/Soap/m/<version>``), for the validation-rule
deploy: ``listMetadata``, ``deploy``/``checkDeployStatus``, ``retrieve``/``checkRetrieveStatus``.

Shapes follow the Metadata API Developer Guide: ``deploy`` answers an AsyncResult
(``id``, ``done``, ``state``); ``checkDeployStatus`` a DeployResult (``checkOnly``, ``done``,
``status``, ``success``, ``numberComponents*``, ``details/componentFailures`` with
``fileName``, ``fullName``, ``componentType``, ``problem``, ``problemType``, ``lineNumber``,
``columnNumber``); ``checkRetrieveStatus`` a RetrieveResult (``done``, ``status``,
``success``, ``fileProperties``, base64 ``zipFile``); ``listMetadata`` FileProperties; a bad
session is a SOAP fault ``sf:INVALID_SESSION_ID`` (HTTP 500). A deploy holding a failure is
rolled back whole (``rollbackOnError``); ``checkOnly`` saves nothing.

    fake.metadata.rules["Tsos_Old"] = {"active": "true", "errorConditionFormula": "FALSE", ...}
    fake.metadata.refuse("Opportunity.Tsos_Commit_Stage", "Field Foo__c does not exist", line=9)
"""

from __future__ import annotations

import base64
import io
import itertools
import zipfile
from collections.abc import Mapping
from typing import TYPE_CHECKING
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

import attrs

if TYPE_CHECKING:
    from tsos_rules.testing.fake_salesforce import FakeSalesforce

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
MD = "http://soap.sforce.com/2006/04/metadata"
RULE_FIELDS = (
    "active",
    "description",
    "errorConditionFormula",
    "errorDisplayField",
    "errorMessage",
)


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: ET.Element) -> dict[str, str]:
    return {_local(c.tag): (c.text or "") for c in element}


def _members(manifest: bytes) -> dict[str, list[str]]:
    root = ET.fromstring(manifest)
    out: dict[str, list[str]] = {}
    for types in root:
        if _local(types.tag) != "types":
            continue
        name = next((c.text or "" for c in types if _local(c.tag) == "name"), "")
        out.setdefault(name, []).extend(c.text or "" for c in types if _local(c.tag) == "members")
    return out


@attrs.define
class _Job:
    id: str
    kind: str
    polls_left: int
    result: str  # the <result> body once done


class FakeMetadataApi:
    """Validation rules, custom permissions and permission sets of the fake org's Opportunity."""

    def __init__(self, org: FakeSalesforce) -> None:
        self.org = org
        #: Opportunity validation rules by short name, as element values (``active``: "true").
        self.rules: dict[str, dict[str, str]] = {}
        self.custom_permissions: dict[str, str] = {}
        self.permission_sets: dict[str, str] = {}
        #: ``checkDeployStatus``/``checkRetrieveStatus`` answers ``done=false`` this many times.
        self.polls = 1
        #: Every SOAP operation received: (operation, its body element's children as text).
        self.requests: list[tuple[str, dict[str, str]]] = []
        #: The DeployOptions of every deploy, as sent.
        self.deploy_options: list[dict[str, str]] = []
        #: The zip of every deploy, as sent.
        self.deployed_zips: list[bytes] = []
        self._refusals: dict[str, tuple[str, int | None]] = {}
        self._jobs: dict[str, _Job] = {}
        self._ids = itertools.count(1)

    def refuse(self, full_name: str, problem: str, *, line: int | None = None) -> None:
        """Deploys fail on this component (``Opportunity.Tsos_X``) with this problem."""
        self._refusals[full_name] = (problem, line)

    # -- SOAP -------------------------------------------------------------------------------

    def handle(self, body: str) -> tuple[int, dict[str, str], str]:
        headers = {"Content-Type": "text/xml;charset=UTF-8"}
        try:
            root = ET.fromstring(body)
        except ET.ParseError:
            return 500, headers, _fault("soapenv:Client", "Malformed SOAP request")
        session = root.find(f".//{{{MD}}}sessionId")
        token = session.text if session is not None else None
        if not token or token not in self.org.sessions or self.org.refuse_sessions:
            return (
                500,
                headers,
                _fault(
                    "sf:INVALID_SESSION_ID",
                    "INVALID_SESSION_ID: Invalid Session ID found in SessionHeader: "
                    "Illegal Session",
                ),
            )
        request = root.find(f"{{{SOAP_ENV}}}Body")
        operation = request[0] if request is not None and len(request) else None
        if operation is None:
            return 500, headers, _fault("soapenv:Client", "No operation")
        name = _local(operation.tag)
        self.requests.append((name, _children(operation)))
        handler = getattr(self, f"_{name}", None)
        if handler is None:
            return 500, headers, _fault("sf:INVALID_OPERATION", f"No operation {name}")
        try:
            answer: str = handler(operation)
        except KeyError as exc:
            return 500, headers, _fault("sf:INVALID_ID_FIELD", f"Invalid id: {exc}")
        return 200, headers, _envelope(f"<{name}Response>{answer}</{name}Response>")

    # -- operations --------------------------------------------------------------------------

    def _listMetadata(self, operation: ET.Element) -> str:
        kinds = {c.text for q in operation if _local(q.tag) == "queries" for c in q}
        out = ""
        if "ValidationRule" in kinds:
            for name in sorted(self.rules):
                out += (
                    "<result><createdById>005000000000001AAA</createdById>"
                    "<createdByName>Org Admin</createdByName>"
                    "<createdDate>2026-01-05T09:00:00.000Z</createdDate>"
                    "<fileName>objects/Opportunity.object</fileName>"
                    f"<fullName>Opportunity.{escape(name)}</fullName>"
                    f"<id>03d00000000{next(self._ids):04d}AAA</id>"
                    "<manageableState>unmanaged</manageableState>"
                    "<type>ValidationRule</type></result>"
                )
        return out

    def _deploy(self, operation: ET.Element) -> str:
        values = {_local(c.tag): c for c in operation}
        options = _children(values["DeployOptions"]) if "DeployOptions" in values else {}
        self.deploy_options.append(options)
        data = base64.b64decode(values["ZipFile"].text or "")
        self.deployed_zips.append(data)
        result = self._apply(data, options)
        job = self._job("0Af", "deploy", result)
        return f"<result><done>false</done><id>{job.id}</id><state>Queued</state></result>"

    def _checkDeployStatus(self, operation: ET.Element) -> str:
        return self._check(operation, "deploy")

    def _retrieve(self, operation: ET.Element) -> str:
        request = next(c for c in operation if _local(c.tag) == "retrieveRequest")
        unpackaged = next(c for c in request if _local(c.tag) == "unpackaged")
        wanted = [
            (c.text or "")
            for types in unpackaged
            if _local(types.tag) == "types"
            and any(_local(n.tag) == "name" and n.text == "ValidationRule" for n in types)
            for c in types
            if _local(c.tag) == "members"
        ]
        found = [m for m in wanted if m.split(".", 1)[-1] in self.rules]
        body = "".join(
            f"    <validationRules>\n        <fullName>{escape(m.split('.', 1)[1])}</fullName>\n"
            + "".join(
                f"        <{k}>{escape(v)}</{k}>\n"
                for k, v in self.rules[m.split(".", 1)[1]].items()
            )
            + "    </validationRules>\n"
            for m in found
        )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as archive:
            members = "".join(f"<members>{escape(m)}</members>" for m in found)
            archive.writestr(
                "package.xml",
                f'<?xml version="1.0" encoding="UTF-8"?><Package xmlns="{MD}"><types>{members}'
                "<name>ValidationRule</name></types><version>62.0</version></Package>",
            )
            archive.writestr(
                "objects/Opportunity.object",
                f'<?xml version="1.0" encoding="UTF-8"?>\n<CustomObject xmlns="{MD}">\n{body}'
                "</CustomObject>\n",
            )
        zipped = base64.b64encode(buffer.getvalue()).decode()
        properties = "".join(
            f"<fileProperties><fileName>objects/Opportunity.object</fileName>"
            f"<fullName>{escape(m)}</fullName><type>ValidationRule</type></fileProperties>"
            for m in found
        )
        result = (
            f"{properties}<status>Succeeded</status><success>true</success>"
            f"<zipFile>{zipped}</zipFile>"
        )
        job = self._job("09S", "retrieve", result)
        return f"<result><done>false</done><id>{job.id}</id><state>Queued</state></result>"

    def _checkRetrieveStatus(self, operation: ET.Element) -> str:
        return self._check(operation, "retrieve")

    # -- helpers -----------------------------------------------------------------------------

    def _job(self, prefix: str, kind: str, result: str) -> _Job:
        job = _Job(f"{prefix}5g00000{next(self._ids):08d}", kind, self.polls, result)
        self._jobs[job.id] = job
        return job

    def _check(self, operation: ET.Element, kind: str) -> str:
        job_id = _children(operation).get("asyncProcessId", "")
        job = self._jobs.get(job_id)
        if job is None or job.kind != kind:
            raise KeyError(job_id)
        if job.polls_left > 0:
            job.polls_left -= 1
            status = "InProgress"
            return (
                f"<result><done>false</done><id>{job.id}</id><status>{status}</status>"
                "<success>false</success></result>"
            )
        return f"<result><done>true</done><id>{job.id}</id>{job.result}</result>"

    def _apply(self, data: bytes, options: Mapping[str, str]) -> str:
        """Validate (and unless checkOnly, save) a deploy; the DeployResult body once done."""
        check_only = options.get("checkOnly") == "true"
        failures: list[tuple[str, str, str, str, int | None]] = []
        successes: list[tuple[str, str, str]] = []
        rules: dict[str, dict[str, str]] = {}
        permissions: dict[str, str] = {}
        permission_sets: dict[str, str] = {}
        deletes: list[str] = []
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = set(archive.namelist())
            package = _members(archive.read("package.xml"))
            if "destructiveChanges.xml" in names:
                deletes = _members(archive.read("destructiveChanges.xml")).get("ValidationRule", [])
            for member in package.get("ValidationRule", []):
                obj, _, rule = member.partition(".")
                path = f"objects/{obj}.object"
                if path not in names:
                    failures.append((path, member, "ValidationRule", "No such file", None))
                    continue
                root = ET.fromstring(archive.read(path))
                found = {
                    fields.pop("fullName", ""): fields
                    for fields in (_children(e) for e in root if _local(e.tag) == "validationRules")
                }
                if rule not in found:
                    failures.append(
                        (path, member, "ValidationRule", "Not in the object file", None)
                    )
                    continue
                refused = self._refusals.get(member)
                if refused is not None:
                    failures.append((path, member, "ValidationRule", refused[0], refused[1]))
                    continue
                rules[rule] = {k: found[rule][k] for k in RULE_FIELDS if k in found[rule]}
                successes.append((path, member, "ValidationRule"))
            for kind, folder, suffix, store in (
                ("CustomPermission", "customPermissions", "customPermission", permissions),
                ("PermissionSet", "permissionsets", "permissionset", permission_sets),
            ):
                for member in package.get(kind, []):
                    path = f"{folder}/{member}.{suffix}"
                    if path not in names:
                        failures.append((path, member, kind, "No such file", None))
                        continue
                    store[member] = archive.read(path).decode()
                    successes.append((path, member, kind))
        for member in deletes:
            successes.append(("objects/Opportunity.object", member, "ValidationRule"))
        ok = not failures
        if ok and not check_only:
            for member in deletes:
                self.rules.pop(member.split(".", 1)[1], None)
            self.rules.update(rules)
            self.custom_permissions.update(permissions)
            self.permission_sets.update(permission_sets)
        details = "".join(
            "<componentFailures><changed>false</changed>"
            f"<componentType>{kind}</componentType><created>false</created>"
            f"<deleted>false</deleted><fileName>{escape(path)}</fileName>"
            f"<fullName>{escape(member)}</fullName>"
            + (f"<lineNumber>{line}</lineNumber><columnNumber>5</columnNumber>" if line else "")
            + f"<problem>{escape(problem)}</problem><problemType>Error</problemType>"
            "<success>false</success></componentFailures>"
            for path, member, kind, problem, line in failures
        ) + "".join(
            "<componentSuccesses><changed>true</changed>"
            f"<componentType>{kind}</componentType><created>false</created>"
            f"<deleted>{'true' if member in deletes else 'false'}</deleted>"
            f"<fileName>{escape(path)}</fileName><fullName>{escape(member)}</fullName>"
            "<success>true</success></componentSuccesses>"
            for path, member, kind in successes
        )
        total = len(failures) + len(successes)
        return (
            f"<checkOnly>{'true' if check_only else 'false'}</checkOnly>"
            "<completedDate>2026-11-24T09:00:05.000Z</completedDate>"
            "<createdDate>2026-11-24T09:00:00.000Z</createdDate>"
            f"<details>{details}</details>"
            f"<ignoreWarnings>false</ignoreWarnings>"
            f"<numberComponentErrors>{len(failures)}</numberComponentErrors>"
            f"<numberComponentsDeployed>{len(successes) if ok else 0}</numberComponentsDeployed>"
            f"<numberComponentsTotal>{total}</numberComponentsTotal>"
            "<numberTestErrors>0</numberTestErrors><numberTestsCompleted>0</numberTestsCompleted>"
            "<numberTestsTotal>0</numberTestsTotal>"
            f"<rollbackOnError>{options.get('rollbackOnError', 'true')}</rollbackOnError>"
            "<runTestsEnabled>false</runTestsEnabled>"
            f"<status>{'Succeeded' if ok else 'Failed'}</status>"
            f"<success>{'true' if ok else 'false'}</success>"
        )


def _envelope(body: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" '
        f'xmlns="{MD}" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        f"<soapenv:Body>{body}</soapenv:Body></soapenv:Envelope>"
    )


def _fault(code: str, message: str) -> str:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" '
        'xmlns:sf="http://soap.sforce.com/2006/04/metadata"><soapenv:Body><soapenv:Fault>'
        f"<faultcode>{code}</faultcode><faultstring>{escape(message)}</faultstring>"
        "</soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )
