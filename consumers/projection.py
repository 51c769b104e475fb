"""The port through which the consumer machinery drives a projection."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import psycopg

    from ticketing.stream.decoded import DecodedEvent


@runtime_checkable
class Projection(Protocol):
    """Tables of one consumer group, kept up to date from decoded events.

    The machinery calls every method inside its own transaction and owns the
    bookkeeping tables `consumer_offsets`, `applied_events`, `dead_letters_count` and
    `consumer_clock` in the same schema, so a projection must not create tables of
    those names.

    A projection may also define `verify_ignored_columns: Mapping[str, Collection[str]]`,
    the columns per table that `ticketing replay --verify` does not compare because they
    legitimately differ between the live tables and a rebuild (a wall-clock send time, for
    example). It is optional, so it is not part of the protocol's members.
    """

    group: str
    """Consumer group id and default schema name, e.g. "reports"."""

    topics: tuple[str, ...]
    """Logical topic names ("tickets", "agents", "customers"), before the topic prefix."""

    def create_tables(self, conn: psycopg.Connection, schema: str) -> None:
        """Create the projection's tables and views in `schema` if they are missing.

        Called for the live schema and for replay's shadow schema, so it must not
        name any schema other than `schema`.
        """
        ...

    def apply(self, conn: psycopg.Connection, schema: str, event: DecodedEvent) -> None:
        """Apply one event inside the batch transaction.

        The final tables must not depend on how events of different aggregates
        interleave, as long as each aggregate's events arrive in version order.
        An exception rolls back this event alone, and the event goes to the
        dead-letter topic.
        """
        ...

    def after_batch(self, conn: psycopg.Connection, schema: str, clock: datetime) -> None:
        """Run time-driven work at the end of every batch transaction.

        `clock` is the maximum `occurred_at` the group has seen (event time), so
        time conditions fire the same way when history is replayed. The machinery
        calls it after every poll, also when the poll returned nothing, but only once
        the group has seen at least one event: before that there is no clock.
        """
        ...
