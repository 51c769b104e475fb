"""Progress of each group on each partition: stored offset, Kafka's offset, end offset, lag, dead letters."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import psycopg
import structlog
from kafka import KafkaAdminClient, KafkaConsumer
from kafka.errors import KafkaError
from kafka.structs import TopicPartition

from consumers import bookkeeping, kafka_clients
from consumers.lag import partition_lag
from consumers.projection import Projection
from ticketing.settings import Settings

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class PartitionStatus:
    """One group on one partition; `stored_offset` is None before the group stored any."""

    group: str
    topic: str
    partition: int
    stored_offset: int | None
    kafka_offset: int | None
    end_offset: int
    lag: int
    dead_letters: int


@dataclass(frozen=True)
class GroupStatus:
    group: str
    schema: str
    schema_exists: bool
    """True once a consumer of the group created its tables in the schema."""
    partitions: list[PartitionStatus]
    dead_letters_elsewhere: int
    """Dead letters counted under a source that is no topic partition (a replay from the event store)."""

    @property
    def lag(self) -> int:
        return sum(partition.lag for partition in self.partitions)

    @property
    def dead_letters(self) -> int:
        return sum(partition.dead_letters for partition in self.partitions) + self.dead_letters_elsewhere


def collect_status(settings: Settings, projections: Iterable[Projection]) -> list[GroupStatus]:
    projections = list(projections)
    consumer = kafka_clients.make_consumer(settings, group_id=None, max_poll_records=1, client_id="helpdesk-status")
    admin = kafka_clients.make_admin(settings, client_id="helpdesk-status")
    try:
        with psycopg.connect(
            settings.database_url, autocommit=True, connect_timeout=max(1, int(settings.connect_timeout_seconds))
        ) as conn:
            return [_group_status(settings, projection, conn, consumer, admin) for projection in projections]
    finally:
        consumer.close(autocommit=False)
        admin.close()


def _group_status(
    settings: Settings,
    projection: Projection,
    conn: psycopg.Connection,
    consumer: KafkaConsumer,
    admin: KafkaAdminClient,
) -> GroupStatus:
    schema = settings.projection_schema(projection.group)
    group = settings.consumer_group(projection.group)
    partitions = kafka_clients.topic_partitions(consumer, [settings.topic(name) for name in projection.topics])
    ends = consumer.end_offsets(partitions) if partitions else {}
    beginnings = consumer.beginning_offsets(partitions) if partitions else {}
    kafka_offsets = _kafka_offsets(admin, group)

    exists = bookkeeping.offsets_table_exists(conn, schema)
    stored = bookkeeping.read_offsets(conn, schema, group) if exists else {}
    letters: dict[TopicPartition, int] = {}
    if exists:
        for count in bookkeeping.read_dead_letter_counts(conn, schema, group):
            letters[TopicPartition(count.topic, count.partition)] = count.dead_letters

    rows = [
        PartitionStatus(
            group=projection.group,
            topic=tp.topic,
            partition=tp.partition,
            stored_offset=stored.get(tp),
            kafka_offset=kafka_offsets.get(tp),
            end_offset=ends[tp],
            lag=partition_lag(stored.get(tp), beginnings[tp], ends[tp]),
            dead_letters=letters.get(tp, 0),
        )
        for tp in partitions
    ]
    known = set(partitions)
    elsewhere = sum(count for tp, count in letters.items() if tp not in known)
    return GroupStatus(projection.group, schema, exists, rows, elsewhere)


def _kafka_offsets(admin: KafkaAdminClient, group: str) -> dict[TopicPartition, int]:
    try:
        committed = admin.list_group_offsets(group).get(group, {})
    except KafkaError as error:
        log.warning("reading kafka's committed offsets failed", group=group, error=str(error))
        return {}
    return {tp: metadata.offset for tp, metadata in committed.items() if metadata.offset >= 0}
