"""The Agent aggregate: employment, departments and presence of a support agent.

An employed agent is offline, online or paused. Leaving, and for a temporary agent
the end of the engagement, ends employment, and after that the agent accepts no
command.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import date, datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from domain.aggregate import HelpdeskAggregate, creation_metadata
from domain.errors import InvalidValue
from domain.validation import (
    calendar_date,
    department_names,
    email_address,
    enum_member,
    text,
    uuid_value,
)
from domain.values import AgentStatus, EmploymentKind, LeavingKind, PauseReason

EMPLOYED = frozenset({AgentStatus.OFFLINE, AgentStatus.ONLINE, AgentStatus.PAUSED})


class Agent(HelpdeskAggregate):
    _actions = {
        "change_departments": "change departments",
        "go_online": "go online",
        "go_offline": "go offline",
        "pause": "be paused",
        "resume": "resume",
        "leave": "leave",
        "end_engagement": "end an engagement",
    }

    class Event(HelpdeskAggregate.Event):
        pass

    class Hired(Event, HelpdeskAggregate.Created):
        name: str
        email: str
        employment: EmploymentKind
        engagement_ends_on: date | None
        departments: list[str]

        def apply(self, aggregate: Any) -> None:
            aggregate._name = self.name
            aggregate._email = self.email
            aggregate._employment = EmploymentKind(self.employment)
            aggregate._engagement_ends_on = self.engagement_ends_on
            aggregate._departments = list(self.departments)
            aggregate._status = AgentStatus.OFFLINE
            aggregate._pause_reason = None
            aggregate._left_kind = None
            aggregate._engagement_ended_early = None

    class DepartmentsChanged(Event):
        departments: list[str]

        def apply(self, aggregate: Any) -> None:
            aggregate._departments = list(self.departments)

    class WentOnline(Event):
        def apply(self, aggregate: Any) -> None:
            aggregate._status = AgentStatus.ONLINE

    class WentOffline(Event):
        def apply(self, aggregate: Any) -> None:
            aggregate._status = AgentStatus.OFFLINE
            aggregate._pause_reason = None

    class Paused(Event):
        reason: PauseReason

        def apply(self, aggregate: Any) -> None:
            aggregate._status = AgentStatus.PAUSED
            aggregate._pause_reason = PauseReason(self.reason)

    class Resumed(Event):
        def apply(self, aggregate: Any) -> None:
            aggregate._status = AgentStatus.ONLINE
            aggregate._pause_reason = None

    class Left(Event):
        kind: LeavingKind

        def apply(self, aggregate: Any) -> None:
            aggregate._status = AgentStatus.LEFT
            aggregate._pause_reason = None
            aggregate._left_kind = LeavingKind(self.kind)

    class EngagementEnded(Event):
        ended_early: bool

        def apply(self, aggregate: Any) -> None:
            aggregate._status = AgentStatus.LEFT
            aggregate._pause_reason = None
            aggregate._engagement_ended_early = self.ended_early

    # Commands.

    @classmethod
    def hire(
        cls,
        agent_id: UUID | str,
        name: str,
        email: str,
        employment: EmploymentKind | str,
        engagement_ends_on: date | None,
        departments: Collection[str],
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> Agent:
        """Create an offline agent. A temporary agent needs an engagement end date."""
        kind = enum_member(EmploymentKind, employment, field="employment")
        ends_on = None if engagement_ends_on is None else calendar_date(
            engagement_ends_on, field="engagement_ends_on"
        )
        if kind is EmploymentKind.TEMPORARY and ends_on is None:
            raise InvalidValue(
                "engagement_ends_on is missing. A temporary agent needs the date on "
                "which the engagement ends.",
                field="engagement_ends_on",
                value=engagement_ends_on,
            )
        if kind is EmploymentKind.REGULAR and ends_on is not None:
            raise InvalidValue(
                f"engagement_ends_on {ends_on.isoformat()} is set for a regular agent. "
                f"Pass None, or hire the agent as temporary.",
                field="engagement_ends_on",
                value=engagement_ends_on,
            )

        return cls._create(
            cls.Hired,
            id=uuid_value(agent_id, field="agent_id"),
            name=text(name, field="name"),
            email=email_address(email),
            employment=kind,
            engagement_ends_on=ends_on,
            departments=department_names(departments),
            **creation_metadata(occurred_at, command_key, actor_id),
        )

    def change_departments(
        self,
        departments: Collection[str],
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Replace the departments. The same set in another order changes nothing."""
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("change_departments", EMPLOYED)
        names = department_names(departments)
        if set(names) == set(self._departments):
            return
        self._trigger(
            self.DepartmentsChanged,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            departments=names,
        )

    def go_online(
        self,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("go_online", {AgentStatus.OFFLINE})
        self._trigger(
            self.WentOnline, occurred_at=at, command_key=command_key, actor_id=actor_id
        )

    def go_offline(
        self,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("go_offline", {AgentStatus.ONLINE, AgentStatus.PAUSED})
        self._trigger(
            self.WentOffline, occurred_at=at, command_key=command_key, actor_id=actor_id
        )

    def pause(
        self,
        reason: PauseReason | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("pause", {AgentStatus.ONLINE})
        self._trigger(
            self.Paused,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            reason=enum_member(PauseReason, reason, field="reason"),
        )

    def resume(
        self,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("resume", {AgentStatus.PAUSED})
        self._trigger(
            self.Resumed, occurred_at=at, command_key=command_key, actor_id=actor_id
        )

    def leave(
        self,
        kind: LeavingKind | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("leave", EMPLOYED)
        self._trigger(
            self.Left,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            kind=enum_member(LeavingKind, kind, field="kind"),
        )

    def end_engagement(
        self,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """End a temporary agent's engagement. It ended early if before the agreed date."""
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("end_engagement", EMPLOYED)
        if self.employment is not EmploymentKind.TEMPORARY:
            self._reject(
                "end_engagement",
                f"{self._cannot('end_engagement')} Only temporary agents have an "
                f"engagement, and this agent is {self.employment}. Use leave instead.",
            )

        # hire() gives every temporary agent an end date.
        ends_on = self._engagement_ends_on
        self._trigger(
            self.EngagementEnded,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            ended_early=ends_on is not None and at.date() < ends_on,
        )

    # Domain service for Ticket.assign.

    def assignment_blocker(self, department: str, at: datetime) -> str | None:
        """Return why this agent cannot take a ticket of `department` at `at`, or None.

        The reason is a clause that starts with "the agent", to follow "because".
        """
        if self.status is AgentStatus.LEFT:
            return "the agent has left"
        ends_on = self._engagement_ends_on
        if ends_on is not None and at.date() > ends_on:
            return f"the agent's temporary engagement ended on {ends_on.isoformat()}"
        if department not in self._departments:
            return (
                f"the agent does not belong to department {department!r} "
                f"(the agent's departments: {', '.join(self._departments) or 'none'})"
            )
        if self.status is AgentStatus.PAUSED:
            return "the agent is paused"
        return None

    def can_take_assignment(self, department: str, at: datetime) -> bool:
        return self.assignment_blocker(department, at) is None

    # State.

    @property
    def name(self) -> str:
        return str(self._name)

    @property
    def email(self) -> str:
        return str(self._email)

    @property
    def employment(self) -> EmploymentKind:
        return EmploymentKind(self._employment)

    @property
    def engagement_ends_on(self) -> date | None:
        return self._engagement_ends_on

    @property
    def departments(self) -> tuple[str, ...]:
        return tuple(self._departments)

    @property
    def status(self) -> AgentStatus:
        return AgentStatus(self._status)

    @property
    def is_employed(self) -> bool:
        return self.status in EMPLOYED

    @property
    def pause_reason(self) -> PauseReason | None:
        return None if self._pause_reason is None else PauseReason(self._pause_reason)

    @property
    def left_kind(self) -> LeavingKind | None:
        return None if self._left_kind is None else LeavingKind(self._left_kind)

    @property
    def engagement_ended_early(self) -> bool | None:
        """Whether the engagement ended before the agreed date. None while it has not ended."""
        return self._engagement_ended_early

    def to_dict(self) -> dict[str, Any]:
        """Return the public state, for audit output."""
        return {
            "id": self.id,
            "version": self.version,
            "name": self.name,
            "email": self.email,
            "employment": self.employment,
            "engagement_ends_on": self.engagement_ends_on,
            "departments": list(self.departments),
            "status": self.status,
            "pause_reason": self.pause_reason,
            "left_kind": self.left_kind,
            "engagement_ended_early": self.engagement_ended_early,
            "last_occurred_at": self.last_occurred_at,
        }

    # Guards.

    def _state_phrase(self) -> str:
        if self.status is AgentStatus.LEFT:
            return "has left"
        return f"is {self.status}"

    def _transition_hint(self, command: str, allowed: Collection[StrEnum]) -> str:
        if self.status is AgentStatus.LEFT:
            return "An agent who has left accepts no commands. Hire the person again under a new id."
        return super()._transition_hint(command, allowed)

