"""Shared fixtures: an isolated environment and an in-process ``tsos-rules`` runner."""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Callable, Iterator, Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import attrs
import pytest

import tsos_rules
from tsos_rules.cli import run
from tsos_rules.engine import Engine, filter_severity
from tsos_rules.findings import Finding, Findings
from tsos_rules.snapshot.document import snapshot_from_dict


@attrs.frozen
class CliResult:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


#: Rule packs and connectors installed as entry points (e.g. ``contrib/`` packages).
THIRD_PARTY_PLUGINS = ",".join(sorted({ep.name for ep in entry_points(group="tsos_rules")}))


@pytest.fixture
def isolated_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defaults only: no config file from the environment, no third-party plugins.

    The doctrine tests judge the built-in ``tsos`` pack; a pack installed into the same venv
    (e.g. a ``contrib/`` package) must not add findings or change exit codes under them.
    Modules opt in with ``pytestmark = pytest.mark.usefixtures("isolated_env")``.
    """
    monkeypatch.delenv("TSOS_RULES_CONFIG", raising=False)
    monkeypatch.delenv("TSOS_RULES_DEBUG", raising=False)
    if THIRD_PARTY_PLUGINS:
        monkeypatch.setenv("TSOS_RULES_DISABLE_PLUGINS", THIRD_PARTY_PLUGINS)
    else:
        monkeypatch.delenv("TSOS_RULES_DISABLE_PLUGINS", raising=False)


@pytest.fixture
def cli(isolated_env: None, capsys: pytest.CaptureFixture[str]) -> Callable[..., CliResult]:
    """Run ``tsos-rules ARGS...`` in-process; returns exit code, stdout and stderr."""

    def invoke(*args: str) -> CliResult:
        capsys.readouterr()
        code = run(list(args))
        captured = capsys.readouterr()
        return CliResult(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def write_json(
    isolated_env: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., str]:
    """Write a document into a fresh working directory; returns its relative file name."""
    monkeypatch.chdir(tmp_path)

    def write(document: Any, name: str = "snapshot.json") -> str:
        text = document if isinstance(document, str) else json.dumps(document)
        (tmp_path / name).write_text(text, encoding="utf-8")
        return name

    return write


# -- judging builder snapshots with the built-in doctrine -----------------------------------
# Snapshot-first shorthands for the doctrine tests: ``found(snapshot(...), RULE)`` judges the
# snapshot as ``tsos_rules.check`` would and answers one question about one rule.

_ENGINES: dict[str, Engine] = {}


def _engine(config: Mapping[str, Any] | None) -> Engine:
    """One engine per distinct config dict, built the way ``tsos_rules.check`` builds it.

    ``check`` discovers plugins on every call, which costs far more than judging a small
    snapshot; reusing the engine keeps the suite fast while running the same evaluation.
    """
    key = json.dumps(config, sort_keys=True, default=str)
    if key not in _ENGINES:
        _ENGINES[key] = Engine.from_config(config)
    return _ENGINES[key]


def _evaluate(
    snap: Mapping[str, Any],
    *,
    as_of: str | dt.date | None = None,
    config: Mapping[str, Any] | str | Path | None = None,
    include_info: bool = False,
) -> Findings:
    if config is not None and not isinstance(config, Mapping):
        return tsos_rules.check(snap, as_of=as_of, config=config, include_info=include_info)
    model, _ = snapshot_from_dict(snap)
    day_ = dt.date.fromisoformat(as_of) if isinstance(as_of, str) else as_of
    result = _engine(config).evaluate(model, day_)
    return filter_severity(result, include_info=include_info)


@pytest.fixture
def evaluate(isolated_env: None) -> Callable[..., Findings]:
    """``evaluate(snap, as_of=, config=, include_info=False)``: what ``tsos_rules.check``
    returns (``tests/test_engine.py`` checks they agree), from a cached engine."""
    return _evaluate


@pytest.fixture
def findings(evaluate: Callable[..., Findings]) -> Callable[..., list[Finding]]:
    """``findings(snap, **evaluate_options)``: every finding on ``snap``, in report order."""

    def findings_(snap: Mapping[str, Any], **kwargs: Any) -> list[Finding]:
        return list(evaluate(snap, **kwargs))

    return findings_


@pytest.fixture
def found(evaluate: Callable[..., Findings]) -> Callable[..., set[tuple[str, str, str]]]:
    """``found(snap, rule, **evaluate_options)``: ``{(record_id, reason, severity)}`` of one
    rule's findings on ``snap``."""

    def found_(snap: Mapping[str, Any], rule: str, **kwargs: Any) -> set[tuple[str, str, str]]:
        return {
            (f.record_id, f.reason, f.severity.value)
            for f in evaluate(snap, **kwargs)
            if f.rule == rule
        }

    return found_


@pytest.fixture
def reasons(evaluate: Callable[..., Findings]) -> Callable[..., set[str]]:
    """``reasons(snap, rule, record_id="o1", **evaluate_options)``: the reasons ``rule`` gives
    against one record."""

    def reasons_(
        snap: Mapping[str, Any], rule: str, record_id: str = "o1", **kwargs: Any
    ) -> set[str]:
        return {
            f.reason
            for f in evaluate(snap, **kwargs)
            if f.rule == rule and f.record_id == record_id
        }

    return reasons_


@pytest.fixture
def only(evaluate: Callable[..., Findings]) -> Callable[..., Finding]:
    """``only(snap, rule, **evaluate_options)``: the single finding of ``rule`` on ``snap``
    (fails when there are none or several)."""

    def only_(snap: Mapping[str, Any], rule: str, **kwargs: Any) -> Finding:
        hits = [f for f in evaluate(snap, **kwargs) if f.rule == rule]
        assert len(hits) == 1, [(f.record_id, f.reason) for f in hits]
        return hits[0]

    return only_


#: Installed plugins whose in-line adapters the in-line and server tests call.
CRM_PLUGINS = frozenset({"hubspot"})


@pytest.fixture
def inline_env(isolated_env: None, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``isolated_env``, but with the CRM plugins' in-line routes on (``/v1/hubspot/check``),
    and no cached in-line checker from another test."""
    from tsos_rules.inline import clear_checkers
    from tsos_rules.plugins import DISABLE_ENV

    disabled = os.environ.get(DISABLE_ENV, "").split(",")
    monkeypatch.setenv(DISABLE_ENV, ",".join(n for n in disabled if n and n not in CRM_PLUGINS))
    clear_checkers()
    yield
    clear_checkers()
