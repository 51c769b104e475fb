"""`ticketing relay` as a separate process: killed mid-stream, restarted, stopped by signal."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from psycopg import sql

from ticketing.settings import Settings
from tests.integration.test_relay import (
    START,
    application,
    assert_complete_and_ordered,
    delete_topics_afterwards,  # noqa: F401 - autouse fixture, imported to run here too
    message_count,
    read_published,
    relay_position,
    seed_people,
    stored_events,
)
from tests.waiting import wait_until

TICKETING = Path(sys.executable).parent / "ticketing"
BATCH_SIZE = 20


class RelayProcesses:
    """Starts `ticketing relay` processes and kills, by pid, those still running at the end."""

    def __init__(self, settings: Settings, log_dir: Path) -> None:
        self.settings = settings
        self.log_dir = log_dir
        self.started: list[subprocess.Popen[bytes]] = []

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "EVENT_STORE_SCHEMA": self.settings.event_store_schema,
            "TOPIC_PREFIX": self.settings.topic_prefix,
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap_servers,
            "DATABASE_URL": self.settings.database_url,
        }

    def start(self, *arguments: str) -> subprocess.Popen[bytes]:
        log_path = self.log_dir / f"relay-{len(self.started) + 1}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [str(TICKETING), "relay", "--batch-size", str(BATCH_SIZE), *arguments],
                env=self.environment(),
                stdout=subprocess.DEVNULL,
                stderr=log_file,
            )
        process.log_path = log_path  # type: ignore[attr-defined]
        self.started.append(process)
        return process

    def run_once(self) -> tuple[int, list[dict[str, Any]]]:
        process = self.start("--once")
        return process.wait(timeout=60), log_lines(process)

    def stop_all(self) -> None:
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)


def log_lines(process: subprocess.Popen[bytes]) -> list[dict[str, Any]]:
    """Return the JSON log lines the process wrote to stderr, skipping anything else."""
    lines = []
    for raw in process.log_path.read_text().splitlines():  # type: ignore[attr-defined]
        if raw.startswith("{"):
            lines.append(json.loads(raw))
    return lines


def events_named(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [line for line in lines if line.get("event") == name]


@pytest.fixture
def relays(settings: Settings, tmp_path: Path) -> Iterator[RelayProcesses]:
    processes = RelayProcesses(settings, tmp_path)
    yield processes
    processes.stop_all()


class BackgroundWriter(threading.Thread):
    """Opens and updates tickets until stopped, at most `limit` tickets."""

    def __init__(self, settings: Settings, agent_id: UUID, customers: list[UUID], limit: int = 2000) -> None:
        super().__init__(name="background-writer")
        self.app = application(settings)
        self.agent_id = agent_id
        self.customers = customers
        self.limit = limit
        self.stop_requested = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for number in range(self.limit):
                if self.stop_requested.is_set():
                    return
                ticket_id = uuid4()
                self.app.open_ticket(
                    ticket_id, self.customers[number % 3], "phone", "support", f"bg {number}", occurred_at=START
                )
                self.app.assign_ticket(ticket_id, self.agent_id, occurred_at=START)
        except BaseException as error:  # noqa: BLE001 - checked by the test
            self.error = error
        finally:
            self.app.close()

    def finish(self) -> None:
        self.stop_requested.set()
        self.join(timeout=60)
        assert not self.is_alive(), "the background writer did not stop"
        assert self.error is None, self.error


def last_notification_id(settings: Settings) -> int:
    stored = stored_events(settings)
    return stored[-1][0] if stored else 0


def test_killed_relay_loses_nothing(settings: Settings, relays: RelayProcesses) -> None:
    app = application(settings)
    agent_id, customers = seed_people(app)
    app.close()
    writer = BackgroundWriter(settings, agent_id, customers)
    writer.start()

    try:
        first = relays.start()
        wait_until(lambda: message_count(settings) >= 100, timeout=60, message="100 messages from the first relay")
        first.send_signal(signal.SIGKILL)
        assert first.wait(timeout=10) == -signal.SIGKILL
        position_at_kill = relay_position(settings)
        published_at_kill = message_count(settings)

        # Events committed while no relay runs.
        stored_at_kill = last_notification_id(settings)
        wait_until(
            lambda: last_notification_id(settings) > stored_at_kill + 2 * BATCH_SIZE,
            timeout=60,
            message="new events while the relay is down",
        )

        second = relays.start()
        wait_until(lambda: message_count(settings) > published_at_kill, timeout=60, message="the second relay")
    finally:
        writer.finish()

    final_id = last_notification_id(settings)
    wait_until(lambda: relay_position(settings) == final_id, timeout=60, message="the relay to publish everything")
    second.send_signal(signal.SIGTERM)
    assert second.wait(timeout=30) == 0

    published = read_published(settings)
    stored = assert_complete_and_ordered(settings, published)

    # Only the batch in flight at the kill may arrive twice: the first BATCH_SIZE
    # notifications after the position recorded before the kill.
    notification_ids = {(str(event.originator_id), event.originator_version): notification_id for notification_id, event in stored}
    in_flight = sorted(notification_id for notification_id in notification_ids.values() if notification_id > position_at_kill)[:BATCH_SIZE]
    copies = Counter(message.event.dedup_key for message in published)
    duplicates = {key for key, count in copies.items() if count > 1}

    assert max(copies.values()) <= 2
    assert {notification_ids[key] for key in duplicates} <= set(in_flight)
    assert len(published) == len(stored) + len(duplicates)
    assert published_at_kill < len(stored), "the kill should happen mid-stream"


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_event_committed_while_relay_down_is_published(
    settings: Settings, relays: RelayProcesses, stop_signal: signal.Signals
) -> None:
    app = application(settings)
    seed_people(app)

    exit_code, once_lines = relays.run_once()
    assert exit_code == 0
    assert message_count(settings) == 4
    assert events_named(once_lines, "relay stopped")[0]["reason"] == "log exhausted"
    batch = events_named(once_lines, "batch published")[0]
    assert batch["read"] == 4
    assert batch["events_agents"] == 1
    assert batch["events_customers"] == 3
    position_after_once = relay_position(settings)

    app.register_customer(uuid4(), "While Down", "down@example.com", None, "en", occurred_at=START)
    app.close()

    follower = relays.start()
    wait_until(lambda: message_count(settings) == 5, timeout=30, message="the event stored while the relay was down")
    follower.send_signal(stop_signal)
    assert follower.wait(timeout=30) == 0

    lines = log_lines(follower)
    assert events_named(lines, "relay started")[0]["position"] == position_after_once
    assert relay_position(settings) > position_after_once
    assert events_named(lines, "relay stopped")[0]["reason"] == "stop requested"
    assert events_named(lines, "relay exited on signal")[0]["signal"] == stop_signal.name
    assert_complete_and_ordered(settings, read_published(settings))


def test_unreadable_stored_event_exits_with_code_1(settings: Settings, relays: RelayProcesses) -> None:
    app = application(settings)
    seed_people(app)
    table = sql.Identifier(settings.event_store_schema, "helpdesk_events")
    app.close()

    # A stored event whose class no longer exists, as after a careless rename.
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        connection.execute(
            sql.SQL("INSERT INTO {} (originator_id, originator_version, topic, state) VALUES (%s, 1, %s, %s)").format(table),
            (uuid4(), "domain.ticket:Ticket.Escalated", b"{}"),
        )

    exit_code, lines = relays.run_once()

    assert exit_code == 1
    failure = events_named(lines, "relay failed")[0]
    assert "domain.ticket:Ticket.Escalated" in failure["error"]
    assert failure["level"] == "error"
    assert message_count(settings) == 4
    assert relay_position(settings) == last_notification_id_before_poison(settings)


def last_notification_id_before_poison(settings: Settings) -> int:
    query = sql.SQL("SELECT max(notification_id) FROM {} WHERE topic <> %s").format(
        sql.Identifier(settings.event_store_schema, "helpdesk_events")
    )
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        return int(connection.execute(query, ("domain.ticket:Ticket.Escalated",)).fetchone()[0])
