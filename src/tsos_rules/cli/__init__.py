"""The ``tsos-rules`` command (click). Every subcommand's help ends with examples.

Exit codes: 0 no ``block`` finding, 1 at least one ``block`` finding, 2 the input or the
configuration could not be used (one line on stderr, never a traceback), 3 a connector failed,
4 an internal error (a bug: please report it with ``TSOS_RULES_DEBUG=1`` output).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any, NoReturn, TypeVar

import click

from tsos_rules.config import Config, load_config
from tsos_rules.errors import ConnectorError, ExitCode, TsosRulesError

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = ExitCode.INPUT) -> NoReturn:
    click.echo(f"tsos-rules: {message}", err=True)
    sys.exit(code)


def _parse_date(_: click.Context, __: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected a date YYYY-MM-DD, got {value!r}") from None


config_option = click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    default=None,
    help="TOML config file (default: $TSOS_RULES_CONFIG, else built-in defaults).",
)


def _config(config_path: str | None) -> Config:
    return load_config(config_path)


class TsosGroup(click.Group):
    """Maps the project's errors onto exit codes and one-line messages, never tracebacks."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConnectorError as exc:
            fail(str(exc), ExitCode.CONNECTOR)
        except TsosRulesError as exc:
            fail(str(exc), ExitCode.INPUT)
        except (click.exceptions.Exit, click.ClickException, click.Abort, SystemExit):
            raise
        except BrokenPipeError:
            # The reader went away (e.g. `| head`): stop quietly, as Unix tools do.
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(ExitCode.OK)
        except Exception as exc:
            if os.environ.get("TSOS_RULES_DEBUG"):
                raise
            fail(
                f"internal error: {type(exc).__name__}: {exc} "
                "(re-run with TSOS_RULES_DEBUG=1 for details, and please report it)",
                ExitCode.INTERNAL,
            )


@click.group(cls=TsosGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="tsos-rules")
def main() -> None:
    """Keep a channel sales pipeline honest: run the doctrine's rules against your CRM.

    \b
    Examples:
      tsos-rules check examples/pipeline.json
      tsos-rules rules
      tsos-rules explain tsos.next-step-required
    """


@main.command()
@click.argument("file", metavar="FILE|-")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option("--as-of", callback=_parse_date, help="Evaluate as of this date (YYYY-MM-DD).")
@click.option(
    "--rules",
    "patterns",
    help="Only rules whose id matches these globs, comma-separated (e.g. 'tsos.close-*').",
)
@click.option("--include-info", is_flag=True, help="Also report info findings.")
@click.option(
    "--jobs",
    "-j",
    type=click.IntRange(min=0),
    default=0,
    help="Processes judging a large snapshot (0: one per CPU, at most 2; 1: this one only).",
)
@config_option
def check(
    file: str,
    fmt: str,
    as_of: dt.date | None,
    patterns: str | None,
    include_info: bool,
    jobs: int,
    config_path: str | None,
) -> None:
    """Evaluate a snapshot FILE (JSON; '-' reads stdin) and print the findings.

    Exits 0 when no finding is a block, 1 when at least one is, 2 when the file or the
    configuration cannot be used.

    \b
    Examples:
      tsos-rules check snapshot.json
      tsos-rules check snapshot.json --format json --as-of 2026-11-24
      cat snapshot.json | tsos-rules check - --rules 'tsos.next-step-*,tsos.close-*'
      tsos-rules check big-snapshot.json --jobs 2
    """
    from tsos_rules.engine import Engine, filter_severity
    from tsos_rules.engine._forked import available_cpus
    from tsos_rules.plugins import collect_report_sections
    from tsos_rules.report.table import render_section, render_table
    from tsos_rules.snapshot._memory import bulk_allocation
    from tsos_rules.snapshot.document import load_snapshot

    config = _config(config_path)
    selected = [p.strip() for p in patterns.split(",") if p.strip()] if patterns else None
    engine = Engine.from_config(config, rules=selected)
    source: str | IO[str] = sys.stdin if file == "-" else file
    with bulk_allocation(keep=True):
        snapshot, _ = load_snapshot(source)
        index = engine.index(snapshot, as_of)
        # This command runs no threads, so judging in forked workers is safe here.
        jobs = jobs or min(available_cpus(), MAX_AUTO_JOBS)
        findings = filter_severity(
            engine.evaluate_index(index, jobs=jobs), include_info=include_info
        )
        sections = collect_report_sections(engine.plugin_manager, index, findings)
    engine.close()
    if fmt == "json":
        import orjson

        document = findings.to_dict()
        if sections:
            document["sections"] = [section.to_dict() for section in sections]
        sys.stdout.flush()
        sys.stdout.buffer.write(orjson.dumps(document, option=orjson.OPT_INDENT_2))
        sys.stdout.buffer.write(b"\n")
        sys.stdout.buffer.flush()
    else:
        click.echo(render_table(findings, color=sys.stdout.isatty()), nl=False)
        for section in sections:
            click.echo("\n" + render_section(section), nl=False)
    global _skip_teardown
    _skip_teardown = True
    sys.exit(ExitCode.BLOCK if findings.blocking else ExitCode.OK)


@main.group("rules", invoke_without_command=True)
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table")
@config_option
@click.pass_context
def list_rules(ctx: click.Context, fmt: str, config_path: str | None) -> None:
    """List every loaded rule: id, severity, pack and its doctrine in one line.

    \b
    Examples:
      tsos-rules rules
      tsos-rules rules --format json | jq '.[].id'
      tsos-rules rules validate my_rules.yaml
    """
    if ctx.invoked_subcommand is not None:
        return
    from tsos_rules.engine import Engine

    engine = Engine.from_config(_config(config_path))
    specs = sorted(engine.specs.values(), key=lambda s: s.id)
    engine.close()
    if fmt == "json":
        rows = [
            {
                "id": s.id,
                "severity": s.severity.value,
                "pack": s.pack,
                "title": s.title,
                "doctrine": s.doctrine,
            }
            for s in specs
        ]
        click.echo(json.dumps(rows, indent=1, ensure_ascii=False))
        return
    width = max((len(s.id) for s in specs), default=10)
    for spec in specs:
        click.echo(f"{spec.id:<{width}}  {spec.severity.value:<5}  {spec.pack}")
        doctrine = spec.doctrine if len(spec.doctrine) <= 74 else spec.doctrine[:73] + "…"
        click.echo(f"    {doctrine}")
    click.echo(f"\n{len(specs)} rule(s). Details: tsos-rules explain RULE_ID")


@main.command()
@click.argument("rule_id")
@config_option
def explain(rule_id: str, config_path: str | None) -> None:
    """Print a rule's doctrine, what it checks, its reasons and its parameters.

    \b
    Examples:
      tsos-rules explain tsos.close-date-locked
    """
    import textwrap

    from tsos_rules.engine import Engine

    config = _config(config_path)
    engine = Engine.from_config(config)
    engine.close()
    spec = engine.specs.get(rule_id)
    if spec is None:
        close = [s for s in engine.specs if rule_id.split(".")[-1] in s]
        hint = f" (did you mean {', '.join(sorted(close))}?)" if close else ""
        fail(f"{rule_id}: no such rule{hint}; see 'tsos-rules rules'")
    pack = next(p for p in engine.packs if p.name == spec.pack)

    def para(title: str, text: str) -> None:
        click.echo(f"{title}:")
        click.echo(textwrap.fill(text, 78, initial_indent="  ", subsequent_indent="  "))

    click.echo(f"{spec.id} — {spec.title}")
    click.echo(f"severity: {spec.severity.value}    pack: {pack.name} {pack.version}")
    click.echo(f"judges: {', '.join(spec.record_types)}\n")
    para("Doctrine", f"“{spec.doctrine}”" + (f" ({spec.source})" if spec.source else ""))
    if spec.semantics:
        para("What it checks", spec.semantics)
    if spec.reasons:
        click.echo("Reasons:")
        for reason, text in spec.reasons.items():
            click.echo(f"  {reason}: {text}")
    if spec.parameters:
        click.echo(f"Parameters (config: [packs.{pack.name}]):")
        declared = {p.name: p for p in pack.parameters}
        for name in spec.parameters:
            current = engine.parameters[pack.name][name]
            click.echo(
                textwrap.fill(
                    f"{name} = {current!r} (default {declared[name].default!r}): "
                    f"{declared[name].description}",
                    78,
                    initial_indent="  ",
                    subsequent_indent="    ",
                )
            )
    if spec.org_settings:
        click.echo("Org settings it reads (config: [org]):")
        for name in spec.org_settings:
            value = getattr(engine.org, name)
            shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
            click.echo(f"  {name} = {shown}")
    if spec.remediation:
        para("What to do", spec.remediation)


@main.command()
def plugins() -> None:
    """List installed plugins: name, version and the hooks each implements.

    \b
    Examples:
      tsos-rules plugins
      TSOS_RULES_DISABLE_PLUGINS=my_pack tsos-rules plugins
    """
    from tsos_rules.plugins import get_plugin_manager

    pm = get_plugin_manager(disabled=load_config().plugins_disabled)
    dists = {plugin: dist for plugin, dist in pm.list_plugin_distinfo()}
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: item[0]):
        if plugin is None:
            continue
        dist = dists.get(plugin)
        version = pm.versions.get(name) or (dist.version if dist is not None else "built-in")
        hooks = ", ".join(sorted(impl.name for impl in pm.get_hookcallers(plugin) or []))
        click.echo(f"{name}  {version}  {hooks}")
    for failure in pm.failures:
        click.echo(f"{failure.name}  FAILED  {failure.error}")


#: ``check --jobs 0`` uses one worker per CPU up to this many. Judging is under half of a run,
#: so a third worker would save little, and each copies the pages it touches (~500 MB at 100k
#: deals): memory, not time, sets the default.
MAX_AUTO_JOBS = 2

#: Set by commands that end holding a whole snapshot in memory: freeing millions of objects
#: one by one at interpreter exit takes a third of a second per 100k deals and helps nobody.
_skip_teardown = False


def console() -> None:
    """The ``tsos-rules`` executable: the CLI, then a fast exit after ``check``.

    Everything the run writes is flushed first; only the freeing of memory is skipped.
    """
    try:
        main.main()
    except SystemExit as exc:
        if not _skip_teardown:
            raise
        code = exc.code if isinstance(exc.code, int) else ExitCode.OK if exc.code is None else 1
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI in-process and return its exit code (for tests and embedding)."""
    try:
        main.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except SystemExit as exc:
        return int(exc.code or 0)
    except click.ClickException as exc:
        exc.show()
        return ExitCode.INPUT
    return ExitCode.OK


from tsos_rules.cli import connectors as _commands_connectors_check  # noqa: E402,F401
from tsos_rules.cli import sdk as _commands_sdk  # noqa: E402,F401
from tsos_rules.cli import serve as _commands_serve  # noqa: E402,F401
from tsos_rules.cli import sync as _commands_sync  # noqa: E402,F401
