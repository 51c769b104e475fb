"""`ticketing history` against the real PostgreSQL server, one event-store schema per test."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from uuid import UUID, uuid4

import pytest
import typer
from typer.testing import CliRunner, Result

from ticketing.application import HelpdeskApplication
from ticketing.cli import history
from ticketing.settings import Settings

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)
SUBPROCESS_TIMEOUT_SECONDS = 60


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@dataclasses.dataclass(frozen=True)
class Story:
    customer_id: UUID
    agent_id: UUID
    ticket_id: UUID


@pytest.fixture
def store_settings(base_settings: Settings, database_url: str, pg_schema: str) -> Settings:
    return dataclasses.replace(base_settings, event_store_schema=pg_schema)


@pytest.fixture
def app(store_settings: Settings) -> Iterator[HelpdeskApplication]:
    application = HelpdeskApplication(env=store_settings.eventsourcing_env())
    yield application
    application.close()


@pytest.fixture
def story(app: HelpdeskApplication) -> Story:
    """A customer opens a ticket and requests a callback, the agent calls, and the ticket is resolved."""
    customer_id, agent_id, ticket_id = uuid4(), uuid4(), uuid4()
    app.register_customer(customer_id, "Alan Turing", "alan@example.com", "+44 20 7946 0000", occurred_at=T0)
    app.hire_agent(agent_id, "Ada", "ada@example.com", "temporary", date(2024, 6, 30), ["billing"], occurred_at=T0)
    app.open_ticket(
        ticket_id, customer_id, "phone", "billing", "Refund", occurred_at=at(1),
        command_key="call-1", actor_id=f"customer:{customer_id}",
    )
    app.assign_ticket(ticket_id, agent_id, occurred_at=at(5), actor_id="system:router")
    app.request_callback(ticket_id, "cb-1", "+44 20 7946 0000", at(30), at(60), occurred_at=at(6))
    app.complete_callback(ticket_id, "cb-1", agent_id, occurred_at=at(40), actor_id=f"agent:{agent_id}")
    app.resolve_ticket(ticket_id, "solved", occurred_at=at(41), actor_id=f"agent:{agent_id}")
    return Story(customer_id=customer_id, agent_id=agent_id, ticket_id=ticket_id)


def run_history(settings: Settings, *arguments: str) -> Result:
    cli = typer.Typer()

    @cli.callback()
    def root() -> None:
        """Test root, so that `history` stays a subcommand as in the real CLI."""

    history.register(cli)
    # A wide terminal keeps table cells on one line, so that substrings can be found.
    env = {"EVENT_STORE_SCHEMA": settings.event_store_schema, "DATABASE_URL": settings.database_url, "COLUMNS": "250"}
    return CliRunner().invoke(cli, ["history", *arguments], env=env)


# Timeline


def test_ticket_timeline_table(store_settings: Settings, story: Story) -> None:
    result = run_history(store_settings, "ticket", str(story.ticket_id))

    assert result.exit_code == 0, result.output
    for event_type in [
        "Ticket.Opened",
        "Ticket.Assigned",
        "Ticket.CallbackRequested",
        "Ticket.CallbackCompleted",
        "Ticket.Resolved",
    ]:
        assert event_type in result.output
    assert "2024-05-01 09:01:00" in result.output
    assert f"customer:{story.customer_id}" in result.output
    assert "system:router" in result.output
    assert "call-1" in result.output
    assert "resolution: solved" in result.output
    assert "+44 20 7946 0000" in result.output


def test_ticket_timeline_jsonl(store_settings: Settings, story: Story) -> None:
    result = run_history(store_settings, "ticket", str(story.ticket_id), "--format", "jsonl")

    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert [line["event_type"] for line in lines] == [
        "Ticket.Opened",
        "Ticket.Assigned",
        "Ticket.CallbackRequested",
        "Ticket.CallbackCompleted",
        "Ticket.Resolved",
    ]
    assert [line["version"] for line in lines] == [1, 2, 3, 4, 5]
    assert lines[0]["occurred_at"] == "2024-05-01T09:01:00+00:00"
    assert lines[0]["command_key"] == "call-1"
    assert lines[0]["changes"]["customer_id"] == str(story.customer_id)
    assert lines[1]["actor_id"] == "system:router"
    assert lines[1]["changes"] == {"agent_id": str(story.agent_id)}
    assert datetime.fromisoformat(lines[0]["recorded_at"]).tzinfo is not None


def test_agent_timeline_jsonl(store_settings: Settings, story: Story) -> None:
    result = run_history(store_settings, "agent", str(story.agent_id), "--format", "jsonl")

    assert result.exit_code == 0, result.output
    [hired] = [json.loads(line) for line in result.output.splitlines()]
    assert hired["event_type"] == "Agent.Hired"
    assert hired["changes"]["engagement_ends_on"] == "2024-06-30"
    assert hired["changes"]["departments"] == ["billing"]


def test_forgotten_customer_is_redacted(store_settings: Settings, app: HelpdeskApplication, story: Story) -> None:
    app.forget_customer(story.customer_id, occurred_at=at(100))

    customer = run_history(store_settings, "customer", str(story.customer_id), "--format", "jsonl")
    ticket = run_history(store_settings, "ticket", str(story.ticket_id))

    assert customer.exit_code == 0, customer.output
    registered = json.loads(customer.output.splitlines()[0])
    assert registered["changes"] == {
        "name": "[forgotten]",
        "email": "[forgotten]",
        "phone": "[forgotten]",
        "language": "en",
    }
    assert "Alan" not in customer.output
    assert ticket.exit_code == 0, ticket.output
    assert "+44 20 7946 0000" not in ticket.output
    assert "phone: [forgotten]" in ticket.output
    assert "Personal fields show [forgotten], because the customer was forgotten." in ticket.output


# State as of a business time


def test_as_of_rebuilds_state_at_time(store_settings: Settings, story: Story) -> None:
    result = run_history(store_settings, "ticket", str(story.ticket_id), "--as-of", "2024-05-01T09:30:00Z", "--format", "jsonl")

    assert result.exit_code == 0, result.output
    state = json.loads(result.output)
    assert state["as_of"] == "2024-05-01T09:30:00+00:00"
    assert state["events_applied"] == 3
    assert state["state"]["status"] == "open"
    assert state["state"]["assignee_id"] == str(story.agent_id)
    assert state["state"]["callbacks"] == {"cb-1": "requested"}
    assert state["state"]["version"] == 3


def test_as_of_without_offset_is_utc(store_settings: Settings, story: Story) -> None:
    naive = run_history(store_settings, "ticket", str(story.ticket_id), "--as-of", "2024-05-01T09:41:00", "--format", "jsonl")
    berlin = run_history(store_settings, "ticket", str(story.ticket_id), "--as-of", "2024-05-01T11:41:00+02:00", "--format", "jsonl")

    assert naive.exit_code == 0, naive.output
    assert json.loads(naive.output) == json.loads(berlin.output)
    assert json.loads(naive.output)["state"]["status"] == "resolved"


def test_as_of_table(store_settings: Settings, story: Story) -> None:
    result = run_history(store_settings, "agent", str(story.agent_id), "--as-of", "2024-05-02")

    assert result.exit_code == 0, result.output
    # rich wraps the title to the table's width.
    assert f"Agent {story.agent_id} as of 2024-05-02 00:00:00 UTC" in " ".join(result.output.split())
    assert "offline" in result.output
    assert "rebuilt from 1 event" in result.output


# Errors


def test_malformed_timestamp_exits_two(store_settings: Settings, story: Story) -> None:
    result = run_history(store_settings, "ticket", str(story.ticket_id), "--as-of", "last tuesday")

    assert result.exit_code == 2
    assert "Invalid value for --as-of: 'last tuesday' is not an ISO 8601 timestamp." in " ".join(result.output.split())


def test_malformed_id_exits_two(store_settings: Settings, story: Story) -> None:
    result = run_history(store_settings, "ticket", "ticket-42")

    assert result.exit_code == 2
    assert "'ticket-42' is not a UUID. Pass the ticket id" in " ".join(result.output.split())


def test_unknown_id_exits_one(store_settings: Settings, story: Story) -> None:
    unknown = uuid4()

    result = run_history(store_settings, "ticket", str(unknown))

    assert result.exit_code == 1
    assert f"error: Ticket {unknown} was not found: the event store has no events with that id." in result.output


def test_id_of_other_kind_exits_one(store_settings: Settings, story: Story) -> None:
    result = run_history(store_settings, "customer", str(story.agent_id))

    assert result.exit_code == 1
    assert f"Run `ticketing history agent {story.agent_id}` instead." in result.output


def test_as_of_before_creation_exits_one(store_settings: Settings, story: Story) -> None:
    result = run_history(store_settings, "ticket", str(story.ticket_id), "--as-of", "2024-05-01T09:00:30Z")

    assert result.exit_code == 1
    assert "did not exist yet at 2024-05-01T09:00:30+00:00" in result.output


def test_schema_without_tables_exits_one(base_settings: Settings, database_url: str, pg_schema: str) -> None:
    empty = dataclasses.replace(base_settings, event_store_schema=pg_schema)
    unknown = uuid4()

    result = run_history(empty, "ticket", str(unknown))

    assert result.exit_code == 1
    assert "has no events table, so nothing was stored there yet" in result.output


def test_installed_command_prints_timeline(store_settings: Settings, story: Story) -> None:
    executable = Path(sys.executable).parent / "ticketing"
    env = {
        **os.environ,
        "EVENT_STORE_SCHEMA": store_settings.event_store_schema,
        "DATABASE_URL": store_settings.database_url,
    }

    completed = subprocess.run(
        [str(executable), "history", "ticket", str(story.ticket_id), "--format", "jsonl"],
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
        check=False,
    )
    unknown = subprocess.run(
        [str(executable), "history", "agent", str(uuid4())],
        env=env,
        capture_output=True,
        text=True,
        timeout=SUBPROCESS_TIMEOUT_SECONDS,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert len(completed.stdout.splitlines()) == 5
    assert unknown.returncode == 1
    assert "was not found" in unknown.stderr
