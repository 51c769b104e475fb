"""The relay against the real PostgreSQL and Kafka: completeness, order, failures and topic set-up."""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from psycopg import sql
from structlog.testing import capture_logs

from ticketing.application import HelpdeskApplication
from ticketing.settings import Settings
from ticketing.stream.codec import DecodeError, decode, encode
from ticketing.stream.decoded import DecodedEvent
from ticketing.stream.events import TOPIC_NAMES, decoded_from_domain_event
from ticketing.stream.relay import Relay, RelayFailed, RelayOptions
from ticketing.stream.relay_session import RelaySession
from ticketing.stream.schemas import SchemaRepository
from ticketing.stream.topics import ensure_topics
from tests.waiting import wait_until

START = datetime(2024, 3, 4, 8, 0, tzinfo=timezone.utc)
REPOSITORY = SchemaRepository.load()


# Helpers shared with test_relay_process.py.


@dataclass(frozen=True)
class Published:
    """One message read back from a topic, decoded."""

    topic: str
    partition: int
    offset: int
    key: bytes
    headers: dict[str, bytes]
    event: DecodedEvent


def application(settings: Settings, **options: Any) -> HelpdeskApplication:
    return HelpdeskApplication(env=settings.eventsourcing_env(), **options)


def stored_events(settings: Settings) -> list[tuple[int, Any]]:
    """Return (notification id, domain event) for every event in the store, in log order."""
    app = application(settings)
    try:
        result = []
        position = 0
        for _ in range(10_000):
            notifications = app.recorder.select_notifications(start=position, limit=1000, inclusive_of_start=False)
            if not notifications:
                return result
            result.extend((item.id, app.mapper.to_domain_event(item)) for item in notifications)
            position = notifications[-1].id
        raise AssertionError("the event store has more notifications than the test expects")
    finally:
        app.close()


def topic_names(settings: Settings) -> list[str]:
    return [settings.topic(name) for name in TOPIC_NAMES.values()]


@contextmanager
def topic_reader(settings: Settings) -> Iterator[KafkaConsumer]:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        client_id="relay-test-reader",
    )
    try:
        yield consumer
    finally:
        consumer.close()


def partitions_of(consumer: KafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    partitions = []
    for topic in topics:
        numbers = wait_until(lambda: consumer.partitions_for_topic(topic), timeout=20, message=f"metadata of {topic}")
        partitions.extend(TopicPartition(topic, number) for number in sorted(numbers))
    return partitions


def message_count(settings: Settings) -> int:
    """Return how many messages the three topics hold together, 0 while they do not exist."""
    with topic_reader(settings) as consumer:
        existing = consumer.topics()
        topics = [topic for topic in topic_names(settings) if topic in existing]
        if not topics:
            return 0
        return sum(consumer.end_offsets(partitions_of(consumer, topics)).values())


def read_published(settings: Settings, *, timeout: float = 30.0) -> list[Published]:
    """Read every message now on the three topics, in partition order, and decode it."""
    with topic_reader(settings) as consumer:
        partitions = partitions_of(consumer, topic_names(settings))
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        ends = consumer.end_offsets(partitions)

        records = []
        deadline = time.monotonic() + timeout
        while any(consumer.position(partition) < ends[partition] for partition in partitions):
            assert time.monotonic() < deadline, "timed out reading the topics back"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)

    return [
        Published(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            headers=dict(record.headers),
            event=decode(record.value, topic=record.topic, partition=record.partition, offset=record.offset),
        )
        for record in sorted(records, key=lambda record: (record.topic, record.partition, record.offset))
    ]


def relay_position(settings: Settings) -> int:
    query = sql.SQL("SELECT last_notification_id FROM {}.relay_position WHERE topic_prefix = %s").format(
        sql.Identifier(settings.event_store_schema)
    )
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        try:
            row = connection.execute(query, (settings.topic_prefix,)).fetchone()
        except psycopg.errors.UndefinedTable:
            return 0
    return int(row[0]) if row else 0


def deduplicated(published: list[Published]) -> dict[str, list[Published]]:
    """Group messages by aggregate in partition order, keeping the first copy of each version."""
    seen = set()
    by_aggregate: dict[str, list[Published]] = defaultdict(list)
    for message in published:
        if message.event.dedup_key in seen:
            continue
        seen.add(message.event.dedup_key)
        by_aggregate[message.event.aggregate_id].append(message)
    return by_aggregate


def assert_complete_and_ordered(settings: Settings, published: list[Published]) -> list[tuple[int, Any]]:
    """Assert that every stored event arrived, as the relay would encode it, in per-aggregate order."""
    stored = stored_events(settings)
    expected = {(str(event.originator_id), event.originator_version): event for _, event in stored}
    by_aggregate = deduplicated(published)

    arrived = {message.event.dedup_key for messages in by_aggregate.values() for message in messages}
    assert arrived == set(expected), "published events differ from the stored ones"

    for aggregate_id, messages in by_aggregate.items():
        versions = [message.event.aggregate_version for message in messages]
        assert versions == list(range(1, len(versions) + 1)), f"aggregate {aggregate_id} arrived as {versions}"
        assert len({(message.topic, message.partition) for message in messages}) == 1

    for messages in by_aggregate.values():
        for message in messages:
            stored_event = expected[message.event.dedup_key]
            assert message.event == decoded_from_domain_event(stored_event, REPOSITORY)
            assert message.key == message.event.aggregate_id.encode()
            assert message.topic == settings.topic(TOPIC_NAMES[message.event.aggregate_type])
            assert message.headers["event-type"] == message.event.event_type.encode()
    return stored


@contextmanager
def running_relay(settings: Settings, **options: Any) -> Iterator[Relay]:
    """Run the relay in a thread until the block ends; re-raise its error, if any."""
    app = application(settings)
    relay = Relay(
        settings,
        source=app.recorder,
        mapper=app.mapper,
        channel=app.recorder.channel_name,
        options=RelayOptions(**options),
    )
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            relay.run(stop)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread below
            errors.append(error)

    thread = threading.Thread(target=run, name="relay-under-test")
    thread.start()
    try:
        yield relay
    finally:
        stop.set()
        thread.join(timeout=30)
        app.close()
    assert not thread.is_alive(), "the relay did not stop within 30 s"
    if errors:
        raise errors[0]


def seed_people(app: HelpdeskApplication) -> tuple[UUID, list[UUID]]:
    agent_id = uuid4()
    app.hire_agent(agent_id, "Ada Agent", "ada@example.com", "regular", None, ["support"], occurred_at=START)
    customers = []
    for number in range(3):
        customer_id = uuid4()
        app.register_customer(
            customer_id, f"Customer {number}", f"c{number}@example.com", None, "en", occurred_at=START
        )
        customers.append(customer_id)
    return agent_id, customers


@pytest.fixture(autouse=True)
def delete_topics_afterwards(settings: Settings) -> Iterator[None]:
    """Delete this test's three topics after it, so that runs do not pile up topics in the broker."""
    yield
    admin = KafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap_servers, client_id="relay-test-cleanup")
    try:
        existing = set(admin.list_topics())
        created = [topic for topic in topic_names(settings) if topic in existing]
        if created:
            admin.delete_topics(created)
    finally:
        admin.close()


# Tests.


def test_concurrent_commands_arrive_once_in_order(settings: Settings) -> None:
    setup = application(settings)
    agent_id, customers = seed_people(setup)
    shared_tickets = [uuid4() for _ in range(3)]
    for number, ticket_id in enumerate(shared_tickets):
        setup.open_ticket(ticket_id, customers[number], "chat", "support", f"Shared {number}", occurred_at=START)
    setup.close()

    # eventsourcing's CREATE TABLE and CREATE FUNCTION statements fail with "tuple
    # concurrently updated" when several applications start at the same moment, so
    # the workers' applications are built one after another.
    workers = [application(settings, max_attempts=60, retry_delay_seconds=0.005) for _ in range(6)]
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        # Every command uses the same business time, so that a retry after a
        # conflict is never earlier than the event that won.
        app = workers[worker]
        try:
            for number in range(6):
                ticket_id = uuid4()
                app.open_ticket(
                    ticket_id,
                    customers[number % 3],
                    "email",
                    "support",
                    f"w{worker}-{number}",
                    occurred_at=START,
                    command_key=f"worker-{worker}#open-{number}",
                )
                app.assign_ticket(ticket_id, agent_id, occurred_at=START)
                app.reply_as_customer(shared_tickets[number % 3], f"w{worker} n{number}", occurred_at=START)
                app.change_ticket_attributes(ticket_id, {"worker": str(worker)}, occurred_at=START)
        except BaseException as error:  # noqa: BLE001 - reported by the test thread
            errors.append(error)

    with running_relay(settings, batch_size=25):
        threads = [threading.Thread(target=write, args=(worker,)) for worker in range(len(workers))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        for app in workers:
            app.close()
        assert errors == []
        assert not any(thread.is_alive() for thread in threads)

        stored = stored_events(settings)
        wait_until(lambda: relay_position(settings) == stored[-1][0], timeout=30, message="the relay to catch up")

    published = read_published(settings)

    assert assert_complete_and_ordered(settings, published) == stored
    assert len(stored) == 4 + 3 + 6 * 6 * 4
    assert len(published) == len(stored), "a healthy run should publish each event once"


def test_unpublishable_event_stops_after_acknowledged_prefix(settings: Settings) -> None:
    app = application(settings)
    seed_people(app)
    notifications = app.recorder.select_notifications(start=1, limit=10)
    poison_id = notifications[2].id

    class FailingMapper:
        """Fails on one notification, as a stored event of a deleted event class would."""

        def to_domain_event(self, stored_event: Any) -> Any:
            if stored_event.id == poison_id:
                raise TypeError("event class not found")
            return app.mapper.to_domain_event(stored_event)

    relay = Relay(
        settings,
        source=app.recorder,
        mapper=FailingMapper(),
        channel=app.recorder.channel_name,
        options=RelayOptions(batch_size=10),
    )
    with capture_logs() as logs:
        with pytest.raises(RelayFailed, match=f"notification {poison_id} .*cannot rebuild the domain event"):
            relay.run(threading.Event(), once=True)
    app.close()

    assert relay_position(settings) == notifications[1].id
    assert message_count(settings) == 2
    partial = [line for line in logs if line["event"] == "batch partly published"]
    assert len(partial) == 1
    assert partial[0]["acknowledged"] == 2
    assert partial[0]["read"] == 4


def test_poison_message_names_its_location(settings: Settings) -> None:
    app = application(settings)
    seed_people(app)
    app.close()
    ensure_topics(settings.kafka_bootstrap_servers, topic_names(settings), partitions=settings.topic_partitions)
    topic = settings.topic("customers")

    good = read_or_publish_one(settings)
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    try:
        producer.send(topic, key=b"poison", value=b"\xc3\x01" + b"\x00" * 8 + b"junk", partition=good.partition).get(timeout=30)
        producer.send(topic, key=b"poison", value=good_value_truncated(good), partition=good.partition).get(timeout=30)
    finally:
        producer.close()

    with topic_reader(settings) as consumer:
        partition = TopicPartition(topic, good.partition)
        consumer.assign([partition])
        consumer.seek(partition, good.offset + 1)
        records = []
        deadline = time.monotonic() + 30
        while len(records) < 2 and time.monotonic() < deadline:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)

    assert len(records) == 2
    unknown, truncated = records
    with pytest.raises(DecodeError) as caught:
        decode(unknown.value, topic=unknown.topic, partition=unknown.partition, offset=unknown.offset)
    assert f"topic {topic} partition {good.partition} offset {good.offset + 1}:" in str(caught.value)
    assert "unknown schema fingerprint 0000000000000000" in str(caught.value)

    with pytest.raises(DecodeError) as caught:
        decode(truncated.value, topic=truncated.topic, partition=truncated.partition, offset=truncated.offset)
    assert f"topic {topic} partition {good.partition} offset {good.offset + 2}:" in str(caught.value)
    assert "does not match schema helpdesk.events.CustomerRegistered" in str(caught.value)


def read_or_publish_one(settings: Settings) -> Published:
    """Publish the store's events with the relay in process, and return the last customer message of a partition."""
    app = application(settings)
    relay = Relay(settings, source=app.recorder, mapper=app.mapper, channel=app.recorder.channel_name)
    relay.run(threading.Event(), once=True)
    app.close()
    customers = [message for message in read_published(settings) if message.topic == settings.topic("customers")]
    partition = customers[0].partition
    return max((message for message in customers if message.partition == partition), key=lambda message: message.offset)


def good_value_truncated(message: Published) -> bytes:
    value, _ = encode(message.event)
    return value[:-5]


def test_new_event_wakes_relay_without_polling(settings: Settings) -> None:
    app = application(settings)
    seed_people(app)

    with running_relay(settings, idle_poll_seconds=60.0):
        wait_until(lambda: message_count(settings) == 4, timeout=30, message="the seeded events")

        started = time.monotonic()
        app.hire_agent(uuid4(), "Late Agent", "late@example.com", "regular", None, ["support"], occurred_at=START)
        wait_until(lambda: message_count(settings) == 5, timeout=10, message="the new event")
        latency = time.monotonic() - started
    app.close()

    # With a 60 s poll interval, only the notification can explain a fast arrival.
    assert latency < 5.0


def test_existing_topic_settings_are_reported_not_changed(settings: Settings, kafka_bootstrap: str) -> None:
    tickets = settings.topic("tickets")
    admin = KafkaAdminClient(bootstrap_servers=kafka_bootstrap, client_id="relay-test-admin")
    try:
        admin.create_topics({tickets: {"num_partitions": 2, "configs": {"retention.ms": "86400000"}}})
        admin.wait_for_topics([tickets])

        with capture_logs() as logs:
            mismatches = ensure_topics(kafka_bootstrap, topic_names(settings), partitions=settings.topic_partitions)

        described = {topic["name"]: topic for topic in admin.describe_topics(topic_names(settings))}
    finally:
        admin.close()

    assert {(item.topic, item.setting, item.actual) for item in mismatches} == {
        (tickets, "partitions", "2"),
        (tickets, "retention.ms", "86400000"),
    }
    warnings = [line for line in logs if line["log_level"] == "warning"]
    assert {line["setting"] for line in warnings} == {"partitions", "retention.ms"}
    assert len(described[tickets]["partitions"]) == 2
    assert len(described[settings.topic("agents")]["partitions"]) == settings.topic_partitions
    assert {mismatch.topic for mismatch in mismatches} == {tickets}


def test_second_relay_session_waits_for_lock(settings: Settings) -> None:
    def session() -> RelaySession:
        return RelaySession(
            settings.database_url,
            schema=settings.event_store_schema,
            topic_prefix=settings.topic_prefix,
            channel="helpdesk_events",
            connect_timeout=5,
        )

    first, second = session(), session()
    first.open()
    second.open()
    try:
        assert first.try_lock() is True
        assert second.try_lock() is False

        first.close()
        assert wait_until(second.try_lock, timeout=10, message="the lock after the first session closed")
    finally:
        first.close()
        second.close()


def test_relay_respects_lock_of_another_relay(settings: Settings) -> None:
    app = application(settings)
    seed_people(app)
    app.close()
    holder = RelaySession(
        settings.database_url,
        schema=settings.event_store_schema,
        topic_prefix=settings.topic_prefix,
        channel="helpdesk_events",
        connect_timeout=5,
    )
    holder.open()
    try:
        assert holder.try_lock() is True

        one_off = application(settings)
        relay = Relay(settings, source=one_off.recorder, mapper=one_off.mapper, channel=one_off.recorder.channel_name)
        with pytest.raises(RelayFailed, match="another relay is publishing schema"):
            relay.run(threading.Event(), once=True)
        one_off.close()

        with running_relay(settings):
            holder.close()
            wait_until(lambda: message_count(settings) == 4, timeout=30, message="the follower after the lock was freed")
    finally:
        holder.close()


def test_position_survives_reruns(settings: Settings) -> None:
    app = application(settings)
    seed_people(app)

    def run_once() -> int:
        relay = Relay(settings, source=app.recorder, mapper=app.mapper, channel=app.recorder.channel_name)
        return relay.run(threading.Event(), once=True).published

    assert run_once() == 4
    assert run_once() == 0
    app.register_customer(uuid4(), "Later", "later@example.com", None, "en", occurred_at=START)
    assert run_once() == 1
    app.close()

    assert message_count(settings) == 5
    assert relay_position(settings) == stored_events(settings)[-1][0]


