"""The rules the service judges with, and their reload without a restart.

A reload reads the config again, loads every pack through the plugin manager, and swaps the new
checker in only when everything validated: an invalid config, a pack that fails validation,
a plugin that fails to load or a pack that fails a smoke evaluation is refused, and the old
rules keep serving. (On start-up the same failures stop the service: it never serves with a
pack silently missing.)

Reloads run on the event loop's thread, like every evaluation, so a swap never races a check
and declarative packs (durable-rules, which is not thread-safe) only ever see one thread.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from typing import Any

from tsos_rules.config import Config
from tsos_rules.engine import Engine
from tsos_rules.errors import PackValidationError, TsosRulesError
from tsos_rules.inline import ChangeChecker, ExemptionSource
from tsos_rules.plugins import collect_packs, get_plugin_manager

log = logging.getLogger("tsos_rules.server")

_SMOKE_DATE = dt.date(2026, 1, 6)


def strict_engine(config: Config) -> Engine:
    """Engine.from_config, except that a plugin that failed to load refuses the whole set."""
    pm = get_plugin_manager(disabled=config.plugins_disabled)
    packs = collect_packs(pm)
    if pm.failures:
        failed = "; ".join(f"{f.name}: {f.error}" for f in pm.failures)
        raise PackValidationError(f"plugin(s) failed to load: {failed}")
    return Engine(
        packs,
        org=config.org,
        parameters=config.packs,
        rules=config.rules_selected or None,
        disabled_rules=config.rules_disabled,
    )


def _smoke(checker: ChangeChecker) -> None:
    """Evaluate one record of each type, so a pack that fails at evaluation is refused too."""
    samples: tuple[tuple[str, dict[str, Any]], ...] = (
        ("opportunity", {"id": "smoke-o", "account_id": "smoke-a", "lead_id": "smoke-l"}),
        ("lead", {"id": "smoke-l", "status": "qualified", "partner_id": "smoke-p"}),
        ("account", {"id": "smoke-a", "partner_of_record_id": "smoke-p"}),
        ("activity", {"id": "smoke-t", "account_id": "smoke-a", "owner_id": "smoke-u"}),
    )
    for record_type, record in samples:
        checker.check(record_type, None, record, None, as_of=_SMOKE_DATE, include_info=True)


class RuleHolder:
    """The current checker, with its reload history."""

    def __init__(
        self,
        load_config: Callable[[], Config],
        build_engine: Callable[[Config], Engine] = strict_engine,
        exemption_source: Callable[[Config], ExemptionSource] | None = None,
    ) -> None:
        self._load_config = load_config
        self._build_engine = build_engine
        #: The extra exemptions for a config (``serve``: the state store's), rebuilt on reload.
        self._exemption_source = exemption_source
        self.checker = self._build()
        self.loaded_at = _now()
        self.reloads = 0
        self.last_reload_at: str | None = None
        self.last_reload_error: str | None = None

    def _build(self) -> ChangeChecker:
        config = self._load_config()
        source = self._exemption_source
        extra = source(config) if source is not None else None
        checker = ChangeChecker(self._build_engine(config), config, extra_exemptions=extra)
        try:
            _smoke(checker)
        except Exception as exc:
            checker.close()
            raise PackValidationError(
                f"a pack failed a smoke evaluation: {type(exc).__name__}: {exc}"
            ) from exc
        return checker

    def reload(self) -> str | None:
        """Swap in freshly loaded rules; returns None, or why the reload was refused."""
        self.last_reload_at = _now()
        try:
            checker = self._build()
        except TsosRulesError as exc:
            self.last_reload_error = str(exc)
        except Exception as exc:  # a plugin's own bug: refuse the reload, keep serving
            self.last_reload_error = f"{type(exc).__name__}: {exc}"
        else:
            old, self.checker = self.checker, checker
            old.close()
            self.reloads += 1
            self.loaded_at = self.last_reload_at
            self.last_reload_error = None
            log.info(
                "rules reloaded: packs %s, digest %s", checker.rule_versions, checker.rules_digest
            )
            return None
        log.error("rule reload refused, the old rules keep serving: %s", self.last_reload_error)
        return self.last_reload_error

    def status(self) -> dict[str, Any]:
        checker = self.checker
        return {
            "packs": checker.rule_versions,
            "digest": checker.rules_digest,
            "rules": len(checker.engine.specs),
            "loaded_at": self.loaded_at,
            "reloads": self.reloads,
            "last_reload_at": self.last_reload_at,
            "last_reload_error": self.last_reload_error,
        }


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
