"""The decoded form of an event read from a topic, as every consumer receives it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class DecodedEvent:
    """One domain event as carried on a topic: the envelope plus the event's own fields.

    `fields` contains enum values as their strings, UUIDs as strings, datetimes as aware
    UTC datetimes and dates as `datetime.date`.
    """

    event_id: str
    event_type: str
    aggregate_type: str
    aggregate_id: str
    aggregate_version: int
    occurred_at: datetime
    recorded_at: datetime
    correlation_id: str | None = None
    causation_id: str | None = None
    command_key: str | None = None
    actor_id: str | None = None
    fields: dict[str, Any] = field(default_factory=dict)

    @property
    def dedup_key(self) -> tuple[str, int]:
        """Key by which consumers drop the relay's at-least-once duplicates."""
        return (self.aggregate_id, self.aggregate_version)
