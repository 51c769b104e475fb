"""The machinery's own tables inside every projection schema.

`consumer_offsets` stores the next offset to read per partition, written in the same
transaction as the projection rows, so PostgreSQL (not Kafka) is the source of truth for
the position. `applied_events` rejects a redelivered event by its key,
`dead_letters_count` counts events that could not be decoded or applied, and
`consumer_clock` keeps the maximum event time the group has seen.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Iterable, Mapping

from kafka.structs import TopicPartition
from psycopg import sql

if TYPE_CHECKING:
    import psycopg

    from consumers.dead_letters import DeadLetter
    from consumers.projection import Projection

BOOKKEEPING_TABLES = ("consumer_offsets", "applied_events", "dead_letters_count", "consumer_clock")

_DDL = """
CREATE TABLE IF NOT EXISTS {schema}.consumer_offsets (
    "group" text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    next_offset bigint NOT NULL CHECK (next_offset >= 0),
    PRIMARY KEY ("group", topic, partition)
);
CREATE TABLE IF NOT EXISTS {schema}.applied_events (
    aggregate_id text NOT NULL,
    aggregate_version bigint NOT NULL,
    PRIMARY KEY (aggregate_id, aggregate_version)
);
CREATE TABLE IF NOT EXISTS {schema}.dead_letters_count (
    "group" text NOT NULL,
    topic text NOT NULL,
    partition integer NOT NULL,
    dead_letters bigint NOT NULL,
    last_offset bigint NOT NULL,
    last_error text NOT NULL,
    PRIMARY KEY ("group", topic, partition)
);
CREATE TABLE IF NOT EXISTS {schema}.consumer_clock (
    "group" text PRIMARY KEY,
    clock timestamptz NOT NULL
);
"""


@dataclass(frozen=True)
class DeadLetterCount:
    topic: str
    partition: int
    dead_letters: int
    last_offset: int
    last_error: str


def create_projection_schema(conn: psycopg.Connection, schema: str, projection: Projection) -> None:
    """Create `schema` with the bookkeeping tables and the projection's tables, idempotently."""
    with conn.transaction():
        # CREATE ... IF NOT EXISTS is not safe against a concurrent identical statement
        # (both can pass the check and one fails on a unique index of the catalog), and
        # a group process and a replay may start at the same time.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"projection-schema:{schema}",))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
        conn.execute(sql.SQL(_DDL).format(schema=sql.Identifier(schema)))
        projection.create_tables(conn, schema)


def schema_exists(conn: psycopg.Connection, schema: str) -> bool:
    row = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None


def offsets_table_exists(conn: psycopg.Connection, schema: str) -> bool:
    """Return True if a consumer of the group created its bookkeeping tables in `schema`.

    The schema alone is not enough: `ticketing notify dispatch` creates the
    notifications schema before any consumer of the group ran.
    """
    row = conn.execute("SELECT to_regclass(format('%%I.consumer_offsets', %s::text))", (schema,)).fetchone()
    return row is not None and row[0] is not None


def lock_offsets(
    conn: psycopg.Connection, schema: str, group: str, partitions: Iterable[TopicPartition]
) -> dict[TopicPartition, int]:
    """Return the stored offsets of `partitions` and lock their rows until the transaction ends.

    The row locks serialise this batch with any other writer of the same partitions:
    another member of the group after a rebalance, or replay's schema swap, which locks
    the whole table.
    """
    # Taken first in every batch transaction, even one without partitions, so that all
    # of them lock in the same order as replay's swap and none can deadlock with it.
    conn.execute(sql.SQL("LOCK TABLE {}.consumer_offsets IN ROW SHARE MODE").format(sql.Identifier(schema)))
    wanted = sorted(set(partitions))
    if not wanted:
        return {}
    query = sql.SQL(
        """
        SELECT topic, partition, next_offset FROM {}.consumer_offsets
        WHERE "group" = %s
          AND (topic, partition) IN (SELECT * FROM unnest(%s::text[], %s::integer[]))
        ORDER BY topic, partition
        FOR UPDATE
        """
    ).format(sql.Identifier(schema))
    rows = conn.execute(
        query, (group, [tp.topic for tp in wanted], [tp.partition for tp in wanted])
    ).fetchall()
    return {TopicPartition(topic, partition): offset for topic, partition, offset in rows}


def read_offsets(
    conn: psycopg.Connection, schema: str, group: str, partitions: Iterable[TopicPartition] | None = None
) -> dict[TopicPartition, int]:
    """Return the stored offsets of the group, of all partitions when `partitions` is None."""
    query = sql.SQL('SELECT topic, partition, next_offset FROM {}.consumer_offsets WHERE "group" = %s').format(
        sql.Identifier(schema)
    )
    rows = conn.execute(query, (group,)).fetchall()
    stored = {TopicPartition(topic, partition): offset for topic, partition, offset in rows}
    if partitions is None:
        return stored
    return {tp: stored[tp] for tp in partitions if tp in stored}


def save_offsets(
    conn: psycopg.Connection, schema: str, group: str, offsets: Mapping[TopicPartition, int]
) -> None:
    if not offsets:
        return
    query = sql.SQL(
        """
        INSERT INTO {}.consumer_offsets ("group", topic, partition, next_offset)
        VALUES (%s, %s, %s, %s)
        ON CONFLICT ("group", topic, partition) DO UPDATE SET next_offset = EXCLUDED.next_offset
        """
    ).format(sql.Identifier(schema))
    with conn.cursor() as cursor:
        cursor.executemany(query, [(group, tp.topic, tp.partition, offset) for tp, offset in offsets.items()])


def mark_applied(conn: psycopg.Connection, schema: str, aggregate_id: str, aggregate_version: int) -> bool:
    """Record an event as applied; return False when it was applied before (a duplicate)."""
    return conn.execute(_mark_applied_statement(schema), (aggregate_id, aggregate_version)).rowcount == 1


@functools.lru_cache(maxsize=64)
def _mark_applied_statement(schema: str) -> str:
    # Runs once per event, so it is composed once per schema.
    return (
        sql.SQL("INSERT INTO {}.applied_events (aggregate_id, aggregate_version) VALUES (%s, %s) ON CONFLICT DO NOTHING")
        .format(sql.Identifier(schema))
        .as_string(None)
    )


def advance_clock(
    conn: psycopg.Connection, schema: str, group: str, candidate: datetime | None
) -> datetime | None:
    """Move the group's clock forward to `candidate` if it is later; return the clock, or None."""
    if candidate is None:
        query = sql.SQL('SELECT clock FROM {}.consumer_clock WHERE "group" = %s').format(sql.Identifier(schema))
        row = conn.execute(query, (group,)).fetchone()
    else:
        query = sql.SQL(
            """
            INSERT INTO {schema}.consumer_clock ("group", clock) VALUES (%s, %s)
            ON CONFLICT ("group") DO UPDATE
                SET clock = GREATEST({schema}.consumer_clock.clock, EXCLUDED.clock)
            RETURNING clock
            """
        ).format(schema=sql.Identifier(schema))
        row = conn.execute(query, (group, candidate)).fetchone()
    return row[0] if row else None


def count_dead_letters(conn: psycopg.Connection, schema: str, group: str, letters: Iterable[DeadLetter]) -> None:
    query = sql.SQL(
        """
        INSERT INTO {schema}.dead_letters_count
            ("group", topic, partition, dead_letters, last_offset, last_error)
        VALUES (%s, %s, %s, 1, %s, %s)
        ON CONFLICT ("group", topic, partition) DO UPDATE SET
            dead_letters = {schema}.dead_letters_count.dead_letters + 1,
            last_offset = EXCLUDED.last_offset,
            last_error = EXCLUDED.last_error
        """
    ).format(schema=sql.Identifier(schema))
    with conn.cursor() as cursor:
        for letter in letters:
            cursor.execute(
                query, (group, letter.topic, letter.partition, letter.offset, letter.error_summary)
            )


def read_dead_letter_counts(conn: psycopg.Connection, schema: str, group: str) -> list[DeadLetterCount]:
    query = sql.SQL(
        """
        SELECT topic, partition, dead_letters, last_offset, last_error
        FROM {}.dead_letters_count WHERE "group" = %s ORDER BY topic, partition
        """
    ).format(sql.Identifier(schema))
    return [DeadLetterCount(*row) for row in conn.execute(query, (group,)).fetchall()]
