"""Errors raised by the domain model.

Every message is a full sentence that names the aggregate type and id, and for a
rejected command also the aggregate's current state and the command, so that a log
line or an API response can show it unchanged. The same facts are attributes, for
callers that branch on them.
"""

from __future__ import annotations

from typing import ClassVar
from uuid import UUID


class DomainError(Exception):
    """Base class of every error that the domain model raises."""

    # Retrying the same command against the same state gives the same error, so a
    # caller should not retry a domain error. Adapters check this flag by class.
    retriable: ClassVar[bool] = False

    def __init__(
        self,
        message: str,
        *,
        aggregate_type: str | None = None,
        aggregate_id: UUID | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id


class CommandRejected(DomainError):
    """A business rule rejects the command in the aggregate's current state."""

    def __init__(
        self,
        message: str,
        *,
        aggregate_type: str,
        aggregate_id: UUID,
        state: str,
        command: str,
    ) -> None:
        super().__init__(message, aggregate_type=aggregate_type, aggregate_id=aggregate_id)
        self.state = state
        self.command = command


class InvalidTransition(CommandRejected):
    """The aggregate's current state does not allow the command at all."""


class AlreadyExists(CommandRejected):
    """A creation command names an id that another command already created."""


class NotFound(DomainError, LookupError):
    """No aggregate of the requested type has the requested id."""


class InvalidValue(DomainError, ValueError):
    """A command argument is malformed or out of range."""

    def __init__(
        self,
        message: str,
        *,
        field: str,
        value: object,
        aggregate_type: str | None = None,
        aggregate_id: UUID | None = None,
    ) -> None:
        super().__init__(message, aggregate_type=aggregate_type, aggregate_id=aggregate_id)
        self.field = field
        self.value = value
