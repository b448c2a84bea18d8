"""``tsos-rules check FILE|DIR``: judge a snapshot file (or sharded directory), print findings."""

from __future__ import annotations

import datetime as dt
import os
import sys
from typing import IO, TYPE_CHECKING

import attrs
import click

from tsos_rules.cli._common import config_from, config_option, parse_date, skip_teardown
from tsos_rules.cli._plugin_failures import allow_plugin_failures_option, plugin_failure_exit
from tsos_rules.errors import ExitCode

if TYPE_CHECKING:
    from tsos_rules.config import Config
    from tsos_rules.engine import Engine, ExecutorSpec
    from tsos_rules.facts import FactIndex
    from tsos_rules.findings import Findings
    from tsos_rules.model import Snapshot
    from tsos_rules.policy.apply import Policy
    from tsos_rules.report.sections import ReportSection
    from tsos_rules.snapshot.sharded import Manifest

#: ``--executor processes`` without ``--jobs`` uses one worker per CPU up to this many. Judging
#: is under half of a run, so a third worker would save little, and each holds its partitions:
#: memory, not time, sets the default.
MAX_AUTO_JOBS = 2


@click.command()
@click.argument("file", metavar="FILE|DIR|-")
@click.option(
    "--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True
)
@click.option("--as-of", callback=parse_date, help="Evaluate as of this date (YYYY-MM-DD).")
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
    help=(
        "Worker processes for --executor processes or a new Dask LocalCluster (0: one per CPU, "
        "at most 2). Without --executor, --jobs 2 or more judges a large snapshot (20,000+ "
        "records) on a process pool; by default it is judged here, which is faster today."
    ),
)
@click.option(
    "--executor",
    "executor",
    metavar="local|processes|dask[=ADDRESS]",
    help=(
        "Where records are judged: here, a process pool, or Dask (a new LocalCluster, or the "
        "cluster whose scheduler is at ADDRESS, e.g. dask=tcp://10.0.0.5:8786). "
        "Default: [engine] executor, else here (local) unless --jobs is 2 or more."
    ),
)
@allow_plugin_failures_option
@config_option
def check(
    file: str,
    fmt: str,
    as_of: dt.date | None,
    patterns: str | None,
    include_info: bool,
    jobs: int,
    executor: str | None,
    allow_plugin_failures: bool,
    config_path: str | None,
) -> None:
    """Evaluate a snapshot FILE (JSON; '-' reads stdin) and print the findings.

    DIR is a sharded snapshot ('tsos-rules snapshot split' writes one): with --executor
    processes or dask (or --jobs 2 and more) each worker reads, indexes and judges its own
    shards; the findings are those of the file it was split from.

    Exits 0 when no finding is a block, 1 when at least one is, 2 when the file or the
    configuration cannot be used or a plugin failed to load (its rules did not run;
    --allow-plugin-failures runs without it), 3 when the executor fails (a partition
    failed twice, or the Dask scheduler cannot be reached).

    \b
    Examples:
      tsos-rules check snapshot.json
      tsos-rules check snapshot.json --format json --as-of 2026-11-24
      cat snapshot.json | tsos-rules check - --rules 'tsos.next-step-*,tsos.close-*'
      tsos-rules check big-snapshot.json --executor processes --jobs 2
      tsos-rules check big-snapshot.json --executor dask=tcp://scheduler:8786
      tsos-rules check big-shards --executor processes --jobs 2
      tsos-rules check snapshot.json --allow-plugin-failures
    """
    from tsos_rules.engine import Engine, ExecutorSpec, filter_severity
    from tsos_rules.engine.recipe import available_cpus
    from tsos_rules.plugins import collect_report_sections
    from tsos_rules.snapshot._memory import bulk_allocation
    from tsos_rules.snapshot.document import load_snapshot

    # A snapshot FILE never needs the sharded reader (nor --format json the table renderer):
    # they are imported when used.
    directory = file != "-" and os.path.isdir(file)  # what snapshot.sharded.is_sharded tells

    selected = [p.strip() for p in patterns.split(",") if p.strip()] if patterns else None
    config = config_from(config_path)
    workers = jobs or config.engine_workers or min(available_cpus(), MAX_AUTO_JOBS)
    chosen = executor or config.engine_executor
    spec = None
    if chosen:
        where = "--executor" if executor else "engine.executor"
        spec = ExecutorSpec.parse(
            chosen, where=where, workers=workers, connect_timeout=config.engine_connect_timeout
        )
    engine = Engine.from_config(config, rules=selected)
    load_failures = tuple(engine.plugin_manager.failures)  # not the report sections' ones
    source: str | IO[str] = sys.stdin if file == "-" else file
    #: The parsed document, held until the process exits (``skip_teardown``): not freed.
    document_kept: list[object] = []
    # Without a chosen executor, one process unless --jobs asks for more: cutting
    # partitions costs more than the judging it spreads (docs/scale.md, measured).
    pool = workers if spec is not None else max(jobs, 1)
    with bulk_allocation(keep=True):
        sharded = None
        if directory:
            from tsos_rules.snapshot.sharded import read_manifest

            sharded = _judge_sharded(
                config,
                engine,
                read_manifest(file),
                spec,
                pool,
                as_of,
                checked=selected is None,
                include_info=include_info,
            )
        if sharded is not None:
            findings, sections = sharded
        else:
            if directory:
                from tsos_rules.snapshot.sharded import load_sharded

                snapshot = load_sharded(file)
            else:
                snapshot, _ = load_snapshot(source, keep=document_kept)
            index = engine.index(snapshot, as_of)
            findings = filter_severity(
                engine.evaluate_index(index, executor=spec, jobs=pool), include_info=include_info
            )
            sections = collect_report_sections(engine.plugin_manager, index, findings)
            findings = _with_policy(config, engine, findings, index, checked=selected is None)
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
        from tsos_rules.report.table import render_section, render_table

        click.echo(render_table(findings, color=sys.stdout.isatty()), nl=False)
        for section in sections:
            click.echo("\n" + render_section(section), nl=False)
    skip_teardown()
    failed = plugin_failure_exit(load_failures, allow=allow_plugin_failures)
    # An exempt block, or a block of a rule in shadow mode, is listed but does not set exit 1.
    sys.exit(failed or (ExitCode.BLOCK if findings.blocking else ExitCode.OK))


def _judge_sharded(
    config: Config,
    engine: Engine,
    manifest: Manifest,
    spec: ExecutorSpec | None,
    pool: int,
    as_of: dt.date | None,
    *,
    checked: bool,
    include_info: bool,
) -> tuple[Findings, list[ReportSection]] | None:
    """A sharded snapshot judged by workers that each read their own shards (``processes``
    or ``dask``, or ``--jobs 2`` or more): its findings at the chosen severities, marked by
    the policy, and the plugins' report sections; None when it is judged as one snapshot
    instead (``local``). The workers return their shards' section rows and their findings'
    scopes (for exemptions by account or partner); a plugin whose section has no row keys
    has its sections computed here from the whole snapshot, read again."""
    from tsos_rules.engine import ExecutorSpec, filter_severity
    from tsos_rules.engine.sharded import ShardAsk, judge_sharded
    from tsos_rules.findings import Findings
    from tsos_rules.plugins import collect_report_sections
    from tsos_rules.snapshot.sharded import load_sharded, read_reference

    if spec is None:
        if pool < 2:
            return None
        spec = ExecutorSpec("processes", workers=pool)
    if spec.kind == "local":
        return None
    reference = read_reference(manifest)
    day = as_of or reference.as_of or engine.org.today()
    policy = _policy(config, engine, day, reference, checked=checked)
    pm = engine.plugin_manager
    ask = ShardAsk(
        sections=bool(pm.hook.tsos_rules_report_sections.get_hookimpls()),
        include_info=include_info,
        scopes=policy.waivers.needs_scope,
    )
    result = judge_sharded(engine, manifest, spec, day, ask)
    findings = filter_severity(
        Findings.collect(result.findings, records=result.records), include_info=include_info
    )
    sections = result.sections or []
    if ask.sections and result.sections is None:
        index = engine.index(load_sharded(manifest.directory), day)
        sections = collect_report_sections(pm, index, findings)
    waived = policy.waived(findings, scopes=result.scopes)
    findings = attrs.evolve(findings, waived=waived) if waived else findings
    return findings, sections


def _with_policy(
    config: Config, engine: Engine, findings: Findings, index: FactIndex, *, checked: bool
) -> Findings:
    """The findings marked exempt (``[[exemptions]]``, the snapshot's CRM-field exemptions,
    those ``exempt add`` stored in the configured state file) or shadow (``[rules.rollout]``);
    a CRM exemption not honoured is said on stderr. ``checked``: every rule is loaded, so an
    exemption or mode naming none is an error."""
    policy = _policy(config, engine, index.as_of, index.snapshot, checked=checked)
    waived = policy.waived(findings, index)
    return attrs.evolve(findings, waived=waived) if waived else findings


def _policy(
    config: Config, engine: Engine, as_of: dt.date, snapshot: Snapshot, *, checked: bool
) -> Policy:
    """The policy for a check as of ``as_of`` (CRM-field exemptions from ``snapshot``)."""
    from tsos_rules.policy.apply import Policy
    from tsos_rules.sync.settings import SyncSettings

    sync = SyncSettings.from_config(config)
    stored = []
    if sync.state_path.is_file():  # else there is nothing to read: skip the state's imports
        from tsos_rules.sync.state.stored_exemptions import read_active

        stored = read_active(
            sync.state_path,
            sync.connector_type,
            as_of,
            warn=lambda message: click.echo(f"warning: {message}", err=True),
        )
    policy = Policy.from_config(
        config,
        engine.specs if checked else (),
        as_of,
        crm_rows=[e.to_row() for e in snapshot.exemptions],
        extra=stored,
        check=checked,
    )
    for problem in policy.problems:
        click.echo(f"warning: CRM exemption not honoured: {problem}", err=True)
    return policy
