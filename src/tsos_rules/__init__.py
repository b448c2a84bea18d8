"""tsos-rules: keep a channel sales pipeline honest.

The public API: :func:`check` a snapshot, the :class:`Engine`, the plugin markers, and the
model and rule types plugin authors build on.
"""

from tsos_rules.api import check
from tsos_rules.config import Config, load_config
from tsos_rules.engine import Engine
from tsos_rules.errors import (
    ConfigError,
    ConnectorError,
    FatalConnectorError,
    InputError,
    PackValidationError,
    RetriableConnectorError,
    SkippableRecordError,
    TsosRulesError,
    deprecated,
)
from tsos_rules.findings import Decision, Finding, Findings, Severity
from tsos_rules.inline import ChangeChecker, check_change
from tsos_rules.markers import hookimpl, hookspec
from tsos_rules.model import (
    Account,
    Activity,
    CloseDateChange,
    Lead,
    Opportunity,
    Partner,
    PartnerConsent,
    Snapshot,
    User,
)
from tsos_rules.org import OrgProfile
from tsos_rules.rules.declarative.loader import load_declarative_pack
from tsos_rules.rules.spec import Parameter, PythonRule, RulePack, RuleSpec, Violation

__version__ = "0.2.0"


def __getattr__(name: str) -> object:
    """Deprecated names still resolve for one release, with a DeprecationWarning."""
    error = deprecated(name)
    if error is not None:
        return error
    raise AttributeError(f"module 'tsos_rules' has no attribute {name!r}")


__all__ = [
    "Account",
    "Activity",
    "ChangeChecker",
    "CloseDateChange",
    "Config",
    "ConfigError",
    "ConnectorError",
    "Decision",
    "Engine",
    "FatalConnectorError",
    "Finding",
    "Findings",
    "InputError",
    "Lead",
    "Opportunity",
    "OrgProfile",
    "PackValidationError",
    "Parameter",
    "Partner",
    "PartnerConsent",
    "PythonRule",
    "RetriableConnectorError",
    "RulePack",
    "RuleSpec",
    "Severity",
    "SkippableRecordError",
    "Snapshot",
    "TsosRulesError",
    "User",
    "Violation",
    "__version__",
    "check",
    "check_change",
    "hookimpl",
    "hookspec",
    "load_config",
    "load_declarative_pack",
]
