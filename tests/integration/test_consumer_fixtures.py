"""Fixtures and helpers shared by the consumer, replay and reports integration tests.

Each test gets its own topics (the `settings` fixture's prefix) and its own projection
schemas (a unique PROJECTION_PREFIX), so tests never share state. Test modules import
the fixtures they use from here.
"""

from __future__ import annotations

import dataclasses
import os
import uuid
from typing import Any, Iterable, Iterator

import psycopg
import pytest
from kafka import KafkaAdminClient, KafkaProducer
from psycopg import sql
from psycopg.rows import dict_row

from consumers.runner import GroupRunner, RunOptions, RunResult
from projections.reports import PROJECTION as REPORTS
from ticketing.settings import Settings
from ticketing.stream import codec
from ticketing.stream.decoded import DecodedEvent
from ticketing.stream.events import topic_name_for
from ticketing.stream.topics import ensure_topics
from tests.unit.test_reports_expected import History, expected_agent_time, expected_daily, expected_tickets

PARTITIONS = 3
LOGICAL_TOPICS = ("tickets", "agents", "customers")


@pytest.fixture
def group_settings(settings: Settings) -> Iterator[Settings]:
    """Settings with a unique projection prefix and three-partition topics, removed after the test."""
    isolated = dataclasses.replace(
        settings, projection_prefix=f"p{uuid.uuid4().hex[:10]}_", topic_partitions=PARTITIONS
    )
    ensure_topics(isolated.kafka_bootstrap_servers, [isolated.topic(name) for name in LOGICAL_TOPICS],
                  partitions=PARTITIONS)
    yield isolated

    with psycopg.connect(isolated.database_url, autocommit=True) as conn:
        schemas = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (isolated.projection_prefix,)
        ).fetchall()
        for (schema,) in schemas:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
    admin = KafkaAdminClient(bootstrap_servers=isolated.kafka_bootstrap_servers)
    try:
        existing = set(admin.list_topics())
        mine = [topic for topic in existing if topic.startswith(isolated.topic_prefix)]
        if mine:
            admin.delete_topics(mine)
    finally:
        admin.close()


def environment(settings: Settings) -> dict[str, str]:
    """Return os.environ with the variables that make a `ticketing` subprocess use `settings`."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": settings.kafka_bootstrap_servers,
        "DATABASE_URL": settings.database_url,
        "EVENT_STORE_SCHEMA": settings.event_store_schema,
        "TOPIC_PREFIX": settings.topic_prefix,
        "TOPIC_PARTITIONS": str(settings.topic_partitions),
        "PROJECTION_PREFIX": settings.projection_prefix,
    }


def produce(settings: Settings, events: Iterable[DecodedEvent], raw: Iterable[tuple[str, bytes, bytes]] = ()) -> int:
    """Encode `events` with the codec and send them as the relay does; `raw` adds (topic, key, value) records."""
    producer = KafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all", enable_idempotence=True)
    count = 0
    try:
        for event in events:
            value, headers = codec.encode(event)
            topic = settings.topic(topic_name_for(event.aggregate_type))
            producer.send(topic, key=event.aggregate_id.encode(), value=value, headers=headers)
            count += 1
        for logical_topic, key, value in raw:
            producer.send(settings.topic(logical_topic), key=key, value=value)
            count += 1
        producer.flush(timeout=30)
    finally:
        producer.close()
    return count


def consume_until_caught_up(settings: Settings, batch_size: int = 200, projection: Any = REPORTS) -> RunResult:
    options = RunOptions(batch_size=batch_size, until_caught_up=True, timeout_seconds=60, poll_timeout_ms=300)
    result = GroupRunner(settings, projection, options).run()
    assert result.caught_up, f"the group did not catch up: {result}"
    return result


def rows(settings: Settings, query: str, params: Any = None, schema: str | None = None) -> list[dict[str, Any]]:
    """Run `query` with {schema} replaced by the reports schema; return the rows as dicts."""
    schema = schema or settings.projection_schema("reports")
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        conn.execute("SET TIME ZONE 'UTC'")
        statement = sql.SQL(query).format(schema=sql.Identifier(schema))
        with conn.cursor(row_factory=dict_row) as cursor:
            return cursor.execute(statement, params).fetchall()


FLOAT_COLUMNS = {
    "first_response_mean_seconds", "first_response_median_seconds", "first_response_p90_seconds",
    "resolution_mean_seconds", "resolution_median_seconds", "resolution_p90_seconds", "average_rating",
}
DAILY_VIEWS = {"department": ("daily_departments", "department"), "channel": ("daily_channels", "channel"),
               "agent": ("daily_agents", "agent_id")}


def actual_daily(settings: Settings, view: str, key: str) -> dict:
    result = {}
    for row in rows(settings, f"SELECT * FROM {{schema}}.{view}"):
        slot = (row.pop("day"), row.pop(key))
        row.pop("agent_name", None)
        row.pop("temporary", None)
        result[slot] = row
    return result


def assert_daily_equal(actual: dict, expected: dict, what: str) -> None:
    assert sorted(actual, key=str) == sorted(expected, key=str), f"{what}: different (day, key) rows"
    for slot, expected_row in expected.items():
        for column, value in actual[slot].items():
            wanted = expected_row.get(column, None if column in FLOAT_COLUMNS else 0)
            if column in FLOAT_COLUMNS and wanted is not None:
                assert value == pytest.approx(wanted), f"{what} {slot} {column}"
            else:
                assert value == wanted, f"{what} {slot} {column}"


def assert_reports_match(settings: Settings, history: History) -> None:
    """Check the daily views, agent time and ticket facts of the reports schema against `history`."""
    for dimension, (view, key) in DAILY_VIEWS.items():
        assert_daily_equal(actual_daily(settings, view, key), expected_daily(history, dimension), view)

    agent_time = {(row.pop("day"), row.pop("agent_id")): row for row in rows(settings, "SELECT * FROM {schema}.agent_time_daily")}
    expected_time = expected_agent_time(history)
    assert sorted(agent_time, key=str) == sorted(expected_time, key=str)
    for slot, expected_row in expected_time.items():
        for column, value in expected_row.items():
            assert agent_time[slot][column] == pytest.approx(value), f"agent time {slot} {column}"

    tickets = {row.pop("ticket_id"): row for row in rows(settings, "SELECT * FROM {schema}.tickets")}
    expected = expected_tickets(history)
    assert sorted(tickets) == sorted(expected)
    for ticket, expected_row in expected.items():
        for column, value in expected_row.items():
            assert tickets[ticket][column] == value, f"ticket {ticket} {column}"
