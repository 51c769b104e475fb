"""Apply one batch of records and the consumed offsets in one PostgreSQL transaction."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import psycopg
import structlog
from kafka.structs import TopicPartition

from consumers import bookkeeping
from consumers.dead_letters import DeadLetter, DeadLetterSink
from ticketing.stream.codec import DecodeError

if TYPE_CHECKING:
    from consumers.projection import Projection
    from ticketing.stream.decoded import DecodedEvent

log = structlog.get_logger(__name__)

# Errors that the event did not cause: the connection or the server failed, or PostgreSQL
# chose this transaction as a deadlock or serialization victim. The batch is rolled back
# and retried instead of dead-lettering a good event.
TRANSIENT_ERRORS: tuple[type[Exception], ...] = (psycopg.OperationalError, psycopg.InterfaceError)


@dataclass(frozen=True)
class Delivery:
    """One record as the group receives it: its position, its bytes, and its event once known.

    Records read from Kafka carry `value` and get decoded in the batch. Records read from
    the event store carry `event` already, and `offset` is the notification id.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None = None
    value: bytes | None = None
    headers: tuple[tuple[str, bytes], ...] = ()
    event: DecodedEvent | None = None

    @classmethod
    def from_record(cls, record: Any) -> Delivery:
        """Return the delivery of a kafka-python ConsumerRecord."""
        return cls(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=tuple((name, value if value is not None else b"") for name, value in record.headers or ()),
        )


Decoder = Callable[[Delivery], "DecodedEvent"]
"""Turns a delivery into its event; raises ticketing.stream.codec.DecodeError for bytes that are no event."""


class StaleOffsets(Exception):
    """The stored offsets are not where this consumer believed them to be.

    Raised inside the batch transaction so that it rolls back; `stored` maps each
    mismatched partition to its stored offset, or None when no row exists.
    """

    def __init__(self, stored: Mapping[TopicPartition, int | None]) -> None:
        super().__init__(f"stored offsets moved: {dict(stored)}")
        self.stored = dict(stored)


@dataclass
class BatchResult:
    records: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_letters: list[DeadLetter] = field(default_factory=list)
    max_occurred_at: datetime | None = None
    clock: datetime | None = None


@dataclass(frozen=True)
class GroupTarget:
    """Destination of a batch: the projection, its schema and the group name stored with offsets."""

    projection: Projection
    schema: str
    group: str


def commit_batch(
    conn: psycopg.Connection,
    target: GroupTarget,
    deliveries: Sequence[Delivery],
    positions: Mapping[TopicPartition, int],
    believed: Mapping[TopicPartition, int | None],
    decode: Decoder,
    sink: DeadLetterSink,
) -> BatchResult:
    """Apply `deliveries` and store `positions` as the next offsets, all in one transaction.

    `believed` is the stored offset this consumer started reading each partition from
    (None: no row, read from the beginning). If a stored offset differs, another writer
    moved it (a replay swapped the schema, or another group member took the partition),
    so the transaction rolls back with StaleOffsets and the caller must re-seek.

    The stored offset is compared with the consumer's own start position, not with the
    first record's offset: the two legitimately differ by transaction markers and
    compacted records, which Kafka never returns but which occupy offsets.
    """
    result = BatchResult(records=len(deliveries))
    with conn.transaction():
        stored = bookkeeping.lock_offsets(conn, target.schema, target.group, positions)
        stale = {tp: stored.get(tp) for tp in positions if stored.get(tp) != believed.get(tp)}
        if stale:
            raise StaleOffsets(stale)

        for delivery in deliveries:
            _apply_one(conn, target, delivery, decode, result)

        result.clock = bookkeeping.advance_clock(conn, target.schema, target.group, result.max_occurred_at)
        if result.clock is not None:
            target.projection.after_batch(conn, target.schema, result.clock)

        bookkeeping.save_offsets(conn, target.schema, target.group, positions)
        bookkeeping.count_dead_letters(conn, target.schema, target.group, result.dead_letters)
        # Published before the commit: a crash between the two publishes the letters again
        # on the retry, while the other order could lose them.
        sink.publish(result.dead_letters)
    return result


def _apply_one(
    conn: psycopg.Connection,
    target: GroupTarget,
    delivery: Delivery,
    decode: Decoder,
    result: BatchResult,
) -> None:
    with structlog.contextvars.bound_contextvars(
        topic=delivery.topic, partition=delivery.partition, offset=delivery.offset
    ):
        try:
            event = delivery.event if delivery.event is not None else decode(delivery)
        except DecodeError as error:
            # Decoding the same bytes fails the same way every time. Any other exception
            # from the decoder is a fault of this process (a schema file missing, say), and
            # stops the group instead of draining the topic into the dead letters.
            result.dead_letters.append(_dead_letter(target.group, delivery, "decode", error))
            return

        if result.max_occurred_at is None or event.occurred_at > result.max_occurred_at:
            result.max_occurred_at = event.occurred_at

        try:
            # A savepoint per event: a failing apply leaves none of its rows behind,
            # and the rest of the batch still commits.
            with conn.transaction():
                if not bookkeeping.mark_applied(conn, target.schema, event.aggregate_id, event.aggregate_version):
                    result.duplicates += 1
                    log.debug("duplicate event dropped", event_id=event.event_id)
                    return
                target.projection.apply(conn, target.schema, event)
        except TRANSIENT_ERRORS:
            raise
        except Exception as error:
            result.dead_letters.append(_dead_letter(target.group, delivery, "apply", error, event))
            return
        result.applied += 1


def _dead_letter(
    group: str, delivery: Delivery, stage: str, error: Exception, event: DecodedEvent | None = None
) -> DeadLetter:
    letter = DeadLetter(
        group=group,
        topic=delivery.topic,
        partition=delivery.partition,
        offset=delivery.offset,
        key=delivery.key,
        value=delivery.value,
        headers=delivery.headers,
        stage=stage,
        error_type=type(error).__name__,
        error=str(error) or repr(error),
    )
    log.warning(
        "event sent to dead letters",
        group=group,
        stage=stage,
        error_type=letter.error_type,
        error=letter.error,
        event_type=event.event_type if event else None,
        aggregate_id=event.aggregate_id if event else None,
        aggregate_version=event.aggregate_version if event else None,
    )
    return letter
