"""The HTML run report: one self-contained interactive page (inline CSS, script and SVG charts;
no network), written by ``tsos-rules sync --html FILE`` and fit to be mailed or hosted.

The worklist travels as JSON in a ``<script type="application/json">`` element and the page's
own script filters, sorts, searches and pages it in the browser (only one page of rows is in
the document at a time). Chart geometry comes from :mod:`.charts`.
"""

from __future__ import annotations

from collections.abc import Mapping
from importlib.resources import files
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from tsos_rules.report.charts import charts
from tsos_rules.report.worklist_data import script_json, worklist_payload

if TYPE_CHECKING:
    from tsos_rules.sync.summary import WorklistPage


def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("tsos_rules", "report/templates"),
        autoescape=jinja2.select_autoescape(["html", "j2"]),
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )


def _asset(name: str) -> Markup:
    """A stylesheet or script of the page, inlined as it is (it holds no ``</``)."""
    text = files("tsos_rules").joinpath("report", "templates", name).read_text(encoding="utf-8")
    if "</" in text:  # would end the <style> or <script> element early
        raise ValueError(f"report/templates/{name} must not contain '</'")
    return Markup(text)


def render_html(summary: Mapping[str, Any], worklist: WorklistPage | None = None) -> str:
    """The whole report page for one run (``SyncSummary.to_dict()``), with the worklist of
    open findings when ``worklist`` is given (``SyncSummary.worklist``)."""
    specs = worklist.rules if worklist is not None else {}
    titles = {rule: spec.title for rule, spec in specs.items()}
    payload = worklist_payload(worklist, as_of=str(summary.get("as_of", "")))
    unapproved = sum(int(bad) for _, _, bad in summary.get("charts", {}).get("pushes_by_month", []))
    template = _environment().get_template("sync_report.html.j2")
    return template.render(
        s=summary,
        charts=charts(summary, titles),
        titles=titles,
        unapproved=unapproved,
        worklist_rows=len(worklist.rows) if worklist is not None else None,
        data=Markup(script_json(payload)),
        style=_asset("report.css"),
        script=_asset("report.js"),
    )
