"""Salesforce validation rules compiled from the doctrine's block rules (issue 12).

``generate(config)`` compiles; ``write_source`` writes SFDX source; ``validation_rules`` is the
click command (``tsos-rules salesforce validation-rules``). See docs/salesforce-validation.md.
"""

from __future__ import annotations

from tsos_rules.connectors.salesforce.validation.generate import Generation, generate
from tsos_rules.connectors.salesforce.validation.metadata import write_source
from tsos_rules.connectors.salesforce.validation.rules import (
    BYPASS_PERMISSION,
    CompiledRule,
    Skipped,
)

__all__ = [
    "BYPASS_PERMISSION",
    "CompiledRule",
    "Generation",
    "Skipped",
    "generate",
    "write_source",
]
