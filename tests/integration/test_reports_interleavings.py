"""The reports tables end the same for every interleaving of aggregates that keeps each aggregate's order."""

from __future__ import annotations

import random
from typing import Iterator

import psycopg
import pytest
from psycopg import sql

from consumers.bookkeeping import create_projection_schema
from consumers.verify import compare_schemas
from projections.reports import PROJECTION
from projections.reports_views import VIEWS
from tests.unit.test_reports_expected import History, build_scenario
from ticketing.stream.decoded import DecodedEvent


def random_interleaving(history: History, rng: random.Random) -> list[DecodedEvent]:
    """Merge the aggregates' streams in a random order, each stream staying in version order."""
    streams = [list(events) for events in history.by_aggregate().values()]
    merged = []
    while streams:
        stream = rng.choice(streams)
        merged.append(stream.pop(0))
        if not stream:
            streams.remove(stream)
    return merged


def tickets_first(history: History) -> list[DecodedEvent]:
    """Every ticket event before any agent or customer event: the order a new group could see."""
    order = {"Ticket": 0, "Agent": 1, "Customer": 2}
    return sorted(history.events, key=lambda event: order[event.aggregate_type])


@pytest.fixture
def schemas(database_url: str, unique_name) -> Iterator[list[str]]:
    names = [unique_name("interleaving") for _ in range(5)]
    yield names
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name in names:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def _apply(conn: psycopg.Connection, schema: str, events: list[DecodedEvent]) -> None:
    create_projection_schema(conn, schema, PROJECTION)
    with conn.transaction():
        for event in events:
            PROJECTION.apply(conn, schema, event)
        PROJECTION.after_batch(conn, schema, max(event.occurred_at for event in events))


def _view_differences(conn: psycopg.Connection, left: str, right: str) -> dict[str, int]:
    differences = {}
    for view in VIEWS:
        query = sql.SQL(
            "SELECT count(*) FROM ((SELECT * FROM {l}.{v} EXCEPT ALL SELECT * FROM {r}.{v})"
            " UNION ALL (SELECT * FROM {r}.{v} EXCEPT ALL SELECT * FROM {l}.{v})) AS difference"
        ).format(l=sql.Identifier(left), r=sql.Identifier(right), v=sql.Identifier(view))
        count = conn.execute(query).fetchone()[0]
        if count:
            differences[view] = count
    return differences


def test_interleavings_give_identical_tables(database_url: str, schemas: list[str]) -> None:
    history = build_scenario(seed=23)
    rng = random.Random(5)
    orders = [history.in_time_order(), tickets_first(history)] + [random_interleaving(history, rng) for _ in range(3)]

    with psycopg.connect(database_url, autocommit=True) as conn:
        for schema, events in zip(schemas, orders):
            _apply(conn, schema, events)
        reference = schemas[0]
        row_count = conn.execute(sql.SQL("SELECT count(*) FROM {}.daily_agents").format(sql.Identifier(reference))).fetchone()[0]

        for schema in schemas[1:]:
            assert compare_schemas(conn, reference, schema) == [], f"tables of {schema} differ"
            assert _view_differences(conn, reference, schema) == {}, f"views of {schema} differ"

    assert row_count > 10
