"""Base aggregate of the helpdesk: business time, idempotency keys and state guards.

Every event carries, beyond eventsourcing's originator_id, originator_version and
timestamp (the recorded time), the business time `occurred_at`, the idempotency key
`command_key` of the command that caused it and the `actor_id` of who acted.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from enum import StrEnum
from typing import Any, NoReturn

from eventsourcing.domain import Aggregate

from domain.errors import CommandRejected, InvalidTransition, InvalidValue
from domain.validation import utc_datetime, uuid_value

ACTOR_KINDS = ("agent", "customer", "system")


class HelpdeskAggregate(Aggregate):
    """Aggregate that remembers applied command keys and the last business time.

    Subclasses define `status`, `_state_phrase()` and `_actions`, which maps a
    command name to what the command would have done, as a phrase after "cannot".
    """

    # No annotations at class level here or in subclasses, because eventsourcing
    # turns an aggregate class with annotations into a dataclass with a new __init__.
    _actions = dict[str, str]()

    class Event(Aggregate.Event):
        occurred_at: datetime
        command_key: str | None
        actor_id: str | None

        # Names of event fields that contain personal data. Audit output redacts
        # them once the customer they belong to has been forgotten.
        # A plain class attribute, not a dataclass field, because it has no annotation.
        personal_fields = frozenset[str]()

        def __post_init__(self) -> None:
            super().__post_init__()
            # Events read back from the store skip __init__, so this check only runs
            # for new events. The command methods have already normalised the value.
            if self.occurred_at.tzinfo is None:
                msg = f"{type(self).__qualname__} got a naive occurred_at {self.occurred_at!r}."
                raise InvalidValue(msg, field="occurred_at", value=self.occurred_at)

        def mutate(self, aggregate: Any) -> Any:
            aggregate = super().mutate(aggregate)
            aggregate._record_event(self)
            return aggregate

    class Created(Event, Aggregate.Created):
        pass

    def __init__(self) -> None:
        # eventsourcing calls __init__ while it applies the created event, both when
        # the aggregate is created and when it is rebuilt from stored events.
        self._command_keys: dict[str, int] = {}
        self._creation_command_key: str | None = None
        self._last_occurred_at: datetime | None = None

    @property
    def last_occurred_at(self) -> datetime | None:
        """Business time of the latest event."""
        return self._last_occurred_at

    @property
    def creation_command_key(self) -> str | None:
        return self._creation_command_key

    def has_applied(self, command_key: str | None) -> bool:
        """Return True if an event of this aggregate carries `command_key`."""
        return command_key is not None and command_key in self._command_keys

    def _record_event(self, event: HelpdeskAggregate.Event) -> None:
        # Runs for new and replayed events alike, so the keys are part of the state
        # that snapshots store.
        if event.command_key is not None:
            self._command_keys[event.command_key] = event.originator_version
        if event.originator_version == self.INITIAL_VERSION:
            self._creation_command_key = event.command_key
        self._last_occurred_at = event.occurred_at

    def _business_time(self, occurred_at: object) -> datetime:
        """Return `occurred_at` in UTC. Reject a time before the latest event.

        Business time and version order of one aggregate agree, so that the audit
        command can rebuild the state at a business time by replaying a prefix of
        the events.
        """
        at = utc_datetime(occurred_at, field="occurred_at")
        last = self._last_occurred_at
        if last is not None and at < last:
            raise InvalidValue(
                f"occurred_at {at.isoformat()} is earlier than the latest event of "
                f"{self._describe()} at {last.isoformat()}. Business time of one "
                f"aggregate must not go backwards, so send its commands in the order "
                f"they happened.",
                field="occurred_at",
                value=occurred_at,
                aggregate_type=type(self).__name__,
                aggregate_id=self.id,
            )
        return at

    def _trigger(
        self,
        event_class: type[HelpdeskAggregate.Event],
        *,
        occurred_at: datetime,
        command_key: str | None,
        actor_id: str | None,
        **fields: Any,
    ) -> None:
        self.trigger_event(
            event_class,
            occurred_at=occurred_at,
            command_key=check_command_key(command_key),
            actor_id=check_actor_id(actor_id),
            **fields,
        )

    def _describe(self) -> str:
        return f"{type(self).__name__} {self.id}"

    @property
    def status(self) -> StrEnum:
        raise NotImplementedError

    def _state_phrase(self) -> str:
        """Return the current state as a predicate, such as "is on hold" or "has left"."""
        raise NotImplementedError

    def _transition_hint(self, command: str, allowed: Collection[StrEnum]) -> str:
        """Return a sentence with the step that would make the command acceptable."""
        noun = type(self).__name__.lower()
        return f"The {command} command needs {article(noun)} {noun} that {status_predicate(allowed)}."

    def _require_status(self, command: str, allowed: Collection[StrEnum]) -> None:
        """Raise InvalidTransition unless the current status is one of `allowed`."""
        if self.status in allowed:
            return

        hint = self._transition_hint(command, allowed)
        self._reject(command, f"{self._cannot(command)} {hint}", InvalidTransition)

    def _cannot(self, command: str) -> str:
        """Return "<Type> <id> <state> and cannot <action>." for a rejected command."""
        action = self._actions.get(command, command.replace("_", " "))
        return f"{self._describe()} {self._state_phrase()} and cannot {action}."

    def _reject(
        self,
        command: str,
        message: str,
        error_class: type[CommandRejected] = CommandRejected,
    ) -> NoReturn:
        raise error_class(
            message,
            aggregate_type=type(self).__name__,
            aggregate_id=self.id,
            state=str(self.status),
            command=command,
        )


def status_words(status: StrEnum | str) -> str:
    """Return a status as prose: "on_hold" becomes "on hold"."""
    return str(status).replace("_", " ")


def status_predicate(allowed: Collection[StrEnum]) -> str:
    """Return "is open, pending or on hold" for the given statuses, in their enum order."""
    words = [status_words(status) for status in type_ordered(allowed)]
    if len(words) == 1:
        return f"is {words[0]}"
    return f"is {', '.join(words[:-1])} or {words[-1]}"


def type_ordered(statuses: Collection[StrEnum]) -> list[StrEnum]:
    if not statuses:
        return []
    enum_type = type(next(iter(statuses)))
    return [member for member in enum_type if member in statuses]


def article(noun: str) -> str:
    return "an" if noun[:1] in "aeiou" else "a"


def check_command_key(command_key: object) -> str | None:
    """Return the idempotency key. Reject a blank key, which would match nothing useful."""
    if command_key is None:
        return None
    if not isinstance(command_key, str) or not command_key.strip():
        raise InvalidValue(
            f"command_key must be None or a non-empty string, but got {command_key!r}.",
            field="command_key",
            value=command_key,
        )
    return command_key


def check_actor_id(actor_id: object) -> str | None:
    """Return `actor_id` if it reads "agent:<uuid>", "customer:<uuid>" or "system:<name>"."""
    if actor_id is None:
        return None

    kind, _, reference = actor_id.partition(":") if isinstance(actor_id, str) else ("", "", "")
    if kind not in ACTOR_KINDS or not reference.strip():
        raise InvalidValue(
            f"actor_id {actor_id!r} is invalid. Use 'agent:<uuid>', 'customer:<uuid>' "
            f"or 'system:<name>'.",
            field="actor_id",
            value=actor_id,
        )

    if kind != "system":
        uuid_value(reference, field="actor_id")
    return actor_id


def creation_metadata(
    occurred_at: object, command_key: object, actor_id: object
) -> dict[str, Any]:
    """Return the checked business time, command key and actor of a created event."""
    return {
        "occurred_at": utc_datetime(occurred_at, field="occurred_at"),
        "command_key": check_command_key(command_key),
        "actor_id": check_actor_id(actor_id),
    }
