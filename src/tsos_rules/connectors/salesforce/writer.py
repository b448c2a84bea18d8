"""Write-back: finding tasks upserted on their fingerprint, repairs as conditional updates.

* Tasks (or the configured custom object) go through sObject Collections upsert on the
  external-id field that holds the finding's fingerprint, 200 per call: a re-run after a crash
  updates the same record (``created: false`` -> ALREADY_DONE) instead of adding a second one.
* Repairs go through Composite, 25 subrequests per call, each a PATCH carrying
  ``If-Unmodified-Since`` = the ``LastModifiedDate`` that was read: a record changed since then
  answers 412 and the action is reported STALE, never overwritten. Salesforce documents that
  header only loosely (ETags for Account rows alone), so the writer does not rely on it: right
  before sending, it reads each record's ``LastModifiedDate`` again and sends no repair of a
  record changed since the judged read.
* Items that fail with ``UNABLE_TO_LOCK_ROW`` are retried (bounded); any other per-item error
  is that item's FAILED result. Budget for the whole plan is checked before the first write.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from tsos_rules.connectors.base import Action, ActionKind, ActionResult, ActionStatus
from tsos_rules.connectors.salesforce.auth import http_date
from tsos_rules.connectors.salesforce.client import SalesforceClient
from tsos_rules.connectors.salesforce.faults import (
    FaultKind,
    error_entries,
    item_fault,
)
from tsos_rules.connectors.salesforce.mapping import SALESFORCE_ID, FieldMapping, parse_datetime
from tsos_rules.connectors.salesforce.settings import WriteSettings
from tsos_rules.errors import FatalConnectorError, RetriableConnectorError

log = logging.getLogger("tsos_rules.connectors.salesforce")

COLLECTION_SIZE = 200
COMPOSITE_SIZE = 25
#: Ids or fingerprints per lookup query (keeps the query URL well under its length limit).
LOOKUP_SIZE = 300

_FINGERPRINT = re.compile(r"^[0-9a-f]{32}$")

#: Doctrine record types that repairs may change, and their Salesforce objects.
SOBJECTS = {"opportunity": "Opportunity", "lead": "Lead", "account": "Account"}


def _result(
    action: Action, status: ActionStatus, crm_id: str | None = None, error: str | None = None
) -> ActionResult:
    return ActionResult(action.fingerprint, action.kind, status, crm_id, error)


class Writer:
    """Carries out an action plan with per-item results, in the fewest calls the API allows."""

    def __init__(
        self,
        client: SalesforceClient,
        mapping: FieldMapping,
        settings: WriteSettings,
        *,
        today: Callable[[], dt.date],
        activity_what: Callable[[], Mapping[str, str]],
    ) -> None:
        self.client = client
        self.mapping = mapping
        self.settings = settings
        self.today = today
        self.activity_what = activity_what

    def write(self, actions: Sequence[Action]) -> list[ActionResult]:
        results: list[ActionResult | None] = [None] * len(actions)
        upserts: list[tuple[int, dict[str, Any]]] = []
        closes: list[int] = []
        repairs: list[tuple[int, dict[str, Any]]] = []
        for index, action in enumerate(actions):
            try:
                if not _FINGERPRINT.match(action.fingerprint):
                    raise ValueError(f"fingerprint {action.fingerprint!r} is not 32 hex characters")
                if action.kind is ActionKind.CREATE_TASK:
                    upserts.append((index, self._task(action)))
                elif action.kind is ActionKind.CLOSE_TASK:
                    if not self.settings.status_field:
                        raise ValueError("write.status_field is off: tasks cannot be closed")
                    closes.append(index)
                elif action.kind is ActionKind.UPDATE_FIELDS:
                    repairs.append((index, self._repair(action)))
                else:  # pragma: no cover - a new kind the job learnt before this connector
                    raise ValueError(f"action kind {action.kind} is not supported")
            except (ValueError, KeyError) as exc:
                message = exc.args[0] if exc.args else str(exc)
                results[index] = _result(action, ActionStatus.FAILED, error=str(message))
        groups = _group_repairs(repairs)
        with_id = sum(1 for i in closes if _known_id(actions[i]))
        repaired = _records_by_object(actions, groups)
        planned = (
            math.ceil(len(upserts) / COLLECTION_SIZE)
            + math.ceil(with_id / LOOKUP_SIZE)
            + math.ceil((len(closes) - with_id) / LOOKUP_SIZE)
            + math.ceil(len(closes) / COLLECTION_SIZE)
            + sum(math.ceil(len(ids) / LOOKUP_SIZE) for ids in repaired.values())
            + math.ceil(len(groups) / COMPOSITE_SIZE)
        )
        if planned:
            self.client.budget.check(planned, f"writing {len(actions)} action(s)")
        obj, key = self.settings.object, self.settings.external_id_field
        self._collections(
            actions, results, upserts, "PATCH", f"composite/sobjects/{obj}/{key}", "upsert"
        )
        updates = self._open_tasks(actions, results, closes)
        self._collections(actions, results, updates, "PATCH", "composite/sobjects", "update")
        current = self._last_modified(repaired)
        self._composite(actions, results, self._still_current(actions, results, groups, current))
        done = [r for r in results if r is not None]
        assert len(done) == len(actions)
        counts: dict[str, int] = {}
        for result in done:
            counts[result.status.value] = counts.get(result.status.value, 0) + 1
        log.info(
            "wrote %d action(s): %s",
            len(done),
            ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "none",
        )
        return done

    # -- payloads ----------------------------------------------------------------------------

    def _base(self, action: Action, *, status: str | None) -> dict[str, Any]:
        settings = self.settings
        record: dict[str, Any] = {
            "attributes": {"type": settings.object},
            settings.external_id_field: action.fingerprint,
        }
        if status is not None and settings.status_field:
            record[settings.status_field] = status
        return record

    def _task(self, action: Action) -> dict[str, Any]:
        settings = self.settings
        record = self._base(action, status=settings.open_status)
        subject = (
            action.subject
            or f"{action.rule or 'finding'} on {action.record_type} {action.record_id}"
        )
        record[settings.subject_field] = (settings.subject_prefix + subject)[:255]
        if settings.description_field:
            lines = [action.description] if action.description else []
            lines.append(f"Rule: {action.rule}" if action.rule else "")
            lines.append(f"Record: {action.record_type} {action.record_id}")
            lines.append(f"Finding: {action.fingerprint}")
            record[settings.description_field] = "\n".join(line for line in lines if line)[:32000]
        owner = action.owner_id
        if (
            settings.owner_field
            and owner
            and SALESFORCE_ID.match(owner)
            and not owner.startswith("00G")
        ):
            # A queue (00G...) cannot own a task: the task then stays with the integration user.
            record[settings.owner_field] = owner
        if settings.rule_field and action.rule:
            record[settings.rule_field] = action.rule
        if settings.due_date_field and settings.object == "Task":
            due = self.today() + dt.timedelta(days=settings.due_days)
            record[settings.due_date_field] = due.isoformat()
        record.update(self._link(action))
        return record

    def _link(self, action: Action) -> dict[str, Any]:
        """Attach the task to what the finding is about: WhoId for leads, WhatId otherwise."""
        settings = self.settings
        target = action.record_id
        if settings.object != "Task":
            return {settings.record_field: target} if settings.record_field else {}
        if action.record_type == "lead":
            return {"WhoId": target} if SALESFORCE_ID.match(target) else {}
        if action.record_type == "activity":
            what = self.activity_what().get(target)
            return {"WhatId": what} if what else {}
        return {"WhatId": target} if SALESFORCE_ID.match(target) else {}

    def _open_tasks(
        self,
        actions: Sequence[Action],
        results: list[ActionResult | None],
        closes: list[int],
    ) -> list[tuple[int, dict[str, Any]]]:
        """Look the tasks to close up (by id, else by fingerprint); a task already closed or
        gone is ALREADY_DONE, the open ones become Collections updates."""
        if not closes:
            return []
        settings = self.settings
        ext, status_field = settings.external_id_field, settings.status_field or ""
        fields = ["Id", ext, status_field] + (["IsClosed"] if settings.object == "Task" else [])
        select = ", ".join(dict.fromkeys(fields))
        by_id: dict[str, dict[str, Any]] = {}
        by_key: dict[str, dict[str, Any]] = {}
        ids = sorted({crm_id for i in closes if (crm_id := _known_id(actions[i]))})
        keys = sorted({actions[i].fingerprint for i in closes if not _known_id(actions[i])})
        for column, values, into in (("Id", ids, by_id), (ext, keys, by_key)):
            for offset in range(0, len(values), LOOKUP_SIZE):
                chunk = ", ".join(f"'{v}'" for v in values[offset : offset + LOOKUP_SIZE])
                soql = f"SELECT {select} FROM {settings.object} WHERE {column} IN ({chunk})"
                for found in self.client.query(soql, label=f"tasks to close ({column})"):
                    into[str(found.get(column))] = found
        updates: list[tuple[int, dict[str, Any]]] = []
        for index in closes:
            action = actions[index]
            known = _known_id(action)
            row = by_id.get(known) if known else by_key.get(action.fingerprint)
            if row is None:
                results[index] = _result(
                    action,
                    ActionStatus.ALREADY_DONE,
                    action.crm_id,
                    "no such task: nothing to close",
                )
                continue
            crm_id = str(row.get("Id"))
            if row.get("IsClosed") is True or row.get(status_field) == settings.closed_status:
                results[index] = _result(action, ActionStatus.ALREADY_DONE, crm_id)
                continue
            updates.append(
                (
                    index,
                    {
                        "attributes": {"type": settings.object},
                        "id": crm_id,
                        status_field: settings.closed_status,
                    },
                )
            )
        return updates

    def _repair(self, action: Action) -> dict[str, Any]:
        sobject = SOBJECTS.get(action.record_type)
        if sobject is None:
            raise ValueError(f"repairs of {action.record_type} records are not supported")
        if not SALESFORCE_ID.match(action.record_id):
            raise ValueError(f"{action.record_id!r} is not a Salesforce id")
        if not action.expected_version:
            raise ValueError(
                "no expected_version (the LastModifiedDate read): refusing an unconditional repair"
            )
        try:
            version = parse_datetime(action.expected_version)
        except ValueError:
            raise ValueError(
                f"expected_version {action.expected_version!r} is not a Salesforce timestamp"
            ) from None
        if not action.changes:
            raise ValueError("a repair with no changes")
        body = self.mapping.to_salesforce(action.record_type, action.changes)
        version_path = f"/services/data/v{self.client.api_version}"
        return {
            "method": "PATCH",
            "url": f"{version_path}/sobjects/{sobject}/{action.record_id}",
            "body": body,
            "httpHeaders": {"If-Unmodified-Since": http_date(version)},
        }

    # -- the staleness guard ------------------------------------------------------------------

    def _last_modified(self, repaired: Mapping[str, list[str]]) -> dict[str, dt.datetime]:
        """Each record's ``LastModifiedDate`` now, read right before its repair is sent."""
        current: dict[str, dt.datetime] = {}
        for sobject, ids in repaired.items():
            for offset in range(0, len(ids), LOOKUP_SIZE):
                chunk = ", ".join(f"'{v}'" for v in ids[offset : offset + LOOKUP_SIZE])
                soql = f"SELECT Id, LastModifiedDate FROM {sobject} WHERE Id IN ({chunk})"
                for row in self.client.query(soql, label=f"{sobject} versions before repair"):
                    stamp = row.get("LastModifiedDate")
                    if isinstance(stamp, str):
                        current[str(row.get("Id"))] = parse_datetime(stamp)
        return current

    def _still_current(
        self,
        actions: Sequence[Action],
        results: list[ActionResult | None],
        groups: list[tuple[list[int], dict[str, Any]]],
        current: Mapping[str, dt.datetime],
    ) -> list[tuple[list[int], dict[str, Any]]]:
        """Repairs of records changed since the judged read are STALE and never sent: this
        does not rely on Salesforce honouring ``If-Unmodified-Since`` for every object."""
        kept = []
        for members, sub in groups:
            action = actions[members[0]]
            now = current.get(action.record_id)
            version = parse_datetime(action.expected_version or "")
            if now is not None and now > version:
                for index in members:
                    results[index] = _result(
                        actions[index],
                        ActionStatus.STALE,
                        action.record_id,
                        error=(
                            f"changed since it was read ({action.expected_version}, now "
                            f"{now.isoformat()}); not overwritten"
                        ),
                    )
                continue
            kept.append((members, sub))
        return kept

    # -- calls -------------------------------------------------------------------------------

    def _collections(
        self,
        actions: Sequence[Action],
        results: list[ActionResult | None],
        items: list[tuple[int, dict[str, Any]]],
        method: str,
        path: str,
        verb: str,
    ) -> None:
        """sObject Collections in calls of 200; items locked by another save are sent again."""
        what = f"Collections {verb} {self.settings.object}"
        pending = items
        rounds = 0
        while pending:
            retry: list[tuple[int, dict[str, Any]]] = []
            for offset in range(0, len(pending), COLLECTION_SIZE):
                chunk = pending[offset : offset + COLLECTION_SIZE]
                body = {"allOrNone": False, "records": [record for _, record in chunk]}
                try:
                    response = self.client.request(
                        method, path, what=what, kind="collections", json_body=body
                    )
                except RetriableConnectorError as exc:
                    for index, _ in chunk:
                        results[index] = _result(
                            actions[index], ActionStatus.FAILED, error=str(exc)
                        )
                    continue
                answers = response.json()
                if not isinstance(answers, list) or len(answers) != len(chunk):
                    raise FatalConnectorError(
                        f"Salesforce {what}: expected {len(chunk)} results, got {answers!r:.200}"
                    )
                for (index, record), answer in zip(chunk, answers, strict=True):
                    outcome = self._collection_item(actions[index], answer, verb)
                    if outcome is None:
                        retry.append((index, record))
                    else:
                        results[index] = outcome
            rounds += 1
            if retry and rounds > self.client.retry.max_retries:
                for index, _ in retry:
                    results[index] = _result(
                        actions[index],
                        ActionStatus.FAILED,
                        error="UNABLE_TO_LOCK_ROW: the record stayed locked; retried next run",
                    )
                retry = []
            if retry:
                self.client.sleep(self.client.backoff(rounds - 1))
            pending = retry

    def _collection_item(self, action: Action, answer: Any, verb: str) -> ActionResult | None:
        """One Collections result; None when the item should be sent again (row lock)."""
        if not isinstance(answer, dict):
            return _result(action, ActionStatus.FAILED, error=f"unexpected result {answer!r:.100}")
        crm_id = answer.get("id") if isinstance(answer.get("id"), str) else None
        if answer.get("success"):
            if verb == "upsert":
                created = answer.get("created")
                status = ActionStatus.WRITTEN if created is not False else ActionStatus.ALREADY_DONE
                return _result(action, status, crm_id)
            return _result(action, ActionStatus.WRITTEN, crm_id or action.crm_id)
        entries = error_entries(answer.get("errors"))
        fault = item_fault(entries)
        if fault.kind is FaultKind.RETRY:
            return None
        if verb == "update" and fault.code in ("ENTITY_IS_DELETED", "INVALID_CROSS_REFERENCE_KEY"):
            # Deleted between the lookup and the update: there is nothing left to close.
            return _result(action, ActionStatus.ALREADY_DONE, action.crm_id, error=fault.code)
        return _result(action, ActionStatus.FAILED, crm_id, error=f"{fault.code}: {fault.message}")

    def _composite(
        self,
        actions: Sequence[Action],
        results: list[ActionResult | None],
        groups: list[tuple[list[int], dict[str, Any]]],
    ) -> None:
        """Conditional PATCHes through Composite, 25 per call, independent of each other; a
        group's result is the result of each of its actions."""
        what = "Composite repairs"
        pending = groups
        rounds = 0
        while pending:
            retry: list[tuple[list[int], dict[str, Any]]] = []
            for offset in range(0, len(pending), COMPOSITE_SIZE):
                chunk = pending[offset : offset + COMPOSITE_SIZE]
                requests_ = [{**sub, "referenceId": f"r{members[0]}"} for members, sub in chunk]
                body = {"allOrNone": False, "compositeRequest": requests_}
                try:
                    response = self.client.request(
                        "POST", "composite", what=what, kind="composite", json_body=body
                    )
                except RetriableConnectorError as exc:
                    for members, _ in chunk:
                        for index in members:
                            results[index] = _result(
                                actions[index], ActionStatus.FAILED, error=str(exc)
                            )
                    continue
                answers = response.json().get("compositeResponse") or []
                by_ref = {a.get("referenceId"): a for a in answers if isinstance(a, dict)}
                for members, sub in chunk:
                    answer = by_ref.get(f"r{members[0]}")
                    outcomes = [self._composite_item(actions[i], answer) for i in members]
                    if any(outcome is None for outcome in outcomes):
                        retry.append((members, sub))
                        continue
                    for index, outcome in zip(members, outcomes, strict=True):
                        results[index] = outcome
            rounds += 1
            if retry and rounds > self.client.retry.max_retries:
                for members, _ in retry:
                    for index in members:
                        results[index] = _result(
                            actions[index],
                            ActionStatus.FAILED,
                            error="UNABLE_TO_LOCK_ROW: the record stayed locked; retried next run",
                        )
                retry = []
            if retry:
                self.client.sleep(self.client.backoff(rounds - 1))
            pending = retry

    def _composite_item(
        self, action: Action, answer: Mapping[str, Any] | None
    ) -> ActionResult | None:
        if answer is None:
            return _result(action, ActionStatus.FAILED, error="no result for this subrequest")
        status = answer.get("httpStatusCode")
        code = int(status) if isinstance(status, int) else 0
        if 200 <= code < 300:
            return _result(action, ActionStatus.WRITTEN, action.record_id)
        fault = item_fault(error_entries(answer.get("body")), code)
        if fault.kind is FaultKind.STALE:
            return _result(
                action,
                ActionStatus.STALE,
                action.record_id,
                error=f"changed since it was read ({action.expected_version}); not overwritten",
            )
        if fault.kind is FaultKind.RETRY:
            return None
        return _result(
            action, ActionStatus.FAILED, action.record_id, f"{fault.code}: {fault.message}"
        )


def _records_by_object(
    actions: Sequence[Action], groups: list[tuple[list[int], dict[str, Any]]]
) -> dict[str, list[str]]:
    """The ids of the records that repairs will change, by Salesforce object."""
    by_object: dict[str, set[str]] = {}
    for members, _ in groups:
        action = actions[members[0]]
        by_object.setdefault(SOBJECTS[action.record_type], set()).add(action.record_id)
    return {sobject: sorted(ids) for sobject, ids in by_object.items()}


def _known_id(action: Action) -> str | None:
    return action.crm_id if action.crm_id and SALESFORCE_ID.match(action.crm_id) else None


def _group_repairs(
    repairs: list[tuple[int, dict[str, Any]]],
) -> list[tuple[list[int], dict[str, Any]]]:
    """Repairs of one record read at one version become one PATCH: made one by one, the first
    would make the others stale. Repairs setting one field to different values stay apart."""
    groups: list[tuple[list[int], dict[str, Any]]] = []
    by_target: dict[tuple[str, str], int] = {}
    for index, sub in repairs:
        target = (str(sub["url"]), str(sub["httpHeaders"]["If-Unmodified-Since"]))
        position = by_target.get(target)
        if position is not None:
            members, merged = groups[position]
            body = merged["body"]
            if all(body.get(k, v) == v for k, v in sub["body"].items()):
                members.append(index)
                merged["body"] = {**body, **sub["body"]}
                continue
        by_target[target] = len(groups)
        groups.append(([index], {**sub, "body": dict(sub["body"])}))
    return groups
