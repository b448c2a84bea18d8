"""Typed configuration, read from TOML; secrets are never in it, only references to them.

Top-level tables: ``[org]`` (org profile), ``[packs.<name>]`` (pack parameters), ``[rules]``
(selection), ``[plugins]``, and the job's own ``[connector]``, ``[sync]``, ``[state]``,
``[serve]``. Every table is read with :class:`SettingsTable`, so an unknown key, a wrong type or
an out-of-range number is a :class:`ConfigError` naming the file, the table and the key, the same
way for every command. Loading a config checks every core table (``check`` refuses what
``sync`` would); ``[connector]`` is read by the connector and ``[serve]`` by ``serve``, which
know their keys. This module also says where tsos-rules keeps its files (:func:`default_data_dir`).
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import os
import re
import stat
import tomllib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import attrs
import platformdirs

from tsos_rules.errors import ConfigError
from tsos_rules.findings import Severity
from tsos_rules.org import OrgProfile

TOP_LEVEL = (
    "org",
    "packs",
    "rules",
    "plugins",
    "engine",
    "connector",
    "sync",
    "state",
    "serve",
    "notify",
    "exemptions",
)

log = logging.getLogger(__name__)

#: Overrides where tsos-rules keeps its files (demo CRM, state); tests point it at a temp dir.
DATA_DIR_ENV = "TSOS_RULES_DATA_DIR"


#: The data directory of a run from a source checkout, inside that checkout (git-ignored).
CHECKOUT_DATA_DIR = ".tsos-rules"


def checkout_root() -> Path | None:
    """The source checkout this package is imported from (an editable install), else None.

    A checkout is a folder holding ``src/tsos_rules/`` and a ``pyproject.toml`` that names
    tsos-rules; an installed wheel (site-packages) is never one.
    """
    root = Path(__file__).resolve().parents[2]
    try:
        text = (root / "pyproject.toml").read_text(encoding="utf-8")
    except OSError:
        return None
    return root if 'name = "tsos-rules"' in text else None


def default_data_dir() -> Path:
    """Where the demo CRM and the sync state live unless the config says otherwise.

    ``$TSOS_RULES_DATA_DIR`` when set; else ``.tsos-rules/`` in the source checkout this
    package runs from, so each clone has its own demo CRM and state (a second clone's first
    sync is a full run too); else the platform's user data directory for tsos-rules.
    """
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    root = checkout_root()
    if root is not None:
        return root / CHECKOUT_DATA_DIR
    return Path(platformdirs.user_data_dir("tsos-rules"))


def default_state_path() -> Path:
    """Where the sync keeps its state when ``[state] path`` is not set."""
    return default_data_dir() / "state.sqlite3"


#: A reference to a secret: ``{"env": "NAME"}``, ``{"file": "/path"}``.
SecretRef = Mapping[str, str]


class SettingsTable:
    """One config table read key by key, the one reader of every table (core, connectors,
    server, plugins); :meth:`done` fails on any key nobody asked for. Every error is a
    :class:`ConfigError` naming the file (when known), the table and the key.

    Example::

        table = SettingsTable(settings, "connector", file=config.path)
        url = table.string("url", "https://api.example.com")
        pages = table.integer("page_size", 100, low=1, high=500)
        token = table.secret("token")          # {"env": "..."} or {"file": "..."}, never a literal
        table.done("type")                      # "type" was read by the job itself
    """

    def __init__(
        self,
        data: Any,
        where: str,
        *,
        file: str | Path | None = None,
        owner: str | None = None,
    ) -> None:
        self.where = where
        self.file = file
        #: Who reads the table, said in the unknown-key error ("the local connector").
        self.owner = owner
        if data is None:
            data = {}
        if not isinstance(data, Mapping):
            raise ConfigError(
                f"{where}: expected a table, got {type(data).__name__}",
                file=file,
                table=where,
            )
        self.data: Mapping[str, Any] = data
        self._seen: set[str] = set()

    def _get(self, key: str) -> Any:
        self._seen.add(key)
        return self.data.get(key)

    def has(self, key: str) -> bool:
        """Whether ``key`` is given; asking makes it a known key for :meth:`done`."""
        self._seen.add(key)
        return key in self.data

    def value(self, key: str) -> Any:
        """The value as given (``None`` when absent), for checks the typed getters lack."""
        return self._get(key)

    def path(self, key: str) -> str:
        """``table.key``, as errors name it."""
        return f"{self.where}.{key}"

    def error(self, key: str, problem: str) -> ConfigError:
        """An error about ``key`` in the reader's shape, for checks the typed getters lack."""
        return ConfigError(
            f"{self.path(key)}: {problem}", file=self.file, table=self.where, key=key
        )

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise self.error(key, f"expected a string, got {value!r}")
        return value

    def text(self, key: str, default: str) -> str:
        """A non-empty string, stripped."""
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"expected a non-empty string, got {value!r}")
        return value.strip()

    def choice(self, key: str, default: str, choices: tuple[str, ...]) -> str:
        """One of ``choices``."""
        value = self.text(key, default)
        if value not in choices:
            raise self.error(key, f"expected one of {', '.join(choices)}, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise self.error(key, f"expected true or false, got {value!r}")
        return value

    def number(
        self, key: str, default: float, *, low: float = 0.0, high: float = math.inf
    ) -> float:
        """An int or float within ``low``..``high`` (both included), as a float."""
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.error(key, f"expected a number, got {value!r}")
        if not low <= value <= high:
            if high == math.inf:
                raise self.error(key, f"expected a number >= {low:g}, got {value!r}")
            raise self.error(key, f"expected between {low:g} and {high:g}, got {value!r}")
        return float(value)

    def integer(self, key: str, default: int, *, low: int = 0, high: int | None = None) -> int:
        """A whole number within ``low``..``high`` (both included; no upper bound by default)."""
        value = self.optional_integer(key, low=low, high=high)
        return default if value is None else value

    def optional_integer(
        self, key: str, default: int | None = None, *, low: int = 0, high: int | None = None
    ) -> int | None:
        """Like :meth:`integer`, with ``None`` allowed as the default."""
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(key, f"expected a whole number, got {value!r}")
        if value < low or (high is not None and value > high):
            upper = f" and <= {high}" if high is not None else ""
            raise self.error(key, f"expected a whole number >= {low}{upper}, got {value}")
        return value

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise self.error(key, f"expected a list of strings, got {value!r}")
        return tuple(value)

    def mapping(self, key: str, *, values: tuple[str, ...] | None = None) -> dict[str, str]:
        """A table of name = string, each string one of ``values`` when given."""
        value = self._get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(key, "expected a table of name = value")
        out: dict[str, str] = {}
        for name, item in value.items():
            where = f"{key}.{name}"
            if not isinstance(item, str):
                raise self.error(where, f"expected a string, got {item!r}")
            if values is not None and item not in values:
                raise self.error(where, f"expected one of {', '.join(values)}, got {item!r}")
            out[str(name)] = item
        return out

    def table(self, key: str) -> SettingsTable:
        """The nested table at ``key`` (empty when absent), read the same way."""
        value = self._get(key)
        return type(self)(value, self.path(key), file=self.file)

    def secret(self, key: str, *, plain_ok: bool = False) -> SecretRef | None:
        """A secret reference; ``plain_ok`` allows a literal for values that are not secret."""
        value = self._get(key)
        if value is None:
            return None
        if plain_ok and isinstance(value, str):
            return {"value": value}
        if not isinstance(value, Mapping) or set(value) - {"env", "file"} or len(value) != 1:
            raise self.error(
                key, 'give {env = "VARIABLE"} or {file = "/path"}, never the secret itself'
            )
        ((kind, ref),) = value.items()
        if not isinstance(ref, str) or not ref:
            raise self.error(f"{key}.{kind}", "expected a non-empty string")
        return {kind: ref}

    def done(self, *ignored: str) -> None:
        """Refuse the first key nobody read (``ignored`` keys were read elsewhere)."""
        unknown = sorted(set(self.data) - self._seen - set(ignored))
        if unknown:
            known = ", ".join(sorted(self._seen | set(ignored)))
            owner = f" for {self.owner}" if self.owner else ""
            raise self.error(unknown[0], f"unknown setting{owner} (known: {known})")


@contextmanager
def naming_file(file: str | Path | None) -> Iterator[None]:
    """Config errors raised inside name ``file`` (for tables read without knowing it, such as
    a connector factory's)."""
    try:
        yield
    except ConfigError as exc:
        named = exc.in_file(file)
        if named is exc:
            raise
        raise named from None


#: ``[sync] mode`` and the values of ``[sync.rule_modes]`` (``tsos_rules.sync.planner.Mode``).
SYNC_MODES = ("report", "shadow", "annotate", "enforce")
#: Records judged per batch: one batch is held in memory, so a bound keeps a typo from OOM.
MAX_BATCH_SIZE = 1_000_000
#: ``[sync] history_days``: the run log and resolved findings are kept this many days (0: for
#: ever); a bound keeps a typo (days given as a date) from meaning "never prune" by accident.
DEFAULT_HISTORY_DAYS = 400
MAX_HISTORY_DAYS = 36_500


def read_sync_table(table: SettingsTable) -> dict[str, Any]:
    """The ``[sync]`` table's values (only the keys given), validated."""
    values: dict[str, Any] = {}
    if table.has("mode"):
        values["mode"] = _mode(table, "mode")
    modes = table.table("rule_modes")
    values["rule_modes"] = {str(rule): _mode(modes, rule) for rule in modes.data}
    if table.has("batch_size"):
        values["batch_size"] = table.integer("batch_size", 0, low=1, high=MAX_BATCH_SIZE)
    if table.has("write_retries"):
        values["write_retries"] = table.integer("write_retries", 0, low=0, high=100)
    if table.has("history_days"):
        values["history_days"] = table.integer("history_days", 0, low=0, high=MAX_HISTORY_DAYS)
    for key in ("daily_full", "include_info"):
        if table.has(key):
            values[key] = table.boolean(key, False)
    if table.has("task_min_severity"):
        severity = table.value("task_min_severity")
        try:
            values["task_min_severity"] = Severity(severity)
        except ValueError:
            raise table.error(
                "task_min_severity", f"expected block, warn or info, got {severity!r}"
            ) from None
    table.done()
    return values


def read_rollout(table: SettingsTable) -> dict[str, str]:
    """``[rules.rollout]``: rule id or glob = shadow | annotate | enforce (or report)."""
    return {str(rule): _mode(table, rule) for rule in table.data}


_warned_rule_modes = False


def _warn_rule_modes(path: Path | None) -> None:
    """``[sync.rule_modes]`` still works; say once per process that it has a new name."""
    global _warned_rule_modes
    if _warned_rule_modes:
        return
    _warned_rule_modes = True
    where = f"{path}: " if path is not None else ""
    log.warning(
        "%s[sync.rule_modes] is deprecated: write the same keys under [rules.rollout] "
        "(honoured by check, sync and in-line alike)",
        where,
    )


#: ``[rules] exemption_max_days`` unless set: a waiver is reviewed at least twice a year.
DEFAULT_EXEMPTION_MAX_DAYS = 180
#: The most ``exemption_max_days`` may be: a waiver is reviewed at least once every few years.
MAX_EXEMPTION_DAYS = 3660
#: The record types an ``[[exemptions]]`` entry's ``record_type`` may name.
EXEMPTION_RECORD_TYPES = ("opportunity", "lead", "account", "activity")
#: What an ``[[exemptions]]`` entry waives besides a rule: one of these scopes.
EXEMPTION_SCOPES = ("record_id", "account_id", "partner_id")


def read_exemptions(root: SettingsTable, max_days: int) -> tuple[dict[str, Any], ...]:
    """``[[exemptions]]``: each entry a rule (id or glob) on one record (``record_type`` and
    ``record_id``), or every record of an account (``account_id``) or a partner
    (``partner_id``), with ``reason``, ``approver``, ``created`` and ``expires`` (dates; at most
    ``max_days`` apart). Errors name the entry counting from 1: ``exemptions[2].expires``.
    Whether the rule is loaded is checked by the command that loads the rules."""
    value = root.value("exemptions")
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise ConfigError(
            "exemptions: expected [[exemptions]] entries (an array of tables)",
            file=root.file,
            table="exemptions",
        )
    return tuple(
        _exemption(SettingsTable(entry, f"exemptions[{n}]", file=root.file), max_days)
        for n, entry in enumerate(value, start=1)
    )


def _exemption(table: SettingsTable, max_days: int) -> dict[str, Any]:
    entry: dict[str, Any] = {"where": table.where}
    for key in ("rule", "reason", "approver"):
        if table.value(key) is None:
            raise table.error(key, "required")
        entry[key] = table.text(key, "")
    given = [key for key in EXEMPTION_SCOPES if table.has(key)]
    if len(given) != 1:
        raise table.error(
            given[1] if len(given) > 1 else "record_id",
            "give exactly one of record_id (with record_type), account_id or partner_id",
        )
    scope = given[0]
    entry[scope] = table.text(scope, "")
    if scope == "record_id":
        entry["record_type"] = table.choice("record_type", "", EXEMPTION_RECORD_TYPES)
    elif table.has("record_type"):
        raise table.error("record_type", f"only with record_id, not with {scope}")
    created = _date(table, "created")
    expires = _date(table, "expires")
    if expires < created:
        raise table.error("expires", f"{expires} is before created ({created})")
    if (expires - created).days > max_days:
        raise table.error(
            "expires",
            f"{expires} is more than {max_days} days after created ({created}); exemptions "
            "are reviewed (rules.exemption_max_days): grant a new one when this one ends",
        )
    entry["created"], entry["expires"] = created, expires
    table.done()
    return entry


def _date(table: SettingsTable, key: str) -> dt.date:
    """A required date: a TOML date (``2026-12-31``) or the same as a string."""
    value = table.value(key)
    if value is None:
        raise table.error(key, "required (a date, YYYY-MM-DD)")
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise table.error(key, f"expected a date YYYY-MM-DD, got {value!r}")


def _mode(table: SettingsTable, key: str) -> str:
    value = table.value(key)
    if value not in SYNC_MODES:
        raise table.error(key, f"expected report, annotate or enforce (or shadow), got {value!r}")
    return str(value)


def read_state_table(table: SettingsTable) -> Path | None:
    """The ``[state]`` table: the state file's path, when given."""
    path = table.value("path")
    table.done()
    if path is None:
        return None
    if not isinstance(path, str) or not path:
        raise table.error("path", f"expected a file path, got {path!r}")
    return Path(path).expanduser()


def connector_type(table: SettingsTable) -> str:
    """``[connector] type``: the name a connector plugin registered (``local`` by default)."""
    kind = table.value("type")
    if kind is None:
        return "local"
    if not isinstance(kind, str):
        raise table.error("type", f"expected a connector name, got {kind!r}")
    return kind


@attrs.frozen
class Config:
    """Everything a run is configured with. Build it with :func:`load_config` or from a dict."""

    org: OrgProfile = attrs.field(factory=OrgProfile)
    packs: Mapping[str, Mapping[str, Any]] = attrs.field(factory=dict)
    rules_disabled: tuple[str, ...] = ()
    rules_selected: tuple[str, ...] = ()
    #: Directories of declarative packs (``*.yaml``, ``*.yml``, ``*.json``) admins keep locally.
    pack_dirs: tuple[Path, ...] = ()
    plugins_disabled: tuple[str, ...] = ()
    connector: Mapping[str, Any] = attrs.field(factory=dict)
    sync: Mapping[str, Any] = attrs.field(factory=dict)
    state: Mapping[str, Any] = attrs.field(factory=dict)
    serve: Mapping[str, Any] = attrs.field(factory=dict)
    #: ``[notify]``: apprise notifications after each sync (see ``read_notify_table``).
    notify: Mapping[str, Any] = attrs.field(factory=dict)
    #: ``[engine] executor``: local, processes, dask or dask=ADDRESS (None: the command's own)
    engine_executor: str | None = None
    #: ``[engine] workers``: worker processes for processes or a new LocalCluster (0: auto)
    engine_workers: int = 0
    #: Each rule's rollout mode by id or glob: ``[rules.rollout]`` (the deprecated
    #: ``[sync.rule_modes]`` stays in ``sync``; ``[rules.rollout]`` overrides it key by key).
    rollout: Mapping[str, str] = attrs.field(factory=dict)
    #: ``[[exemptions]]``, validated (see :func:`read_exemptions`).
    exemptions: tuple[Mapping[str, Any], ...] = ()
    #: ``[rules] exemption_max_days``: the longest an exemption may run, from any source.
    exemption_max_days: int = 180
    #: ``[engine] connect_timeout``: seconds to reach a Dask scheduler before exit 3
    engine_connect_timeout: float = 20.0
    path: Path | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, path: Path | None = None) -> Config:
        """Validate a parsed config document (TOML table or Python dict); every core table is
        checked here, so every command refuses the same mistakes."""
        root = SettingsTable(data, "config", file=path)
        for key in data:
            if key not in TOP_LEVEL:
                raise ConfigError(
                    f"{key}: unknown section (known: {', '.join(TOP_LEVEL)})", file=path, key=key
                )
        tables = {
            name: SettingsTable(root.value(name), name, file=path)
            for name in TOP_LEVEL
            if name != "exemptions"  # an array of tables, read by read_exemptions
        }
        with naming_file(path):
            org = OrgProfile.from_mapping(tables["org"].data)
        packs = tables["packs"]
        for name in packs.data:
            packs.table(name)
        rules = tables["rules"]
        selection = {key: rules.strings(key) for key in ("disabled", "select", "pack_dirs")}
        rollout = read_rollout(rules.table("rollout"))
        max_days = rules.integer(
            "exemption_max_days", DEFAULT_EXEMPTION_MAX_DAYS, low=1, high=MAX_EXEMPTION_DAYS
        )
        rules.done()
        exemptions = read_exemptions(root, max_days)
        plugins = tables["plugins"]
        plugins_disabled = plugins.strings("disabled")
        plugins.done()
        executor, workers, connect_timeout = read_engine_table(tables["engine"])
        legacy = read_sync_table(tables["sync"])["rule_modes"]
        if legacy:
            _warn_rule_modes(path)
        read_state_table(tables["state"])
        connector_type(tables["connector"])
        read_notify_table(tables["notify"])
        return cls(
            org=org,
            packs={name: dict(table) for name, table in packs.data.items()},
            rules_disabled=selection["disabled"],
            rules_selected=selection["select"],
            pack_dirs=tuple(_resolve(Path(d), path) for d in selection["pack_dirs"]),
            plugins_disabled=plugins_disabled,
            connector=dict(tables["connector"].data),
            sync=dict(tables["sync"].data),
            state=dict(tables["state"].data),
            serve=dict(tables["serve"].data),
            notify=dict(tables["notify"].data),
            engine_executor=executor,
            engine_workers=workers,
            rollout=rollout,
            exemptions=exemptions,
            exemption_max_days=max_days,
            engine_connect_timeout=connect_timeout,
            path=path,
        )


#: ``[notify] on``: when the admin summary (and owner digests) are sent after a sync.
NOTIFY_WHEN = ("always", "changes", "blocks")
#: What ``[notify] owner_url_template`` may name.
OWNER_URL_FIELDS = ("email", "owner_id", "name")
#: A ``{field}`` of ``owner_url_template``; ``${VAR}`` (an environment variable) is not one.
OWNER_URL_PLACEHOLDER = re.compile(r"(?<!\$)\{([^{}]*)\}")


def read_notify_table(table: SettingsTable) -> dict[str, Any]:
    """The ``[notify]`` table (apprise notifications after each sync), validated. Apprise URLs
    carry tokens, so no error here ever quotes one: errors name the key only."""
    urls = table.value("urls")
    if urls is not None and (
        not isinstance(urls, list) or not all(isinstance(u, str) and u.strip() for u in urls)
    ):
        raise table.error("urls", "expected a list of apprise URLs (value not shown)")
    values: dict[str, Any] = {
        "urls": tuple(u.strip() for u in urls or ()),
        "urls_env": table.string("urls_env"),
        "urls_file": table.string("urls_file"),
        "when": table.choice("on", "changes", NOTIFY_WHEN),
        "top_owners": table.integer("top_owners", 5, low=0, high=100),
        "owner_digest": table.boolean("owner_digest", False),
        "owner_limit": table.integer("owner_limit", 20, low=1, high=1000),
        "owner_url_template": None,
        "owners": {},
    }
    for key in ("urls_env", "urls_file"):
        if values[key] is not None and not values[key].strip():
            raise table.error(key, "expected a non-empty string")
    owners = table.value("owners")
    if owners is not None:
        if not isinstance(owners, Mapping) or not all(
            isinstance(url, str) and url.strip() for url in owners.values()
        ):
            raise table.error(
                "owners", 'expected a table of "Owner name" = "apprise URL" (value not shown)'
            )
        values["owners"] = {str(name): url.strip() for name, url in owners.items()}
    template = table.value("owner_url_template")
    if template is not None:
        if not isinstance(template, str) or not template.strip():
            raise table.error("owner_url_template", "expected an apprise URL with {email}")
        if any(field not in OWNER_URL_FIELDS for field in OWNER_URL_PLACEHOLDER.findall(template)):
            raise table.error(
                "owner_url_template",
                f"may name only {', '.join('{' + f + '}' for f in OWNER_URL_FIELDS)} "
                "(value not shown)",
            ) from None
        values["owner_url_template"] = template.strip()
    table.done()
    return values


#: The executors ``[engine] executor`` names (``dask`` may carry ``=ADDRESS``).
EXECUTOR_KINDS = ("local", "processes", "dask")


#: ``[engine] connect_timeout`` when unset: seconds to reach a Dask scheduler.
DEFAULT_CONNECT_TIMEOUT = 20.0


def read_engine_table(table: SettingsTable) -> tuple[str | None, int, float]:
    """``[engine] executor``, ``workers`` and ``connect_timeout`` (seconds to reach a Dask
    scheduler): where ``check`` and ``sync`` judge records."""
    executor = table.string("executor")
    if executor is not None:
        kind, equals, address = executor.strip().partition("=")
        if kind.strip().lower() not in EXECUTOR_KINDS or (equals and kind.strip() != "dask"):
            raise table.error(
                "executor", f"expected local, processes, dask or dask=ADDRESS, got {executor!r}"
            )
        if equals and not address.strip():
            raise table.error("executor", "dask= needs a scheduler address (tcp://host:8786)")
    workers = table.integer("workers", 0, low=0, high=1024)
    timeout = table.number("connect_timeout", DEFAULT_CONNECT_TIMEOUT, low=0.1, high=3600)
    table.done()
    return executor, workers, timeout


def _resolve(directory: Path, config_path: Path | None) -> Path:
    """A relative directory is taken relative to the config file that names it."""
    if directory.is_absolute() or config_path is None:
        return directory
    return config_path.parent / directory


#: Where ``load_config`` looks when no path is given.
CONFIG_ENV = "TSOS_RULES_CONFIG"


#: A config file is a few KB; anything this large is the wrong file (or a device).
MAX_CONFIG_BYTES = 1_000_000


def load_config(path: str | Path | None = None) -> Config:
    """Read a TOML config file (``$TSOS_RULES_CONFIG`` when no path); defaults when neither."""
    if path is None:
        env = os.environ.get(CONFIG_ENV)
        if not env:
            return Config()
        path = env
    path = Path(path)
    try:
        with path.open("rb") as handle:
            if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                raise ConfigError(f"{path}: not a regular file")
            raw = handle.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise ConfigError(f"{path}: larger than {MAX_CONFIG_BYTES:,} bytes: not a config file")
        data = tomllib.loads(raw.decode("utf-8-sig"))  # a byte-order mark is fine
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte 0x{raw[exc.start]:02x} at offset {exc.start}): "
            "save the file as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    with naming_file(path):
        return Config.from_mapping(data, path=path)


def coerce_config(config: Config | Mapping[str, Any] | str | Path | None) -> Config:
    """Accept a Config, a dict shaped like the TOML file, a path, or None (defaults)."""
    if config is None:
        return Config()
    if isinstance(config, Config):
        return config
    if isinstance(config, str | Path):
        return load_config(config)
    if isinstance(config, Mapping):
        return Config.from_mapping(config)
    raise ConfigError(f"config: expected a Config, a dict or a path, got {type(config).__name__}")


def read_secret(reference: Mapping[str, Any], what: str) -> str:
    """Resolve ``{env = "NAME"}`` or ``{file = "/path"}``: secrets never sit in the config."""
    if "env" in reference:
        value = os.environ.get(str(reference["env"]))
        if not value:
            raise ConfigError(f"{what}: environment variable {reference['env']} is not set")
        return value
    if "file" in reference:
        try:
            return Path(str(reference["file"])).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(f"{what}: cannot read {reference['file']}: {exc.strerror}") from None
    raise ConfigError(f'{what}: give env = "VARIABLE" or file = "/path", not the secret itself')
