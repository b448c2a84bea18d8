"""The few Metadata API SOAP calls the deploy needs: listMetadata, deploy, checkDeployStatus,
retrieve and checkRetrieveStatus, on the Salesforce connector's own session.

Why not simple-salesforce's ``deploy``/``checkDeployStatus``: it reads the zip from a path,
sends without a timeout, drops the line number and full name of a component failure, and has
no ``listMetadata`` outside its zeep-based ``mdapi``. Here each call goes to
``<instance>/services/Soap/m/<version>`` with a ``SessionHeader``, a timeout, one re-login on
``INVALID_SESSION_ID``, and every message redacted; polling stops at a deadline.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Callable, Iterable, Mapping
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

import attrs
import requests

from tsos_rules.connectors.salesforce.client import SalesforceClient
from tsos_rules.errors import FatalConnectorError, RetriableConnectorError

log = logging.getLogger("tsos_rules.connectors.salesforce")

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
MD = "http://soap.sforce.com/2006/04/metadata"


@attrs.frozen
class ComponentFailure:
    """One ``details/componentFailures`` entry of a DeployResult."""

    file_name: str
    full_name: str
    component_type: str
    problem: str
    problem_type: str
    line: int | None = None
    column: int | None = None

    def describe(self) -> str:
        where = self.file_name or "(no file)"
        if self.line is not None:
            where += f" line {self.line}" + (f":{self.column}" if self.column else "")
        what = f"{self.component_type} {self.full_name}".strip()
        return f"{where} ({what}): {self.problem_type or 'Error'}: {self.problem}"


@attrs.frozen
class DeployResult:
    """What ``checkDeployStatus(id, includeDetails=true)`` answers (the fields we use)."""

    id: str
    done: bool
    status: str
    success: bool
    check_only: bool
    failures: tuple[ComponentFailure, ...] = ()
    error_message: str | None = None
    error_status_code: str | None = None
    deployed: int = 0
    total: int = 0


@attrs.frozen
class DeployOptions:
    """The DeployOptions we send. ``testLevel`` is left out: the org's default runs no tests
    for a package without Apex."""

    check_only: bool = False
    rollback_on_error: bool = True
    single_package: bool = True
    ignore_warnings: bool = False

    def xml(self) -> str:
        fields = (
            ("checkOnly", self.check_only),
            ("ignoreWarnings", self.ignore_warnings),
            ("rollbackOnError", self.rollback_on_error),
            ("singlePackage", self.single_package),
        )
        return "".join(f"<met:{k}>{'true' if v else 'false'}</met:{k}>" for k, v in fields)


def _q(tag: str) -> str:
    return f"{{{MD}}}{tag}"


def _text(element: ET.Element, tag: str) -> str | None:
    found = element.find(_q(tag))
    return None if found is None else (found.text or "")


def _flag(element: ET.Element, tag: str) -> bool:
    return (_text(element, tag) or "").strip().lower() == "true"


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


class MetadataApi:
    """Metadata API calls for one connector's client (its login, timeout and redactor)."""

    def __init__(
        self,
        client: SalesforceClient,
        *,
        poll_seconds: float = 2.0,
        timeout_seconds: float = 600.0,
    ) -> None:
        self.client = client
        self.poll_seconds = poll_seconds
        self.timeout_seconds = timeout_seconds
        self.sleep: Callable[[float], None] = client.sleep
        self.monotonic: Callable[[], float] = client.monotonic

    @property
    def url(self) -> str:
        return f"{self.client.session.instance_url}/services/Soap/m/{self.client.api_version}"

    # -- transport ---------------------------------------------------------------------------

    def call(self, operation: str, body: str) -> ET.Element:
        """POST one SOAP operation; the ``<result>`` parent (``<operationResponse>``)."""
        relogged = False
        while True:
            token = self.client.session.access_token
            envelope = (
                '<?xml version="1.0" encoding="UTF-8"?>'
                f'<soapenv:Envelope xmlns:soapenv="{SOAP_ENV}" xmlns:met="{MD}">'
                "<soapenv:Header><met:SessionHeader>"
                f"<met:sessionId>{escape(token)}</met:sessionId>"
                "</met:SessionHeader></soapenv:Header>"
                f"<soapenv:Body><met:{operation}>{body}</met:{operation}></soapenv:Body>"
                "</soapenv:Envelope>"
            )
            what = f"Metadata API {operation}"
            try:
                response = self.client.http.post(
                    self.url,
                    data=envelope.encode("utf-8"),
                    headers={"Content-Type": "text/xml; charset=UTF-8", "SOAPAction": operation},
                    timeout=self.client.timeout,
                )
            except requests.RequestException as exc:
                raise RetriableConnectorError(
                    self.client.redact(f"Salesforce {what}: {type(exc).__name__}")
                ) from None
            self.client.calls["metadata"] += 1
            try:
                root = ET.fromstring(response.content)
            except ET.ParseError:
                raise FatalConnectorError(
                    f"Salesforce {what}: HTTP {response.status_code}, the answer was not XML"
                ) from None
            fault = root.find(f".//{{{SOAP_ENV}}}Fault")
            if fault is not None:
                code = (fault.findtext("faultcode") or "").rsplit(":", 1)[-1]
                message = fault.findtext("faultstring") or ""
                if code == "INVALID_SESSION_ID" and not relogged and self.client.auth.can_refresh:
                    log.info("Salesforce session expired during %s; logging in again", what)
                    relogged = True
                    self.client.auth.login()
                    continue
                raise FatalConnectorError(
                    self.client.redact(f"Salesforce {what}: {code}: {message}")
                )
            answer = root.find(f".//{_q(operation + 'Response')}")
            if response.status_code >= 300 or answer is None:
                raise FatalConnectorError(
                    f"Salesforce {what}: HTTP {response.status_code}, no {operation}Response"
                )
            return answer

    def _wait(self, what: str, job_id: str, check: Callable[[], ET.Element]) -> ET.Element:
        deadline = self.monotonic() + self.timeout_seconds
        delay = self.poll_seconds
        while True:
            result = check()
            if _flag(result, "done"):
                return result
            if self.monotonic() + delay > deadline:
                raise RetriableConnectorError(
                    f"Salesforce {what} {job_id}: not done after {self.timeout_seconds:.0f} s "
                    f"(status {_text(result, 'status') or '?'}); it may still finish in the org: "
                    "see Setup > Deployment Status, or raise --timeout"
                )
            self.sleep(delay)
            delay = min(delay * 1.5, 15.0)

    # -- calls --------------------------------------------------------------------------------

    def list_metadata(self, metadata_type: str) -> list[str]:
        """``listMetadata``: the full names of every component of one type."""
        body = (
            f"<met:queries><met:type>{metadata_type}</met:type></met:queries>"
            f"<met:asOfVersion>{self.client.api_version}</met:asOfVersion>"
        )
        answer = self.call("listMetadata", body)
        return sorted(
            name for result in answer.findall(_q("result")) if (name := _text(result, "fullName"))
        )

    def _run(self, operation: str, body: str, check_operation: str, check_flag: str) -> ET.Element:
        """Start an asynchronous ``operation`` and poll ``check_operation`` (with
        ``check_flag``) until its result is done, or the timeout."""
        started = self.call(operation, body).find(_q("result"))
        job_id = (_text(started, "id") if started is not None else None) or ""
        if not job_id:
            raise FatalConnectorError(f"Salesforce Metadata API {operation}: no AsyncResult id")

        def check() -> ET.Element:
            answer = self.call(
                check_operation,
                f"<met:asyncProcessId>{escape(job_id)}</met:asyncProcessId>{check_flag}",
            )
            result = answer.find(_q("result"))
            if result is None:
                raise FatalConnectorError(f"Salesforce {check_operation}: no result")
            return result

        return self._wait(operation, job_id, check)

    def deploy(self, zipped: bytes, options: DeployOptions) -> DeployResult:
        """``deploy`` then ``checkDeployStatus`` until done (or the timeout)."""
        encoded = base64.b64encode(zipped).decode("ascii")
        body = (
            f"<met:ZipFile>{encoded}</met:ZipFile>"
            f"<met:DeployOptions>{options.xml()}</met:DeployOptions>"
        )
        return deploy_result(
            self._run(
                "deploy", body, "checkDeployStatus", "<met:includeDetails>true</met:includeDetails>"
            )
        )

    def retrieve(self, types: Mapping[str, Iterable[str]]) -> bytes:
        """``retrieve`` (unpackaged, singlePackage) then ``checkRetrieveStatus`` until done;
        the zip's bytes."""
        version = self.client.api_version
        listed = "".join(
            "<met:types>"
            + "".join(f"<met:members>{escape(m)}</met:members>" for m in members)
            + f"<met:name>{name}</met:name></met:types>"
            for name, members in sorted(types.items())
        )
        body = (
            f"<met:retrieveRequest><met:apiVersion>{version}</met:apiVersion>"
            "<met:singlePackage>true</met:singlePackage>"
            f"<met:unpackaged>{listed}<met:version>{version}</met:version></met:unpackaged>"
            "</met:retrieveRequest>"
        )
        result = self._run(
            "retrieve", body, "checkRetrieveStatus", "<met:includeZip>true</met:includeZip>"
        )
        if _text(result, "status") != "Succeeded":
            problems = "; ".join(
                f"{_text(m, 'fileName')}: {_text(m, 'problem')}"
                for m in result.findall(_q("messages"))
            )
            reason = _text(result, "errorMessage") or problems or "no reason given"
            status = f"{_text(result, 'id')}: {_text(result, 'status')}"
            raise FatalConnectorError(self.client.redact(f"Salesforce retrieve {status}: {reason}"))
        try:
            return base64.b64decode(_text(result, "zipFile") or "", validate=True)
        except ValueError:
            raise FatalConnectorError("Salesforce retrieve: zipFile is not base64") from None


def deploy_result(result: ET.Element) -> DeployResult:
    """A DeployResult element as a record."""
    failures = []
    details = result.find(_q("details"))
    for item in details.findall(_q("componentFailures")) if details is not None else ():
        failures.append(
            ComponentFailure(
                file_name=_text(item, "fileName") or "",
                full_name=_text(item, "fullName") or "",
                component_type=_text(item, "componentType") or "",
                problem=_text(item, "problem") or "",
                problem_type=_text(item, "problemType") or "",
                line=_int(_text(item, "lineNumber")),
                column=_int(_text(item, "columnNumber")),
            )
        )
    return DeployResult(
        id=_text(result, "id") or "",
        done=_flag(result, "done"),
        status=_text(result, "status") or "",
        success=_flag(result, "success"),
        check_only=_flag(result, "checkOnly"),
        failures=tuple(failures),
        error_message=_text(result, "errorMessage"),
        error_status_code=_text(result, "errorStatusCode"),
        deployed=_int(_text(result, "numberComponentsDeployed")) or 0,
        total=_int(_text(result, "numberComponentsTotal")) or 0,
    )
