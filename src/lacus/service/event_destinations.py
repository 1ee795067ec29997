"""Where each configured event destination is: its cursor, its backlog, its last error."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from lacus.core import delivery
from lacus.core.clock import utcnow
from lacus.service.lake import Lake, Principal
from lacus.service.settings import EventDestinationSettings, StompDestination


@dataclass(frozen=True, slots=True)
class DestinationStatus:
    name: str
    kind: str
    target: str
    """Where events go: host:port/destination (STOMP), url subject (NATS)."""
    types: list[str]
    last_id: int | None
    """Every event up to this id was acknowledged (None: the sender has not started on it)."""
    delivered: int
    backlog: int
    """Events committed past the cursor that this destination wants."""
    oldest_waiting: datetime | None
    failures: int
    last_error: str | None
    last_error_at: datetime | None
    sender: str | None
    """The sender holding the destination (while its lease lasts)."""
    updated_at: datetime | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def target(config: EventDestinationSettings) -> str:
    if isinstance(config, StompDestination):
        return f"{config.host}:{config.port}{config.destination}"
    stream = f" (stream {config.stream})" if config.stream else ""
    return f"{config.url} {config.subject}{stream}"


def destination_status(lake: Lake) -> list[DestinationStatus]:
    """Every configured destination, in configuration order."""
    configured = lake.settings.event_destinations
    horizon = lake.event_log.horizon()
    now = utcnow()
    found = []
    with lake.read() as conn:
        cursors = delivery.cursors(conn, [config.name for config in configured])
        for config in configured:
            cursor = cursors.get(config.name)
            waiting, oldest = (
                delivery.backlog(
                    conn, after=cursor.last_id, upto=horizon, types=config.event_types()
                )
                if cursor is not None
                else (0, None)
            )
            live = cursor is not None and (cursor.lease_until or now) > now
            found.append(
                DestinationStatus(
                    name=config.name,
                    kind=config.kind,
                    target=target(config),
                    types=list(config.types),
                    last_id=cursor.last_id if cursor else None,
                    delivered=cursor.delivered if cursor else 0,
                    backlog=waiting,
                    oldest_waiting=oldest,
                    failures=cursor.failures if cursor else 0,
                    last_error=cursor.last_error if cursor else None,
                    last_error_at=cursor.last_error_at if cursor else None,
                    sender=cursor.claimed_by if cursor and live else None,
                    updated_at=cursor.updated_at if cursor else None,
                )
            )
    return found


def list_destinations(lake: Lake, principal: Principal) -> list[DestinationStatus]:
    """``destination_status`` for an admin (destinations name brokers and their backlogs)."""
    return destination_status(lake)
