"""Authentication: the service's bearer token, compared in constant time.

A route whose CRM signs its requests brings its own verifier with its in-line adapter
(:class:`tsos_rules.connectors.inline.Verifier`); the core checks only the bearer token.
"""

from __future__ import annotations

from tsos_rules.errors import SignatureProblem as SignatureProblem  # its old home
from tsos_rules.server.settings import Secret


def bearer_ok(authorization: str | None, token: Secret) -> bool:
    """True when the ``Authorization`` header is ``Bearer <token>`` (constant-time compare)."""
    if not authorization:
        return False
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return token.matches(value.strip())
