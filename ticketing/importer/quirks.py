"""The data-quality quirks that the importer handles, each counted in the summary."""

from __future__ import annotations

from enum import StrEnum


class Quirk(StrEnum):
    IMPLICIT_OPEN = "implicit_open"
    REOPENED_AFTER_CLOSE = "reopened_after_close"
    REOPENED_AFTER_RESOLUTION = "reopened_after_resolution"
    RESOLUTION_CHANGED = "resolution_changed"
    CLOSED_WITHOUT_RESOLUTION = "closed_without_resolution"
    ATTRIBUTES_CHANGED = "attributes_changed"
    PRIORITY_CHANGED = "priority_changed"
    DEPARTMENT_CHANGED = "department_changed"
    CUSTOMER_CHANGED = "customer_changed"
    TIMESTAMP_TIE = "timestamp_tie"
    NON_CONTIGUOUS_CASE = "non_contiguous_case"
    AMBIGUOUS_LOCAL_TIME = "ambiguous_local_time"
    NONEXISTENT_LOCAL_TIME = "nonexistent_local_time"
    AGENT_DEPARTMENT_ADDED_LATE = "agent_department_added_late"
    IMPLICIT_ASSIGN = "implicit_assign"
    NEVER_CLOSED_OPEN = "never_closed_open"
    NEVER_CLOSED_PENDING = "never_closed_pending"
    NEVER_CLOSED_ON_HOLD = "never_closed_on_hold"
    NEVER_CLOSED_RESOLVED = "never_closed_resolved"

    @property
    def description(self) -> str:
        return _DESCRIPTIONS[self]


_DESCRIPTIONS = {
    Quirk.IMPLICIT_OPEN: "first row of a case is not a creation: ticket opened at that row",
    Quirk.REOPENED_AFTER_CLOSE: "activity after closing: ticket reopened first",
    Quirk.REOPENED_AFTER_RESOLUTION: "activity after resolution: ticket reopened first",
    Quirk.RESOLUTION_CHANGED: "other resolution on a resolved ticket: reopened and resolved again",
    Quirk.CLOSED_WITHOUT_RESOLUTION: "close on an unresolved ticket: resolved as solved first",
    Quirk.ATTRIBUTES_CHANGED: "attributes changed mid-ticket (AttributesChanged stored)",
    Quirk.PRIORITY_CHANGED: "priority changed mid-ticket (PriorityChanged stored)",
    Quirk.DEPARTMENT_CHANGED: "department changed mid-ticket (Transferred stored)",
    Quirk.CUSTOMER_CHANGED: "row names another customer: its activity imported, its customer and attributes not",
    Quirk.TIMESTAMP_TIE: "row has the same time as the previous row of its case: file order kept",
    Quirk.NON_CONTIGUOUS_CASE: "rows of a case are not contiguous in the file: grouped by case",
    Quirk.AMBIGUOUS_LOCAL_TIME: "local time occurs twice (clock went back): earlier instant used",
    Quirk.NONEXISTENT_LOCAL_TIME: "local time skipped by the clock: offset before the change used",
    Quirk.AGENT_DEPARTMENT_ADDED_LATE: "stored agent lacked a department: added at the agent's latest time",
    Quirk.IMPLICIT_ASSIGN: "agent replied to or resolved an unassigned ticket: assigned to that agent first",
    Quirk.NEVER_CLOSED_OPEN: "ticket never closed: left open",
    Quirk.NEVER_CLOSED_PENDING: "ticket never closed: left pending",
    Quirk.NEVER_CLOSED_ON_HOLD: "ticket never closed: left on hold",
    Quirk.NEVER_CLOSED_RESOLVED: "ticket never closed: left resolved",
}
