"""Every extension point of tsos-rules. Built-ins implement these exactly as plugins do.

A plugin is a module or object with functions decorated by ``tsos_rules.hookimpl``, published
under the ``tsos_rules`` entry-point group::

    [project.entry-points.tsos_rules]
    my_pack = "my_package.plugin"

Each hook's docstring is its reference documentation (``docs/hooks.md`` is generated from them
and a test fails when a hook is undocumented).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tsos_rules.markers import hookspec

if TYPE_CHECKING:
    import click

    from tsos_rules.config import Config
    from tsos_rules.connectors.inline import InlineAdapter
    from tsos_rules.facts import FactIndex
    from tsos_rules.findings import Findings
    from tsos_rules.report.sections import ReportSection
    from tsos_rules.rules.spec import RulePack


@hookspec
def tsos_rules_register_packs(register: Callable[[RulePack], None]) -> None:
    """Register rule packs by calling ``register(pack)`` once per pack.

    ``register`` validates the pack as it goes and raises ``PackValidationError`` naming the
    rule and the offending key, so a broken pack fails loudly at load time instead of
    silently never firing.

    :param register: call it with each :class:`tsos_rules.RulePack` this plugin provides.
    :returns: nothing.

    Example::

        from tsos_rules import hookimpl, RulePack, load_declarative_pack

        @hookimpl
        def tsos_rules_register_packs(register):
            register(load_declarative_pack(Path(__file__).with_name("hygiene.yaml")))

    .. versionadded:: 0.1
    """


@hookspec
def tsos_rules_register_connectors(register: Callable[[str, Any], None]) -> None:
    """Register CRM connectors by calling ``register(name, factory)`` once per connector.

    ``factory(settings)`` receives the connector's config table (a dict) and returns an object
    that implements :class:`tsos_rules.connectors.base.Connector`. The name is what admins
    write in ``[connector] type = "..."``.

    :param register: call it with the connector's name and its factory.
    :returns: nothing.

    Example::

        @hookimpl
        def tsos_rules_register_connectors(register):
            register("hubspot", HubSpotConnector.from_settings)

    .. versionadded:: 0.1
    """


@hookspec
def tsos_rules_report_sections(index: FactIndex, findings: Findings) -> list[ReportSection] | None:
    """Contribute titled tables to the sync report (HTML and JSON) for one evaluated snapshot.

    Called once per report with the snapshot's fact index (records, joins, derived values)
    and the findings. Return a list of :class:`tsos_rules.report.sections.ReportSection`, or
    None to add nothing. Results of all plugins are shown in plugin registration order.

    The hook may be called several times for one report, each call with part of the records:
    once per batch of a sync, once per worker of ``check DIR --executor processes``. Give each
    row a sort key (``ReportSection.of(..., row_keys=[...])``, one per row, e.g. the close
    date and the deal id): rows are then merged by key, one row per key, in key order, as one
    call with every record would list them. Without row keys a sharded ``check`` reads the
    whole snapshot again to call the hook once, and a sync lists a row once, in the order
    first seen.

    :param index: the :class:`tsos_rules.facts.FactIndex` of the evaluated records.
    :param findings: the :class:`tsos_rules.Findings` of this evaluation.
    :returns: a list of report sections, or None.

    Example::

        @hookimpl
        def tsos_rules_report_sections(index, findings):
            def key(o):  # optional: how the rows of several calls merge (their order)
                return (o.close_date.isoformat() if o.close_date else "", o.id)

            deals = sorted(index.snapshot.opportunities, key=key)
            rows = [(o.id, o.close_date) for o in deals]
            keys = [key(o) for o in deals]
            return [ReportSection.of("Close dates", ["deal", "close date"], rows, row_keys=keys)]

    .. versionadded:: 0.1
    """


@hookspec
def tsos_rules_register_commands(cli: click.Group) -> None:
    """Add commands or command groups to the ``tsos-rules`` command line (click).

    ``cli`` is a click group that collects this plugin's commands: decorate functions with
    ``@cli.command()`` or ``@cli.group()``, or call ``cli.add_command(command)``. They appear in
    ``tsos-rules --help`` and run like built-in ones, with the same error handling and exit
    codes (:class:`tsos_rules.errors.ExitCode`). Commands are collected only when a name that
    is not built in is looked up (or the command list is shown), so plugins cost a built-in
    command nothing. A built-in command cannot be replaced: a plugin naming one, or raising
    here, is reported by name and skipped, and the other plugins' commands still load.

    :param cli: a :class:`click.Group`; add this plugin's commands to it.
    :returns: nothing.

    Example::

        import click
        from tsos_rules import hookimpl

        @hookimpl
        def tsos_rules_register_commands(cli):
            @cli.command(help="Say why a deal is stalled.")
            @click.argument("deal_id")
            def stalled(deal_id):
                click.echo(f"{deal_id}: no next step")

    .. versionadded:: 0.2
    """


@hookspec
def tsos_rules_register_inline_adapters(register: Callable[[InlineAdapter], None]) -> None:
    """Register in-line adapters by calling ``register(adapter)`` once per CRM.

    An :class:`tsos_rules.connectors.inline.InlineAdapter` gives ``tsos-rules serve`` the route
    ``POST /v1/<name>/check``: how the CRM's request body becomes a change for
    :mod:`tsos_rules.inline` (with the same field map as the plugin's sync connector), how the
    request is authenticated (the service's bearer token by default, or the adapter's own
    verifier, such as a CRM's request signature), how the decision is rendered, and the
    route's OpenAPI description. A name registered twice is an error.

    :param register: call it with each :class:`~tsos_rules.connectors.inline.InlineAdapter`.
    :returns: nothing.

    Example::

        from tsos_rules.connectors.inline import Binding, CheckRequest, InlineAdapter

        def bind(context):
            def adapt(body):
                return CheckRequest.of("pipedrive", "opportunity", None, to_deal(body))
            return Binding(adapt)

        @hookimpl
        def tsos_rules_register_inline_adapters(register):
            register(InlineAdapter("pipedrive", bind, summary="Judge a Pipedrive deal."))

    .. versionadded:: 0.2
    """


@hookspec
def tsos_rules_explain_notes(rule_id: str, config: Config) -> list[str] | None:
    """Add notes to ``tsos-rules explain RULE_ID``: what this plugin does with the rule.

    Called once per ``explain`` with the rule's id and the loaded configuration (the same
    ``--config`` the command read). Return short lines of plain text (each is wrapped and
    printed under "Notes from <plugin>"), or None to add nothing. A plugin that raises is
    reported by name and skipped; the rest of the explanation still prints.

    :param rule_id: the explained rule's id, e.g. ``tsos.close-date-locked``.
    :param config: the :class:`tsos_rules.config.Config` in effect.
    :returns: a list of note lines, or None.

    Example::

        @hookimpl
        def tsos_rules_explain_notes(rule_id, config):
            if config.connector.get("type") != "pipedrive":
                return None
            return [f"{rule_id}: Pipedrive deals are judged after the save, by the sync."]

    .. versionadded:: 0.2
    """
