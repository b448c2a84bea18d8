"""The in-line HTTP service: ``tsos-rules serve`` (Starlette on uvicorn).

``POST /v1/check`` (docs/contract.md's body), ``POST /v1/<name>/check`` for each in-line adapter
plugins register (Salesforce built in, HubSpot with its plugin), ``POST /v1/admin/reload``,
``GET /healthz`` and ``GET /openapi.json``. See ``docs/inline.md``.
"""

from tsos_rules.server.app import Service, create_app
from tsos_rules.server.settings import Secret, ServeSettings

__all__ = ["Secret", "ServeSettings", "Service", "create_app"]
