"""The commands that a mapping can ask for, per activity or per status.

A mapping lists, for each activity (event logs) or status (snapshot logs), the
actions to run on the ticket, in order. Each action becomes one Ticket command. The
executor adds the commands that a rejected action needs first, such as reopening a
closed ticket, and counts them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.values import Resolution


class ActionKind(StrEnum):
    OPEN = "open"
    ASSIGN = "assign"
    FIRST_REPLY = "first_reply"
    NOTE = "note"
    MOVE_TO_PENDING = "move_to_pending"
    PUT_ON_HOLD = "put_on_hold"
    RESUME = "resume"
    RESOLVE = "resolve"
    REOPEN = "reopen"
    CLOSE = "close"


# Actions whose YAML form may carry a text template, and the text they use without one.
DEFAULT_BODIES = {
    ActionKind.FIRST_REPLY: "{activity}",
    ActionKind.NOTE: "{activity}",
}

# Fields that a reply or note template may use.
BODY_FIELDS = frozenset({"activity", "case", "resource"})


@dataclass(frozen=True)
class Action:
    """One step of a row: a Ticket command with its argument from the mapping."""

    kind: ActionKind
    resolution: Resolution | None = None
    body: str | None = None

    def describe(self) -> str:
        if self.resolution is not None:
            return f"{self.kind}({self.resolution})"
        return str(self.kind)
