"""Notifications after a sync, through apprise (Slack, Teams, email, webhooks...): an admin
summary and optional per-owner digests. Off by default; the ``notify`` extra installs apprise.

A notification that fails never fails the sync: each attempt ends as an entry in the run
summary (``sent`` or ``failed`` with the service and a reason). Apprise URLs carry tokens, so
neither an entry nor a log line ever holds one: a failure names the service (the URL's scheme)
and apprise's own words with every part of the URL but its scheme blanked out.
"""

from __future__ import annotations

import logging
import os
import re
import string
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import attrs

from tsos_rules.config import OWNER_URL_PLACEHOLDER, Config, SettingsTable, read_notify_table
from tsos_rules.errors import ConfigError
from tsos_rules.sync.state import StateStore
from tsos_rules.sync.state.worklist import WorklistQuery, WorklistRow
from tsos_rules.sync.summary import SyncSummary

log = logging.getLogger(__name__)

#: Shown for the owner of records with no owner.
NO_OWNER = "(no owner)"


@attrs.frozen
class NotifySettings:
    """The ``[notify]`` table, typed (read by :func:`tsos_rules.config.read_notify_table`)."""

    urls: tuple[str, ...] = ()
    urls_env: str | None = None
    urls_file: str | None = None
    when: str = "changes"
    top_owners: int = 5
    owner_digest: bool = False
    owner_limit: int = 20
    owner_url_template: str | None = None
    owners: Mapping[str, str] = attrs.field(factory=dict)
    file: Path | None = None

    @classmethod
    def from_config(cls, config: Config) -> NotifySettings:
        values = read_notify_table(SettingsTable(config.notify, "notify", file=config.path))
        return cls(**values, file=config.path)

    @property
    def enabled(self) -> bool:
        return bool(self.urls or self.urls_env or self.urls_file or self.owner_digest)

    def _error(self, key: str, problem: str) -> ConfigError:
        return ConfigError(f"notify.{key}: {problem}", file=self.file, table="notify", key=key)

    def admin_urls(self) -> list[str]:
        """The admin summary's URLs: ``urls``, then ``$urls_env``, then ``urls_file``'s lines
        (blank lines and ``#`` comments skipped); commas or spaces separate URLs too."""
        found = list(self.urls)
        if self.urls_env:
            value = os.environ.get(self.urls_env)
            if not value:
                raise self._error("urls_env", f"environment variable {self.urls_env} is not set")
            found += _split(value)
        if self.urls_file:
            try:
                text = Path(self.urls_file).expanduser().read_text(encoding="utf-8")
            except OSError as exc:
                raise self._error(
                    "urls_file", f"cannot read {self.urls_file}: {exc.strerror}"
                ) from None
            for line in text.splitlines():
                if line.strip() and not line.lstrip().startswith("#"):
                    found += _split(line)
        return found

    def owner_url(self, owner_id: str, name: str | None, email: str | None) -> str | None:
        """Where an owner's digest goes: ``[notify.owners]`` by name (as the worklist shows it)
        or id, else ``owner_url_template`` when the owner has an email. ``${VAR}`` in either
        is read from the environment, so tokens need not sit in the config file."""
        for key in (name, owner_id):
            if key and key in self.owners:
                return _expand(self.owners[key], f"owners.{key}", self)
        if self.owner_url_template and email:
            # ${VAR} first, then the owner's fields, taken literally (an email may hold a '$')
            url = _expand(self.owner_url_template, "owner_url_template", self)
            fields = {"email": email, "owner_id": owner_id, "name": name or ""}
            return OWNER_URL_PLACEHOLDER.sub(lambda m: fields.get(m.group(1), m.group(0)), url)
        return None


def _split(value: str) -> list[str]:
    return [part for part in re.split(r"[\s,]+", value) if part]


def _expand(url: str, key: str, settings: NotifySettings) -> str:
    try:
        return string.Template(url).substitute(os.environ)
    except KeyError as exc:
        raise settings._error(key, f"environment variable {exc.args[0]} is not set") from None
    except ValueError:
        raise settings._error(key, "a '$' that is not ${VARIABLE} (write $$ for '$')") from None


def service_of(url: str) -> str:
    """The service an apprise URL names (its scheme): all a message may say about it."""
    scheme, sep, _ = url.partition("://")
    return scheme.lower() if sep and re.fullmatch(r"[a-zA-Z][\w+.-]*", scheme) else "unknown"


def redact(text: str, urls: Sequence[str]) -> str:
    """``text`` with every part of these URLs but the scheme blanked out (tokens hide in the
    host, the user, the password, the path and the query, depending on the service)."""
    secrets: set[str] = set()
    for url in urls:
        secrets.add(url)
        try:
            parts = urlsplit(url)
            pieces = [parts.netloc, parts.hostname, parts.username, parts.password, parts.path]
            pieces += parts.path.split("/") + parts.fragment.split("/")
            pieces += [v for pair in parse_qsl(parts.query) for v in pair]
        except ValueError:
            pieces = re.split(r"[/:@?&=#]+", url.partition("://")[2])
        for piece in pieces:
            if piece and len(piece) >= 3:
                secrets.add(piece)
                secrets.add(unquote(piece))
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


@contextmanager
def _apprise_logs() -> Iterator[Any]:
    """Apprise's warnings for one call, kept from the application's own log handlers (its
    debug lines carry full URLs, and so do urllib3's: that one is held at INFO meanwhile)."""
    import apprise

    logger = logging.getLogger("apprise")  # apprise logs under its own name
    propagate = logger.propagate
    logger.propagate = False
    http = logging.getLogger("urllib3")
    level = http.level
    http.setLevel(max(http.getEffectiveLevel(), logging.INFO))
    try:
        capture = apprise.LogCapture(level=logging.WARNING, fmt="%(message)s")  # type: ignore[no-untyped-call]  # apprise leaves it untyped
        with capture as captured:
            yield captured
    finally:
        logger.propagate = propagate
        http.setLevel(level)


def send(url: str, title: str, body: str) -> str | None:
    """Send one notification; None when it was delivered, else why not (redacted)."""
    # apprise (and the plugins it loads on first use) import modules Python deprecates
    # (imghdr): their warnings are apprise's business, not the sync's output.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return _send(url, title, body)


def _send(url: str, title: str, body: str) -> str | None:
    try:
        import apprise
    except ImportError:
        return "apprise is not installed (pip install 'tsos-rules[notify]')"
    try:
        with _apprise_logs() as captured:
            sender = apprise.Apprise()
            if not sender.add(url):
                return "not a valid apprise URL (or its service is not supported)"
            delivered = bool(sender.notify(body=body, title=title))
            said = [line.strip() for line in captured.getvalue().splitlines() if line.strip()]
    except Exception as exc:  # a plugin's bug must not fail the sync
        return redact(f"{type(exc).__name__}: {exc}", [url])
    if delivered:
        return None
    return redact(" ".join(said[-2:]) or "the service refused it", [url])


# -- the messages ---------------------------------------------------------------------------


def _open_warn(summary: SyncSummary) -> int:
    return sum(c.open for c in summary.rules.values() if c.severity == "warn")


def _owner_label(owner_id: str, name: str | None) -> str:
    return name or owner_id or NO_OWNER


def admin_message(
    summary: SyncSummary, *, report: str | None = None, top: int = 5
) -> tuple[str, str]:
    """The admin summary: the run's counts, the owners with most open blocks, the report."""
    blocks, warns = summary.open_block, _open_warn(summary)
    title = (
        f"tsos-rules sync on {summary.connector}: {blocks:,} open block(s), "
        f"+{summary.findings_new:,} new, -{summary.findings_resolved:,} resolved"
    )
    kind = "full" if summary.full else "incremental"
    lines = [
        f"Run #{summary.run_id} ({summary.mode}, {kind}) as of {summary.as_of}: "
        f"exit {summary.exit_code}.",
        f"Open: {blocks:,} block, {warns:,} warn ({summary.findings_open:,} in all); "
        f"{summary.findings_exempt:,} exempt, {summary.findings_shadow:,} shadow.",
        f"This run: {summary.findings_new:,} new, {summary.findings_resolved:,} resolved; "
        f"{summary.actions_written:,} CRM write(s).",
    ]
    ranked = sorted(
        ((c.open_block, _owner_label(k, c.name)) for k, c in summary.owners.items()),
        key=lambda item: (-item[0], item[1]),
    )
    ranked = [item for item in ranked if item[0] > 0][:top]
    if ranked:
        lines.append("Owners with the most open blocks:")
        lines += [f"  {label}: {n:,}" for n, label in ranked]
    if summary.writes_pending:
        lines.append(f"{summary.writes_pending:,} CRM write(s) still pending.")
    if report:
        lines.append(f"Report: {report}")
    return title, "\n".join(lines)


def owner_message(
    label: str, rows: Sequence[WorklistRow], *, open_: int, blocks: int
) -> tuple[str, str]:
    """One owner's digest: their open findings, blocks first, up to the configured number."""
    title = f"tsos-rules: {open_:,} deal finding(s) to fix ({blocks:,} block)"
    lines = [f"{label}, these records of yours need attention:"]
    for row in rows:
        name = row.record_name or row.record_id
        line = f"- [{row.severity}] {name} ({row.record_type} {row.record_id}): {row.message}"
        if row.remedy:
            line += f" What to do: {row.remedy}"
        if row.url:
            line += f" {row.url}"
        lines.append(line)
    if open_ > len(rows):
        lines.append(f"... and {open_ - len(rows):,} more: tsos-rules findings --owner {label!r}")
    return title, "\n".join(lines)


# -- after a run ----------------------------------------------------------------------------


def _due(when: str, *, new: int, resolved: int, blocks: int) -> bool:
    if when == "always":
        return True
    if when == "blocks":
        return blocks > 0
    return bool(new or resolved)


def notify_run(
    settings: NotifySettings,
    summary: SyncSummary,
    state: StateStore,
    connector: str,
    *,
    report: str | None = None,
    contacts: Mapping[str, str] | None = None,
) -> list[dict[str, str]]:
    """Send the admin summary and the owner digests ``settings`` asks for; never raises.
    Returns one entry per notification (service, status, reason, and the owner for a
    digest), which the run summary lists."""
    out: list[dict[str, str]] = []
    tried: list[str] = [*settings.urls, *settings.owners.values()]

    def attempt(url: str, title: str, body: str, **extra: str) -> None:
        tried.append(url)
        service = service_of(url)
        reason = send(url, title, body)
        entry = {"service": service, "status": "sent" if reason is None else "failed", **extra}
        if reason is not None:
            entry["reason"] = reason
            log.warning("notification failed: %s, %s", service, reason)
        out.append(entry)

    def failed(service: str, reason: str) -> None:
        out.append({"service": service, "status": "failed", "reason": reason})
        log.warning("notification failed: %s, %s", service, reason)

    try:
        due = _due(
            settings.when,
            new=summary.findings_new,
            resolved=summary.findings_resolved,
            blocks=summary.open_block,
        )
        if due:
            title, body = admin_message(summary, report=report, top=settings.top_owners)
            for url in settings.admin_urls():
                attempt(url, title, body)
        if settings.owner_digest:
            _digests(settings, summary, state, connector, contacts or {}, attempt)
    except ConfigError as exc:
        failed("config", str(exc))
    except Exception as exc:  # never fail the sync for a notification
        failed("tsos-rules", redact(f"{type(exc).__name__}: {exc}", tried))
    return out


def _digests(
    settings: NotifySettings,
    summary: SyncSummary,
    state: StateStore,
    connector: str,
    contacts: Mapping[str, str],
    attempt: Any,
) -> None:
    for owner_id, counts in sorted(summary.owners.items()):
        if not owner_id or counts.open <= 0:
            continue
        if not _due(
            settings.when, new=counts.new, resolved=counts.resolved, blocks=counts.open_block
        ):
            continue
        url = settings.owner_url(owner_id, counts.name, contacts.get(owner_id))
        if url is None:
            continue
        rows = state.worklist(connector, WorklistQuery(owner=owner_id, limit=settings.owner_limit))
        label = _owner_label(owner_id, counts.name)
        title, body = owner_message(label, rows, open_=counts.open, blocks=counts.open_block)
        attempt(url, title, body, owner=label)
