"""Rebuild a group's tables from scratch into a shadow schema, then swap it in or compare it.

The rebuild reads the topics from offset 0 with a consumer outside the group, so the
live group keeps serving and its Kafka offsets stay untouched. The swap renames the
schemas in one transaction. It first takes an exclusive lock on the live
`consumer_offsets`, which every batch transaction of the live group locks first, so
the swap waits for an in-flight batch and the next batch finds the rebuilt offsets
and re-seeks (see consumers.batch.commit_batch).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable, Mapping

import psycopg
import structlog
from kafka import KafkaConsumer
from kafka.structs import TopicPartition
from psycopg import sql

from consumers import bookkeeping, kafka_clients
from consumers.batch import BatchResult, Decoder, Delivery, GroupTarget, commit_batch
from consumers.dead_letters import UnpublishedDeadLetters
from consumers.projection import Projection
from consumers.runner import kafka_decoder
from consumers.verify import TableDifference, compare_schemas
from ticketing.settings import Settings

log = structlog.get_logger(__name__)


class ReplayError(RuntimeError):
    """The rebuild could not finish: timed out, nothing to compare with, or the live group kept moving."""


@dataclass(frozen=True)
class ReplayOptions:
    batch_size: int = 500
    poll_timeout_ms: int = 500
    timeout_seconds: float = 3600.0
    verify: bool = False
    """Compare the rebuilt tables with the live ones instead of swapping them in."""
    from_event_store: bool = False
    """Read the event store's notification log instead of the topics."""
    max_rounds: int = 10
    """Catch-up rounds while new records keep arriving, before giving up."""
    lock_timeout_seconds: float = 30.0
    swap_attempts: int = 3


@dataclass
class ReplayResult:
    records: int = 0
    applied: int = 0
    duplicates: int = 0
    dead_letters: int = 0
    swapped: bool = False
    differences: list[TableDifference] | None = None
    """Set in verify mode only; empty when the tables match."""
    notes: list[str] = field(default_factory=list)

    def add(self, batch: BatchResult) -> None:
        self.records += batch.records
        self.applied += batch.applied
        self.duplicates += batch.duplicates
        self.dead_letters += len(batch.dead_letters)


def shadow_schema(schema: str) -> str:
    return f"{schema}_shadow"


def replay(settings: Settings, projection: Projection, options: ReplayOptions = ReplayOptions()) -> ReplayResult:
    """Rebuild the group's tables; swap them in, or with `options.verify` compare and drop them."""
    live = settings.projection_schema(projection.group)
    shadow = shadow_schema(live)
    target = GroupTarget(projection=projection, schema=shadow, group=settings.consumer_group(projection.group))
    deadline = time.monotonic() + options.timeout_seconds
    log.info("replay started", group=target.group, live=live, shadow=shadow,
             verify=options.verify, from_event_store=options.from_event_store)

    with psycopg.connect(
        settings.database_url, autocommit=True, connect_timeout=max(1, int(settings.connect_timeout_seconds))
    ) as conn:
        if options.verify and not bookkeeping.offsets_table_exists(conn, live):
            raise ReplayError(
                f"no consumer of the group has run yet: schema {live} has no consumer_offsets table, so "
                f"there is nothing to verify. Run `ticketing consume {projection.group}` first"
            )
        _drop_schema(conn, shadow)
        bookkeeping.create_projection_schema(conn, shadow, projection)
        result = ReplayResult()
        try:
            if options.from_event_store:
                _replay_event_store(conn, settings, target, live, options, deadline, result)
            else:
                _replay_topics(conn, settings, target, live, options, deadline, result)
        finally:
            if not result.swapped:
                _drop_schema(conn, shadow)

    log.info("replay finished", group=target.group, records=result.records, applied=result.applied,
             dead_letters=result.dead_letters, swapped=result.swapped,
             differing_tables=None if result.differences is None else len(result.differences))
    return result


def _replay_topics(
    conn: psycopg.Connection,
    settings: Settings,
    target: GroupTarget,
    live: str,
    options: ReplayOptions,
    deadline: float,
    result: ReplayResult,
) -> None:
    topics = [settings.topic(name) for name in target.projection.topics]
    consumer = kafka_clients.make_consumer(
        settings, group_id=None, max_poll_records=options.batch_size, client_id=f"{target.group}-replay"
    )
    try:
        reader = _TopicReader(conn, consumer, target, kafka_clients.topic_partitions(consumer, topics), options, deadline)
        for _ in range(options.max_rounds):
            if options.verify:
                goal = reader.normalize(bookkeeping.read_offsets(conn, live, target.group))
            else:
                goal = reader.end_offsets()
            reader.catch_up(goal, result)

            if options.verify:
                differences = _compare_if_live_at(conn, live, target, reader.offsets(), reader.normalize, options)
                if differences is not None:
                    result.differences = differences
                    return
                log.info("live group moved while verifying; catching up again", group=target.group)
            elif reader.end_offsets() == goal:
                _swap(conn, live, target.schema, options)
                result.swapped = True
                return
    finally:
        consumer.close(autocommit=False)
    raise ReplayError(
        f"new records kept arriving for {options.max_rounds} rounds; the rebuild of {live} did not catch up"
    )


def _compare_if_live_at(
    conn: psycopg.Connection,
    live: str,
    target: GroupTarget,
    rebuilt_offsets: Mapping[TopicPartition, int],
    normalize: Callable[[Mapping[TopicPartition, int]], dict[TopicPartition, int]],
    options: ReplayOptions,
) -> list[TableDifference] | None:
    """Compare the schemas if the live group is still at the rebuilt offsets; return None if it moved on."""
    with conn.transaction():
        # One snapshot for the whole comparison, taken while the shared row locks keep
        # the live group from committing a batch in between.
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        _set_lock_timeout(conn, options)
        rows = conn.execute(
            sql.SQL('SELECT topic, partition, next_offset FROM {}.consumer_offsets WHERE "group" = %s FOR SHARE').format(
                sql.Identifier(live)
            ),
            (target.group,),
        ).fetchall()
        live_offsets = normalize({TopicPartition(topic, partition): offset for topic, partition, offset in rows})
        if live_offsets != dict(rebuilt_offsets):
            return None
        return compare_schemas(conn, live, target.schema, _ignored_columns(target.projection))


class _TopicReader:
    """Reads the group's partitions without joining the group and applies them to the shadow schema."""

    def __init__(
        self,
        conn: psycopg.Connection,
        consumer: KafkaConsumer,
        target: GroupTarget,
        partitions: list[TopicPartition],
        options: ReplayOptions,
        deadline: float,
    ) -> None:
        self._conn = conn
        self._consumer = consumer
        self._target = target
        self._partitions = partitions
        self._options = options
        self._deadline = deadline
        self._decode: Decoder = kafka_decoder()
        consumer.assign(partitions)
        if partitions:
            consumer.seek_to_beginning(*partitions)
            self._beginnings = consumer.beginning_offsets(partitions)
        else:
            self._beginnings = {}
        self._believed: dict[TopicPartition, int | None] = {tp: None for tp in partitions}

    def end_offsets(self) -> dict[TopicPartition, int]:
        return self._consumer.end_offsets(self._partitions) if self._partitions else {}

    def normalize(self, stored: Mapping[TopicPartition, int]) -> dict[TopicPartition, int]:
        """Return an offset for every partition, the beginning where none is stored."""
        return {tp: stored.get(tp, self._beginnings[tp]) for tp in self._partitions}

    def offsets(self) -> dict[TopicPartition, int]:
        return {tp: self._offset(tp) for tp in self._partitions}

    def _offset(self, tp: TopicPartition) -> int:
        believed = self._believed[tp]
        return self._beginnings[tp] if believed is None else believed

    def catch_up(self, goal: Mapping[TopicPartition, int], result: ReplayResult) -> None:
        """Apply records until every partition's stored offset reaches `goal` and no further."""
        remaining = {tp for tp in self._partitions if self._offset(tp) < goal[tp]}
        self._consumer.pause(*[tp for tp in self._partitions if tp not in remaining])
        self._consumer.resume(*remaining)
        while remaining:
            if time.monotonic() >= self._deadline:
                raise ReplayError(f"the rebuild timed out after {self._options.timeout_seconds:g} s")
            polled = self._consumer.poll(timeout_ms=self._options.poll_timeout_ms, max_records=self._options.batch_size)
            deliveries: list[Delivery] = []
            positions: dict[TopicPartition, int] = {}
            for tp in sorted(remaining):
                records = [record for record in polled.get(tp, []) if record.offset < goal[tp]]
                deliveries.extend(Delivery.from_record(record) for record in records)
                # Stop exactly at the goal, even where Kafka's position ran past it over
                # records of a later batch or a transaction marker.
                kafka_position = self._consumer.position(tp, timeout_ms=self._options.poll_timeout_ms)
                if kafka_position is None:
                    continue
                position = min(kafka_position, goal[tp])
                if tp in polled or position != self._believed[tp]:
                    positions[tp] = position
            batch = commit_batch(
                self._conn, self._target, deliveries, positions, self._believed, self._decode, UnpublishedDeadLetters()
            )
            result.add(batch)
            self._believed.update(positions)
            done = {tp for tp in remaining if self._offset(tp) >= goal[tp]}
            if done:
                self._consumer.pause(*done)
                for tp in done:
                    self._consumer.seek(tp, goal[tp])
                remaining -= done
            if deliveries:
                log.info("replay batch applied", records=batch.records, applied=batch.applied,
                         dead_letters=len(batch.dead_letters), partitions_left=len(remaining))


def _replay_event_store(
    conn: psycopg.Connection,
    settings: Settings,
    target: GroupTarget,
    live: str,
    options: ReplayOptions,
    deadline: float,
    result: ReplayResult,
) -> None:
    # Imported here: the write side loads eventsourcing, which the topic replay never needs.
    from consumers.event_store import EVENT_STORE_SOURCE, NotificationReader
    from ticketing.application import HelpdeskApplication

    source = TopicPartition(EVENT_STORE_SOURCE, 0)
    believed: dict[TopicPartition, int | None] = {source: None}
    application = HelpdeskApplication(env=settings.eventsourcing_env())
    reader = NotificationReader(application, target.projection.topics)

    def apply_all() -> None:
        after = believed[source] or 0
        for batch in reader.batches(after, options.batch_size, reader.max_notification_id()):
            if time.monotonic() >= deadline:
                raise ReplayError(f"the rebuild timed out after {options.timeout_seconds:g} s")
            positions = {source: batch.last_id}
            applied = commit_batch(conn, target, batch.deliveries, positions, believed, batch.decode, UnpublishedDeadLetters())
            believed[source] = batch.last_id
            result.add(applied)
            log.info("replay batch applied", records=applied.records, applied=applied.applied,
                     dead_letters=len(applied.dead_letters), notification_id=batch.last_id)

    def take_over_live_offsets() -> None:
        # Whatever the live group consumed was relayed from the event store before, so the
        # rebuilt tables contain it, and the live group goes on from its own offsets.
        # Events read here but not yet relayed arrive later and are dropped as duplicates.
        apply_all()
        schema = sql.Identifier(target.schema)
        conn.execute(sql.SQL('DELETE FROM {}.consumer_offsets WHERE "group" = %s').format(schema), (target.group,))
        conn.execute(
            sql.SQL('INSERT INTO {}.consumer_offsets SELECT * FROM {}.consumer_offsets WHERE "group" = %s').format(
                schema, sql.Identifier(live)
            ),
            (target.group,),
        )

    try:
        apply_all()
        if options.verify:
            result.notes.append(
                "compared with the live tables at the live group's current offsets: events stored "
                "but not yet relayed or consumed show as rows only in the rebuilt tables"
            )
            with conn.transaction():
                conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                _set_lock_timeout(conn, options)
                conn.execute(sql.SQL("LOCK TABLE {}.consumer_offsets IN SHARE MODE").format(sql.Identifier(live)))
                apply_all()
                result.differences = compare_schemas(conn, live, target.schema, _ignored_columns(target.projection))
        else:
            _swap(conn, live, target.schema, options, take_over_live_offsets)
            result.swapped = True
    finally:
        application.close()


def _swap(
    conn: psycopg.Connection,
    live: str,
    shadow: str,
    options: ReplayOptions,
    before_rename: Callable[[], None] | None = None,
) -> None:
    """Replace `live` by `shadow` in one transaction, retrying when a lock is not granted in time."""
    old = f"{live}_old"
    for attempt in range(1, options.swap_attempts + 1):
        try:
            with conn.transaction():
                _set_lock_timeout(conn, options)
                conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(old)))
                live_exists = bookkeeping.schema_exists(conn, live)
                # The dispatcher may have created the live schema without the consumer's tables.
                if live_exists and bookkeeping.offsets_table_exists(conn, live):
                    conn.execute(
                        sql.SQL("LOCK TABLE {}.consumer_offsets IN ACCESS EXCLUSIVE MODE").format(sql.Identifier(live))
                    )
                if live_exists:
                    if before_rename is not None:
                        before_rename()
                    conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(live), sql.Identifier(old)))
                conn.execute(sql.SQL("ALTER SCHEMA {} RENAME TO {}").format(sql.Identifier(shadow), sql.Identifier(live)))
                if live_exists:
                    conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(old)))
            log.info("rebuilt schema swapped in", live=live, attempt=attempt)
            return
        except (psycopg.errors.LockNotAvailable, psycopg.errors.DeadlockDetected) as error:
            log.warning("schema swap did not get its locks; retrying", live=live, attempt=attempt, error=str(error))
            if attempt == options.swap_attempts:
                raise ReplayError(
                    f"the swap of {shadow} into {live} did not get its locks in {options.swap_attempts} attempts "
                    f"of {options.lock_timeout_seconds:g} s; a long transaction holds them"
                ) from error


def _set_lock_timeout(conn: psycopg.Connection, options: ReplayOptions) -> None:
    milliseconds = int(options.lock_timeout_seconds * 1000)
    conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(f"{milliseconds}ms")))


def _drop_schema(conn: psycopg.Connection, schema: str) -> None:
    conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _ignored_columns(projection: Projection) -> dict[str, frozenset[str]]:
    ignored = getattr(projection, "verify_ignored_columns", None) or {}
    return {table: frozenset(columns) for table, columns in ignored.items()}
