"""Kafka clients configured the same way for every group process, replay and status."""

from __future__ import annotations

from typing import Iterable

import structlog
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.structs import TopicPartition

from ticketing.settings import Settings

log = structlog.get_logger(__name__)

DEAD_LETTER_TOPIC = "dead-letters"
"""Logical name of the topic that receives every group's dead letters (before the topic prefix)."""


def _timeouts(settings: Settings) -> dict[str, int]:
    connect_ms = int(settings.connect_timeout_seconds * 1000)
    return {"bootstrap_timeout_ms": max(connect_ms, 1000)}


def make_consumer(
    settings: Settings,
    *,
    group_id: str | None,
    max_poll_records: int,
    client_id: str,
    group_instance_id: str | None = None,
) -> KafkaConsumer:
    """Create a consumer that never commits by itself and starts from the beginning.

    read_committed hides records of aborted producer transactions, should the relay ever
    write with transactions; for a non-transactional producer it changes nothing.
    """
    return KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=group_id,
        group_instance_id=group_instance_id,
        client_id=client_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        max_poll_records=max_poll_records,
        allow_auto_create_topics=False,
        **_timeouts(settings),
    )


def make_producer(settings: Settings, *, client_id: str) -> KafkaProducer:
    return KafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        **_timeouts(settings),
    )


def make_admin(settings: Settings, *, client_id: str) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=settings.kafka_bootstrap_servers, client_id=client_id, **_timeouts(settings)
    )


def topic_partitions(consumer: KafkaConsumer, topics: Iterable[str]) -> list[TopicPartition]:
    """Return every partition of `topics`; a topic that does not exist yet has none."""
    partitions = []
    for topic in topics:
        for partition in sorted(consumer.partitions_for_topic(topic) or ()):
            partitions.append(TopicPartition(topic, partition))
    return partitions
