"""Typed configuration, read from TOML; secrets are never in it, only references to them.

Top-level tables: ``[org]`` (org profile), ``[packs.<name>]`` (pack parameters), ``[rules]``
(selection), ``[plugins]``, and the job's own ``[connector]``, ``[sync]``, ``[state]``,
``[serve]``. An unknown key anywhere is a :class:`ConfigError` naming it.
"""

from __future__ import annotations

import math
import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from tsos_rules.errors import ConfigError
from tsos_rules.org import OrgProfile

TOP_LEVEL = ("org", "packs", "rules", "plugins", "connector", "sync", "state", "serve")
RULES_KEYS = ("disabled", "select", "pack_dirs")
PLUGINS_KEYS = ("disabled",)


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
    path: Path | None = None

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, path: Path | None = None) -> Config:
        """Validate a parsed config document (TOML table or Python dict)."""
        for key in data:
            if key not in TOP_LEVEL:
                raise ConfigError(f"{key}: unknown section (known: {', '.join(TOP_LEVEL)})")
        org = data.get("org", {})
        packs = data.get("packs", {})
        rules = data.get("rules", {})
        plugins = data.get("plugins", {})
        for name, table in (("org", org), ("packs", packs), ("rules", rules), ("plugins", plugins)):
            if not isinstance(table, Mapping):
                raise ConfigError(f"{name}: expected a table")
        for name, table in packs.items():
            if not isinstance(table, Mapping):
                raise ConfigError(f"packs.{name}: expected a table of parameter = value")
        _only(rules, RULES_KEYS, "rules")
        _only(plugins, PLUGINS_KEYS, "plugins")
        sections = {}
        for name in ("connector", "sync", "state", "serve"):
            table = data.get(name, {})
            if not isinstance(table, Mapping):
                raise ConfigError(f"{name}: expected a table")
            sections[name] = dict(table)
        return cls(
            org=OrgProfile.from_mapping(org),
            packs={name: dict(table) for name, table in packs.items()},
            rules_disabled=_strings(rules.get("disabled", []), "rules.disabled"),
            rules_selected=_strings(rules.get("select", []), "rules.select"),
            pack_dirs=tuple(
                _resolve(Path(d), path)
                for d in _strings(rules.get("pack_dirs", []), "rules.pack_dirs")
            ),
            plugins_disabled=_strings(plugins.get("disabled", []), "plugins.disabled"),
            path=path,
            **sections,
        )


def _resolve(directory: Path, config_path: Path | None) -> Path:
    """A relative directory is taken relative to the config file that names it."""
    if directory.is_absolute() or config_path is None:
        return directory
    return config_path.parent / directory


def _only(table: Mapping[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in table:
        if key not in keys:
            raise ConfigError(f"{where}.{key}: unknown setting (known: {', '.join(keys)})")


def _strings(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{where}: expected a list of strings, got {value!r}")
    return tuple(value)


#: Where ``load_config`` looks when no path is given.
CONFIG_ENV = "TSOS_RULES_CONFIG"


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
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    try:
        return Config.from_mapping(data, path=path)
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


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


#: A reference to a secret: ``{"env": "NAME"}``, ``{"file": "/path"}``.
SecretRef = Mapping[str, str]


class SettingsTable:
    """A connector's config table read key by key; :meth:`done` fails on any key nobody asked
    for, naming it. Public for connector plugins, so every connector validates alike.

    Example::

        table = SettingsTable(settings, "connector")
        url = table.string("url", "https://api.example.com")
        token = table.secret("token")          # {"env": "..."} or {"file": "..."}, never a literal
        table.done("type")                      # "type" was read by the job itself
    """

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where}: expected a table, got {type(data).__name__}")
        self.data: Mapping[str, Any] = data
        self.where = where
        self._seen: set[str] = set()

    def _get(self, key: str) -> Any:
        self._seen.add(key)
        return self.data.get(key)

    def has(self, key: str) -> bool:
        return key in self.data

    def path(self, key: str) -> str:
        return f"{self.where}.{key}"

    def string(self, key: str, default: str | None = None) -> str | None:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, str):
            raise ConfigError(f"{self.path(key)}: expected a string, got {value!r}")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ConfigError(f"{self.path(key)}: expected true or false, got {value!r}")
        return value

    def number(
        self, key: str, default: float, *, low: float = 0.0, high: float = math.inf
    ) -> float:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{self.path(key)}: expected a number, got {value!r}")
        if not low <= value <= high:
            upper = "" if high == math.inf else f" and {high:g}"
            raise ConfigError(f"{self.path(key)}: expected between {low:g}{upper}, got {value!r}")
        return float(value)

    def integer(self, key: str, default: int, *, low: int = 0, high: int | None = None) -> int:
        value = self._get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{self.path(key)}: expected a whole number, got {value!r}")
        if value < low or (high is not None and value > high):
            upper = f" and {high}" if high is not None else ""
            raise ConfigError(f"{self.path(key)}: expected between {low}{upper}, got {value}")
        return value

    def strings(self, key: str, default: tuple[str, ...] = ()) -> tuple[str, ...]:
        value = self._get(key)
        if value is None:
            return default
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{self.path(key)}: expected a list of strings, got {value!r}")
        return tuple(value)

    def table(self, key: str) -> SettingsTable:
        value = self._get(key)
        return type(self)({} if value is None else value, self.path(key))

    def secret(self, key: str, *, plain_ok: bool = False) -> SecretRef | None:
        """A secret reference; ``plain_ok`` allows a literal for values that are not secret."""
        value = self._get(key)
        if value is None:
            return None
        if plain_ok and isinstance(value, str):
            return {"value": value}
        if not isinstance(value, Mapping) or set(value) - {"env", "file"} or len(value) != 1:
            raise ConfigError(
                f'{self.path(key)}: give {{env = "VARIABLE"}} or {{file = "/path"}}, '
                "never the secret itself"
            )
        ((kind, ref),) = value.items()
        if not isinstance(ref, str) or not ref:
            raise ConfigError(f"{self.path(key)}.{kind}: expected a non-empty string")
        return {kind: ref}

    def done(self, *ignored: str) -> None:
        unknown = sorted(set(self.data) - self._seen - set(ignored))
        if unknown:
            known = ", ".join(sorted(self._seen | set(ignored)))
            raise ConfigError(f"{self.path(unknown[0])}: unknown setting (known: {known})")


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
