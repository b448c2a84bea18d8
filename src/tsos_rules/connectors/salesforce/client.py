"""The one HTTP path to Salesforce: budget, bounded retries, bounded re-authentication, paging.

Every call goes through :meth:`SalesforceClient.request`, which

* checks the API budget *before* the call (``Sforce-Limit-Info`` read from every answer) and
  raises FatalConnectorError rather than go over the configured share of the daily limit;
* retries 5xx, ``UNABLE_TO_LOCK_ROW``, ``REQUEST_LIMIT_EXCEEDED`` and timeouts a bounded number
  of times with exponential backoff (honouring ``Retry-After``);
* logs in again at most once per request (and a few times per run) when the session expired,
  rebuilding the request's own headers, so an ``If-Unmodified-Since`` condition is re-sent
  (simple-salesforce's retry drops it, and loops without bound on a dead session).

:meth:`query` pages through ``nextRecordsUrl`` like ``query_all_iter`` and switches to a Bulk
API 2.0 job when the first page says the result is larger than ``bulk_threshold``.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import math
import random
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import attrs
import requests

from tsos_rules.connectors.salesforce.auth import Authenticator, Session, parse_http_date
from tsos_rules.connectors.salesforce.faults import (
    Fault,
    FaultKind,
    Redactor,
    TransientLoginError,
    classify_exception,
    classify_response,
)
from tsos_rules.connectors.salesforce.settings import BudgetSettings, ReadSettings, RetrySettings
from tsos_rules.errors import FatalConnectorError, RetriableConnectorError

log = logging.getLogger("tsos_rules.connectors.salesforce")

_LIMIT = re.compile(r"api-usage=(\d+)/(\d+)")
_FROM = re.compile(r"\bFROM\s+([A-Za-z0-9_]+)", re.IGNORECASE)
_ORDER_BY = re.compile(r"\s+ORDER\s+BY\s+[^()]*$", re.IGNORECASE)

#: REST query pages hold up to 2,000 rows (fewer only with child subqueries, which we avoid).
PAGE_SIZE = 2000


class Budget:
    """The org's daily API allowance as ``Sforce-Limit-Info`` reports it, and this run's share."""

    def __init__(self, settings: BudgetSettings) -> None:
        self.settings = settings
        self.used: int | None = None
        self.limit: int | None = None
        self.run_calls = 0

    def observe(self, header: str | None) -> None:
        """Record the usage an answer reports (it includes the call that was just made)."""
        if not header:
            return
        match = _LIMIT.search(header)
        if match:
            self.used, self.limit = int(match.group(1)), int(match.group(2))

    def counted(self) -> None:
        """One more call made by this run (usage is advanced until the next header says)."""
        self.run_calls += 1
        if self.used is not None:
            self.used += 1

    @property
    def run_allowance(self) -> int | None:
        if self.limit is None:
            return None
        return math.floor(self.settings.max_run_share * self.limit)

    def check(self, calls: int, what: str) -> None:
        """Raise FatalConnectorError when ``calls`` more would exceed the run's or org's budget."""
        limit = self.limit
        if limit is None:
            return  # nothing known before the first answer; that first call is allowed
        allowance = self.run_allowance or 0
        share = self.settings.max_run_share
        if self.run_calls + calls > allowance:
            raise FatalConnectorError(
                f"Salesforce API budget: {what} needs {calls} more call(s) but this run has "
                f"used {self.run_calls} of its {allowance} (max_run_share = {share:.0%} of the "
                f"org's daily limit of {limit}); stopped before going over. Raise "
                "[connector.budget] max_run_share or run again later."
            )
        reserve = math.floor(self.settings.min_remaining_share * limit)
        if self.used is not None and self.used + calls > limit - reserve:
            raise FatalConnectorError(
                f"Salesforce API budget: the org has used {self.used} of its {limit} daily API "
                f"requests and {what} needs {calls} more; tsos-rules leaves "
                f"{self.settings.min_remaining_share:.0%} ({reserve}) for other integrations "
                "([connector.budget] min_remaining_share). Run again when the 24-hour window "
                "has room."
            )


@attrs.define
class QueryStat:
    """How one logical query was served: rows, REST pages or a Bulk job, HTTP calls used."""

    label: str
    sobject: str
    rows: int = 0
    pages: int = 0
    bulk: bool = False
    calls: int = 0
    total_size: int = 0


class SalesforceClient:
    """Authenticated, budgeted, retrying access to one org's REST and Bulk 2.0 APIs."""

    def __init__(
        self,
        auth: Authenticator,
        *,
        session: requests.Session,
        api_version: str,
        timeout: float,
        retry: RetrySettings,
        budget: BudgetSettings,
        read: ReadSettings,
        redact: Redactor,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC),
    ) -> None:
        self.auth = auth
        self.http = session
        self.api_version = api_version
        self.timeout = timeout
        self.retry = retry
        self.read_settings = read
        self.redact = redact
        self.budget = Budget(budget)
        self.sleep = sleep
        self.monotonic = monotonic
        self.calls: Counter[str] = Counter()
        self.reauths = 0
        self.retries = 0
        self.query_stats: list[QueryStat] = []
        self.now = now
        #: Salesforce's clock minus ours, from the last answer's ``Date`` header.
        self.skew: dt.timedelta | None = None

    # -- session -----------------------------------------------------------------------------

    @property
    def session(self) -> Session:
        if self.auth.current is None:
            self._login()
        assert self.auth.current is not None
        return self.auth.current

    def _login(self) -> None:
        """Log in, retrying a rate-limited or briefly unavailable login like any other call."""
        attempt = 0
        while True:
            self.calls["auth"] += 1
            try:
                session = self.auth.login()
                break
            except TransientLoginError as exc:
                if attempt >= self.retry.max_retries:
                    raise exc.fault.error(
                        f"{self.auth.flow} login", self.redact, attempts=attempt + 1
                    ) from None
                delay = self.backoff(attempt, exc.fault.retry_after)
                attempt += 1
                self.retries += 1
                log.warning(
                    "Salesforce login: %s; retry %d of %d in %.1f s",
                    exc,
                    attempt,
                    self.retry.max_retries,
                    delay,
                )
                self.sleep(delay)
        if session.server_time is not None:
            self.skew = session.server_time - self.now()

    @property
    def base(self) -> str:
        return f"{self.session.instance_url}/services/data/v{self.api_version}"

    def url(self, path: str) -> str:
        if path.startswith("https://") or path.startswith("http://"):
            return path
        if path.startswith("/services/"):
            return self.session.instance_url + path
        return f"{self.base}/{path.lstrip('/')}"

    def server_now(self) -> dt.datetime | None:
        """Salesforce's clock now, as far as the last answer told (None before any answer)."""
        if self.skew is None:
            return None
        return self.now() + self.skew

    def integration_user_id(self) -> str | None:
        return self.session.user_id

    # -- the one request path ----------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        kind: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> requests.Response:
        """Send one API call, with budget, retries and at most one re-login; raise on failure."""
        attempt = 0
        reauthed = False
        while True:
            self.budget.check(1, what)
            session = self.session
            sent_headers = {
                "Authorization": f"Bearer {session.access_token}",
                "Accept": "application/json",
                **dict(headers or {}),
            }
            fault: Fault
            self.calls[kind] += 1
            self.budget.counted()
            try:
                response = self.http.request(
                    method,
                    self.url(path),
                    params=params,
                    json=json_body,
                    headers=sent_headers,
                    timeout=self.timeout,
                )
            except requests.RequestException as exc:
                fault = classify_exception(exc)
            else:
                self.budget.observe(response.headers.get("Sforce-Limit-Info"))
                server_time = parse_http_date(response.headers.get("Date"))
                if server_time is not None:
                    self.skew = server_time - self.now()
                if response.status_code < 300:
                    return response
                fault = classify_response(response)
            if fault.kind is FaultKind.REAUTH:
                if reauthed or not self.auth.can_refresh:
                    why = (
                        "the session was refused again right after logging in"
                        if reauthed
                        else "the session id expired and flow = 'session' cannot renew it"
                    )
                    raise FatalConnectorError(
                        self.redact(f"Salesforce {what}: {why} ({fault.code}: {fault.message})")
                    )
                if self.reauths >= self.retry.max_reauth_per_run:
                    raise FatalConnectorError(
                        self.redact(
                            f"Salesforce {what}: the session expired {self.reauths + 1} times in "
                            f"this run (max_reauth_per_run = {self.retry.max_reauth_per_run})"
                        )
                    )
                log.info("Salesforce session expired during %s; logging in again", what)
                self.reauths += 1
                reauthed = True
                self._login()
                continue
            if fault.kind is FaultKind.RETRY and attempt < self.retry.max_retries:
                delay = self.backoff(attempt, fault.retry_after)
                attempt += 1
                self.retries += 1
                log.warning(
                    "Salesforce %s: %s%s; retry %d of %d in %.1f s",
                    what,
                    f"HTTP {fault.status} " if fault.status else "",
                    fault.code,
                    attempt,
                    self.retry.max_retries,
                    delay,
                )
                self.sleep(delay)
                continue
            raise fault.error(what, self.redact, attempts=attempt + 1)

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        """Exponential backoff with jitter, at least ``Retry-After``, at most the configured cap."""
        base = self.retry.backoff_seconds * (2**attempt)
        delay = base * random.uniform(0.5, 1.0)
        if retry_after is not None:
            delay = max(delay, retry_after)
        return float(min(delay, self.retry.max_backoff_seconds))

    # -- queries -------------------------------------------------------------------------------

    def query(self, soql: str, *, label: str, all_rows: bool = False) -> Iterator[dict[str, Any]]:
        """Every row of a SOQL query: REST pages through ``nextRecordsUrl``, or a Bulk 2.0 job
        when the first page reports more than ``bulk_threshold`` rows."""
        match = _FROM.search(soql)
        stat = QueryStat(label, match.group(1) if match else "?")
        self.query_stats.append(stat)
        endpoint = "queryAll" if all_rows else "query"
        what = f"{endpoint} {label}"
        headers = {"Sforce-Query-Options": f"batchSize={PAGE_SIZE}"}
        response = self.request(
            "GET", endpoint, what=what, kind="query", params={"q": soql}, headers=headers
        )
        stat.calls += 1
        body = _json(response, what)
        stat.total_size = int(body.get("totalSize") or 0)
        threshold = self.read_settings.bulk_threshold
        if threshold and stat.total_size > threshold and not body.get("done", True):
            log.info(
                "%s: %d rows is above bulk_threshold (%d): using Bulk API 2.0",
                label,
                stat.total_size,
                threshold,
            )
            stat.bulk = True
            yield from self._bulk(soql, stat, all_rows)
            return
        while True:
            records = body.get("records") or []
            stat.pages += 1
            stat.rows += len(records)
            yield from records
            next_url = body.get("nextRecordsUrl")
            if body.get("done", True) or not next_url:
                return
            response = self.request("GET", next_url, what=what, kind="query", headers=headers)
            stat.calls += 1
            body = _json(response, what)

    def _bulk(self, soql: str, stat: QueryStat, all_rows: bool) -> Iterator[dict[str, Any]]:
        """Run ``soql`` as a Bulk API 2.0 query job and yield its CSV rows as nested dicts."""
        settings = self.read_settings
        # ORDER BY turns off PK chunking in Bulk 2.0; callers sort what they need themselves.
        bulk_soql = _ORDER_BY.sub("", soql)
        what = f"Bulk API 2.0 {stat.label}"
        created = self.request(
            "POST",
            "jobs/query",
            what=what,
            kind="bulk",
            json_body={
                "operation": "queryAll" if all_rows else "query",
                "query": bulk_soql,
                "contentType": "CSV",
                "columnDelimiter": "COMMA",
                "lineEnding": "LF",
            },
        )
        stat.calls += 1
        job_id = str(_json(created, what).get("id") or "")
        if not job_id:
            raise FatalConnectorError(f"Salesforce {what}: the job was not created (no id)")
        deadline = self.monotonic() + settings.bulk_timeout_seconds
        delay = settings.bulk_poll_seconds
        while True:
            status = self.request("GET", f"jobs/query/{job_id}", what=what, kind="bulk")
            stat.calls += 1
            info = _json(status, what)
            state = info.get("state")
            if state == "JobComplete":
                break
            if state in ("Failed", "Aborted"):
                reason = info.get("errorMessage") or "no reason given"
                raise FatalConnectorError(
                    self.redact(f"Salesforce {what}: job {job_id} {state.lower()}: {reason}")
                )
            if self.monotonic() + delay > deadline:
                raise RetriableConnectorError(
                    f"Salesforce {what}: job {job_id} still {state} after "
                    f"{settings.bulk_timeout_seconds:.0f} s (bulk_timeout_seconds)"
                )
            self.sleep(delay)
            delay = min(delay * 1.5, 30.0)
        locator: str | None = None
        while True:
            params: dict[str, Any] = {"maxRecords": settings.bulk_max_records}
            if locator:
                params["locator"] = locator
            page = self.request(
                "GET",
                f"jobs/query/{job_id}/results",
                what=what,
                kind="bulk",
                params=params,
                headers={"Accept": "text/csv"},
            )
            stat.calls += 1
            stat.pages += 1
            for row in csv_rows(page.text, stat.sobject):
                stat.rows += 1
                yield row
            locator = page.headers.get("Sforce-Locator")
            if not locator or locator == "null":
                return


def _json(response: requests.Response, what: str) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        raise FatalConnectorError(f"Salesforce {what}: the answer was not JSON") from None
    if not isinstance(body, dict):
        raise FatalConnectorError(f"Salesforce {what}: unexpected answer shape")
    return body


def csv_rows(text: str, sobject: str) -> Iterator[dict[str, Any]]:
    """Bulk 2.0 CSV rows as REST-shaped dicts: ``Account.Name`` -> ``{"Account": {"Name"}}``,
    empty cells as None, and an ``attributes`` map naming the object."""
    reader = csv.reader(io.StringIO(text))
    try:
        header = next(reader)
    except StopIteration:
        return
    paths = [column.split(".") for column in header]
    for cells in reader:
        if not cells:
            continue
        row: dict[str, Any] = {"attributes": {"type": sobject}}
        for path, cell in zip(paths, cells, strict=False):
            value = cell if cell != "" else None
            target = row
            for part in path[:-1]:
                child = target.get(part)
                if not isinstance(child, dict):
                    child = {}
                    target[part] = child
                target = child
            target[path[-1]] = value
        for key, value in list(row.items()):
            if key != "attributes" and isinstance(value, dict) and _all_empty(value):
                row[key] = None
        yield row


def _all_empty(value: Mapping[str, Any]) -> bool:
    return all(v is None or (isinstance(v, dict) and _all_empty(v)) for v in value.values())
