"""tsos-rules-hubspot: a HubSpot CRM connector for tsos-rules.

Install it next to tsos-rules and write ``[connector] type = "hubspot"`` in the config; the
connector is found through the ``tsos_rules`` entry point (:mod:`tsos_rules_hubspot.plugin`).
"""

from tsos_rules_hubspot.client import HubSpotClient, HubSpotRequestError
from tsos_rules_hubspot.connector import HubSpotConnector
from tsos_rules_hubspot.settings import HubSpotSettings

__version__ = "0.1.0"

__all__ = [
    "HubSpotClient",
    "HubSpotConnector",
    "HubSpotRequestError",
    "HubSpotSettings",
    "__version__",
]
