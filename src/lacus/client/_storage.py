"""Reaching an RSE's storage from the client: pick the first protocol this machine can use."""

from __future__ import annotations

from typing import Any

from lacus.errors import LacusError, ProtocolNotFound
from lacus.storage import StorageBackend, open_backend


def backend_for(rse: dict[str, Any]) -> StorageBackend:
    """A storage backend for one of ``rse``'s protocols, or ProtocolNotFound saying why not."""
    reasons: list[str] = []
    for protocol in rse.get("protocols", []):
        try:
            return open_backend(
                protocol["scheme"],
                prefix=protocol["prefix"],
                hostname=protocol.get("hostname", ""),
                port=protocol.get("port", 0),
                **_shared_options(protocol.get("extended_attributes")),
            )
        except LacusError as exc:
            reasons.append(f"{protocol['scheme']}: {exc.message}")
    detail = "; ".join(reasons) if reasons else "it has no protocols"
    raise ProtocolNotFound(f"cannot reach RSE {rse['rse']} from this machine ({detail})")


REDACTED = "***"
"""What the server shows instead of a credential: the client brings its own (environment)."""


def _shared_options(options: dict[str, Any] | None) -> dict[str, Any]:
    """The protocol's backend options the server shares (``verify``, ``timeout``...)."""
    return {key: value for key, value in (options or {}).items() if value != REDACTED}
