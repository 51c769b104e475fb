"""Handling of the commands that the domain rejects in the ticket's current state.

Historic logs break the rules that live commands follow: activity after closing, a
second resolution, a close without a resolution. The domain model stays strict. This
table decides how each rejection is handled: run a command first and retry, record
that the command was not needed, or skip it with a reason. A rejection that the table
does not cover stops the ticket, so nothing of it is stored.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from domain.values import TicketStatus
from ticketing.importer.quirks import Quirk

ACTIVE = frozenset({TicketStatus.OPEN, TicketStatus.PENDING, TicketStatus.ON_HOLD})
FINISHED = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED})

# Commands that resume real work on a ticket, so a finished ticket is reopened for them.
_WORK_COMMANDS = frozenset({"assign", "move_to_pending", "put_on_hold", "resolve"})


class RecoveryKind(StrEnum):
    REOPEN_FIRST = "reopen_first"
    RESOLVE_FIRST = "resolve_first"
    NOT_NEEDED = "not_needed"  # the ticket is already in the state the command leads to
    SKIP = "skip"  # the command cannot apply to a ticket in this state and is dropped


@dataclass(frozen=True)
class Recovery:
    kind: RecoveryKind
    # Why a command was not needed or skipped, for the summary after the action's name.
    reason: str = ""
    quirk: Quirk | None = None


def recovery_for(command: str, status: TicketStatus, *, same_resolution: bool = False) -> Recovery | None:
    """Return how to handle `command` rejected on a ticket in `status`, or None to fail the ticket."""
    if status is TicketStatus.CLOSED:
        return _on_closed(command)
    if status is TicketStatus.RESOLVED:
        return _on_resolved(command, same_resolution)
    if status in ACTIVE:
        return _on_active(command, status)
    return None


def _on_closed(command: str) -> Recovery | None:
    if command == "close":
        return Recovery(RecoveryKind.NOT_NEEDED, "ticket already closed")
    if command in _WORK_COMMANDS:
        return Recovery(RecoveryKind.REOPEN_FIRST, quirk=Quirk.REOPENED_AFTER_CLOSE)
    # Replies and notes record a fact about the ticket. They do not mean that work
    # resumed, so they do not reopen it.
    if command in {"reply_as_agent", "resume"}:
        return Recovery(RecoveryKind.SKIP, "ticket is closed")
    return None


def _on_resolved(command: str, same_resolution: bool) -> Recovery | None:
    if command == "resolve":
        if same_resolution:
            return Recovery(RecoveryKind.NOT_NEEDED, "ticket already resolved with that resolution")
        return Recovery(RecoveryKind.REOPEN_FIRST, quirk=Quirk.RESOLUTION_CHANGED)
    if command in _WORK_COMMANDS:
        return Recovery(RecoveryKind.REOPEN_FIRST, quirk=Quirk.REOPENED_AFTER_RESOLUTION)
    if command in {"reply_as_agent", "resume"}:
        return Recovery(RecoveryKind.SKIP, "ticket is resolved")
    return None


def _on_active(command: str, status: TicketStatus) -> Recovery | None:
    if command == "close":
        return Recovery(RecoveryKind.RESOLVE_FIRST, quirk=Quirk.CLOSED_WITHOUT_RESOLUTION)
    if command == "reopen":
        return Recovery(RecoveryKind.NOT_NEEDED, "ticket not resolved or closed")
    if command == "resume" and status is TicketStatus.OPEN:
        return Recovery(RecoveryKind.NOT_NEEDED, "ticket not pending or on hold")
    if command == "move_to_pending" and status is TicketStatus.PENDING:
        return Recovery(RecoveryKind.NOT_NEEDED, "ticket already pending")
    if command == "put_on_hold" and status is TicketStatus.ON_HOLD:
        return Recovery(RecoveryKind.NOT_NEEDED, "ticket already on hold")
    return None
