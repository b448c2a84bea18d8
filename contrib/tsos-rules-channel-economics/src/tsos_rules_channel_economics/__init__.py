"""tsos-rules-channel-economics: partner credit limits, discounts and tier margins."""

from tsos_rules_channel_economics.rules import PACK, PACK_NAME, tier_margins

__all__ = ["PACK", "PACK_NAME", "tier_margins"]
__version__ = "0.1.0"
