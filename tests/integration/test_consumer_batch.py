"""One batch transaction against PostgreSQL: the offset guard, savepoints, duplicates and dead letters."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Iterator, Sequence

import psycopg
import pytest
from kafka.structs import TopicPartition
from psycopg import sql

from consumers import bookkeeping
from consumers.batch import Delivery, GroupTarget, StaleOffsets, commit_batch
from consumers.dead_letters import DeadLetter, DeadLetterPublishError
from ticketing.stream.codec import DecodeError
from ticketing.stream.decoded import DecodedEvent

AT = datetime(2024, 2, 1, 12, tzinfo=timezone.utc)
TP = TopicPartition("t.tickets", 0)


class NotesProjection:
    """Writes one row per event; fails on events whose body is "fail" or "lose connection"."""

    group = "notes"
    topics = ("tickets",)

    def __init__(self) -> None:
        self.clocks: list[datetime] = []

    def create_tables(self, conn: psycopg.Connection, schema: str) -> None:
        conn.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {}.notes (id text, version bigint)").format(sql.Identifier(schema)))

    def apply(self, conn: psycopg.Connection, schema: str, event: DecodedEvent) -> None:
        conn.execute(sql.SQL("INSERT INTO {}.notes VALUES (%s, %s)").format(sql.Identifier(schema)),
                     (event.aggregate_id, event.aggregate_version))
        if event.fields.get("body") == "fail":
            raise ValueError("this event cannot be applied")
        if event.fields.get("body") == "lose connection":
            raise psycopg.OperationalError("server closed the connection unexpectedly")

    def after_batch(self, conn: psycopg.Connection, schema: str, clock: datetime) -> None:
        self.clocks.append(clock)


class RecordingSink:
    def __init__(self, fail: bool = False) -> None:
        self.published: list[DeadLetter] = []
        self.fail = fail

    def publish(self, letters: Sequence[DeadLetter]) -> None:
        if self.fail and letters:
            raise DeadLetterPublishError("broker unavailable")
        self.published.extend(letters)


def _event(aggregate: str, version: int, body: str = "ok", minutes: int = 0) -> DecodedEvent:
    return DecodedEvent(
        event_id=f"{aggregate}-{version}", event_type="Ticket.CustomerReplied", aggregate_type="Ticket",
        aggregate_id=aggregate, aggregate_version=version, occurred_at=AT + timedelta(minutes=minutes),
        recorded_at=AT, fields={"body": body},
    )


def _deliveries(*events: DecodedEvent, start: int = 0) -> list[Delivery]:
    return [Delivery(topic=TP.topic, partition=0, offset=start + index, key=event.aggregate_id.encode(),
                     value=b"value", event=event) for index, event in enumerate(events)]


def _undecodable(offset: int) -> Delivery:
    return Delivery(topic=TP.topic, partition=0, offset=offset, value=b"\x00not avro")


def _decode(delivery: Delivery) -> DecodedEvent:
    raise DecodeError("not avro", topic=delivery.topic, partition=delivery.partition, offset=delivery.offset)


Setup = tuple[psycopg.Connection, GroupTarget, NotesProjection]


@pytest.fixture
def setup(database_url: str, pg_schema: str) -> Iterator[Setup]:
    projection = NotesProjection()
    with psycopg.connect(database_url, autocommit=True) as conn:
        bookkeeping.create_projection_schema(conn, pg_schema, projection)
        yield conn, GroupTarget(projection, pg_schema, "notes-group"), projection


def _notes(conn: psycopg.Connection, schema: str) -> list[tuple[str, int]]:
    return conn.execute(sql.SQL("SELECT id, version FROM {}.notes ORDER BY id, version").format(sql.Identifier(schema))).fetchall()


def test_batch_commits_rows_offsets_and_clock(setup: Setup) -> None:
    conn, target, projection = setup
    deliveries = _deliveries(_event("a", 1, minutes=5), _event("b", 1, minutes=2))

    result = commit_batch(conn, target, deliveries, {TP: 2}, {TP: None}, _decode, RecordingSink())

    assert result.applied == 2
    assert _notes(conn, target.schema) == [("a", 1), ("b", 1)]
    assert bookkeeping.read_offsets(conn, target.schema, target.group) == {TP: 2}
    assert projection.clocks == [AT + timedelta(minutes=5)]


def test_stale_offset_rolls_back_whole_batch(setup: Setup) -> None:
    conn, target, _ = setup
    commit_batch(conn, target, _deliveries(_event("a", 1)), {TP: 7}, {TP: None}, _decode, RecordingSink())

    with pytest.raises(StaleOffsets) as raised:
        commit_batch(conn, target, _deliveries(_event("b", 1), start=3), {TP: 4}, {TP: 3}, _decode, RecordingSink())

    assert raised.value.stored == {TP: 7}
    assert _notes(conn, target.schema) == [("a", 1)]
    assert bookkeeping.read_offsets(conn, target.schema, target.group) == {TP: 7}


def test_missing_offset_row_is_stale(setup: Setup) -> None:
    conn, target, _ = setup

    with pytest.raises(StaleOffsets) as raised:
        commit_batch(conn, target, _deliveries(_event("a", 1), start=5), {TP: 6}, {TP: 5}, _decode, RecordingSink())

    assert raised.value.stored == {TP: None}


def test_failed_apply_becomes_dead_letter(setup: Setup) -> None:
    conn, target, _ = setup
    sink = RecordingSink()
    deliveries = [*_deliveries(_event("a", 1), _event("b", 1, body="fail"), _event("c", 1)), _undecodable(3)]

    result = commit_batch(conn, target, deliveries, {TP: 4}, {TP: None}, _decode, sink)

    assert _notes(conn, target.schema) == [("a", 1), ("c", 1)]
    assert [(letter.offset, letter.stage, letter.error_type) for letter in sink.published] == [
        (1, "apply", "ValueError"), (3, "decode", "DecodeError")]
    assert result.dead_letters == sink.published
    counts = bookkeeping.read_dead_letter_counts(conn, target.schema, target.group)
    assert [(count.partition, count.dead_letters, count.last_offset) for count in counts] == [(0, 2, 3)]
    applied = conn.execute(sql.SQL("SELECT aggregate_id FROM {}.applied_events ORDER BY 1").format(
        sql.Identifier(target.schema))).fetchall()
    assert applied == [("a",), ("c",)]


def test_duplicates_are_dropped_within_and_across_batches(setup: Setup) -> None:
    conn, target, _ = setup
    first = commit_batch(conn, target, _deliveries(_event("a", 1), _event("a", 1)), {TP: 2}, {TP: None}, _decode,
                         RecordingSink())
    second = commit_batch(conn, target, _deliveries(_event("a", 1), _event("a", 2), start=2), {TP: 4}, {TP: 2},
                          _decode, RecordingSink())

    assert (first.applied, first.duplicates) == (1, 1)
    assert (second.applied, second.duplicates) == (1, 1)
    assert _notes(conn, target.schema) == [("a", 1), ("a", 2)]


def test_transient_error_rolls_back_whole_batch(setup: Setup) -> None:
    conn, target, _ = setup

    with pytest.raises(psycopg.OperationalError):
        commit_batch(conn, target, _deliveries(_event("a", 1), _event("b", 1, body="lose connection")), {TP: 2},
                     {TP: None}, _decode, RecordingSink())

    assert _notes(conn, target.schema) == []
    assert bookkeeping.read_offsets(conn, target.schema, target.group) == {}


def test_unpublished_dead_letter_rolls_back_whole_batch(setup: Setup) -> None:
    conn, target, _ = setup

    with pytest.raises(DeadLetterPublishError):
        commit_batch(conn, target, [*_deliveries(_event("a", 1)), _undecodable(1)], {TP: 2}, {TP: None}, _decode,
                     RecordingSink(fail=True))

    assert _notes(conn, target.schema) == []
    assert bookkeeping.read_dead_letter_counts(conn, target.schema, target.group) == []


def test_after_batch_waits_for_a_clock(setup: Setup) -> None:
    conn, target, projection = setup

    commit_batch(conn, target, [], {}, {}, _decode, RecordingSink())
    commit_batch(conn, target, _deliveries(_event("a", 1, minutes=9)), {TP: 1}, {TP: None}, _decode, RecordingSink())
    commit_batch(conn, target, _deliveries(_event("b", 1, minutes=1), start=1), {TP: 2}, {TP: 1}, _decode,
                 RecordingSink())
    commit_batch(conn, target, [], {}, {}, _decode, RecordingSink())

    assert projection.clocks == [AT + timedelta(minutes=9)] * 3
