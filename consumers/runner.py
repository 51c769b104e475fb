"""A consumer-group process: Kafka in, one PostgreSQL transaction per batch out.

Each event takes effect on the projection tables exactly once, by three choices. The
consumed offsets are stored in PostgreSQL in the batch transaction, and the consumer
resumes from PostgreSQL, not from Kafka. Redelivered events are rejected by
`applied_events`. A rebalance can only happen inside `poll()`, when no transaction is
open, so it never interrupts a half-applied batch. Offsets are committed to Kafka after
PostgreSQL commits, only so that Kafka's tools and `ticketing status` can show the lag.
tests/integration/test_consumer_process.py kills a group inside a batch to check this.
"""

from __future__ import annotations

import dataclasses
import signal
import threading
import time
from dataclasses import dataclass
from types import FrameType
from typing import Iterable

import psycopg
import structlog
from kafka import KafkaConsumer
from kafka.consumer.subscription_state import ConsumerRebalanceListener
from kafka.errors import KafkaError
from kafka.structs import OffsetAndMetadata, TopicPartition

from consumers import bookkeeping, kafka_clients
from consumers.batch import TRANSIENT_ERRORS, Decoder, Delivery, GroupTarget, StaleOffsets, commit_batch
from consumers.dead_letters import DeadLetterPublishError, KafkaDeadLetterSink
from consumers.lag import partition_lag
from consumers.projection import Projection
from ticketing.settings import Settings
from ticketing.stream import codec
from ticketing.stream.decoded import DecodedEvent
from ticketing.stream.topics import ensure_topics

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class RunOptions:
    batch_size: int = 500
    poll_timeout_ms: int = 1000
    until_caught_up: bool = False
    timeout_seconds: float | None = None
    """Stop after this many seconds; None runs until a signal or `stop()`."""
    max_consecutive_failures: int = 10
    """Give up after this many failed batches in a row (database or Kafka unavailable)."""
    instance_id: str | None = None
    """Static group membership id (Kafka KIP-345): a restarted process with the same id gets
    its partitions back at once instead of after the session timeout of a vanished member."""


@dataclass(frozen=True)
class RunResult:
    batches: int
    records: int
    applied: int
    duplicates: int
    dead_letters: int
    reseeks: int
    """Batches rolled back because the stored offsets had moved (a replay swap or another member)."""
    caught_up: bool
    timed_out: bool


class GroupRunner:
    """Runs one projection's consumer group until stopped, timed out or caught up."""

    def __init__(
        self,
        settings: Settings,
        projection: Projection,
        options: RunOptions = RunOptions(),
        decode: Decoder | None = None,
    ) -> None:
        if options.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {options.batch_size}")
        self._settings = settings
        self._projection = projection
        self._options = options
        self._decode = decode or kafka_decoder()
        self._target = GroupTarget(
            projection=projection,
            schema=settings.projection_schema(projection.group),
            group=settings.consumer_group(projection.group),
        )
        self._topics = [settings.topic(name) for name in projection.topics]
        self._stop = threading.Event()
        # The stored offset each assigned partition was last positioned at (None: no row,
        # reading from the beginning). Written by the rebalance listener on Kafka's IO
        # thread while the main thread is blocked in poll(), and by the main thread
        # between polls, so the two never write at the same time.
        self._believed: dict[TopicPartition, int | None] = {}
        self._consumer: KafkaConsumer | None = None
        self._conn: psycopg.Connection | None = None
        self._signal: str | None = None

    def stop(self) -> None:
        """Ask the loop to finish the current batch and return."""
        self._stop.set()

    def run(self) -> RunResult:
        previous_handlers = self._install_signal_handlers()
        structlog.contextvars.bind_contextvars(group=self._target.group)
        try:
            result = self._run()
            log.info("consumer stopped", signal=self._signal, **dataclasses.asdict(result))
            return result
        finally:
            structlog.contextvars.unbind_contextvars("group")
            self._restore_signal_handlers(previous_handlers)

    def _run(self) -> RunResult:
        settings = self._settings
        dead_letter_topic = settings.topic(kafka_clients.DEAD_LETTER_TOPIC)
        ensure_topics(
            settings.kafka_bootstrap_servers,
            [dead_letter_topic],
            partitions=settings.topic_partitions,
            connect_timeout_seconds=settings.connect_timeout_seconds,
        )

        with self._connect() as conn:
            bookkeeping.create_projection_schema(conn, self._target.schema, self._projection)
        consumer = kafka_clients.make_consumer(
            settings,
            group_id=self._target.group,
            max_poll_records=self._options.batch_size,
            client_id=f"{self._target.group}-consumer",
            group_instance_id=self._options.instance_id,
        )
        producer = kafka_clients.make_producer(settings, client_id=f"{self._target.group}-dead-letters")
        self._consumer = consumer
        try:
            consumer.subscribe(topics=self._topics, listener=_SeekToStoredOffsets(self))
            log.info("consumer started", topics=self._topics, schema=self._target.schema)
            sink = KafkaDeadLetterSink(producer, dead_letter_topic, settings.connect_timeout_seconds * 6)
            return self._loop(consumer, sink)
        finally:
            # autocommit=False: this consumer commits explicitly after PostgreSQL commits.
            consumer.close(autocommit=False)
            producer.close(timeout=settings.connect_timeout_seconds)
            self._consumer = None
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _connect(self) -> psycopg.Connection:
        # The application name shows the group in pg_stat_activity, next to its locks.
        return psycopg.connect(
            self._settings.database_url,
            autocommit=True,
            application_name=f"{self._target.group}-consumer",
            connect_timeout=max(int(self._settings.connect_timeout_seconds), 1),
        )

    def _connection(self) -> psycopg.Connection:
        """Return the batch connection, opening a new one after the previous one broke."""
        if self._conn is None or self._conn.closed or self._conn.broken:
            if self._conn is not None:
                self._conn.close()
            self._conn = self._connect()
        return self._conn

    def _loop(self, consumer: KafkaConsumer, sink: KafkaDeadLetterSink) -> RunResult:
        options = self._options
        deadline = None if options.timeout_seconds is None else time.monotonic() + options.timeout_seconds
        totals = {"batches": 0, "records": 0, "applied": 0, "duplicates": 0, "dead_letters": 0, "reseeks": 0}
        failures = 0
        caught_up = timed_out = False

        while not self._stop.is_set():
            if deadline is not None and time.monotonic() >= deadline:
                timed_out = True
                log.warning("consumer timed out", timeout_seconds=options.timeout_seconds)
                break

            polled = consumer.poll(timeout_ms=options.poll_timeout_ms, max_records=options.batch_size)
            deliveries = [Delivery.from_record(record) for records in polled.values() for record in records]
            positions = self._positions_to_store(consumer, polled)
            started = time.monotonic()
            try:
                conn = self._connection()
                result = commit_batch(conn, self._target, deliveries, positions, self._believed, self._decode, sink)
            except StaleOffsets as stale:
                totals["reseeks"] += 1
                self._seek(consumer, stale.stored)
                log.warning("stored offsets moved; re-seeking", partitions=_describe(stale.stored))
                continue
            except (*TRANSIENT_ERRORS, DeadLetterPublishError) as error:
                failures += 1
                # The transaction rolled back, so the stored offsets are still the believed ones.
                self._seek(consumer, {tp: self._believed.get(tp) for tp in positions})
                log.warning("batch failed; retrying", error=str(error), error_type=type(error).__name__,
                            consecutive_failures=failures)
                if failures >= options.max_consecutive_failures:
                    raise
                self._stop.wait(min(0.5 * 2**failures, 15.0))
                continue

            failures = 0
            self._believed.update(positions)
            self._commit_to_kafka(consumer, positions)
            if deliveries:
                totals["batches"] += 1
                totals["records"] += result.records
                totals["applied"] += result.applied
                totals["duplicates"] += result.duplicates
                totals["dead_letters"] += len(result.dead_letters)
                log.info(
                    "batch applied",
                    records=result.records,
                    applied=result.applied,
                    duplicates=result.duplicates,
                    dead_letters=len(result.dead_letters),
                    clock=result.clock.isoformat() if result.clock else None,
                    seconds=round(time.monotonic() - started, 3),
                )

            if options.until_caught_up and len(deliveries) < options.batch_size and self._caught_up(conn, consumer):
                caught_up = True
                break

        return RunResult(caught_up=caught_up, timed_out=timed_out, **totals)

    def _positions_to_store(self, consumer: KafkaConsumer, polled: dict) -> dict[TopicPartition, int]:
        """Return the next offset of every partition whose position moved in this poll.

        That includes partitions without records whose position moved past transaction
        markers, so their stored offset (and so the lag) reaches the end offset too.
        """
        positions: dict[TopicPartition, int] = {}
        for tp in consumer.assignment():
            if tp not in self._believed:
                continue
            position = consumer.position(tp, timeout_ms=self._options.poll_timeout_ms)
            if position is None:
                continue
            if tp in polled or position != self._believed[tp]:
                positions[tp] = position
        return positions

    def _caught_up(self, conn: psycopg.Connection, consumer: KafkaConsumer) -> bool:
        partitions = kafka_clients.topic_partitions(consumer, self._topics)
        stored = bookkeeping.read_offsets(conn, self._target.schema, self._target.group)
        ends = consumer.end_offsets(partitions) if partitions else {}
        missing = [tp for tp in partitions if tp not in stored]
        beginnings = consumer.beginning_offsets(missing) if missing else {}
        lags = {tp: partition_lag(stored.get(tp), beginnings.get(tp, 0), ends[tp]) for tp in partitions}
        behind = {tp: lag for tp, lag in lags.items() if lag > 0}
        log.debug("lag checked", partitions=len(partitions), behind=_describe(behind))
        return not behind

    def _commit_to_kafka(self, consumer: KafkaConsumer, positions: dict[TopicPartition, int]) -> None:
        assigned = consumer.assignment()
        offsets = {tp: OffsetAndMetadata(offset, "", -1) for tp, offset in positions.items() if tp in assigned}
        if not offsets:
            return
        try:
            consumer.commit(offsets=offsets, timeout_ms=int(self._settings.connect_timeout_seconds * 1000))
        except KafkaError as error:
            # Informational only: PostgreSQL already stores the offsets the group resumes from.
            log.warning("committing offsets to kafka failed", error=str(error), error_type=type(error).__name__)

    def seek_to_stored(self, partitions: Iterable[TopicPartition]) -> None:
        """Position newly assigned partitions at their stored offsets (rebalance listener).

        Runs on Kafka's IO thread while the main thread waits in poll(), so it reads with
        a connection of its own. Rebalances are rare enough to open one each time.
        """
        partitions = list(partitions)
        if self._consumer is None or not partitions:
            return
        with self._connect() as conn:
            stored = bookkeeping.read_offsets(conn, self._target.schema, self._target.group, partitions)
        self._seek(self._consumer, {tp: stored.get(tp) for tp in partitions})
        # The listener runs on Kafka's IO thread, where the main thread's context variables are unset.
        log.info("partitions assigned", group=self._target.group, partitions=_describe({tp: stored.get(tp) for tp in partitions}))

    def forget(self, partitions: Iterable[TopicPartition]) -> None:
        """Drop revoked partitions; nothing needs saving because every batch commits whole."""
        partitions = list(partitions)
        for tp in partitions:
            self._believed.pop(tp, None)
        if partitions:
            log.info("partitions revoked", group=self._target.group,
                     partitions=sorted(f"{tp.topic}[{tp.partition}]" for tp in partitions))

    def _seek(self, consumer: KafkaConsumer, offsets: dict[TopicPartition, int | None]) -> None:
        assigned = consumer.assignment()
        for tp, offset in offsets.items():
            if tp not in assigned:
                self._believed.pop(tp, None)
                continue
            if offset is None:
                consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, offset)
            self._believed[tp] = offset

    def _install_signal_handlers(self) -> dict[int, object]:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for signum in (signal.SIGTERM, signal.SIGINT):
            previous[signum] = signal.signal(signum, self._on_signal)
        return previous

    def _restore_signal_handlers(self, previous: dict[int, object]) -> None:
        for signum, handler in previous.items():
            signal.signal(signum, handler)  # type: ignore[arg-type]

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        # Only set flags: the loop checks them between batches, so the batch in flight
        # commits whole. No logging here, because a write to stderr that interrupts
        # another one raises RuntimeError ("reentrant call").
        self._signal = signal.Signals(signum).name
        self._stop.set()


class _SeekToStoredOffsets(ConsumerRebalanceListener):
    def __init__(self, runner: GroupRunner) -> None:
        self._runner = runner

    def on_partitions_revoked(self, revoked: Iterable[TopicPartition]) -> None:
        self._runner.forget(revoked)

    def on_partitions_assigned(self, assigned: Iterable[TopicPartition]) -> None:
        self._runner.seek_to_stored(assigned)

    def on_partitions_lost(self, lost: Iterable[TopicPartition]) -> None:
        self._runner.forget(lost)


def kafka_decoder() -> Decoder:
    """Return a decoder that turns a Kafka record into a DecodedEvent with the Avro codec."""

    def decode(delivery: Delivery) -> DecodedEvent:
        return codec.decode(delivery.value, topic=delivery.topic, partition=delivery.partition, offset=delivery.offset)

    return decode


def _describe(offsets: dict[TopicPartition, int | None]) -> dict[str, int | None]:
    return {f"{tp.topic}[{tp.partition}]": offset for tp, offset in sorted(offsets.items())}
