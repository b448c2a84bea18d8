"""What a team decides about its rules' findings, the same for ``check``, ``sync`` and in-line:
exemptions (waivers with expiry) and each rule's rollout mode (shadow, annotate, enforce)."""

from tsos_rules.policy.exemptions import Exemption, Waivers
from tsos_rules.policy.rollout import Mode, ModePolicy

__all__ = ["Exemption", "Mode", "ModePolicy", "Waivers"]
