"""Value enums shared by the aggregates, their events and every consumer.

Each enum is a `StrEnum` whose value is a lowercase snake_case word. The JSON
transcoder of the event store writes a member as its plain string and reads it back
as that string, so a reloaded event may carry "high" where a fresh one carries
`Priority.HIGH`. The two compare equal, and `Priority("high")` restores the member.
"""

from __future__ import annotations

from enum import StrEnum


class Channel(StrEnum):
    EMAIL = "email"
    CHAT = "chat"
    PHONE = "phone"
    CALLBACK = "callback"
    WEB_FORM = "web_form"
    SOCIAL = "social"
    API = "api"


class Priority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"


class ReplyVisibility(StrEnum):
    PUBLIC = "public"
    INTERNAL = "internal"


class Resolution(StrEnum):
    SOLVED = "solved"
    DUPLICATE = "duplicate"
    INVALID = "invalid"
    WONT_FIX = "wont_fix"


class EmploymentKind(StrEnum):
    REGULAR = "regular"
    TEMPORARY = "temporary"


class PauseReason(StrEnum):
    BREAK = "break"
    LUNCH = "lunch"
    MEETING = "meeting"
    TRAINING = "training"
    OTHER = "other"


class LeavingKind(StrEnum):
    VOLUNTARY = "voluntary"
    INVOLUNTARY = "involuntary"


class TicketStatus(StrEnum):
    OPEN = "open"
    PENDING = "pending"
    ON_HOLD = "on_hold"
    RESOLVED = "resolved"
    CLOSED = "closed"
    MERGED = "merged"


class AgentStatus(StrEnum):
    """Presence of an agent. OFFLINE, ONLINE and PAUSED are the employed states."""

    OFFLINE = "offline"
    ONLINE = "online"
    PAUSED = "paused"
    LEFT = "left"


class CallbackStatus(StrEnum):
    REQUESTED = "requested"
    COMPLETED = "completed"
    MISSED = "missed"


class CustomerStatus(StrEnum):
    ACTIVE = "active"
    FORGOTTEN = "forgotten"
