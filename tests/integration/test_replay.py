"""Replay: rebuild into a shadow schema, verify it against the live one, or swap it in while the group runs."""

from __future__ import annotations

import threading
import time

import psycopg
from typer.testing import CliRunner

from consumers.batch import Delivery
from consumers.replay import ReplayOptions, replay
from consumers.runner import GroupRunner, RunOptions, kafka_decoder
from projections.reports import PROJECTION
from tests.integration.test_consumer_fixtures import (  # noqa: F401  (fixtures)
    assert_reports_match,
    consume_until_caught_up,
    environment,
    group_settings,
    produce,
    rows,
)
from tests.unit.test_reports_expected import build_scenario
from tests.waiting import wait_until
from ticketing.cli import _register_commands, app
from ticketing.settings import Settings


def _schemas(settings: Settings) -> set[str]:
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        found = conn.execute(
            "SELECT nspname FROM pg_namespace WHERE starts_with(nspname, %s)", (settings.projection_prefix,)
        ).fetchall()
    return {name for (name,) in found}


def test_verify_finds_no_difference_then_the_corrupted_row(group_settings: Settings) -> None:
    history = build_scenario(seed=5, tickets=16)
    produce(group_settings, history.in_time_order())
    consume_until_caught_up(group_settings)
    _register_commands()
    runner = CliRunner()
    env = environment(group_settings)

    clean = runner.invoke(app, ["replay", "reports", "--verify", "--batch-size", "50"], env=env)
    ticket = rows(group_settings, "SELECT ticket_id FROM {schema}.tickets ORDER BY ticket_id LIMIT 1")[0]["ticket_id"]
    rows(group_settings, "UPDATE {schema}.tickets SET reopen_count = 99 WHERE ticket_id = %s RETURNING 1", (ticket,))
    corrupted = runner.invoke(app, ["replay", "reports", "--verify"], env=env)

    assert clean.exit_code == 0, clean.output
    assert "no differences" in clean.stdout
    assert corrupted.exit_code == 1, corrupted.output
    assert "table tickets: 1 row(s) only in live, 1 row(s) only in rebuilt" in corrupted.stdout
    assert ticket[:8] in corrupted.stdout
    assert "99" in corrupted.stdout
    assert "ticket_history" not in corrupted.stdout
    assert _schemas(group_settings) == {group_settings.projection_schema("reports")}, "verify left the shadow schema"


def test_swap_while_live_group_runs_and_lags(group_settings: Settings) -> None:
    history = build_scenario(seed=9, tickets=20)
    events = history.in_time_order()
    produce(group_settings, events[:120])
    consume_until_caught_up(group_settings)
    produce(group_settings, events[120:])
    decode = kafka_decoder()

    def slow_decode(delivery: Delivery):  # type: ignore[no-untyped-def]
        # Keeps the live group behind, so the swap lands while it is still reading.
        time.sleep(0.01)
        return decode(delivery)

    live = GroupRunner(group_settings, PROJECTION, RunOptions(batch_size=5, poll_timeout_ms=200, timeout_seconds=60),
                       decode=slow_decode)
    results = []
    thread = threading.Thread(target=lambda: results.append(live.run()))
    thread.start()
    try:
        result = replay(group_settings, PROJECTION, ReplayOptions(batch_size=100, timeout_seconds=60))
        stored_total = "SELECT coalesce(sum(next_offset), 0)::bigint AS total FROM {schema}.consumer_offsets"
        wait_until(lambda: rows(group_settings, stored_total)[0]["total"] == len(events), timeout=30,
                   message="the live group to reach the end after the swap")
    finally:
        live.stop()
        thread.join(timeout=30)

    assert result.swapped
    assert result.records == len(events)
    assert results and results[0].reseeks >= 1, "the live group never met the swapped offsets"
    assert _schemas(group_settings) == {group_settings.projection_schema("reports")}
    assert_reports_match(group_settings, history)
    verify = replay(group_settings, PROJECTION, ReplayOptions(verify=True, timeout_seconds=60))
    assert verify.differences == []
