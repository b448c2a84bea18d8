"""Deprecated: the doctrine pack moved to :mod:`tsos_rules.packs.tsos` (kept for one release)."""

import warnings

from tsos_rules.packs.tsos import PACK, RULES, TSOS_PACK

warnings.warn(
    "tsos_rules.rules.tsos_pack is deprecated; import from tsos_rules.packs.tsos",
    DeprecationWarning,
    stacklevel=2,
)

__all__ = ["PACK", "RULES", "TSOS_PACK"]
