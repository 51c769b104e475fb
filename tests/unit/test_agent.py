"""Agent aggregate: every event, every rule and its message, idempotency keys."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.agent import Agent
from domain.errors import CommandRejected, DomainError, InvalidTransition, InvalidValue
from domain.values import AgentStatus, EmploymentKind, LeavingKind, PauseReason

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def hire(
    employment: EmploymentKind = EmploymentKind.REGULAR,
    engagement_ends_on: date | None = None,
    departments: list[str] | None = None,
    **kwargs: Any,
) -> Agent:
    return Agent.hire(
        uuid4(),
        "Ada Lovelace",
        "ada@example.com",
        employment,
        engagement_ends_on,
        ["billing"] if departments is None else departments,
        occurred_at=kwargs.pop("occurred_at", T0),
        **kwargs,
    )


def new_event_types(agent: Agent) -> list[str]:
    return [type(event).__qualname__ for event in agent.collect_events()]


# Hired


def test_hire_records_every_field() -> None:
    agent_id = uuid4()
    agent = Agent.hire(
        agent_id,
        "Ada Lovelace",
        "ada@example.com",
        "temporary",
        date(2024, 6, 30),
        ["billing", "sales"],
        occurred_at=T0,
        command_key="hire-1",
        actor_id="system:import",
    )

    [event] = agent.collect_events()
    assert isinstance(event, Agent.Hired)
    assert event.originator_id == agent_id
    assert event.name == "Ada Lovelace"
    assert event.email == "ada@example.com"
    assert event.employment is EmploymentKind.TEMPORARY
    assert event.engagement_ends_on == date(2024, 6, 30)
    assert event.departments == ["billing", "sales"]
    assert event.occurred_at == T0
    assert event.command_key == "hire-1"
    assert event.actor_id == "system:import"

    assert agent.id == agent_id
    assert agent.version == 1
    assert agent.status is AgentStatus.OFFLINE
    assert agent.is_employed
    assert agent.departments == ("billing", "sales")
    assert agent.creation_command_key == "hire-1"
    assert agent.has_applied("hire-1")


def test_hire_drops_duplicate_departments() -> None:
    agent = hire(departments=["billing", "sales", "billing"])

    assert agent.departments == ("billing", "sales")


def test_hire_temporary_without_end_date_is_rejected() -> None:
    with pytest.raises(InvalidValue) as caught:
        hire(employment=EmploymentKind.TEMPORARY, engagement_ends_on=None)

    assert caught.value.field == "engagement_ends_on"
    assert "A temporary agent needs the date on which the engagement ends" in str(caught.value)


def test_hire_regular_with_end_date_is_rejected() -> None:
    with pytest.raises(InvalidValue) as caught:
        hire(employment=EmploymentKind.REGULAR, engagement_ends_on=date(2024, 6, 30))

    assert "engagement_ends_on 2024-06-30 is set for a regular agent" in str(caught.value)


def test_hire_end_date_must_be_a_date() -> None:
    with pytest.raises(InvalidValue, match="must be a date"):
        hire(employment=EmploymentKind.TEMPORARY, engagement_ends_on=T0)  # type: ignore[arg-type]


def test_hire_unknown_employment_lists_options() -> None:
    with pytest.raises(InvalidValue) as caught:
        hire(employment="freelance")  # type: ignore[arg-type]

    assert str(caught.value) == (
        "employment 'freelance' is not a valid EmploymentKind. Use one of: regular, temporary."
    )


@pytest.mark.parametrize("email", ["", "ada", "ada@", "@example.com", "a@b@c"])
def test_hire_invalid_email_is_rejected(email: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        Agent.hire(uuid4(), "Ada", email, "regular", None, ["billing"], occurred_at=T0)

    assert caught.value.field == "email"


def test_hire_departments_must_be_a_list() -> None:
    with pytest.raises(InvalidValue, match="must be a list of department names"):
        hire(departments="billing")  # type: ignore[arg-type]


def test_hire_id_must_be_a_uuid() -> None:
    with pytest.raises(InvalidValue, match="agent_id 'agent-7' is not a UUID"):
        Agent.hire("agent-7", "Ada", "ada@example.com", "regular", None, [], occurred_at=T0)


def test_hire_accepts_uuid_string() -> None:
    agent_id = uuid4()
    agent = Agent.hire(str(agent_id), "Ada", "ada@example.com", "regular", None, [], occurred_at=T0)

    assert agent.id == agent_id


# Business time and metadata


def test_naive_occurred_at_is_rejected() -> None:
    with pytest.raises(InvalidValue) as caught:
        hire(occurred_at=datetime(2024, 5, 1, 9, 0))

    assert isinstance(caught.value, ValueError)
    assert "is a naive datetime" in str(caught.value)


def test_naive_occurred_at_on_command_is_rejected() -> None:
    agent = hire()

    with pytest.raises(ValueError, match="naive datetime"):
        agent.go_online(occurred_at=datetime(2024, 5, 1, 10, 0))


def test_occurred_at_is_converted_to_utc() -> None:
    berlin_summer = timezone(timedelta(hours=2))
    agent = hire(occurred_at=datetime(2024, 5, 1, 11, 0, tzinfo=berlin_summer))

    [event] = agent.collect_events()
    assert event.occurred_at == T0
    assert event.occurred_at.tzinfo is timezone.utc


def test_business_time_going_backwards_is_rejected() -> None:
    agent = hire(occurred_at=at(10))

    with pytest.raises(InvalidValue) as caught:
        agent.go_online(occurred_at=at(5))

    message = str(caught.value)
    assert f"is earlier than the latest event of Agent {agent.id}" in message
    assert "must not go backwards" in message


def test_same_business_time_is_accepted() -> None:
    agent = hire(occurred_at=at(10))

    agent.go_online(occurred_at=at(10))

    assert agent.status is AgentStatus.ONLINE


@pytest.mark.parametrize("actor_id", ["bob", "agent:not-a-uuid", "robot:x", "system:", ""])
def test_invalid_actor_id_is_rejected(actor_id: str) -> None:
    agent = hire()

    with pytest.raises(InvalidValue) as caught:
        agent.go_online(occurred_at=T0, actor_id=actor_id)

    assert caught.value.field == "actor_id"
    assert agent.status is AgentStatus.OFFLINE


@pytest.mark.parametrize("kind", ["agent", "customer"])
def test_actor_id_with_uuid_is_accepted(kind: str) -> None:
    agent = hire()
    actor_id = f"{kind}:{uuid4()}"

    agent.go_online(occurred_at=T0, actor_id=actor_id)

    assert agent.collect_events()[-1].actor_id == actor_id


@pytest.mark.parametrize("command_key", ["", "   ", 7])
def test_blank_command_key_is_rejected(command_key: object) -> None:
    agent = hire()

    with pytest.raises(InvalidValue, match="command_key must be None or a non-empty string"):
        agent.go_online(occurred_at=T0, command_key=command_key)  # type: ignore[arg-type]


# Departments


def test_change_departments_records_new_list() -> None:
    agent = hire()
    agent.collect_events()

    agent.change_departments(["sales", "support"], occurred_at=at(1), command_key="dep-1")

    [event] = agent.collect_events()
    assert isinstance(event, Agent.DepartmentsChanged)
    assert event.departments == ["sales", "support"]
    assert agent.departments == ("sales", "support")


def test_change_departments_same_set_changes_nothing() -> None:
    agent = hire(departments=["billing", "sales"])
    agent.collect_events()

    agent.change_departments(["sales", "billing"], occurred_at=at(1))

    assert agent.collect_events() == []


# Presence


def test_presence_cycle_records_each_event() -> None:
    agent = hire()
    agent.collect_events()

    agent.go_online(occurred_at=at(1))
    assert agent.status is AgentStatus.ONLINE
    agent.pause(PauseReason.LUNCH, occurred_at=at(2))
    assert agent.status is AgentStatus.PAUSED
    assert agent.pause_reason is PauseReason.LUNCH
    agent.resume(occurred_at=at(3))
    assert agent.status is AgentStatus.ONLINE
    assert agent.pause_reason is None
    agent.go_offline(occurred_at=at(4))
    assert agent.status is AgentStatus.OFFLINE

    events = agent.collect_events()
    assert [type(event).__qualname__ for event in events] == [
        "Agent.WentOnline",
        "Agent.Paused",
        "Agent.Resumed",
        "Agent.WentOffline",
    ]
    assert events[1].reason is PauseReason.LUNCH
    assert [event.occurred_at for event in events] == [at(1), at(2), at(3), at(4)]


def test_go_offline_from_paused_clears_reason() -> None:
    agent = hire()
    agent.go_online(occurred_at=at(1))
    agent.pause("meeting", occurred_at=at(2))

    agent.go_offline(occurred_at=at(3))

    assert agent.status is AgentStatus.OFFLINE
    assert agent.pause_reason is None


def test_go_online_twice_is_rejected() -> None:
    agent = hire()
    agent.go_online(occurred_at=at(1))

    with pytest.raises(InvalidTransition) as caught:
        agent.go_online(occurred_at=at(2))

    assert str(caught.value) == (
        f"Agent {agent.id} is online and cannot go online. "
        f"The go_online command needs an agent that is offline."
    )
    assert caught.value.aggregate_type == "Agent"
    assert caught.value.aggregate_id == agent.id
    assert caught.value.state == "online"
    assert caught.value.command == "go_online"


def test_go_offline_when_offline_is_rejected() -> None:
    agent = hire()

    with pytest.raises(InvalidTransition) as caught:
        agent.go_offline(occurred_at=at(1))

    assert str(caught.value) == (
        f"Agent {agent.id} is offline and cannot go offline. "
        f"The go_offline command needs an agent that is online or paused."
    )


@pytest.mark.parametrize("setup", ["offline", "paused"])
def test_pause_needs_online_agent(setup: str) -> None:
    agent = hire()
    if setup == "paused":
        agent.go_online(occurred_at=at(1))
        agent.pause("break", occurred_at=at(2))

    with pytest.raises(InvalidTransition) as caught:
        agent.pause("break", occurred_at=at(3))

    assert str(caught.value) == (
        f"Agent {agent.id} is {setup} and cannot be paused. "
        f"The pause command needs an agent that is online."
    )


def test_pause_unknown_reason_lists_options() -> None:
    agent = hire()
    agent.go_online(occurred_at=at(1))

    with pytest.raises(InvalidValue) as caught:
        agent.pause("nap", occurred_at=at(2))

    assert "Use one of: break, lunch, meeting, training, other." in str(caught.value)
    assert agent.status is AgentStatus.ONLINE


@pytest.mark.parametrize("setup", ["offline", "online"])
def test_resume_needs_paused_agent(setup: str) -> None:
    agent = hire()
    if setup == "online":
        agent.go_online(occurred_at=at(1))

    with pytest.raises(InvalidTransition) as caught:
        agent.resume(occurred_at=at(2))

    assert str(caught.value) == (
        f"Agent {agent.id} is {setup} and cannot resume. "
        f"The resume command needs an agent that is paused."
    )


# Leaving


def test_leave_records_kind_and_ends_employment() -> None:
    agent = hire()
    agent.go_online(occurred_at=at(1))
    agent.collect_events()

    agent.leave(LeavingKind.VOLUNTARY, occurred_at=at(2), command_key="leave-1")

    [event] = agent.collect_events()
    assert isinstance(event, Agent.Left)
    assert event.kind is LeavingKind.VOLUNTARY
    assert agent.status is AgentStatus.LEFT
    assert agent.left_kind is LeavingKind.VOLUNTARY
    assert not agent.is_employed


LEFT_AGENT_COMMANDS: dict[str, Callable[[Agent], None]] = {
    "change_departments": lambda agent: agent.change_departments(["sales"], occurred_at=at(9)),
    "go_online": lambda agent: agent.go_online(occurred_at=at(9)),
    "go_offline": lambda agent: agent.go_offline(occurred_at=at(9)),
    "pause": lambda agent: agent.pause("break", occurred_at=at(9)),
    "resume": lambda agent: agent.resume(occurred_at=at(9)),
    "leave": lambda agent: agent.leave("involuntary", occurred_at=at(9)),
    "end_engagement": lambda agent: agent.end_engagement(occurred_at=at(9)),
}


@pytest.mark.parametrize("command", sorted(LEFT_AGENT_COMMANDS))
def test_left_agent_accepts_no_command(command: str) -> None:
    agent = hire(employment=EmploymentKind.TEMPORARY, engagement_ends_on=date(2024, 6, 30))
    agent.leave("involuntary", occurred_at=at(1))
    agent.collect_events()

    with pytest.raises(InvalidTransition) as caught:
        LEFT_AGENT_COMMANDS[command](agent)

    message = str(caught.value)
    assert message.startswith(f"Agent {agent.id} has left and cannot ")
    assert message.endswith(
        "An agent who has left accepts no commands. Hire the person again under a new id."
    )
    assert caught.value.state == "left"
    assert caught.value.command == command
    assert agent.collect_events() == []


# Temporary engagements


def test_end_engagement_early() -> None:
    agent = hire(employment=EmploymentKind.TEMPORARY, engagement_ends_on=date(2024, 6, 30))
    agent.collect_events()

    agent.end_engagement(occurred_at=T0, command_key="end-1")

    [event] = agent.collect_events()
    assert isinstance(event, Agent.EngagementEnded)
    assert event.ended_early is True
    assert agent.engagement_ended_early is True
    assert agent.status is AgentStatus.LEFT


@pytest.mark.parametrize("day", [date(2024, 6, 30), date(2024, 7, 2)])
def test_engagement_end_on_date_not_early(day: date) -> None:
    agent = hire(employment=EmploymentKind.TEMPORARY, engagement_ends_on=date(2024, 6, 30))
    agent.collect_events()

    agent.end_engagement(occurred_at=datetime(day.year, day.month, day.day, 17, tzinfo=timezone.utc))

    [event] = agent.collect_events()
    assert event.ended_early is False


def test_end_engagement_of_regular_agent_is_rejected() -> None:
    agent = hire(employment=EmploymentKind.REGULAR)

    with pytest.raises(CommandRejected) as caught:
        agent.end_engagement(occurred_at=at(1))

    assert not isinstance(caught.value, InvalidTransition)
    assert str(caught.value) == (
        f"Agent {agent.id} is offline and cannot end an engagement. Only temporary agents "
        f"have an engagement, and this agent is regular. Use leave instead."
    )
    assert agent.status is AgentStatus.OFFLINE


# Assignment checks for Ticket.assign


def test_offline_agent_of_department_can_take_assignment() -> None:
    agent = hire(departments=["billing"])

    assert agent.assignment_blocker("billing", T0) is None
    assert agent.can_take_assignment("billing", T0)


def test_agent_of_other_department_cannot_take_assignment() -> None:
    agent = hire(departments=["billing", "sales"])

    assert agent.assignment_blocker("support", T0) == (
        "the agent does not belong to department 'support' "
        "(the agent's departments: billing, sales)"
    )
    assert not agent.can_take_assignment("support", T0)


def test_paused_agent_cannot_take_assignment() -> None:
    agent = hire()
    agent.go_online(occurred_at=at(1))
    agent.pause("training", occurred_at=at(2))

    assert agent.assignment_blocker("billing", at(3)) == "the agent is paused"


def test_left_agent_cannot_take_assignment() -> None:
    agent = hire()
    agent.leave("voluntary", occurred_at=at(1))

    assert agent.assignment_blocker("billing", at(2)) == "the agent has left"


def test_engagement_end_date_is_the_last_assignable_day() -> None:
    agent = hire(employment=EmploymentKind.TEMPORARY, engagement_ends_on=date(2024, 6, 30))
    last_minute = datetime(2024, 6, 30, 23, 59, tzinfo=timezone.utc)
    next_day = datetime(2024, 7, 1, 0, 0, tzinfo=timezone.utc)

    assert agent.can_take_assignment("billing", last_minute)
    assert agent.assignment_blocker("billing", next_day) == (
        "the agent's temporary engagement ended on 2024-06-30"
    )


# Idempotency


def test_repeated_command_key_triggers_no_event() -> None:
    agent = hire(command_key="hire-1")
    agent.go_online(occurred_at=at(1), command_key="online-1")
    agent.collect_events()

    agent.go_online(occurred_at=at(2), command_key="online-1")

    assert agent.collect_events() == []
    assert agent.version == 2


def test_repeated_key_after_state_change_is_no_op() -> None:
    agent = hire()
    agent.go_online(occurred_at=at(1))
    agent.pause("lunch", occurred_at=at(2), command_key="pause-1")
    agent.resume(occurred_at=at(3))
    agent.collect_events()

    # The agent is online again. The repeat must not pause it a second time.
    agent.pause("lunch", occurred_at=at(4), command_key="pause-1")

    assert agent.collect_events() == []
    assert agent.status is AgentStatus.ONLINE


def test_repeated_key_on_left_agent_is_no_op() -> None:
    agent = hire()
    agent.leave("voluntary", occurred_at=at(1), command_key="leave-1")
    agent.collect_events()

    agent.leave("voluntary", occurred_at=at(2), command_key="leave-1")

    assert agent.collect_events() == []


def test_command_keys_are_part_of_state() -> None:
    agent = hire(command_key="hire-1")
    agent.go_online(occurred_at=at(1), command_key="online-1")

    # Snapshots copy the aggregate's __dict__, so the keys must live there.
    assert vars(agent)["_command_keys"] == {"hire-1": 1, "online-1": 2}


def test_every_event_carries_metadata() -> None:
    agent = hire(employment=EmploymentKind.TEMPORARY, engagement_ends_on=date(2024, 6, 30))
    agent.change_departments(["sales"], occurred_at=at(1), command_key="k1", actor_id="system:hr")
    agent.go_online(occurred_at=at(2), command_key="k2", actor_id="system:hr")
    agent.pause("other", occurred_at=at(3), command_key="k3", actor_id="system:hr")
    agent.resume(occurred_at=at(4), command_key="k4", actor_id="system:hr")
    agent.go_offline(occurred_at=at(5), command_key="k5", actor_id="system:hr")
    agent.end_engagement(occurred_at=at(6), command_key="k6", actor_id="system:hr")

    events = agent.collect_events()[1:]
    assert [event.command_key for event in events] == ["k1", "k2", "k3", "k4", "k5", "k6"]
    assert [event.occurred_at for event in events] == [at(i) for i in range(1, 7)]
    assert {event.actor_id for event in events} == {"system:hr"}


def test_rejection_is_a_domain_error_and_not_retriable() -> None:
    agent = hire()

    with pytest.raises(DomainError) as caught:
        agent.resume(occurred_at=at(1))

    assert caught.value.retriable is False


def test_to_dict_lists_public_state() -> None:
    agent = hire(employment=EmploymentKind.TEMPORARY, engagement_ends_on=date(2024, 6, 30))

    state = agent.to_dict()

    assert state["id"] == agent.id
    assert isinstance(state["id"], UUID)
    assert state["status"] is AgentStatus.OFFLINE
    assert state["engagement_ends_on"] == date(2024, 6, 30)
    assert state["last_occurred_at"] == T0
