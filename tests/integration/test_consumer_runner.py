"""A group process against real Kafka and PostgreSQL: dead letters, lag, status and Kafka's offsets."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import psycopg
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from typer.testing import CliRunner

from consumers.dead_letters import (
    HEADER_ERROR,
    HEADER_ERROR_TYPE,
    HEADER_GROUP,
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_STAGE,
    HEADER_TOPIC,
)
from consumers.status import collect_status
from projections.reports import PROJECTION
from tests.integration.test_consumer_fixtures import (  # noqa: F401  (fixtures)
    consume_until_caught_up,
    environment,
    group_settings,
    produce,
    rows,
)
from tests.unit.test_reports_expected import History
from tests.waiting import wait_until
from ticketing.cli import _register_commands, app
from ticketing.settings import Settings

AT = datetime(2024, 6, 3, 9, tzinfo=timezone.utc)


def _small_history() -> tuple[History, list[str]]:
    history = History()
    customer = str(uuid.uuid4())
    history.emit("Customer", customer, "Registered", AT, name="C", email="c@x", phone=None, language="en")
    tickets = [str(uuid.uuid4()) for _ in range(5)]
    for number, ticket in enumerate(tickets):
        history.emit("Ticket", ticket, "Opened", AT + timedelta(minutes=number), customer_id=customer,
                     channel="chat", department="billing", subject="s", priority="low", attributes={})
    return history, tickets


def _dead_letters(settings: Settings, expected: int) -> list:
    consumer = KafkaConsumer(
        settings.topic("dead-letters"),
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="earliest",
        group_id=None,
    )
    received: list = []
    try:
        def poll() -> bool:
            for records in consumer.poll(timeout_ms=500).values():
                received.extend(records)
            return len(received) >= expected

        wait_until(poll, timeout=20, interval=0, message=f"{expected} dead letters")
    finally:
        consumer.close()
    return received


def test_poison_events_become_dead_letters(group_settings: Settings) -> None:
    history, tickets = _small_history()
    # An event of a ticket that was never opened cannot be applied (stage "apply").
    unappliable = history.emit("Ticket", str(uuid.uuid4()), "Assigned", AT + timedelta(hours=1), agent_id=str(uuid.uuid4()))
    events = history.in_time_order()
    produce(group_settings, events[:3], raw=[("tickets", b"poison", b"\x00garbage bytes")])
    produce(group_settings, events[3:])

    consume_until_caught_up(group_settings, batch_size=4)

    letters = _dead_letters(group_settings, expected=2)
    by_stage = {dict(letter.headers)[HEADER_STAGE]: letter for letter in letters}
    poison = dict(by_stage[b"decode"].headers)
    assert by_stage[b"decode"].key == b"poison"
    assert by_stage[b"decode"].value == b"\x00garbage bytes"
    assert poison[HEADER_ERROR_TYPE] == b"DecodeError"
    assert b"single-object marker" in poison[HEADER_ERROR]
    assert poison[HEADER_GROUP] == group_settings.consumer_group("reports").encode()
    assert poison[HEADER_TOPIC] == group_settings.topic("tickets").encode()
    assert int(poison[HEADER_PARTITION]) in range(3)
    assert int(poison[HEADER_OFFSET]) >= 0
    apply_failure = dict(by_stage[b"apply"].headers)
    assert apply_failure[HEADER_ERROR_TYPE] == b"ReportsApplyError"
    assert apply_failure["event-type"] == b"Ticket.Assigned"
    assert unappliable.aggregate_id.encode() == by_stage[b"apply"].key

    assert {row["ticket_id"] for row in rows(group_settings, "SELECT ticket_id FROM {schema}.tickets")} == set(tickets)
    counts = rows(group_settings, 'SELECT sum(dead_letters) AS total FROM {schema}.dead_letters_count')
    assert counts[0]["total"] == 2


def test_status_shows_lag_then_catches_up(group_settings: Settings) -> None:
    history, _ = _small_history()
    produce(group_settings, history.in_time_order())
    total = len(history.events)

    before = collect_status(group_settings, [PROJECTION])[0]
    consume_until_caught_up(group_settings, batch_size=2)
    after = collect_status(group_settings, [PROJECTION])[0]
    _register_commands()
    printed = CliRunner().invoke(app, ["status", "reports"], env=environment(group_settings))

    assert before.lag == total
    assert not before.schema_exists
    assert after.lag == 0
    assert sum(partition.end_offset for partition in after.partitions) == total
    for partition in after.partitions:
        assert partition.stored_offset in (partition.end_offset, None)
        assert partition.kafka_offset == partition.stored_offset
    assert printed.exit_code == 0, printed.output
    assert "group reports" in printed.stdout
    assert "lag 0" in printed.stdout


def test_kafka_offsets_follow_postgres_offsets(group_settings: Settings) -> None:
    history, _ = _small_history()
    produce(group_settings, history.in_time_order())

    consume_until_caught_up(group_settings, batch_size=3)

    group = group_settings.consumer_group("reports")
    admin = KafkaAdminClient(bootstrap_servers=group_settings.kafka_bootstrap_servers)
    try:
        committed = admin.list_group_offsets(group)[group]
    finally:
        admin.close()
    with psycopg.connect(group_settings.database_url) as conn:
        stored = {
            TopicPartition(topic, partition): offset
            for topic, partition, offset in conn.execute(
                f'SELECT topic, partition, next_offset FROM "{group_settings.projection_schema("reports")}".consumer_offsets'
            )
        }
    assert {tp: meta.offset for tp, meta in committed.items()} == stored
