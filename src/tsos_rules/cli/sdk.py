"""Pack authors' command: ``tsos-rules rules validate PATH`` (the ``rules`` group in
:mod:`tsos_rules.cli.rules` adds it), also ``tsos-rules validate-pack``, its alias."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import attrs
import click

from tsos_rules.errors import ExitCode, TsosRulesError

#: File suffixes read as declarative packs.
PACK_SUFFIXES = (".yaml", ".yml", ".json")


@attrs.frozen
class PackCheck:
    """The verdict on one pack file."""

    path: str
    ok: bool
    pack: str | None = None
    version: str | None = None
    rules: tuple[str, ...] = ()
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(
            self, value_serializer=lambda _, __, v: list(v) if isinstance(v, tuple) else v
        )


def pack_files(path: Path) -> list[Path]:
    """``path`` itself, or every pack file under a directory (sorted, recursively)."""
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.suffix in PACK_SUFFIXES and p.is_file())
    return [path]


def check_pack_file(path: Path) -> PackCheck:
    """Load a declarative pack, validate it and compile it (no native code is loaded)."""
    from tsos_rules.rules.declarative.compiler import compile_plans
    from tsos_rules.rules.declarative.loader import load_declarative_pack

    if not path.exists():
        return PackCheck(str(path), False, error="no such file or directory")
    try:
        pack = load_declarative_pack(path)
        pack.validate()
        # What the engine compiles with the defaults: what durable cannot run fails here.
        compile_plans(pack, pack.declarative_rules, pack.resolve_parameters(None))
    except TsosRulesError as exc:
        message = str(exc)
        prefix = f"{path}: "
        return PackCheck(str(path), False, error=message.removeprefix(prefix))
    return PackCheck(
        str(path),
        True,
        pack=pack.name,
        version=pack.version,
        rules=tuple(spec.id for spec in pack.specs),
    )


def _validate(paths: tuple[str, ...], fmt: str) -> None:
    checks = [check_pack_file(file) for path in paths for file in pack_files(Path(path))]
    if not checks:
        click.echo(
            f"tsos-rules: no pack files ({', '.join(PACK_SUFFIXES)}) in {', '.join(paths)}",
            err=True,
        )
        sys.exit(ExitCode.INPUT)
    if fmt == "json":
        click.echo(json.dumps([check.to_dict() for check in checks], indent=1, ensure_ascii=False))
    else:
        for check in checks:
            if check.ok:
                click.echo(
                    f"ok    {check.path}: pack {check.pack} {check.version}, "
                    f"{len(check.rules)} rule(s): {', '.join(check.rules)}"
                )
            else:
                click.echo(f"FAIL  {check.path}: {check.error}")
    failed = sum(1 for check in checks if not check.ok)
    if fmt != "json" and len(checks) > 1:
        click.echo(f"\n{len(checks) - failed} of {len(checks)} pack file(s) valid.")
    sys.exit(ExitCode.INPUT if failed else ExitCode.OK)


_HELP = """Check declarative rule pack files (YAML or JSON) without loading them into a run.

PATH is a pack file or a directory (every .yaml, .yml and .json file under it). Each pack is
parsed, validated against the format (errors name the rule id and the offending key) and
compiled on the rules backend. Exits 0 when every pack is valid, 2 otherwise.

\b
Examples:
  tsos-rules rules validate my_rules.yaml
  tsos-rules rules validate /etc/tsos-rules/packs --format json
"""

_options = [
    click.argument("paths", nargs=-1, required=True, metavar="PATH..."),
    click.option(
        "--format",
        "fmt",
        type=click.Choice(["table", "json"]),
        default="table",
        show_default=True,
    ),
]


def _command(name: str) -> click.Command:
    def callback(paths: tuple[str, ...], fmt: str) -> None:
        _validate(paths, fmt)

    command: Any = callback
    for option in reversed(_options):
        command = option(command)
    if name == "validate-pack":
        return click.command(name, help=_ALIAS + _HELP, short_help=_ALIAS.strip())(command)
    return click.command(name, help=_HELP)(command)


#: ``validate-pack`` predates ``rules validate``; it stays for scripts, and says what it is.
_ALIAS = "Alias of tsos-rules rules validate (the same command and options).\n\n"

#: ``tsos-rules rules validate PATH...``: the command, where rule commands live.
rules_validate = _command("validate")
#: ``tsos-rules validate-pack PATH...``: the same command under its older name.
validate_pack = _command("validate-pack")
