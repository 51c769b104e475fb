"""Notifications end to end: events through Kafka into `ticketing consume notifications`."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
from psycopg import sql

from tests.integration.test_consumer_fixtures import environment, group_settings, produce  # noqa: F401
from tests.integration.test_notification_projection import build_scenario, outbox_rows
from ticketing.settings import Settings

TICKETING = [str(Path(sys.executable).with_name("ticketing"))]


def test_consume_writes_outbox(group_settings: Settings) -> None:  # noqa: F811
    scenario = build_scenario()
    produce(group_settings, scenario.stream.events)

    # The shipped rules file (2 minutes of allowed lateness) through the real command.
    consume = subprocess.run(
        [*TICKETING, "consume", "notifications", "--until-caught-up", "--timeout", "60", "--batch-size", "7"],
        env=environment(group_settings), capture_output=True, text=True, timeout=90,
    )

    assert consume.returncode == 0, consume.stderr
    schema = group_settings.projection_schema("notifications")
    with psycopg.connect(group_settings.database_url) as conn:
        rows = outbox_rows(conn, schema)
        deadlines = conn.execute(
            sql.SQL("SELECT rule, aggregate_id::text, status, closed_at, closed_by FROM {}.deadlines").format(
                sql.Identifier(schema)
            )
        ).fetchall()
        dead_letters = conn.execute(
            sql.SQL("SELECT coalesce(sum(dead_letters), 0) FROM {}.dead_letters_count").format(sql.Identifier(schema))
        ).fetchone()

    assert {(r["rule"], r["aggregate_id"], r["recipient"], r["fired_at"]) for r in rows} == scenario.expected
    assert len(rows) == len(scenario.expected)
    assert {(rule, aggregate): (status, at, by) for rule, aggregate, status, at, by in deadlines} == (
        scenario.expected_deadlines
    )
    assert dead_letters == (0,)
