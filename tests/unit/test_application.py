"""HelpdeskApplication on eventsourcing's in-memory (POPO) persistence."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.persistence import IntegrityError, PersistenceError
from structlog.testing import capture_logs

from domain.agent import Agent
from domain.customer import Customer
from domain.errors import AlreadyExists, CommandRejected, InvalidTransition, NotFound
from domain.ticket import Ticket
from domain.values import AgentStatus, EmploymentKind, Priority, Resolution, TicketStatus
from ticketing.application import ConcurrencyConflict, HelpdeskApplication

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)
POPO = {"PERSISTENCE_MODULE": "eventsourcing.popo"}


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


@pytest.fixture
def app() -> Iterator[HelpdeskApplication]:
    application = HelpdeskApplication(env=POPO, retry_delay_seconds=0)
    yield application
    application.close()


def stored_events(app: HelpdeskApplication, aggregate_id: UUID) -> list[Any]:
    return list(app.events.get(aggregate_id))


def setup_ticket(app: HelpdeskApplication) -> tuple[UUID, UUID, UUID]:
    customer_id, agent_id, ticket_id = uuid4(), uuid4(), uuid4()
    app.register_customer(customer_id, "Alan", "alan@example.com", occurred_at=T0)
    app.hire_agent(agent_id, "Grace", "grace@example.com", "regular", None, ["billing"], occurred_at=T0)
    app.open_ticket(ticket_id, customer_id, "email", "billing", "Refund", occurred_at=T0)
    return customer_id, agent_id, ticket_id


def test_application_names_its_tables() -> None:
    assert HelpdeskApplication.name == "Helpdesk"


# Every command method, end to end


def test_ticket_commands_return_versions(app: HelpdeskApplication) -> None:
    customer_id, agent_id, ticket_id = setup_ticket(app)
    target_id = uuid4()
    app.open_ticket(target_id, customer_id, "chat", "billing", "Same refund", occurred_at=T0)

    versions = [
        app.change_ticket_attributes(ticket_id, {"order": "A-1"}, occurred_at=at(1)),
        app.change_ticket_priority(ticket_id, "high", occurred_at=at(2)),
        app.assign_ticket(ticket_id, agent_id, occurred_at=at(3)),
        app.reply_as_agent(ticket_id, agent_id, "Looking into it.", occurred_at=at(4)),
        app.reply_as_customer(ticket_id, "Thanks.", occurred_at=at(5)),
        app.move_ticket_to_pending(ticket_id, occurred_at=at(6)),
        app.put_ticket_on_hold(ticket_id, occurred_at=at(7)),
        app.resume_ticket(ticket_id, occurred_at=at(8)),
        app.request_callback(ticket_id, "cb-1", "+49 30 1", at(60), at(90), occurred_at=at(9)),
        app.complete_callback(ticket_id, "cb-1", agent_id, occurred_at=at(61)),
        app.request_callback(ticket_id, "cb-2", "+49 30 1", at(70), at(90), occurred_at=at(62)),
        app.miss_callback(ticket_id, "cb-2", occurred_at=at(91)),
        app.transfer_ticket(ticket_id, "sales", occurred_at=at(92)),
        app.resolve_ticket(ticket_id, "solved", occurred_at=at(93)),
        app.close_ticket(ticket_id, occurred_at=at(94)),
        app.rate_satisfaction(ticket_id, 5, "Great", occurred_at=at(95)),
        app.reopen_ticket(ticket_id, occurred_at=at(96)),
        app.merge_ticket(ticket_id, target_id, occurred_at=at(97)),
    ]

    assert versions == list(range(2, 20))
    ticket = app.get_ticket(ticket_id)
    assert ticket.status is TicketStatus.MERGED
    assert ticket.merged_into == target_id
    assert ticket.satisfaction_score == 5
    assert len(stored_events(app, ticket_id)) == 19


def test_agent_commands_return_versions(app: HelpdeskApplication) -> None:
    agent_id = uuid4()

    versions = [
        app.hire_agent(agent_id, "Ada", "ada@example.com", "temporary", date(2024, 6, 30), ["billing"], occurred_at=T0),
        app.change_agent_departments(agent_id, ["billing", "sales"], occurred_at=at(1)),
        app.set_agent_online(agent_id, occurred_at=at(2)),
        app.pause_agent(agent_id, "lunch", occurred_at=at(3)),
        app.resume_agent(agent_id, occurred_at=at(4)),
        app.set_agent_offline(agent_id, occurred_at=at(5)),
        app.end_agent_engagement(agent_id, occurred_at=at(6)),
    ]

    assert versions == list(range(1, 8))
    agent = app.get_agent(agent_id)
    assert agent.status is AgentStatus.LEFT
    assert agent.engagement_ended_early is True
    assert agent.engagement_ends_on == date(2024, 6, 30)


def test_agent_leaving_is_recorded(app: HelpdeskApplication) -> None:
    agent_id = uuid4()
    app.hire_agent(agent_id, "Ada", "ada@example.com", "regular", None, ["billing"], occurred_at=T0)

    version = app.record_agent_leaving(agent_id, "involuntary", occurred_at=at(1))

    assert version == 2
    assert app.get_agent(agent_id).status is AgentStatus.LEFT


def test_customer_commands_return_versions(app: HelpdeskApplication) -> None:
    customer_id = uuid4()

    versions = [
        app.register_customer(customer_id, "Alan", "alan@example.com", "+44 1", "en-GB", occurred_at=T0),
        app.change_customer_contact_details(customer_id, email="turing@example.com", occurred_at=at(1)),
        app.forget_customer(customer_id, occurred_at=at(2)),
    ]

    assert versions == [1, 2, 3]
    customer = app.get_customer(customer_id)
    assert customer.is_forgotten
    assert customer.email is None


def test_reloaded_values_keep_their_types(app: HelpdeskApplication) -> None:
    _, agent_id, ticket_id = setup_ticket(app)
    app.change_ticket_priority(ticket_id, Priority.URGENT, occurred_at=at(1))
    app.resolve_ticket(ticket_id, Resolution.WONT_FIX, occurred_at=at(2))

    ticket = app.get_ticket(ticket_id)

    assert ticket.priority is Priority.URGENT
    assert ticket.resolution is Resolution.WONT_FIX
    assert isinstance(ticket.customer_id, UUID)
    assert ticket.last_occurred_at == at(2)
    assert app.get_agent(agent_id).employment is EmploymentKind.REGULAR


# Idempotency


def test_repeated_command_key_stores_once(app: HelpdeskApplication) -> None:
    _, _, ticket_id = setup_ticket(app)

    first = app.reply_as_customer(ticket_id, "Hello?", occurred_at=at(1), command_key="mail-1")
    second = app.reply_as_customer(ticket_id, "Hello?", occurred_at=at(1), command_key="mail-1")

    assert first == second == 2
    assert len(stored_events(app, ticket_id)) == 2


def test_repeated_creation_with_same_key_is_no_op(app: HelpdeskApplication) -> None:
    customer_id = uuid4()
    app.register_customer(customer_id, "Alan", "alan@example.com", occurred_at=T0, command_key="reg-1")

    version = app.register_customer(
        customer_id, "Alan", "alan@example.com", occurred_at=T0, command_key="reg-1"
    )

    assert version == 1
    assert len(stored_events(app, customer_id)) == 1


@pytest.mark.parametrize("second_key", ["reg-2", None])
def test_creation_with_other_key_is_rejected(app: HelpdeskApplication, second_key: str | None) -> None:
    customer_id = uuid4()
    app.register_customer(customer_id, "Alan", "alan@example.com", occurred_at=T0, command_key="reg-1")

    with pytest.raises(AlreadyExists) as caught:
        app.register_customer(customer_id, "Bob", "bob@example.com", occurred_at=T0, command_key=second_key)

    assert str(caught.value) == (
        f"Customer {customer_id} already exists (created with command key 'reg-1'), so "
        f"register with command key {second_key!r} was rejected. Use a new id, or repeat "
        f"the original command key to make the call a no-op."
    )
    assert isinstance(caught.value, CommandRejected)
    assert caught.value.command == "register"
    assert len(stored_events(app, customer_id)) == 1


def test_creation_with_id_of_other_type_is_rejected(app: HelpdeskApplication) -> None:
    customer_id = uuid4()
    app.register_customer(customer_id, "Alan", "alan@example.com", occurred_at=T0, command_key="k")

    with pytest.raises(AlreadyExists) as caught:
        app.hire_agent(customer_id, "Ada", "ada@example.com", "regular", None, [], occurred_at=T0, command_key="k")

    assert str(caught.value) == (
        f"Agent {customer_id} cannot be created by hire, because the id already belongs to "
        f"Customer {customer_id}. Use a new id."
    )


# Reading


@pytest.mark.parametrize(
    ("method", "type_name"),
    [("get_ticket", "Ticket"), ("get_agent", "Agent"), ("get_customer", "Customer")],
)
def test_get_unknown_id_raises_not_found(app: HelpdeskApplication, method: str, type_name: str) -> None:
    unknown = uuid4()

    with pytest.raises(NotFound) as caught:
        getattr(app, method)(unknown)

    assert str(caught.value) == (
        f"{type_name} {unknown} was not found in the event store. "
        f"Check the id, or create the {type_name.lower()} first."
    )
    assert caught.value.aggregate_id == unknown


def test_get_id_of_other_type_raises_not_found(app: HelpdeskApplication) -> None:
    _, agent_id, _ = setup_ticket(app)

    with pytest.raises(NotFound) as caught:
        app.get_ticket(agent_id)

    assert str(caught.value) == (
        f"Ticket {agent_id} was not found: that id belongs to Agent {agent_id}. Check the id."
    )


def test_command_on_unknown_ticket_raises_not_found(app: HelpdeskApplication) -> None:
    with pytest.raises(NotFound, match="was not found in the event store"):
        app.resolve_ticket(uuid4(), "solved", occurred_at=T0)


def test_assign_unknown_agent_raises_not_found(app: HelpdeskApplication) -> None:
    _, _, ticket_id = setup_ticket(app)
    unknown = uuid4()

    with pytest.raises(NotFound, match=f"Agent {unknown} was not found"):
        app.assign_ticket(ticket_id, unknown, occurred_at=at(1))


def test_load_or_none(app: HelpdeskApplication) -> None:
    customer_id, agent_id, ticket_id = setup_ticket(app)

    assert app.load_or_none(uuid4()) is None
    assert isinstance(app.load_or_none(ticket_id), Ticket)
    assert isinstance(app.load_or_none(str(agent_id), Agent), Agent)
    with pytest.raises(NotFound):
        app.load_or_none(customer_id, Ticket)


def test_loaded_aggregates_can_be_saved_together(app: HelpdeskApplication) -> None:
    customer_id, agent_id, ticket_id = setup_ticket(app)
    ticket = app.load_or_none(ticket_id, Ticket)
    agent = app.load_or_none(agent_id, Agent)
    assert isinstance(ticket, Ticket)
    assert isinstance(agent, Agent)

    agent.go_online(occurred_at=at(1), command_key="batch-1")
    ticket.assign(agent, occurred_at=at(1), command_key="batch-2")
    app.save(ticket, agent)

    assert app.get_ticket(ticket_id).assignee_id == agent_id
    assert app.get_agent(agent_id).status is AgentStatus.ONLINE


# Rejections


def test_naive_time_raises_value_error_and_stores_nothing(app: HelpdeskApplication) -> None:
    _, _, ticket_id = setup_ticket(app)

    with pytest.raises(ValueError, match="naive datetime"):
        app.reply_as_customer(ticket_id, "Hi", occurred_at=datetime(2024, 5, 1, 10, 0))

    assert len(stored_events(app, ticket_id)) == 1


def test_rule_violation_stores_nothing(app: HelpdeskApplication) -> None:
    _, _, ticket_id = setup_ticket(app)

    with pytest.raises(InvalidTransition, match="cannot be reopened"):
        app.reopen_ticket(ticket_id, occurred_at=at(1))

    assert len(stored_events(app, ticket_id)) == 1


def test_max_attempts_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_attempts must be at least 1, but got 0."):
        HelpdeskApplication(env=POPO, max_attempts=0)


# Version conflicts


def write_competing_event_before_each_save(app: HelpdeskApplication, agent_id: UUID, times: int) -> list[int]:
    """Make another writer store a new agent version just before each of the next `times` saves."""
    original_save = app.save
    competitor_versions: list[int] = []

    def save(*objects: Any, **kwargs: Any) -> Any:
        if len(competitor_versions) < times:
            competitor = app.repository.get(agent_id)
            competitor.change_departments([f"team-{len(competitor_versions)}"], occurred_at=at(1))
            original_save(competitor)
            competitor_versions.append(competitor.version)
        return original_save(*objects, **kwargs)

    app.save = save  # type: ignore[method-assign]
    return competitor_versions


def test_conflict_is_retried_and_both_commands_land(app: HelpdeskApplication) -> None:
    agent_id = uuid4()
    app.hire_agent(agent_id, "Ada", "ada@example.com", "regular", None, ["billing"], occurred_at=T0)
    competitor_versions = write_competing_event_before_each_save(app, agent_id, times=1)

    with capture_logs() as logs:
        version = app.set_agent_online(agent_id, occurred_at=at(2))

    assert competitor_versions == [2]
    assert version == 3
    agent = app.get_agent(agent_id)
    assert agent.status is AgentStatus.ONLINE
    assert agent.departments == ("team-0",)
    retries = [entry for entry in logs if entry["event"] == "version conflict, retrying"]
    assert len(retries) == 1
    assert retries[0]["aggregate_id"] == str(agent_id)
    assert retries[0]["attempt"] == 1


def test_conflict_on_every_attempt_raises(app: HelpdeskApplication) -> None:
    agent_id = uuid4()
    app.hire_agent(agent_id, "Ada", "ada@example.com", "regular", None, ["billing"], occurred_at=T0)
    write_competing_event_before_each_save(app, agent_id, times=100)

    with capture_logs() as logs, pytest.raises(ConcurrencyConflict) as caught:
        app.set_agent_online(agent_id, occurred_at=at(2))

    assert str(caught.value) == (
        f"go_online on Agent {agent_id} failed after 5 attempts, because another writer "
        f"stored a new version of the agent between load and save each time. Retry the "
        f"command later, with the same command_key so that it cannot apply twice."
    )
    assert caught.value.attempts == 5
    assert caught.value.retriable is True
    assert isinstance(caught.value.__cause__, IntegrityError)
    assert app.get_agent(agent_id).status is AgentStatus.OFFLINE
    assert len([entry for entry in logs if entry["event"] == "version conflict, retrying"]) == 4
    assert [entry["event"] for entry in logs][-1] == "version conflict, giving up"


def test_max_attempts_bounds_retries() -> None:
    app = HelpdeskApplication(env=POPO, max_attempts=2, retry_delay_seconds=0)
    agent_id = uuid4()
    app.hire_agent(agent_id, "Ada", "ada@example.com", "regular", None, ["billing"], occurred_at=T0)
    competitor_versions = write_competing_event_before_each_save(app, agent_id, times=100)

    with pytest.raises(ConcurrencyConflict, match="failed after 2 attempts"):
        app.set_agent_online(agent_id, occurred_at=at(2))

    assert len(competitor_versions) == 2


# Snapshots


def test_agent_snapshot_every_fifty_events(app: HelpdeskApplication) -> None:
    agent_id = uuid4()
    app.hire_agent(agent_id, "Ada", "ada@example.com", "regular", None, ["billing"], occurred_at=T0)
    for minute in range(1, 120):
        if minute % 2:
            app.set_agent_online(agent_id, occurred_at=at(minute))
        else:
            app.set_agent_offline(agent_id, occurred_at=at(minute))

    assert app.snapshots is not None
    snapshot_versions = [snapshot.originator_version for snapshot in app.snapshots.get(agent_id)]
    assert snapshot_versions == [50, 100]

    replayed = None
    for event in app.events.get(agent_id):
        replayed = event.mutate(replayed)
    assert app.get_agent(agent_id) == replayed


def test_tickets_are_not_snapshotted(app: HelpdeskApplication) -> None:
    _, _, ticket_id = setup_ticket(app)
    for minute in range(1, 60):
        app.reply_as_customer(ticket_id, f"message {minute}", occurred_at=at(minute))

    assert app.snapshots is not None
    assert list(app.snapshots.get(ticket_id)) == []


def test_failed_snapshot_does_not_fail_command(app: HelpdeskApplication, monkeypatch: pytest.MonkeyPatch) -> None:
    customer_id = uuid4()
    app.register_customer(customer_id, "Alan", "alan@example.com", occurred_at=T0)
    assert app.snapshots is not None

    def fail(*args: Any, **kwargs: Any) -> None:
        raise PersistenceError("disk full")

    monkeypatch.setattr(app.snapshots, "put", fail)
    for minute in range(1, 49):
        app.change_customer_contact_details(customer_id, phone=f"+44 {minute}", occurred_at=at(minute))

    with capture_logs() as logs:
        version = app.change_customer_contact_details(customer_id, phone="+44 50", occurred_at=at(50))

    assert version == 50
    assert app.get_customer(customer_id).phone == "+44 50"
    [warning] = [entry for entry in logs if entry["event"] == "snapshot failed, loading will replay more events"]
    assert warning["aggregate_id"] == str(customer_id)
    assert warning["error"] == "disk full"


def test_customer_snapshot_keeps_command_keys(app: HelpdeskApplication) -> None:
    customer_id = uuid4()
    app.register_customer(customer_id, "Alan", "alan@example.com", occurred_at=T0, command_key="reg")
    for minute in range(1, 50):
        app.change_customer_contact_details(
            customer_id, phone=f"+44 {minute}", occurred_at=at(minute), command_key=f"chg-{minute}"
        )

    # Version 50 is served from the snapshot, and repeating an old key stores nothing.
    version = app.change_customer_contact_details(
        customer_id, phone="+44 0", occurred_at=at(60), command_key="chg-7"
    )

    assert app.snapshots is not None
    assert [snapshot.originator_version for snapshot in app.snapshots.get(customer_id)] == [50]
    assert version == 50
    assert app.get_customer(customer_id).phone == "+44 49"
    assert isinstance(app.get_customer(customer_id), Customer)
