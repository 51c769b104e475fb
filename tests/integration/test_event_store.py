"""HelpdeskApplication against the real PostgreSQL server, one event-store schema per test."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.domain import Snapshot

from domain.agent import Agent
from domain.customer import Customer
from domain.errors import AlreadyExists
from domain.values import AgentStatus, EmploymentKind, Priority, TicketStatus
from ticketing.application import ConcurrencyConflict, HelpdeskApplication
from ticketing.settings import Settings

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)

# Upper bound for any wait on another thread, so that a bug fails the test instead of hanging it.
THREAD_TIMEOUT_SECONDS = 30


AppFactory = Callable[..., HelpdeskApplication]


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def store_settings(base_settings: Settings, database_url: str, pg_schema: str) -> Settings:
    """Settings whose event store is this test's own schema. Needs only PostgreSQL."""
    return dataclasses.replace(base_settings, event_store_schema=pg_schema)


@pytest.fixture
def make_app(store_settings: Settings) -> Iterator[AppFactory]:
    """Return a factory of application instances, each with its own connection pool."""
    apps: list[HelpdeskApplication] = []

    def make(**kwargs: Any) -> HelpdeskApplication:
        app = HelpdeskApplication(env=store_settings.eventsourcing_env(), **kwargs)
        apps.append(app)
        return app

    yield make
    for app in apps:
        app.close()


def stored_rows(settings: Settings, table: str = "helpdesk_events") -> list[tuple[UUID, int, str]]:
    """Read committed rows through a separate connection, not through the application."""
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        rows = connection.execute(
            f'SELECT originator_id, originator_version, topic FROM "{settings.event_store_schema}"."{table}" '
            f"ORDER BY originator_id, originator_version"
        ).fetchall()
    return [(row[0], row[1], row[2]) for row in rows]


def versions_of(settings: Settings, aggregate_id: UUID, table: str = "helpdesk_events") -> list[int]:
    return [version for originator, version, _ in stored_rows(settings, table) if originator == aggregate_id]


def hold_first_save_at(app: HelpdeskApplication, barrier: threading.Barrier) -> list[int]:
    """Make the app's first save wait at `barrier`, after its command has loaded the aggregate.

    Returns a list that gets one item per save call.
    """
    original_save = app.save
    calls: list[int] = []

    def save(*objects: Any, **kwargs: Any) -> Any:
        calls.append(len(calls) + 1)
        if len(calls) == 1:
            barrier.wait()
        return original_save(*objects, **kwargs)

    app.save = save  # type: ignore[method-assign]
    return calls


# Persistence


def test_round_trip_restores_every_aggregate(make_app: AppFactory, store_settings: Settings) -> None:
    writer = make_app()
    customer_id, agent_id, ticket_id = uuid4(), uuid4(), uuid4()
    writer.register_customer(customer_id, "Alan", "alan@example.com", "+44 1", "en-GB", occurred_at=T0)
    writer.hire_agent(agent_id, "Ada", "ada@example.com", "temporary", date(2024, 6, 30), ["billing"], occurred_at=T0)
    writer.set_agent_online(agent_id, occurred_at=at(1))
    writer.open_ticket(ticket_id, customer_id, "chat", "billing", "Refund", "high", {"order": "A-1"}, occurred_at=at(2))
    writer.assign_ticket(ticket_id, agent_id, occurred_at=at(3))
    writer.request_callback(ticket_id, "cb-1", "+44 1", at(10), at(20), occurred_at=at(4))
    writer.resolve_ticket(ticket_id, "solved", occurred_at=at(5))

    reader = make_app()
    ticket = reader.get_ticket(ticket_id)
    agent = reader.get_agent(agent_id)
    customer = reader.get_customer(customer_id)

    assert ticket.to_dict() == writer.get_ticket(ticket_id).to_dict()
    assert ticket.status is TicketStatus.RESOLVED
    assert ticket.priority is Priority.HIGH
    assert ticket.assignee_id == agent_id
    assert ticket.attributes == {"order": "A-1"}
    assert agent.employment is EmploymentKind.TEMPORARY
    assert agent.engagement_ends_on == date(2024, 6, 30)
    assert agent.status is AgentStatus.ONLINE
    assert customer.language == "en-GB"
    assert versions_of(store_settings, ticket_id) == [1, 2, 3, 4]


def test_events_reach_notification_log_in_order(make_app: AppFactory) -> None:
    app = make_app()
    customer_id, ticket_id = uuid4(), uuid4()
    app.register_customer(customer_id, "Alan", "alan@example.com", occurred_at=T0)
    app.open_ticket(ticket_id, customer_id, "email", "billing", "Refund", occurred_at=at(1))
    app.reply_as_customer(ticket_id, "Any news?", occurred_at=at(2))

    notifications = make_app().notification_log.select(start=1, limit=10)

    assert [notification.topic for notification in notifications] == [
        "domain.customer:Customer.Registered",
        "domain.ticket:Ticket.Opened",
        "domain.ticket:Ticket.CustomerReplied",
    ]
    assert [notification.originator_version for notification in notifications] == [1, 1, 2]


def test_schema_is_created_when_missing(store_settings: Settings, make_app: AppFactory) -> None:
    make_app()

    with psycopg.connect(store_settings.database_url, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = %s",
            (store_settings.event_store_schema,),
        ).fetchone()

    assert row is not None
    assert row[0] >= 2


def test_simultaneous_starts_create_tables_once(make_app: AppFactory) -> None:
    # Relay and consumers start together in production; all must come up on a fresh schema.
    starters = 6
    barrier = threading.Barrier(starters)

    def start() -> HelpdeskApplication:
        barrier.wait(timeout=30)
        return make_app()

    with ThreadPoolExecutor(max_workers=starters) as pool:
        futures = [pool.submit(start) for _ in range(starters)]
        started = [future.result(timeout=60) for future in futures]

    assert len(started) == starters


# Idempotency


def test_repeated_command_key_is_stored_once(make_app: AppFactory, store_settings: Settings) -> None:
    first, second = make_app(), make_app()
    customer_id, ticket_id = uuid4(), uuid4()
    first.register_customer(customer_id, "Alan", "alan@example.com", occurred_at=T0, command_key="reg-1")
    first.open_ticket(ticket_id, customer_id, "email", "billing", "Refund", occurred_at=at(1), command_key="mail-1")

    # The same messages delivered again, to another application instance.
    assert second.register_customer(customer_id, "Alan", "alan@example.com", occurred_at=T0, command_key="reg-1") == 1
    assert second.open_ticket(ticket_id, customer_id, "email", "billing", "Refund", occurred_at=at(1), command_key="mail-1") == 1
    assert first.reply_as_customer(ticket_id, "Hello", occurred_at=at(2), command_key="mail-2") == 2
    assert second.reply_as_customer(ticket_id, "Hello", occurred_at=at(2), command_key="mail-2") == 2

    assert versions_of(store_settings, customer_id) == [1]
    assert versions_of(store_settings, ticket_id) == [1, 2]


def test_creation_with_other_key_is_rejected(make_app: AppFactory, store_settings: Settings) -> None:
    app = make_app()
    customer_id = uuid4()
    app.register_customer(customer_id, "Alan", "alan@example.com", occurred_at=T0, command_key="reg-1")

    with pytest.raises(AlreadyExists, match="already exists"):
        make_app().register_customer(customer_id, "Eve", "eve@example.com", occurred_at=T0, command_key="reg-2")

    assert versions_of(store_settings, customer_id) == [1]
    assert make_app().get_customer(customer_id).name == "Alan"


# Concurrency


def test_concurrent_writers_both_land(make_app: AppFactory, store_settings: Settings) -> None:
    setup = make_app()
    agent_id = uuid4()
    setup.hire_agent(agent_id, "Ada", "ada@example.com", "regular", None, ["billing"], occurred_at=T0)
    first, second = make_app(retry_delay_seconds=0.01), make_app(retry_delay_seconds=0.01)
    barrier = threading.Barrier(2, timeout=THREAD_TIMEOUT_SECONDS)
    first_saves = hold_first_save_at(first, barrier)
    second_saves = hold_first_save_at(second, barrier)

    # Both writers load version 1 before either saves, so one insert of version 2 fails.
    with ThreadPoolExecutor(max_workers=2) as pool:
        departments = pool.submit(first.change_agent_departments, agent_id, ["billing", "sales"], occurred_at=at(1))
        online = pool.submit(second.set_agent_online, agent_id, occurred_at=at(1))
        results = {departments.result(THREAD_TIMEOUT_SECONDS), online.result(THREAD_TIMEOUT_SECONDS)}

    assert results == {2, 3}
    assert sorted([len(first_saves), len(second_saves)]) == [1, 2]
    assert versions_of(store_settings, agent_id) == [1, 2, 3]
    agent = make_app().get_agent(agent_id)
    assert agent.departments == ("billing", "sales")
    assert agent.status is AgentStatus.ONLINE


def test_concurrent_identical_creations_store_one(make_app: AppFactory, store_settings: Settings) -> None:
    first, second = make_app(retry_delay_seconds=0.01), make_app(retry_delay_seconds=0.01)
    barrier = threading.Barrier(2, timeout=THREAD_TIMEOUT_SECONDS)
    hold_first_save_at(first, barrier)
    hold_first_save_at(second, barrier)
    customer_id = uuid4()

    def register(app: HelpdeskApplication) -> int:
        return app.register_customer(customer_id, "Alan", "alan@example.com", occurred_at=T0, command_key="reg-1")

    with ThreadPoolExecutor(max_workers=2) as pool:
        versions = [future.result(THREAD_TIMEOUT_SECONDS) for future in [pool.submit(register, first), pool.submit(register, second)]]

    assert versions == [1, 1]
    assert versions_of(store_settings, customer_id) == [1]


def test_retries_run_out_with_clear_error(make_app: AppFactory, store_settings: Settings) -> None:
    app = make_app(max_attempts=3, retry_delay_seconds=0.01)
    competitor = make_app()
    agent_id = uuid4()
    app.hire_agent(agent_id, "Ada", "ada@example.com", "regular", None, ["billing"], occurred_at=T0)
    original_save = app.save
    competing_versions: list[int] = []

    def save_after_competitor(*objects: Any, **kwargs: Any) -> Any:
        # Another process stores a new version between this writer's load and save.
        team = f"team-{len(competing_versions)}"
        competing_versions.append(competitor.change_agent_departments(agent_id, [team], occurred_at=at(1)))
        return original_save(*objects, **kwargs)

    app.save = save_after_competitor  # type: ignore[method-assign]

    with pytest.raises(ConcurrencyConflict) as caught:
        app.set_agent_online(agent_id, occurred_at=at(2), command_key="online-1")

    assert str(caught.value) == (
        f"go_online on Agent {agent_id} failed after 3 attempts, because another writer "
        f"stored a new version of the agent between load and save each time. Retry the "
        f"command later, with the same command_key so that it cannot apply twice."
    )
    assert caught.value.aggregate_id == agent_id
    assert competing_versions == [2, 3, 4]
    assert versions_of(store_settings, agent_id) == [1, 2, 3, 4]
    assert make_app().get_agent(agent_id).status is AgentStatus.OFFLINE


# Snapshots


def test_snapshot_restored_agent_equals_replayed(make_app: AppFactory, store_settings: Settings) -> None:
    writer = make_app()
    agent_id = uuid4()
    writer.hire_agent(agent_id, "Ada", "ada@example.com", "temporary", date(2024, 6, 30), ["billing"], occurred_at=T0, command_key="hire")
    for minute in range(1, 120):
        command_key = f"presence-{minute}"
        if minute % 3 == 1:
            writer.set_agent_online(agent_id, occurred_at=at(minute), command_key=command_key)
        elif minute % 3 == 2:
            writer.pause_agent(agent_id, "break", occurred_at=at(minute), command_key=command_key)
        else:
            writer.set_agent_offline(agent_id, occurred_at=at(minute), command_key=command_key)

    assert versions_of(store_settings, agent_id, "helpdesk_snapshots") == [50, 100]

    reader = make_app()
    original_get = reader.events.get
    requested_after: list[int | None] = []

    def record_get(originator_id: UUID, *args: Any, **kwargs: Any) -> Any:
        requested_after.append(kwargs.get("gt"))
        return original_get(originator_id, *args, **kwargs)

    reader.events.get = record_get  # type: ignore[method-assign]
    from_snapshot = reader.get_agent(agent_id)

    replayed: Agent | None = None
    for event in original_get(agent_id):
        replayed = event.mutate(replayed)

    # The repository read only the events after the latest snapshot.
    assert requested_after == [100]
    assert replayed is not None
    assert from_snapshot.version == replayed.version == 120
    assert from_snapshot == replayed
    assert from_snapshot.to_dict() == replayed.to_dict()
    assert from_snapshot.has_applied("presence-7")
    assert from_snapshot.engagement_ends_on == date(2024, 6, 30)


# Upcasting


def insert_row(settings: Settings, table: str, aggregate_id: UUID, version: int, topic: str, state: dict[str, Any]) -> None:
    with psycopg.connect(settings.database_url, autocommit=True) as connection:
        connection.execute(
            f'INSERT INTO "{settings.event_store_schema}"."{table}" '
            f"(originator_id, originator_version, topic, state) VALUES (%s, %s, %s, %s)",
            (aggregate_id, version, topic, json.dumps(state).encode()),
        )


def test_version_one_registered_row_loads_with_english(make_app: AppFactory, store_settings: Settings) -> None:
    app = make_app()
    customer_id = uuid4()
    # The row as version 1 of Customer.Registered wrote it: no language, no class_version.
    insert_row(
        store_settings,
        "helpdesk_events",
        customer_id,
        1,
        "domain.customer:Customer.Registered",
        {
            "timestamp": {"_type_": "datetime_iso", "_data_": "2023-03-01T10:00:00+00:00"},
            "originator_topic": "domain.customer:Customer",
            "occurred_at": {"_type_": "datetime_iso", "_data_": "2023-03-01T09:59:00+00:00"},
            "command_key": "legacy-1",
            "actor_id": None,
            "name": "Ada",
            "email": "ada@example.com",
            "phone": None,
        },
    )

    customer = app.get_customer(customer_id)
    version = app.change_customer_contact_details(customer_id, phone="+44 1", occurred_at=T0)

    assert customer.language == "en"
    assert customer.name == "Ada"
    assert customer.has_applied("legacy-1")
    assert version == 2
    assert make_app().get_customer(customer_id).language == "en"


def test_version_one_snapshot_row_loads_with_english(make_app: AppFactory, store_settings: Settings) -> None:
    app = make_app()
    customer_id = uuid4()
    app.register_customer(customer_id, "Ada", "ada@example.com", language="de", occurred_at=T0)
    customer = app.get_customer(customer_id)

    # A snapshot that version 1 of the Customer aggregate took: no _language and no
    # class_version. Its name differs from the events, to show the snapshot was used.
    stored = app.mapper.to_stored_event(Snapshot.take(customer))
    snapshot_state = json.loads(stored.state)
    state = snapshot_state["state"]
    del state["class_version"]
    del state["_language"]
    state["_name"] = "Ada from snapshot"
    insert_row(store_settings, "helpdesk_snapshots", customer_id, 1, stored.topic, snapshot_state)

    restored = make_app().get_customer(customer_id)

    assert restored.name == "Ada from snapshot"
    assert restored.language == "en"
    assert isinstance(restored, Customer)
