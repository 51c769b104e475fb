"""Ticket aggregate: every event, every rule and its message, idempotency keys."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest

from domain.agent import Agent
from domain.errors import CommandRejected, InvalidTransition, InvalidValue
from domain.ticket import Ticket
from domain.values import (
    CallbackStatus,
    Channel,
    EmploymentKind,
    Priority,
    ReplyVisibility,
    Resolution,
    TicketStatus,
)

T0 = datetime(2024, 5, 1, 9, 0, tzinfo=timezone.utc)
CUSTOMER_ID = UUID("5b0c1d7e-2f1a-4c44-9a0e-1d2c3b4a5f60")


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def open_ticket(**kwargs: Any) -> Ticket:
    arguments: dict[str, Any] = {
        "ticket_id": uuid4(),
        "customer_id": CUSTOMER_ID,
        "channel": Channel.EMAIL,
        "department": "billing",
        "subject": "Invoice is wrong",
        "occurred_at": T0,
    }
    arguments.update(kwargs)
    return Ticket.open(**arguments)


def hire_agent(departments: tuple[str, ...] = ("billing",), **kwargs: Any) -> Agent:
    return Agent.hire(
        uuid4(),
        "Grace Hopper",
        "grace@example.com",
        kwargs.pop("employment", EmploymentKind.REGULAR),
        kwargs.pop("engagement_ends_on", None),
        list(departments),
        occurred_at=T0,
    )


def new_events(ticket: Ticket) -> list[Any]:
    return list(ticket.collect_events())


# Opened


def test_open_records_every_field() -> None:
    ticket_id = uuid4()
    ticket = Ticket.open(
        ticket_id,
        CUSTOMER_ID,
        "chat",
        "billing",
        "Invoice is wrong",
        "high",
        {"order": "A-17"},
        occurred_at=T0,
        command_key="open-1",
        actor_id=f"customer:{CUSTOMER_ID}",
    )

    [event] = new_events(ticket)
    assert isinstance(event, Ticket.Opened)
    assert type(event).__qualname__ == "Ticket.Opened"
    assert event.originator_id == ticket_id
    assert event.customer_id == CUSTOMER_ID
    assert event.channel is Channel.CHAT
    assert event.department == "billing"
    assert event.subject == "Invoice is wrong"
    assert event.priority is Priority.HIGH
    assert event.attributes == {"order": "A-17"}
    assert event.occurred_at == T0
    assert event.command_key == "open-1"
    assert event.actor_id == f"customer:{CUSTOMER_ID}"

    assert ticket.status is TicketStatus.OPEN
    assert ticket.assignee_id is None
    assert ticket.priority is Priority.HIGH
    assert ticket.attributes == {"order": "A-17"}
    assert ticket.creation_command_key == "open-1"


def test_open_defaults_to_normal_priority_and_no_attributes() -> None:
    ticket = open_ticket()

    assert ticket.priority is Priority.NORMAL
    assert ticket.attributes == {}


def test_open_allows_empty_subject() -> None:
    ticket = open_ticket(subject="")

    assert ticket.subject == ""


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("channel", "fax", "channel 'fax' is not a valid Channel. Use one of: email, chat, phone, callback, web_form, social, api."),
        ("priority", "asap", "priority 'asap' is not a valid Priority. Use one of: low, normal, high, urgent."),
        ("department", " ", "department must not be empty."),
        ("customer_id", "bob", "customer_id 'bob' is not a UUID."),
        ("attributes", {"count": 3}, "attributes must map strings to strings, but 'count' maps to 3."),
    ],
)
def test_open_invalid_argument_is_rejected(field: str, value: object, expected: str) -> None:
    with pytest.raises(InvalidValue) as caught:
        open_ticket(**{field: value})

    assert caught.value.field == field
    assert str(caught.value).startswith(expected)


# Data changes


def test_change_attributes_records_only_changed_keys() -> None:
    ticket = open_ticket(attributes={"order": "A-17", "country": "DE"})
    new_events(ticket)

    ticket.change_attributes({"order": "A-17", "country": "AT", "plan": "pro"}, occurred_at=at(1))

    [event] = new_events(ticket)
    assert isinstance(event, Ticket.AttributesChanged)
    assert event.attributes == {"country": "AT", "plan": "pro"}
    assert ticket.attributes == {"order": "A-17", "country": "AT", "plan": "pro"}


def test_change_attributes_without_change_records_nothing() -> None:
    ticket = open_ticket(attributes={"order": "A-17"})
    new_events(ticket)

    ticket.change_attributes({"order": "A-17"}, occurred_at=at(1))

    assert new_events(ticket) == []


def test_change_priority_records_new_priority() -> None:
    ticket = open_ticket()
    new_events(ticket)

    ticket.change_priority("urgent", occurred_at=at(1))
    ticket.change_priority(Priority.URGENT, occurred_at=at(2))

    [event] = new_events(ticket)
    assert isinstance(event, Ticket.PriorityChanged)
    assert event.priority is Priority.URGENT
    assert ticket.priority is Priority.URGENT


def test_assign_records_agent() -> None:
    ticket = open_ticket()
    agent = hire_agent()
    new_events(ticket)

    ticket.assign(agent, occurred_at=at(1), actor_id=f"agent:{agent.id}")

    [event] = new_events(ticket)
    assert isinstance(event, Ticket.Assigned)
    assert event.agent_id == agent.id
    assert ticket.assignee_id == agent.id


def test_assign_same_agent_again_records_nothing() -> None:
    ticket = open_ticket()
    agent = hire_agent()
    ticket.assign(agent, occurred_at=at(1))
    new_events(ticket)

    ticket.assign(agent, occurred_at=at(2))

    assert new_events(ticket) == []


def test_transfer_records_department_and_clears_assignee() -> None:
    ticket = open_ticket()
    ticket.assign(hire_agent(), occurred_at=at(1))
    new_events(ticket)

    ticket.transfer("sales", occurred_at=at(2))

    [event] = new_events(ticket)
    assert isinstance(event, Ticket.Transferred)
    assert event.department == "sales"
    assert ticket.department == "sales"
    assert ticket.assignee_id is None


def test_transfer_to_same_department_records_nothing() -> None:
    ticket = open_ticket()
    new_events(ticket)

    ticket.transfer("billing", occurred_at=at(1))

    assert new_events(ticket) == []


# Assignment rules


def test_assign_agent_of_other_department_is_rejected() -> None:
    ticket = open_ticket()
    agent = hire_agent(departments=("sales",))

    with pytest.raises(CommandRejected) as caught:
        ticket.assign(agent, occurred_at=at(1))

    assert str(caught.value) == (
        f"Ticket {ticket.id} is open and cannot be assigned to agent {agent.id}, because "
        f"the agent does not belong to department 'billing' (the agent's departments: sales)."
    )
    assert caught.value.command == "assign"
    assert caught.value.state == "open"
    assert ticket.assignee_id is None


def test_assign_paused_agent_is_rejected() -> None:
    ticket = open_ticket()
    agent = hire_agent()
    agent.go_online(occurred_at=at(1))
    agent.pause("lunch", occurred_at=at(2))

    with pytest.raises(CommandRejected) as caught:
        ticket.assign(agent, occurred_at=at(3))

    assert str(caught.value).endswith("because the agent is paused.")


def test_assign_agent_who_left_is_rejected() -> None:
    ticket = open_ticket()
    agent = hire_agent()
    agent.leave("voluntary", occurred_at=at(1))

    with pytest.raises(CommandRejected) as caught:
        ticket.assign(agent, occurred_at=at(2))

    assert str(caught.value).endswith("because the agent has left.")


def test_assign_after_engagement_end_date_is_rejected() -> None:
    ticket = open_ticket(occurred_at=datetime(2024, 7, 1, 8, tzinfo=timezone.utc))
    agent = hire_agent(employment=EmploymentKind.TEMPORARY, engagement_ends_on=date(2024, 6, 30))

    with pytest.raises(CommandRejected) as caught:
        ticket.assign(agent, occurred_at=datetime(2024, 7, 1, 9, tzinfo=timezone.utc))

    assert str(caught.value).endswith("because the agent's temporary engagement ended on 2024-06-30.")


def test_assign_uses_business_time_not_wall_clock() -> None:
    # The ticket history is from 2024 and the engagement ended then, but at the
    # business time of the command the agent was still engaged.
    ticket = open_ticket()
    agent = hire_agent(employment=EmploymentKind.TEMPORARY, engagement_ends_on=date(2024, 6, 30))

    ticket.assign(agent, occurred_at=at(1))

    assert ticket.assignee_id == agent.id


def test_assign_offline_agent_is_allowed() -> None:
    ticket = open_ticket()
    agent = hire_agent()

    ticket.assign(agent, occurred_at=at(1))

    assert ticket.assignee_id == agent.id


def test_assign_requires_agent_aggregate() -> None:
    ticket = open_ticket()

    with pytest.raises(InvalidValue, match="agent must be an Agent aggregate"):
        ticket.assign(uuid4(), occurred_at=at(1))  # type: ignore[arg-type]


# Conversation


def test_agent_reply_records_visibility_and_body() -> None:
    ticket = open_ticket()
    agent_id = uuid4()
    new_events(ticket)

    ticket.reply_as_agent(agent_id, "Checking with finance.", "internal", occurred_at=at(1))
    ticket.reply_as_agent(str(agent_id), "We refunded you.", occurred_at=at(2))

    internal, public = new_events(ticket)
    assert isinstance(internal, Ticket.AgentReplied)
    assert internal.agent_id == agent_id
    assert internal.visibility is ReplyVisibility.INTERNAL
    assert internal.body == "Checking with finance."
    assert public.visibility is ReplyVisibility.PUBLIC
    assert public.agent_id == agent_id
    assert ticket.agent_reply_count == 2


def test_customer_reply_records_body() -> None:
    ticket = open_ticket()
    new_events(ticket)

    ticket.reply_as_customer("Thanks!", occurred_at=at(1))

    [event] = new_events(ticket)
    assert isinstance(event, Ticket.CustomerReplied)
    assert event.body == "Thanks!"
    assert ticket.customer_reply_count == 1


def test_reply_with_unknown_visibility_is_rejected() -> None:
    ticket = open_ticket()

    with pytest.raises(InvalidValue, match="Use one of: public, internal."):
        ticket.reply_as_agent(uuid4(), "Hi", "secret", occurred_at=at(1))


# Status changes


def test_status_cycle_records_each_event() -> None:
    ticket = open_ticket()
    new_events(ticket)

    ticket.move_to_pending(occurred_at=at(1))
    assert ticket.status is TicketStatus.PENDING
    ticket.put_on_hold(occurred_at=at(2))
    assert ticket.status is TicketStatus.ON_HOLD
    ticket.resume(occurred_at=at(3))
    assert ticket.status is TicketStatus.OPEN
    ticket.resolve("solved", occurred_at=at(4))
    assert ticket.status is TicketStatus.RESOLVED
    assert ticket.resolution is Resolution.SOLVED
    ticket.close(occurred_at=at(5))
    assert ticket.status is TicketStatus.CLOSED
    ticket.reopen(occurred_at=at(6))
    assert ticket.status is TicketStatus.OPEN
    assert ticket.resolution is None

    events = new_events(ticket)
    assert [type(event).__qualname__ for event in events] == [
        "Ticket.MovedToPending",
        "Ticket.PutOnHold",
        "Ticket.Resumed",
        "Ticket.Resolved",
        "Ticket.Closed",
        "Ticket.Reopened",
    ]
    assert events[3].resolution is Resolution.SOLVED


def test_resolve_from_resolved_says_reopen_first() -> None:
    ticket = open_ticket()
    ticket.resolve("duplicate", occurred_at=at(1))

    with pytest.raises(InvalidTransition) as caught:
        ticket.resolve("solved", occurred_at=at(2))

    assert str(caught.value) == (
        f"Ticket {ticket.id} is resolved and cannot be resolved. Reopen it first."
    )


def test_resolve_with_unknown_resolution_is_rejected() -> None:
    ticket = open_ticket()

    with pytest.raises(InvalidValue, match="Use one of: solved, duplicate, invalid, wont_fix."):
        ticket.resolve("fixed", occurred_at=at(1))


def test_reopen_open_ticket_names_allowed_states() -> None:
    ticket = open_ticket()

    with pytest.raises(InvalidTransition) as caught:
        ticket.reopen(occurred_at=at(1))

    assert str(caught.value) == (
        f"Ticket {ticket.id} is open and cannot be reopened. "
        f"The reopen command needs a ticket that is resolved or closed."
    )


def test_resume_on_hold_names_both_waiting_states() -> None:
    ticket = open_ticket()

    with pytest.raises(InvalidTransition) as caught:
        ticket.resume(occurred_at=at(1))

    assert str(caught.value) == (
        f"Ticket {ticket.id} is open and cannot be resumed. "
        f"The resume command needs a ticket that is pending or on hold."
    )


def test_closed_ticket_assign_says_reopen_first() -> None:
    ticket = open_ticket()
    ticket.resolve("solved", occurred_at=at(1))
    ticket.close(occurred_at=at(2))

    with pytest.raises(InvalidTransition) as caught:
        ticket.assign(hire_agent(), occurred_at=at(3))

    assert str(caught.value) == (
        f"Ticket {ticket.id} is closed and cannot be assigned. A closed ticket accepts "
        f"only reopen and rate_satisfaction, so reopen it first."
    )
    assert caught.value.state == "closed"
    assert caught.value.command == "assign"


def test_closed_ticket_can_be_reopened_and_worked_on() -> None:
    ticket = open_ticket()
    ticket.resolve("solved", occurred_at=at(1))
    ticket.close(occurred_at=at(2))

    ticket.reopen(occurred_at=at(3))
    ticket.reply_as_customer("It broke again.", occurred_at=at(4))

    assert ticket.status is TicketStatus.OPEN
    assert ticket.customer_reply_count == 1


# Merging


def test_merge_records_target_and_blocks_everything() -> None:
    ticket = open_ticket()
    target = open_ticket()
    new_events(ticket)

    ticket.merge_into(target, occurred_at=at(1))

    [event] = new_events(ticket)
    assert isinstance(event, Ticket.MergedInto)
    assert event.target_ticket_id == target.id
    assert ticket.status is TicketStatus.MERGED
    assert ticket.merged_into == target.id


def test_merge_into_itself_is_rejected() -> None:
    ticket = open_ticket()

    with pytest.raises(CommandRejected) as caught:
        ticket.merge_into(ticket, occurred_at=at(1))

    assert str(caught.value) == (
        f"Ticket {ticket.id} is open and cannot be merged into itself. Choose another target ticket."
    )
    assert ticket.status is TicketStatus.OPEN


def test_merge_into_merged_ticket_is_rejected() -> None:
    ticket = open_ticket()
    target = open_ticket()
    final = open_ticket()
    target.merge_into(final, occurred_at=at(1))

    with pytest.raises(CommandRejected) as caught:
        ticket.merge_into(target, occurred_at=at(2))

    assert str(caught.value) == (
        f"Ticket {ticket.id} is open and cannot be merged into ticket {target.id}, because "
        f"that ticket is merged into ticket {final.id}. Merge into an open, pending, on hold "
        f"or resolved ticket."
    )


def test_merge_into_closed_ticket_is_rejected() -> None:
    ticket = open_ticket()
    target = open_ticket()
    target.resolve("solved", occurred_at=at(1))
    target.close(occurred_at=at(2))

    with pytest.raises(CommandRejected, match="because that ticket is closed"):
        ticket.merge_into(target, occurred_at=at(3))


def test_merged_ticket_message_names_target() -> None:
    ticket = open_ticket()
    target = open_ticket()
    ticket.merge_into(target, occurred_at=at(1))

    with pytest.raises(InvalidTransition) as caught:
        ticket.reopen(occurred_at=at(2))

    assert str(caught.value) == (
        f"Ticket {ticket.id} is merged into ticket {target.id} and cannot be reopened. "
        f"A merged ticket accepts no commands, so send them to ticket {target.id}."
    )


# Callbacks


def test_callback_requested_then_completed() -> None:
    ticket = open_ticket()
    agent_id = uuid4()
    new_events(ticket)

    ticket.request_callback("cb-1", "+49 30 1234567", at(60), at(120), occurred_at=at(1))
    ticket.complete_callback("cb-1", agent_id, occurred_at=at(70))

    requested, completed = new_events(ticket)
    assert isinstance(requested, Ticket.CallbackRequested)
    assert requested.callback_id == "cb-1"
    assert requested.phone == "+49 30 1234567"
    assert requested.window_start == at(60)
    assert requested.window_end == at(120)
    assert isinstance(completed, Ticket.CallbackCompleted)
    assert completed.callback_id == "cb-1"
    assert completed.agent_id == agent_id
    assert ticket.callbacks == {"cb-1": CallbackStatus.COMPLETED}


def test_callback_requested_then_missed() -> None:
    ticket = open_ticket()
    ticket.request_callback("cb-1", "+49 30 1234567", at(60), at(120), occurred_at=at(1))
    new_events(ticket)

    ticket.miss_callback("cb-1", occurred_at=at(121))

    [event] = new_events(ticket)
    assert isinstance(event, Ticket.CallbackMissed)
    assert event.callback_id == "cb-1"
    assert ticket.callbacks == {"cb-1": CallbackStatus.MISSED}


def test_callback_phone_is_personal_data() -> None:
    assert Ticket.CallbackRequested.personal_fields == frozenset({"phone"})
    assert Ticket.Opened.personal_fields == frozenset()


@pytest.mark.parametrize(
    ("first", "second", "done"),
    [
        ("complete", "complete", "completed"),
        ("complete", "miss", "completed"),
        ("miss", "miss", "missed"),
        ("miss", "complete", "missed"),
    ],
)
def test_callback_outcome_only_once(first: str, second: str, done: str) -> None:
    ticket = open_ticket()
    ticket.request_callback("cb-1", "+49 30 1234567", at(60), at(120), occurred_at=at(1))
    outcome = {
        "complete": lambda minute: ticket.complete_callback("cb-1", uuid4(), occurred_at=at(minute)),
        "miss": lambda minute: ticket.miss_callback("cb-1", occurred_at=at(minute)),
    }
    outcome[first](130)
    new_events(ticket)

    with pytest.raises(CommandRejected) as caught:
        outcome[second](131)

    action = "complete a callback" if second == "complete" else "mark a callback missed"
    assert str(caught.value) == (
        f"Ticket {ticket.id} is open and cannot {action}. Callback 'cb-1' was already "
        f"{done}, and a callback can be completed or missed only once."
    )
    assert new_events(ticket) == []


@pytest.mark.parametrize("command", ["complete", "miss"])
def test_callback_outcome_needs_request(command: str) -> None:
    ticket = open_ticket()

    with pytest.raises(CommandRejected) as caught:
        if command == "complete":
            ticket.complete_callback("cb-9", uuid4(), occurred_at=at(1))
        else:
            ticket.miss_callback("cb-9", occurred_at=at(1))

    assert str(caught.value).endswith(
        "There is no callback 'cb-9' on this ticket. Request the callback first."
    )


def test_callback_outcome_allowed_after_resolve() -> None:
    ticket = open_ticket()
    ticket.request_callback("cb-1", "+49 30 1234567", at(60), at(120), occurred_at=at(1))
    ticket.resolve("solved", occurred_at=at(2))

    ticket.miss_callback("cb-1", occurred_at=at(121))

    assert ticket.callbacks == {"cb-1": CallbackStatus.MISSED}


def test_duplicate_callback_id_is_rejected() -> None:
    ticket = open_ticket()
    ticket.request_callback("cb-1", "+49 30 1234567", at(60), at(120), occurred_at=at(1))

    with pytest.raises(CommandRejected) as caught:
        ticket.request_callback("cb-1", "+49 30 1234567", at(90), at(150), occurred_at=at(2))

    assert "because a callback with that id already exists. Use a new callback id." in str(caught.value)


def test_callback_window_must_have_positive_length() -> None:
    ticket = open_ticket()

    with pytest.raises(InvalidValue) as caught:
        ticket.request_callback("cb-1", "+49 30 1234567", at(60), at(60), occurred_at=at(1))

    assert caught.value.field == "window_end"
    assert "A callback window needs a positive length." in str(caught.value)


def test_callback_window_must_be_aware() -> None:
    ticket = open_ticket()

    with pytest.raises(InvalidValue, match="window_start .* is a naive datetime"):
        ticket.request_callback("cb-1", "+49", datetime(2024, 5, 1, 10), at(120), occurred_at=at(1))


# Satisfaction


@pytest.mark.parametrize("final_status", ["resolved", "closed"])
def test_rating_after_resolution_is_recorded(final_status: str) -> None:
    ticket = open_ticket()
    ticket.resolve("solved", occurred_at=at(1))
    if final_status == "closed":
        ticket.close(occurred_at=at(2))
    new_events(ticket)

    ticket.rate_satisfaction(4, "Quick and friendly.", occurred_at=at(3))
    ticket.rate_satisfaction(5, occurred_at=at(4))

    first, second = new_events(ticket)
    assert isinstance(first, Ticket.SatisfactionRated)
    assert first.score == 4
    assert first.comment == "Quick and friendly."
    assert second.score == 5
    assert second.comment == ""
    assert ticket.satisfaction_score == 5
    assert ticket.status == final_status


def test_rating_open_ticket_is_rejected() -> None:
    ticket = open_ticket()

    with pytest.raises(InvalidTransition) as caught:
        ticket.rate_satisfaction(5, occurred_at=at(1))

    assert str(caught.value) == (
        f"Ticket {ticket.id} is open and cannot be rated. "
        f"The rate_satisfaction command needs a ticket that is resolved or closed."
    )


@pytest.mark.parametrize("score", [0, 6, -1, 2.5, True, "5", None])
def test_rating_score_outside_one_to_five_is_rejected(score: object) -> None:
    ticket = open_ticket()
    ticket.resolve("solved", occurred_at=at(1))

    with pytest.raises(InvalidValue) as caught:
        ticket.rate_satisfaction(score, occurred_at=at(2))  # type: ignore[arg-type]

    assert str(caught.value) == (
        f"score {score!r} is invalid. A satisfaction score is a whole number from 1 to 5."
    )
    assert ticket.satisfaction_score is None


# The state x command table, as docs/domain.md shows it.

ALL_ACTIVE = {"open", "pending", "on_hold"}
ALLOWED: dict[str, set[str]] = {
    "change_attributes": ALL_ACTIVE | {"resolved"},
    "change_priority": ALL_ACTIVE,
    "assign": ALL_ACTIVE,
    "transfer": ALL_ACTIVE,
    "reply_as_agent": ALL_ACTIVE,
    "reply_as_customer": ALL_ACTIVE,
    "move_to_pending": {"open", "on_hold"},
    "put_on_hold": {"open", "pending"},
    "resume": {"pending", "on_hold"},
    "resolve": ALL_ACTIVE,
    "reopen": {"resolved", "closed"},
    "close": {"resolved"},
    "merge_into": ALL_ACTIVE,
    "request_callback": ALL_ACTIVE,
    "complete_callback": ALL_ACTIVE | {"resolved"},
    "miss_callback": ALL_ACTIVE | {"resolved"},
    "rate_satisfaction": {"resolved", "closed"},
}

ACTIONS = {
    "change_attributes": "change attributes",
    "change_priority": "change priority",
    "assign": "be assigned",
    "transfer": "be transferred",
    "reply_as_agent": "take an agent reply",
    "reply_as_customer": "take a customer reply",
    "move_to_pending": "be moved to pending",
    "put_on_hold": "be put on hold",
    "resume": "be resumed",
    "resolve": "be resolved",
    "reopen": "be reopened",
    "close": "be closed",
    "merge_into": "be merged",
    "request_callback": "take a callback request",
    "complete_callback": "complete a callback",
    "miss_callback": "mark a callback missed",
    "rate_satisfaction": "be rated",
}

COMMANDS: dict[str, Callable[[Ticket], None]] = {
    "change_attributes": lambda t: t.change_attributes({"plan": "pro"}, occurred_at=at(50)),
    "change_priority": lambda t: t.change_priority("urgent", occurred_at=at(50)),
    "assign": lambda t: t.assign(hire_agent(), occurred_at=at(50)),
    "transfer": lambda t: t.transfer("sales", occurred_at=at(50)),
    "reply_as_agent": lambda t: t.reply_as_agent(uuid4(), "Hello", occurred_at=at(50)),
    "reply_as_customer": lambda t: t.reply_as_customer("Hello", occurred_at=at(50)),
    "move_to_pending": lambda t: t.move_to_pending(occurred_at=at(50)),
    "put_on_hold": lambda t: t.put_on_hold(occurred_at=at(50)),
    "resume": lambda t: t.resume(occurred_at=at(50)),
    "resolve": lambda t: t.resolve("solved", occurred_at=at(50)),
    "reopen": lambda t: t.reopen(occurred_at=at(50)),
    "close": lambda t: t.close(occurred_at=at(50)),
    "merge_into": lambda t: t.merge_into(open_ticket(), occurred_at=at(50)),
    "request_callback": lambda t: t.request_callback("cb-2", "+49", at(60), at(90), occurred_at=at(50)),
    "complete_callback": lambda t: t.complete_callback("cb-1", uuid4(), occurred_at=at(50)),
    "miss_callback": lambda t: t.miss_callback("cb-1", occurred_at=at(50)),
    "rate_satisfaction": lambda t: t.rate_satisfaction(3, occurred_at=at(50)),
}

STATUSES = ["open", "pending", "on_hold", "resolved", "closed", "merged"]


def ticket_in(status: str) -> Ticket:
    """Return a ticket in `status` that has an open callback request "cb-1"."""
    ticket = open_ticket()
    ticket.request_callback("cb-1", "+49 30 1234567", at(60), at(120), occurred_at=at(1))
    if status == "pending":
        ticket.move_to_pending(occurred_at=at(2))
    elif status == "on_hold":
        ticket.put_on_hold(occurred_at=at(2))
    elif status in ("resolved", "closed"):
        ticket.resolve("solved", occurred_at=at(2))
        if status == "closed":
            ticket.close(occurred_at=at(3))
    elif status == "merged":
        ticket.merge_into(open_ticket(), occurred_at=at(2))
    new_events(ticket)
    return ticket


def test_table_covers_every_command() -> None:
    assert set(ALLOWED) == set(COMMANDS) == set(ACTIONS) == set(Ticket._actions)


@pytest.mark.parametrize("status", STATUSES)
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_state_command_table(status: str, command: str) -> None:
    ticket = ticket_in(status)
    assert ticket.status == status

    if status in ALLOWED[command]:
        COMMANDS[command](ticket)
        assert len(new_events(ticket)) == 1
        return

    with pytest.raises(InvalidTransition) as caught:
        COMMANDS[command](ticket)

    phrase = "is on hold" if status == "on_hold" else f"is {status}"
    if status == "merged":
        phrase = f"is merged into ticket {ticket.merged_into}"
    assert str(caught.value).startswith(f"Ticket {ticket.id} {phrase} and cannot {ACTIONS[command]}. ")
    assert caught.value.state == status
    assert caught.value.command == command
    assert new_events(ticket) == []


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_closed_ticket_accepts_only_reopen_and_rating(command: str) -> None:
    ticket = ticket_in("closed")

    if command in ("reopen", "rate_satisfaction"):
        COMMANDS[command](ticket)
        assert len(new_events(ticket)) == 1
        return

    with pytest.raises(InvalidTransition) as caught:
        COMMANDS[command](ticket)
    assert "A closed ticket accepts only reopen and rate_satisfaction" in str(caught.value)


# Idempotency


def test_repeated_command_key_triggers_no_event() -> None:
    ticket = open_ticket()
    ticket.reply_as_customer("Hello?", occurred_at=at(1), command_key="mail-42")
    new_events(ticket)

    ticket.reply_as_customer("Hello?", occurred_at=at(2), command_key="mail-42")

    assert new_events(ticket) == []
    assert ticket.customer_reply_count == 1


def test_repeated_key_ignores_later_state() -> None:
    ticket = open_ticket()
    ticket.resolve("solved", occurred_at=at(1), command_key="resolve-1")
    ticket.close(occurred_at=at(2))
    new_events(ticket)

    # A redelivered resolve must not fail on the closed ticket: it already happened.
    ticket.resolve("solved", occurred_at=at(3), command_key="resolve-1")

    assert new_events(ticket) == []


def test_repeated_creation_key_is_remembered() -> None:
    ticket = open_ticket(command_key="open-1")
    new_events(ticket)

    ticket.change_priority("low", occurred_at=at(1), command_key="open-1")

    assert new_events(ticket) == []
    assert ticket.has_applied("open-1")


def test_every_event_carries_metadata() -> None:
    ticket = open_ticket(command_key="k0", actor_id="system:mail")
    agent = hire_agent()
    target = open_ticket()
    commands = [
        lambda key: ticket.change_attributes({"a": "b"}, occurred_at=at(1), command_key=key, actor_id="system:mail"),
        lambda key: ticket.change_priority("high", occurred_at=at(2), command_key=key, actor_id="system:mail"),
        lambda key: ticket.assign(agent, occurred_at=at(3), command_key=key, actor_id="system:mail"),
        lambda key: ticket.transfer("sales", occurred_at=at(4), command_key=key, actor_id="system:mail"),
        lambda key: ticket.reply_as_agent(agent.id, "x", occurred_at=at(5), command_key=key, actor_id="system:mail"),
        lambda key: ticket.reply_as_customer("y", occurred_at=at(6), command_key=key, actor_id="system:mail"),
        lambda key: ticket.move_to_pending(occurred_at=at(7), command_key=key, actor_id="system:mail"),
        lambda key: ticket.put_on_hold(occurred_at=at(8), command_key=key, actor_id="system:mail"),
        lambda key: ticket.resume(occurred_at=at(9), command_key=key, actor_id="system:mail"),
        lambda key: ticket.request_callback("c", "+1", at(20), at(30), occurred_at=at(10), command_key=key, actor_id="system:mail"),
        lambda key: ticket.complete_callback("c", agent.id, occurred_at=at(11), command_key=key, actor_id="system:mail"),
        lambda key: ticket.request_callback("d", "+1", at(20), at(30), occurred_at=at(12), command_key=key, actor_id="system:mail"),
        lambda key: ticket.miss_callback("d", occurred_at=at(13), command_key=key, actor_id="system:mail"),
        lambda key: ticket.resolve("solved", occurred_at=at(14), command_key=key, actor_id="system:mail"),
        lambda key: ticket.close(occurred_at=at(15), command_key=key, actor_id="system:mail"),
        lambda key: ticket.rate_satisfaction(5, occurred_at=at(16), command_key=key, actor_id="system:mail"),
        lambda key: ticket.reopen(occurred_at=at(17), command_key=key, actor_id="system:mail"),
        lambda key: ticket.merge_into(target, occurred_at=at(18), command_key=key, actor_id="system:mail"),
    ]
    for number, command in enumerate(commands, start=1):
        command(f"k{number}")

    events = new_events(ticket)
    assert len(events) == len(commands) + 1
    assert len({type(event).__qualname__ for event in events}) == 18
    assert [event.command_key for event in events] == [f"k{number}" for number in range(len(events))]
    assert [event.occurred_at for event in events] == [at(minute) for minute in range(len(events))]
    assert {event.actor_id for event in events} == {"system:mail"}
    assert all(event.occurred_at.tzinfo is timezone.utc for event in events)


def test_business_time_going_backwards_is_rejected() -> None:
    ticket = open_ticket(occurred_at=at(30))

    with pytest.raises(InvalidValue) as caught:
        ticket.reply_as_customer("late", occurred_at=at(29))

    assert str(caught.value) == (
        f"occurred_at {at(29).isoformat()} is earlier than the latest event of Ticket "
        f"{ticket.id} at {at(30).isoformat()}. Business time of one aggregate must not go "
        f"backwards, so send its commands in the order they happened."
    )
