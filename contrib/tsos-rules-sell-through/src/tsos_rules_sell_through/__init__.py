"""The ``sell-through`` pack: prospects found in distributors' sell-through reports."""

from tsos_rules_sell_through.reports import Purchase, SellThrough, read_reports
from tsos_rules_sell_through.rules import PACK, RULE_ID

__all__ = ["PACK", "RULE_ID", "Purchase", "SellThrough", "read_reports"]
