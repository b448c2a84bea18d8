"""``python -m tsos_rules`` is the ``tsos-rules`` command."""

from tsos_rules.cli import console

console()
