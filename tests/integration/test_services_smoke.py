"""The real servers behave as the rest of the project relies on."""

from __future__ import annotations

import collections
import uuid

import psycopg
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import NewTopic

from ticketing.probe import probe_kafka, probe_postgres
from tests.waiting import wait_until

PARTITIONS = 4
KEYS = [f"ticket-{n}" for n in range(12)]
MESSAGES_PER_KEY = 25


def test_broker_is_kafka_4_in_kraft_mode(kafka_bootstrap: str) -> None:
    info = probe_kafka(kafka_bootstrap)

    assert info.api_version.startswith("4."), info.describe()
    assert info.kraft, info.describe()
    print(f"broker: {info.describe()}")


def test_postgres_round_trip(database_url: str, pg_schema: str) -> None:
    marker = str(uuid.uuid4())

    with psycopg.connect(database_url) as connection:
        connection.execute(f'CREATE SCHEMA "{pg_schema}"')
        connection.execute(f'CREATE TABLE "{pg_schema}".notes (id uuid PRIMARY KEY, body text)')
        connection.execute(f'INSERT INTO "{pg_schema}".notes VALUES (%s, %s)', (marker, "hello"))

    # A second connection sees only what the first one committed.
    with psycopg.connect(database_url, autocommit=True) as reader:
        row = reader.execute(f'SELECT body FROM "{pg_schema}".notes WHERE id = %s', (marker,)).fetchone()

    assert row == ("hello",)
    print(f"postgres: {probe_postgres(database_url).describe()}")


def test_keyed_messages_keep_per_key_order(kafka_bootstrap: str, unique_name) -> None:
    topic = unique_name("smoke")
    group = unique_name("smoke_group")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])

    try:
        _produce(kafka_bootstrap, topic)
        received = _consume_all(kafka_bootstrap, topic, group)
        committed = admin.list_group_offsets(group)[group]
    finally:
        admin.delete_topics([topic])
        admin.close()

    assert sorted(received) == sorted(KEYS)
    for key in KEYS:
        assert received[key] == list(range(MESSAGES_PER_KEY)), f"order broken for {key}"

    total_committed = sum(offset.offset for tp, offset in committed.items() if tp.topic == topic)
    assert total_committed == len(KEYS) * MESSAGES_PER_KEY


def _produce(bootstrap: str, topic: str) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", enable_idempotence=True)
    for sequence in range(MESSAGES_PER_KEY):
        for key in KEYS:
            producer.send(topic, key=key.encode(), value=str(sequence).encode())
    producer.flush(timeout=30)
    producer.close()


def _consume_all(bootstrap: str, topic: str, group: str) -> dict[str, list[int]]:
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    consumer.subscribe([topic])
    received: dict[str, list[int]] = collections.defaultdict(list)
    expected = len(KEYS) * MESSAGES_PER_KEY

    def poll_once() -> bool:
        for records in consumer.poll(timeout_ms=500).values():
            for record in records:
                received[record.key.decode()].append(int(record.value))
        consumer.commit()
        return sum(len(values) for values in received.values()) >= expected

    try:
        wait_until(poll_once, timeout=60, interval=0, message=f"{expected} messages on {topic}")
        positions = {tp: consumer.committed(tp) for tp in consumer.assignment()}
    finally:
        consumer.close()

    assert len(positions) == PARTITIONS
    assert all(isinstance(tp, TopicPartition) for tp in positions)
    return dict(received)
