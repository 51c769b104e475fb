"""The importer assigns an unassigned ticket to the agent who replies to it or resolves it."""

from __future__ import annotations

from pathlib import Path

import pytest

from ticketing.importer import executor, keys
from ticketing.importer.executor import (
    IMPLICIT_ASSIGN_KEY,
    is_fully_applied,
    missing_implicit_steps,
    replay,
    rows_already_applied,
)
from ticketing.importer.quirks import Quirk
from tests.unit.test_import_rows import MAPPING, drive_one, event_names, events_of, row, stored_copy, write_log


def agent(value: str) -> object:
    return keys.agent_id(MAPPING.name, value)


def test_resolving_agent_gets_unassigned_ticket(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Resolve ticket", "Value 7", "2012/1/2 10:00:00"),
            row("Case 1", "Closed", "Value 5", "2012/2/2 10:00:00"),
        ],
    )

    outcome = drive_one(path)

    assert event_names(outcome.ticket) == ["Opened", "Assigned", "AgentReplied", "Resolved", "Closed"]
    (assigned,) = events_of(outcome.ticket, "Assigned")
    (replied,) = events_of(outcome.ticket, "AgentReplied")
    assert assigned.agent_id == agent("Value 7")
    assert assigned.occurred_at == replied.occurred_at
    assert assigned.command_key.endswith(f":{IMPLICIT_ASSIGN_KEY}")
    assert assigned.actor_id == f"agent:{agent('Value 7')}"
    assert outcome.quirks[Quirk.IMPLICIT_ASSIGN] == 1


def test_waiting_reply_assigns_unassigned_ticket(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Wait", "Value 7", "2012/1/2 10:00:00"),
            row("Case 1", "Take in charge ticket", "Value 8", "2012/1/3 10:00:00"),
        ],
    )

    outcome = drive_one(path)

    assigned = [event.agent_id for event in events_of(outcome.ticket, "Assigned")]
    assert assigned == [agent("Value 7"), agent("Value 8")]
    assert outcome.quirks[Quirk.IMPLICIT_ASSIGN] == 1


def test_assigned_ticket_keeps_its_agent(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Take in charge ticket", "Value 7", "2012/1/1 11:00:00"),
            row("Case 1", "Resolve ticket", "Value 8", "2012/1/2 10:00:00"),
        ],
    )

    outcome = drive_one(path)

    assert [event.agent_id for event in events_of(outcome.ticket, "Assigned")] == [agent("Value 7")]
    assert outcome.quirks[Quirk.IMPLICIT_ASSIGN] == 0


def test_system_user_resolution_assigns_nobody(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Resolve ticket", "Value 5", "2012/1/2 10:00:00"),
        ],
    )

    outcome = drive_one(path)

    assert event_names(outcome.ticket) == ["Opened", "Resolved"]
    assert outcome.quirks[Quirk.IMPLICIT_ASSIGN] == 0


def test_internal_note_assigns_nobody(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Schedule intervention", "Value 7", "2012/1/2 10:00:00"),
        ],
    )

    outcome = drive_one(path)

    assert event_names(outcome.ticket) == ["Opened", "AgentReplied"]


def test_resolution_after_close_reopens_then_assigns(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Closed", "Value 5", "2012/1/2 10:00:00"),
            row("Case 1", "Resolve ticket", "Value 7", "2012/1/3 10:00:00"),
        ],
    )

    outcome = drive_one(path)

    assert event_names(outcome.ticket) == ["Opened", "Resolved", "Closed", "Reopened", "Assigned", "Resolved"]
    assert events_of(outcome.ticket, "Assigned")[0].agent_id == agent("Value 7")


def test_same_agent_taking_in_charge_later_stores_nothing(tmp_path: Path) -> None:
    path = write_log(
        tmp_path,
        [
            row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
            row("Case 1", "Wait", "Value 7", "2012/1/2 10:00:00"),
            row("Case 1", "Take in charge ticket", "Value 7", "2012/1/3 10:00:00"),
        ],
    )

    outcome = drive_one(path)

    assert event_names(outcome.ticket) == ["Opened", "MovedToPending", "Assigned", "AgentReplied", "Resumed"]


LOG = [
    row("Case 1", "Assign seriousness", "Value 1", "2012/1/1 10:00:00"),
    row("Case 1", "Resolve ticket", "Value 7", "2012/1/2 10:00:00"),
    row("Case 1", "Closed", "Value 5", "2012/2/2 10:00:00"),
]


def without_implicit_assignments(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drive cases as an importer without implicit assignments did."""
    monkeypatch.setattr(executor._CaseDriver, "_assign_if_unassigned", lambda self, agent, context: None)


def test_ticket_stored_without_assignment_counts_as_imported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write_log(tmp_path, LOG)
    with monkeypatch.context() as patch:
        without_implicit_assignments(patch)
        stored = stored_copy(drive_one(path))

    again = drive_one(path)

    assert missing_implicit_steps(again, stored) == {1}
    assert is_fully_applied(again, stored)
    replay(again, stored)
    assert stored.pending_events == []


def test_grown_log_adds_assignment_of_new_rows(tmp_path: Path) -> None:
    first = write_log(tmp_path, LOG[:1], name="first.csv")
    stored = stored_copy(drive_one(first))
    grown = drive_one(write_log(tmp_path, LOG, name="grown.csv"))

    assert rows_already_applied(grown, stored) == 1
    assert not is_fully_applied(grown, stored)
    replay(grown, stored)

    assert event_names(stored) == ["Assigned", "AgentReplied", "Resolved", "Closed"]
