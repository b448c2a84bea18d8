"""A small HubSpot REST client on :class:`requests.Session`: auth, budget, back-off, errors.

Every HubSpot failure is mapped onto the tsos-rules error types here and nowhere else:

* 401, 403, a ``DAILY`` rate limit: :class:`tsos_rules.FatalConnectorError` (fix the token, the
  private app's scopes, or wait for tomorrow's budget);
* 429 (``TEN_SECONDLY_ROLLING``, ``SECONDLY``), 5xx, network failures: retried with back-off a
  bounded number of times, then :class:`tsos_rules.RetriableConnectorError`;
* any other 4xx: :class:`HubSpotRequestError` (a ``FatalConnectorError`` carrying the status and
  HubSpot's ``category``), which the connector turns into a per-item ``FAILED`` when writing.

The token is sent in the ``Authorization`` header of each request and is never logged, never in
an error message and never in ``repr``.
"""

from __future__ import annotations

import collections
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import requests

from tsos_rules import FatalConnectorError, RetriableConnectorError
from tsos_rules_hubspot.settings import DEFAULT_BASE_URL

log = logging.getLogger("tsos_rules_hubspot")

#: HubSpot's burst window: the per-app limit counts requests in a rolling 10 seconds.
WINDOW_SECONDS = 10.0
#: The longest we wait on one 429 whatever ``Retry-After`` says.
MAX_WAIT_SECONDS = 60.0
#: Records per batch read that asks for ``propertiesWithHistory``: HubSpot refuses more than 50
#: ("The maximum number of inputs supported in a batch request for property histories is 50").
HISTORY_BATCH_LIMIT = 50

Json = dict[str, Any]


class HubSpotRequestError(FatalConnectorError):
    """HubSpot refused a request (a 4xx other than 401, 403 and 429)."""

    def __init__(self, message: str, *, status: int, category: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.category = category


class SlidingWindow:
    """At most ``limit`` events in any ``seconds``: :meth:`acquire` waits for a free slot."""

    def __init__(
        self,
        limit: int,
        seconds: float,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], None],
    ) -> None:
        self.limit = limit
        self.seconds = seconds
        self._clock = clock
        self._sleep = sleep
        self._times: collections.deque[float] = collections.deque()
        self.waited = 0.0

    def _drop_old(self, now: float) -> None:
        while self._times and self._times[0] <= now - self.seconds:
            self._times.popleft()

    def acquire(self) -> None:
        now = self._clock()
        self._drop_old(now)
        while len(self._times) >= self.limit:
            wait = self._times[0] + self.seconds - now
            if wait > 0:
                self.waited += wait
                self._sleep(wait)
            self._times.popleft()  # that slot has left the window by now
            now = max(self._clock(), now)
            self._drop_old(now)
        self._times.append(now)


class HubSpotClient:
    """HubSpot's CRM API over one session. Pass ``session`` to inject one (tests, proxies);
    ``sleep`` and ``clock`` replace :func:`time.sleep` and :func:`time.monotonic`."""

    def __init__(
        self,
        token: str,
        *,
        session: requests.Session | None = None,
        base_url: str = DEFAULT_BASE_URL,
        max_retries: int = 5,
        timeout: float = 30.0,
        requests_per_10s: int = 100,
        searches_per_second: int = 4,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not token:
            raise FatalConnectorError("HubSpot: no private-app token given")
        self.__token = token
        self._owns_session = session is None
        self.session = session if session is not None else requests.Session()
        self.base_url = base_url.rstrip("/")
        self.max_retries = max_retries
        self.timeout = timeout
        self._sleep = sleep
        self._window = SlidingWindow(requests_per_10s, WINDOW_SECONDS, clock=clock, sleep=sleep)
        self._search_window = SlidingWindow(searches_per_second, 1.0, clock=clock, sleep=sleep)
        #: HTTP requests sent (retries included), and how many were answered 429.
        self.calls = 0
        self.rate_limited = 0

    def __repr__(self) -> str:
        return f"HubSpotClient(base_url={self.base_url!r}, calls={self.calls})"

    def close(self) -> None:
        if self._owns_session:
            self.session.close()

    def _scrub(self, text: str) -> str:
        return text.replace(self.__token, "***") if self.__token in text else text

    # -- the one request path ----------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Any = None,
        allow: Sequence[int] = (),
    ) -> Json:
        """Send one request with back-off; return the JSON body (``{}`` when empty).

        ``allow`` lists 4xx statuses returned to the caller as ``{"status_code": N, ...body}``
        instead of raised (a 409 on create, a 404 on update).
        """
        what = f"{method} {path}"
        is_search = path.endswith("/search")
        headers = {
            "Authorization": f"Bearer {self.__token}",
            "Accept": "application/json",
        }
        for attempt in range(self.max_retries + 1):
            last = attempt == self.max_retries
            self._window.acquire()
            if is_search:
                self._search_window.acquire()
            started = time.perf_counter()
            try:
                response = self.session.request(
                    method,
                    self.base_url + path,
                    params=params,
                    json=body,
                    headers=headers,
                    timeout=self.timeout,
                )
            except (requests.ConnectionError, requests.Timeout) as exc:
                self.calls += 1
                reason = type(exc).__name__
                if last:
                    raise RetriableConnectorError(
                        f"HubSpot {what}: {reason} after {attempt + 1} attempts"
                    ) from None
                self._back_off(what, f"network error ({reason})", _exponential(attempt), attempt)
                continue
            self.calls += 1
            status = response.status_code
            log.debug("HubSpot %s -> %d (%.0f ms)", what, status, _ms_since(started))
            if status == 429:
                self.rate_limited += 1
                info = _body(response)
                policy = str(info.get("policyName") or "")
                if policy == "DAILY":
                    raise FatalConnectorError(
                        f"HubSpot {what}: the account's daily API limit is spent (policy DAILY); "
                        "the next run can go on after HubSpot's daily reset"
                    )
                if last:
                    raise RetriableConnectorError(
                        f"HubSpot {what}: still rate limited ({policy or 'no policy name'}) after "
                        f"{attempt + 1} attempts"
                    )
                self._back_off(
                    what, f"rate limited ({policy or '429'})", _wait_429(response, policy), attempt
                )
                continue
            if status >= 500:
                if last:
                    raise RetriableConnectorError(
                        f"HubSpot {what}: server error {status} after {attempt + 1} attempts"
                    )
                self._back_off(what, f"server error {status}", _exponential(attempt), attempt)
                continue
            self._respect_headers(response)
            if status in allow:
                return {"status_code": status, **_body(response)}
            if status == 401:
                raise FatalConnectorError(
                    f"HubSpot {what}: 401 unauthorized: the private-app token is missing, wrong "
                    "or revoked (check the variable named by connector.token)"
                )
            if status == 403:
                info = _body(response)
                raise FatalConnectorError(
                    f"HubSpot {what}: 403 forbidden: the private app lacks a scope "
                    f"({self._scrub(_message(info))})"
                )
            if status >= 400:
                info = _body(response)
                raise HubSpotRequestError(
                    f"HubSpot {what}: {status} {self._scrub(_message(info))}",
                    status=status,
                    category=str(info.get("category")) if info.get("category") else None,
                )
            return _body(response)
        raise AssertionError("unreachable")  # pragma: no cover

    def _back_off(self, what: str, why: str, delay: float, attempt: int) -> None:
        log.warning(
            "HubSpot %s: %s; waiting %.1f s (retry %d of %d)",
            what,
            why,
            delay,
            attempt + 1,
            self.max_retries,
        )
        self._sleep(delay)

    def _respect_headers(self, response: requests.Response) -> None:
        """When HubSpot says the window is used up, wait for it before the next request."""
        remaining = response.headers.get("X-HubSpot-RateLimit-Remaining")
        interval = response.headers.get("X-HubSpot-RateLimit-Interval-Milliseconds")
        if remaining is None or interval is None:
            return
        try:
            left, millis = int(remaining), int(interval)
        except ValueError:
            return
        if left <= 0:
            wait = min(millis / 1000.0, WINDOW_SECONDS)
            log.info("HubSpot rate-limit window used up; waiting %.1f s", wait)
            self._sleep(wait)

    # -- shapes of HubSpot's API ---------------------------------------------------------------

    def search(self, object_type: str, body: Mapping[str, Any]) -> Json:
        """One page of ``POST /crm/v3/objects/{type}/search``."""
        return self.request("POST", f"/crm/v3/objects/{object_type}/search", body=dict(body))

    def pages(self, path: str, params: Mapping[str, Any]) -> Iterator[Json]:
        """Every page of a GET listing, following ``paging.next.after``."""
        query = dict(params)
        while True:
            page = self.request("GET", path, params=query)
            yield page
            after = next_after(page)
            if after is None:
                return
            query["after"] = after

    def batch_read(
        self,
        object_type: str,
        ids: Sequence[str],
        properties: Sequence[str],
        *,
        history: Sequence[str] = (),
        batch_size: int = 100,
    ) -> dict[str, Json]:
        """``POST .../batch/read`` in chunks of at most 100, or 50 when ``history`` asks for
        ``propertiesWithHistory`` (HubSpot refuses more); records by id (missing ids absent)."""
        if history:
            batch_size = min(batch_size, HISTORY_BATCH_LIMIT)
        found: dict[str, Json] = {}
        for chunk in chunks(_unique(ids), batch_size):
            body: Json = {
                "inputs": [{"id": record_id} for record_id in chunk],
                "properties": list(properties),
            }
            if history:
                body["propertiesWithHistory"] = list(history)
            page = self.request("POST", f"/crm/v3/objects/{object_type}/batch/read", body=body)
            for record in page.get("results", []):
                found[str(record["id"])] = record
        return found

    def associations(
        self, from_type: str, to_type: str, ids: Sequence[str], *, batch_size: int = 100
    ) -> dict[str, list[Json]]:
        """Associations v4 ``batch/read``: for each id, its ``to`` entries (``toObjectId`` and
        ``associationTypes``). An id with none is simply absent."""
        out: dict[str, list[Json]] = {}
        for chunk in chunks(_unique(ids), batch_size):
            page = self.request(
                "POST",
                f"/crm/v4/associations/{from_type}/{to_type}/batch/read",
                body={"inputs": [{"id": record_id} for record_id in chunk]},
            )
            for result in page.get("results", []):
                from_id = str(result["from"]["id"])
                targets = out.setdefault(from_id, [])
                targets.extend(result.get("to", []))
                after = next_after(result)
                if after is not None:  # more than one page for this record
                    for more in self.pages(
                        f"/crm/v4/objects/{from_type}/{from_id}/associations/{to_type}",
                        {"limit": 500, "after": after},
                    ):
                        targets.extend(more.get("results", []))
        return out


def next_after(page: Mapping[str, Any]) -> str | None:
    paging = page.get("paging") or {}
    nxt = paging.get("next") or {}
    after = nxt.get("after")
    return str(after) if after not in (None, "") else None


def chunks(items: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def _unique(ids: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(str(i) for i in ids))


def _body(response: requests.Response) -> Json:
    if not response.content:
        return {}
    try:
        data = response.json()
    except ValueError:
        return {"message": response.text[:200]}
    return data if isinstance(data, dict) else {"results": data}


def _message(info: Mapping[str, Any]) -> str:
    message = str(info.get("message") or info.get("category") or "no message")
    return message if len(message) <= 300 else message[:297] + "..."


def _wait_429(response: requests.Response, policy: str) -> float:
    """How long to wait after a 429: ``Retry-After`` when given, else the policy's window."""
    header = response.headers.get("Retry-After")
    if header:
        try:
            seconds = float(header)
        except ValueError:
            seconds = -1.0
        if seconds >= 0:
            return min(seconds, MAX_WAIT_SECONDS)
    if policy.startswith("TEN_SECONDLY"):
        return WINDOW_SECONDS
    if policy == "SECONDLY":
        return 1.0
    return WINDOW_SECONDS


def _exponential(attempt: int) -> float:
    return float(min(2**attempt, 30))


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000.0
