"""tsos-rules-mutual-operating-period: partner fiscal calendars and the quarter-end rule."""

from tsos_rules_mutual_operating_period.calendars import FiscalCalendar, FiscalQuarter
from tsos_rules_mutual_operating_period.rules import PACK, RULE_ID

__all__ = ["PACK", "RULE_ID", "FiscalCalendar", "FiscalQuarter"]
__version__ = "0.1.0"
