"""The kit for plugin authors: snapshot builders, runners, a fake CRM and the connector contract.

Everything here is public API, documented in ``docs/tutorial-rule-pack.md`` and
``docs/tutorial-connector.md``::

    from tsos_rules.testing import channel_deal, evaluate, found, snapshot

    findings = evaluate(MY_PACK, snapshot(opportunities=[channel_deal(amount=900_000)]))
    assert found(findings, "my-pack.big-deal") == {("o1", "too_big", "warn")}

The pytest fixtures (``tsos_plugin``, ``tsos_check``, ``tsos_engine``, ``tsos_cli``) live in
:mod:`tsos_rules.testing.pytest_plugin`, which a test suite opts into with
``-p tsos_rules.testing.pytest_plugin``. :class:`ConnectorContract` (which needs pytest) is
imported on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tsos_rules.testing import builders
from tsos_rules.testing.builders import (
    AS_OF,
    TODAY,
    account,
    activity,
    at,
    change,
    channel_account,
    channel_deal,
    closed_deal,
    consent,
    day,
    deal,
    lead,
    partner,
    snapshot,
    to_snapshot,
    user,
)
from tsos_rules.testing.docs import ExampleRun, run_markdown_example
from tsos_rules.testing.fake_connector import (
    FakeConnector,
    FakeCRM,
    FakeTask,
    fake_connector_plugin,
)
from tsos_rules.testing.run import (
    evaluate,
    facts_for,
    found,
    installed_connectors,
    installed_packs,
    only,
    reasons,
    report_sections,
)

if TYPE_CHECKING:
    from tsos_rules.testing.contract import ConnectorContract, contract_snapshot, missing_related

__all__ = [
    "AS_OF",
    "TODAY",
    "ConnectorContract",
    "ExampleRun",
    "FakeCRM",
    "FakeConnector",
    "FakeTask",
    "account",
    "activity",
    "at",
    "builders",
    "change",
    "channel_account",
    "channel_deal",
    "closed_deal",
    "consent",
    "contract_snapshot",
    "day",
    "deal",
    "evaluate",
    "facts_for",
    "fake_connector_plugin",
    "found",
    "installed_connectors",
    "installed_packs",
    "lead",
    "missing_related",
    "only",
    "partner",
    "reasons",
    "report_sections",
    "run_markdown_example",
    "snapshot",
    "to_snapshot",
    "user",
]

_CONTRACT_NAMES = ("ConnectorContract", "contract_snapshot", "missing_related")


def __getattr__(name: str) -> Any:
    # The contract suite imports pytest; load it only when asked for.
    if name in _CONTRACT_NAMES:
        from tsos_rules.testing import contract

        return getattr(contract, name)
    raise AttributeError(f"module 'tsos_rules.testing' has no attribute {name!r}")
