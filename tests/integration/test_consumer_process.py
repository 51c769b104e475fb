"""A group process stopped in the middle of a batch, by SIGKILL or SIGTERM, resumes without losing or repeating work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psycopg

from tests.integration.test_consumer_fixtures import (  # noqa: F401  (fixtures)
    assert_reports_match,
    environment,
    group_settings,
    produce,
    rows,
)
from tests.unit.test_reports_expected import build_scenario
from tests.waiting import wait_until
from ticketing.settings import Settings

COMMAND = [sys.executable, "-c", "from ticketing.cli import main; main()"]


def _stored_total(settings: Settings) -> int:
    found = rows(settings, "SELECT coalesce(sum(next_offset), 0)::bigint AS total FROM {schema}.consumer_offsets")
    return int(found[0]["total"])


def _inside_a_batch(settings: Settings) -> bool:
    """Return True while the consumer has a transaction open, after at least one committed batch."""
    with psycopg.connect(settings.database_url, autocommit=True) as conn:
        schema_ready = conn.execute(
            "SELECT 1 FROM pg_tables WHERE schemaname = %s AND tablename = 'consumer_offsets'",
            (settings.projection_schema("reports"),),
        ).fetchone()
        if not schema_ready:
            return False
        in_transaction = conn.execute(
            "SELECT 1 FROM pg_stat_activity WHERE application_name = %s AND xact_start IS NOT NULL"
            " AND state IN ('active', 'idle in transaction')",
            (f"{settings.consumer_group('reports')}-consumer",),
        ).fetchone()
    return bool(in_transaction) and _stored_total(settings) > 0


def test_sigkill_mid_batch_then_restart_gives_exact_tables(group_settings: Settings, tmp_path) -> None:
    history = build_scenario(seed=3)
    events = history.in_time_order()
    total = produce(group_settings, events + events[100:130])
    env = environment(group_settings)
    log_file = (tmp_path / "consumer.log").open("wb")

    # The same static member id lets the restarted process take the partitions over at
    # once. Without it the group waits for the killed member's session to time out.
    member = ["--instance-id", "crash-test"]
    process = subprocess.Popen([*COMMAND, "consume", "reports", "--batch-size", "3", *member], env=env,
                               stdout=log_file, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _inside_a_batch(group_settings), timeout=45, interval=0.002,
                   message="the consumer inside a batch transaction")
        os.kill(process.pid, signal.SIGKILL)
    finally:
        process.wait(timeout=10)
    stored_at_kill = _stored_total(group_settings)

    restart = subprocess.run([*COMMAND, "consume", "reports", "--until-caught-up", "--timeout", "60", *member],
                             env=env, capture_output=True, timeout=90)

    assert process.returncode == -signal.SIGKILL
    assert 0 < stored_at_kill < total, "the kill did not land in the middle of the stream"
    assert restart.returncode == 0, restart.stderr.decode()[-2000:]
    assert _stored_total(group_settings) == total
    applied = rows(group_settings, "SELECT count(*) AS applied FROM {schema}.applied_events")
    assert applied[0]["applied"] == len(events)
    assert_reports_match(group_settings, history)


def test_sigterm_finishes_batch_and_exits_cleanly(group_settings: Settings, tmp_path) -> None:
    history = build_scenario(seed=4, tickets=12)
    events = history.in_time_order()
    total = produce(group_settings, events)
    env = environment(group_settings)
    log_path = tmp_path / "consumer.log"

    with log_path.open("wb") as log_file:
        process = subprocess.Popen([*COMMAND, "consume", "reports", "--batch-size", "2"], env=env,
                                   stdout=log_file, stderr=subprocess.STDOUT)
        try:
            wait_until(lambda: _inside_a_batch(group_settings), timeout=45, interval=0.002,
                       message="the consumer inside a batch transaction")
            process.send_signal(signal.SIGTERM)
            returncode = process.wait(timeout=30)
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
    stored_at_stop = _stored_total(group_settings)
    applied_at_stop = rows(group_settings, "SELECT count(*) AS applied FROM {schema}.applied_events")[0]["applied"]
    restart = subprocess.run([*COMMAND, "consume", "reports", "--until-caught-up", "--timeout", "60"],
                             env=env, capture_output=True, timeout=90)

    output = log_path.read_text()
    assert returncode == 0, output[-2000:]
    assert '"signal": "SIGTERM"' in output
    assert '"event": "consumer stopped"' in output
    assert 0 < stored_at_stop < total
    # Every record up to the stored offsets is applied, and no later one: the last batch committed whole.
    assert applied_at_stop == stored_at_stop
    assert restart.returncode == 0, restart.stderr.decode()[-2000:]
    assert_reports_match(group_settings, history)
