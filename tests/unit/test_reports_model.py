"""How single ticket events change the reports' fact row and history, without a database."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from projections.reports_model import ReportsApplyError, TicketChange, apply_ticket_event
from ticketing.stream.decoded import DecodedEvent

AT = datetime(2024, 3, 4, 10, tzinfo=timezone.utc)


def _event(version: int, name: str, minutes: int = 0, **fields: object) -> DecodedEvent:
    return DecodedEvent(
        event_id=f"e{version}", event_type=f"Ticket.{name}", aggregate_type="Ticket", aggregate_id="t1",
        aggregate_version=version, occurred_at=AT + timedelta(minutes=minutes), recorded_at=AT, fields=fields,
    )


def _opened() -> DecodedEvent:
    return _event(1, "Opened", customer_id="c1", channel="email", department="billing", subject="s",
                  priority="normal", attributes={})


def _run(*events: DecodedEvent) -> list[TicketChange]:
    changes = []
    facts = None
    for event in events:
        change = apply_ticket_event(facts, event)
        facts = change.facts
        changes.append(change)
    return changes


def test_reopen_counts_only_after_resolution() -> None:
    changes = _run(
        _opened(),
        _event(2, "Reopened", 5),
        _event(3, "Resolved", 10, resolution="solved"),
        _event(4, "Reopened", 20),
        _event(5, "Reopened", 30),
    )

    assert [change.history.counted_reopen for change in changes[1:] if change.history.event_type == "Ticket.Reopened"] == [
        False, True, False]
    assert changes[-1].facts.reopen_count == 1


def test_reopen_clears_resolution_for_final_resolution_time() -> None:
    changes = _run(_opened(), _event(2, "Resolved", 60, resolution="solved"), _event(3, "Reopened", 120))

    facts = changes[-1].facts
    assert facts.resolved_at is None
    assert facts.resolution is None
    assert facts.resolved_version is None
    assert changes[1].history.seconds_since_opened == 3600


def test_first_response_is_first_public_reply() -> None:
    changes = _run(
        _opened(),
        _event(2, "AgentReplied", 5, agent_id="a1", visibility="internal", body="note"),
        _event(3, "AgentReplied", 9, agent_id="a2", visibility="public", body="hi"),
        _event(4, "AgentReplied", 12, agent_id="a1", visibility="public", body="again"),
    )

    assert changes[1].history is None
    assert changes[2].history.first_response
    assert changes[2].history.credited_agent_id == "a2"
    assert not changes[3].history.first_response
    assert changes[-1].facts.first_response_at == AT + timedelta(minutes=9)
    assert changes[-1].facts.first_response_agent_id == "a2"
    assert changes[-1].facts.public_reply_count == 2


def test_credited_agent_and_department() -> None:
    changes = _run(
        _opened(),
        _event(2, "Assigned", 1, agent_id="a1"),
        _event(3, "Transferred", 2, department="sales"),
        _event(4, "CallbackRequested", 3, callback_id="cb", phone="1", window_start=AT, window_end=AT),
        _event(5, "CallbackCompleted", 4, callback_id="cb", agent_id="a9"),
        _event(6, "Resolved", 5, resolution="solved"),
    )

    opened, assigned, transferred, requested, completed, resolved = (change.history for change in changes)
    assert (opened.department, opened.credited_agent_id) == ("billing", None)
    assert (transferred.department, transferred.assigned_agent_id) == ("sales", "a1")
    assert requested.credited_agent_id == "a1"
    assert completed.credited_agent_id == "a9"
    assert completed.assigned_agent_id == "a1"
    assert not resolved.in_backlog
    assert changes[-1].facts.callback_outcome == "completed"


@pytest.mark.parametrize(
    ("name", "fields", "status", "in_backlog"),
    [
        ("MovedToPending", {}, "pending", None),
        ("PutOnHold", {}, "on_hold", None),
        ("Closed", {}, "closed", False),
        ("MergedInto", {"target_ticket_id": "t2"}, "merged", False),
    ],
)
def test_status_changes_and_backlog(name: str, fields: dict, status: str, in_backlog: bool | None) -> None:
    changes = _run(_opened(), _event(2, name, 1, **fields))

    assert changes[-1].facts.status == status
    if in_backlog is None:
        assert changes[-1].history is None, "a state inside the backlog needs no history row"
    else:
        assert changes[-1].history.in_backlog is in_backlog


def test_latest_rating_wins() -> None:
    changes = _run(_opened(), _event(2, "Resolved", 1, resolution="solved"),
                   _event(3, "SatisfactionRated", 2, score=2, comment=""),
                   _event(4, "SatisfactionRated", 3, score=5, comment=""))

    assert changes[-1].facts.rating == 5
    assert changes[-1].facts.rating_version == 4
    assert changes[-1].history.score == 5


def test_event_before_opened_is_rejected() -> None:
    with pytest.raises(ReportsApplyError, match="before the ticket's Opened event"):
        apply_ticket_event(None, _event(2, "Assigned", agent_id="a1"))


def test_second_opened_is_rejected() -> None:
    facts = apply_ticket_event(None, _opened()).facts

    with pytest.raises(ReportsApplyError, match="already opened"):
        apply_ticket_event(facts, _opened())


def test_unknown_event_type_is_rejected() -> None:
    facts = apply_ticket_event(None, _opened()).facts

    with pytest.raises(ReportsApplyError, match="unknown ticket event type"):
        apply_ticket_event(facts, _event(2, "Teleported"))
