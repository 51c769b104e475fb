"""The Ticket aggregate: one customer request from opening to closing.

Statuses: open, pending (waiting on the customer), on_hold (waiting on a third
party), resolved, closed and merged. A closed ticket accepts only reopen and
rate_satisfaction. Imported histories show activity after closing, so a closed
ticket can be reopened, as in LiveAgent. A merged ticket accepts no command.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any
from uuid import UUID

from domain.agent import Agent
from domain.aggregate import HelpdeskAggregate, creation_metadata, status_words
from domain.errors import InvalidValue
from domain.validation import (
    enum_member,
    string_map,
    text,
    utc_datetime,
    uuid_value,
)
from domain.values import (
    CallbackStatus,
    Channel,
    Priority,
    ReplyVisibility,
    Resolution,
    TicketStatus,
)

ACTIVE = frozenset({TicketStatus.OPEN, TicketStatus.PENDING, TicketStatus.ON_HOLD})
ACTIVE_OR_RESOLVED = ACTIVE | {TicketStatus.RESOLVED}
FINISHED = frozenset({TicketStatus.RESOLVED, TicketStatus.CLOSED})

MIN_SCORE = 1
MAX_SCORE = 5


class Ticket(HelpdeskAggregate):
    _actions = {
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

    class Event(HelpdeskAggregate.Event):
        pass

    class Opened(Event, HelpdeskAggregate.Created):
        customer_id: UUID
        channel: Channel
        department: str
        subject: str
        priority: Priority
        attributes: dict[str, str]

        def apply(self, aggregate: Any) -> None:
            aggregate._customer_id = self.customer_id
            aggregate._channel = Channel(self.channel)
            aggregate._department = self.department
            aggregate._subject = self.subject
            aggregate._priority = Priority(self.priority)
            aggregate._attributes = dict(self.attributes)
            aggregate._status = TicketStatus.OPEN
            aggregate._assignee_id = None
            aggregate._resolution = None
            aggregate._merged_into = None
            aggregate._callbacks = {}
            aggregate._satisfaction_score = None
            aggregate._satisfaction_comment = None
            aggregate._agent_replies = 0
            aggregate._customer_replies = 0

    class AttributesChanged(Event):
        attributes: dict[str, str]

        def apply(self, aggregate: Any) -> None:
            aggregate._attributes.update(self.attributes)

    class PriorityChanged(Event):
        priority: Priority

        def apply(self, aggregate: Any) -> None:
            aggregate._priority = Priority(self.priority)

    class Assigned(Event):
        agent_id: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate._assignee_id = self.agent_id

    class Transferred(Event):
        department: str

        def apply(self, aggregate: Any) -> None:
            # The assignee was chosen for the old department, so the ticket goes
            # back to the queue of the new one.
            aggregate._department = self.department
            aggregate._assignee_id = None

    class AgentReplied(Event):
        agent_id: UUID
        visibility: ReplyVisibility
        body: str

        def apply(self, aggregate: Any) -> None:
            aggregate._agent_replies += 1

    class CustomerReplied(Event):
        body: str

        def apply(self, aggregate: Any) -> None:
            aggregate._customer_replies += 1

    class MovedToPending(Event):
        def apply(self, aggregate: Any) -> None:
            aggregate._status = TicketStatus.PENDING

    class PutOnHold(Event):
        def apply(self, aggregate: Any) -> None:
            aggregate._status = TicketStatus.ON_HOLD

    class Resumed(Event):
        def apply(self, aggregate: Any) -> None:
            aggregate._status = TicketStatus.OPEN

    class Resolved(Event):
        resolution: Resolution

        def apply(self, aggregate: Any) -> None:
            aggregate._status = TicketStatus.RESOLVED
            aggregate._resolution = Resolution(self.resolution)

    class Reopened(Event):
        def apply(self, aggregate: Any) -> None:
            aggregate._status = TicketStatus.OPEN
            aggregate._resolution = None

    class Closed(Event):
        def apply(self, aggregate: Any) -> None:
            aggregate._status = TicketStatus.CLOSED

    class MergedInto(Event):
        target_ticket_id: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate._status = TicketStatus.MERGED
            aggregate._merged_into = self.target_ticket_id

    class CallbackRequested(Event):
        callback_id: str
        phone: str
        window_start: datetime
        window_end: datetime

        personal_fields = frozenset({"phone"})

        def apply(self, aggregate: Any) -> None:
            aggregate._callbacks[self.callback_id] = CallbackStatus.REQUESTED

    class CallbackCompleted(Event):
        callback_id: str
        agent_id: UUID

        def apply(self, aggregate: Any) -> None:
            aggregate._callbacks[self.callback_id] = CallbackStatus.COMPLETED

    class CallbackMissed(Event):
        callback_id: str

        def apply(self, aggregate: Any) -> None:
            aggregate._callbacks[self.callback_id] = CallbackStatus.MISSED

    class SatisfactionRated(Event):
        score: int
        comment: str

        def apply(self, aggregate: Any) -> None:
            aggregate._satisfaction_score = self.score
            aggregate._satisfaction_comment = self.comment

    # Creation.

    @classmethod
    def open(
        cls,
        ticket_id: UUID | str,
        customer_id: UUID | str,
        channel: Channel | str,
        department: str,
        subject: str,
        priority: Priority | str = Priority.NORMAL,
        attributes: Mapping[str, str] | None = None,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> Ticket:
        """Create an open, unassigned ticket. The subject may be empty, as in e-mail."""
        return cls._create(
            cls.Opened,
            id=uuid_value(ticket_id, field="ticket_id"),
            customer_id=uuid_value(customer_id, field="customer_id"),
            channel=enum_member(Channel, channel, field="channel"),
            department=text(department, field="department"),
            subject=text(subject, field="subject", allow_empty=True),
            priority=enum_member(Priority, priority, field="priority"),
            attributes=string_map({} if attributes is None else dict(attributes), field="attributes"),
            **creation_metadata(occurred_at, command_key, actor_id),
        )

    # Commands on data.

    def change_attributes(
        self,
        attributes: Mapping[str, str],
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Set the given attributes. The event lists only the keys whose value changes."""
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("change_attributes", ACTIVE_OR_RESOLVED)
        requested = string_map(dict(attributes), field="attributes")
        changed = {
            key: value for key, value in requested.items() if self._attributes.get(key) != value
        }
        if not changed:
            return
        self._trigger(
            self.AttributesChanged,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            attributes=changed,
        )

    def change_priority(
        self,
        priority: Priority | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("change_priority", ACTIVE)
        new_priority = enum_member(Priority, priority, field="priority")
        if new_priority is self.priority:
            return
        self._trigger(
            self.PriorityChanged,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            priority=new_priority,
        )

    def assign(
        self,
        agent: Agent,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Assign the ticket to `agent`, who must be able to take it at `occurred_at`.

        The agent must be employed, within a temporary engagement, a member of the
        ticket's department and not paused. Assigning the current assignee again
        changes nothing.
        """
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("assign", ACTIVE)
        if not isinstance(agent, Agent):
            raise InvalidValue(
                f"agent must be an Agent aggregate, but got {agent!r}. Load the agent first.",
                field="agent",
                value=agent,
            )

        blocker = agent.assignment_blocker(self.department, at)
        if blocker is not None:
            self._reject(
                "assign",
                f"{self._describe()} {self._state_phrase()} and cannot be assigned to "
                f"agent {agent.id}, because {blocker}.",
            )

        if agent.id == self._assignee_id:
            return
        self._trigger(
            self.Assigned,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            agent_id=agent.id,
        )

    def transfer(
        self,
        department: str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Move the ticket to another department's queue. This clears the assignee."""
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("transfer", ACTIVE)
        new_department = text(department, field="department")
        if new_department == self._department:
            return
        self._trigger(
            self.Transferred,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            department=new_department,
        )

    # Conversation.

    def reply_as_agent(
        self,
        agent_id: UUID | str,
        body: str,
        visibility: ReplyVisibility | str = ReplyVisibility.PUBLIC,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Add an agent's reply. An internal reply is a note that the customer does not see."""
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("reply_as_agent", ACTIVE)
        self._trigger(
            self.AgentReplied,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            agent_id=uuid_value(agent_id, field="agent_id"),
            visibility=enum_member(ReplyVisibility, visibility, field="visibility"),
            body=text(body, field="body", allow_empty=True),
        )

    def reply_as_customer(
        self,
        body: str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("reply_as_customer", ACTIVE)
        self._trigger(
            self.CustomerReplied,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            body=text(body, field="body", allow_empty=True),
        )

    # Status changes.

    def move_to_pending(
        self,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Mark the ticket as waiting on the customer."""
        self._change_status(
            "move_to_pending",
            {TicketStatus.OPEN, TicketStatus.ON_HOLD},
            self.MovedToPending,
            occurred_at=occurred_at,
            command_key=command_key,
            actor_id=actor_id,
        )

    def put_on_hold(
        self,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Mark the ticket as waiting on a third party."""
        self._change_status(
            "put_on_hold",
            {TicketStatus.OPEN, TicketStatus.PENDING},
            self.PutOnHold,
            occurred_at=occurred_at,
            command_key=command_key,
            actor_id=actor_id,
        )

    def resume(
        self,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Return a pending or on-hold ticket to open."""
        self._change_status(
            "resume",
            {TicketStatus.PENDING, TicketStatus.ON_HOLD},
            self.Resumed,
            occurred_at=occurred_at,
            command_key=command_key,
            actor_id=actor_id,
        )

    def resolve(
        self,
        resolution: Resolution | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("resolve", ACTIVE)
        self._trigger(
            self.Resolved,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            resolution=enum_member(Resolution, resolution, field="resolution"),
        )

    def reopen(
        self,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Return a resolved or closed ticket to open and clear its resolution."""
        self._change_status(
            "reopen",
            FINISHED,
            self.Reopened,
            occurred_at=occurred_at,
            command_key=command_key,
            actor_id=actor_id,
        )

    def close(
        self,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        self._change_status(
            "close",
            {TicketStatus.RESOLVED},
            self.Closed,
            occurred_at=occurred_at,
            command_key=command_key,
            actor_id=actor_id,
        )

    def merge_into(
        self,
        target: Ticket,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Merge this ticket into `target`, after which this ticket accepts no command.

        The target must be another ticket that is neither merged nor closed, so that
        merges never form chains and never end in a ticket that cannot take replies.
        """
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("merge_into", ACTIVE)
        if not isinstance(target, Ticket):
            raise InvalidValue(
                f"target must be a Ticket aggregate, but got {target!r}. Load the target ticket first.",
                field="target",
                value=target,
            )

        if target.id == self.id:
            self._reject(
                "merge_into",
                f"{self._describe()} {self._state_phrase()} and cannot be merged into "
                f"itself. Choose another target ticket.",
            )
        if target.status in {TicketStatus.MERGED, TicketStatus.CLOSED}:
            self._reject(
                "merge_into",
                f"{self._describe()} {self._state_phrase()} and cannot be merged into "
                f"ticket {target.id}, because that ticket {target._state_phrase()}. "
                f"Merge into an open, pending, on hold or resolved ticket.",
            )

        self._trigger(
            self.MergedInto,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            target_ticket_id=target.id,
        )

    # Callbacks.

    def request_callback(
        self,
        callback_id: str,
        phone: str,
        window_start: datetime,
        window_end: datetime,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Record that the customer wants a call back between window_start and window_end."""
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("request_callback", ACTIVE)
        callback = text(callback_id, field="callback_id")
        start = utc_datetime(window_start, field="window_start")
        end = utc_datetime(window_end, field="window_end")
        if end <= start:
            raise InvalidValue(
                f"window_end {end.isoformat()} is not after window_start "
                f"{start.isoformat()}. A callback window needs a positive length.",
                field="window_end",
                value=window_end,
                aggregate_type="Ticket",
                aggregate_id=self.id,
            )
        if callback in self._callbacks:
            self._reject(
                "request_callback",
                f"{self._describe()} {self._state_phrase()} and cannot take callback "
                f"request {callback!r}, because a callback with that id already exists. "
                f"Use a new callback id.",
            )

        self._trigger(
            self.CallbackRequested,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            callback_id=callback,
            phone=text(phone, field="phone"),
            window_start=start,
            window_end=end,
        )

    def complete_callback(
        self,
        callback_id: str,
        agent_id: UUID | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Record that `agent_id` made the requested call. Allowed once per callback."""
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("complete_callback", ACTIVE_OR_RESOLVED)
        self._require_requested_callback("complete_callback", callback_id)
        self._trigger(
            self.CallbackCompleted,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            callback_id=callback_id,
            agent_id=uuid_value(agent_id, field="agent_id"),
        )

    def miss_callback(
        self,
        callback_id: str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Record that no call was made within the window. Allowed once per callback."""
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("miss_callback", ACTIVE_OR_RESOLVED)
        self._require_requested_callback("miss_callback", callback_id)
        self._trigger(
            self.CallbackMissed,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            callback_id=callback_id,
        )

    # Feedback.

    def rate_satisfaction(
        self,
        score: int,
        comment: str = "",
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> None:
        """Record the customer's rating from 1 to 5. A later rating replaces an earlier one."""
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status("rate_satisfaction", FINISHED)
        if isinstance(score, bool) or not isinstance(score, int) or not MIN_SCORE <= score <= MAX_SCORE:
            raise InvalidValue(
                f"score {score!r} is invalid. A satisfaction score is a whole number "
                f"from {MIN_SCORE} to {MAX_SCORE}.",
                field="score",
                value=score,
                aggregate_type="Ticket",
                aggregate_id=self.id,
            )
        self._trigger(
            self.SatisfactionRated,
            occurred_at=at,
            command_key=command_key,
            actor_id=actor_id,
            score=score,
            comment=text(comment, field="comment", allow_empty=True),
        )

    # State.

    @property
    def customer_id(self) -> UUID:
        return self._customer_id

    @property
    def channel(self) -> Channel:
        return Channel(self._channel)

    @property
    def department(self) -> str:
        return str(self._department)

    @property
    def subject(self) -> str:
        return str(self._subject)

    @property
    def priority(self) -> Priority:
        return Priority(self._priority)

    @property
    def attributes(self) -> dict[str, str]:
        return dict(self._attributes)

    @property
    def status(self) -> TicketStatus:
        return TicketStatus(self._status)

    @property
    def assignee_id(self) -> UUID | None:
        return self._assignee_id

    @property
    def resolution(self) -> Resolution | None:
        return None if self._resolution is None else Resolution(self._resolution)

    @property
    def merged_into(self) -> UUID | None:
        return self._merged_into

    @property
    def callbacks(self) -> dict[str, CallbackStatus]:
        """Status of each callback, by callback id."""
        return {callback: CallbackStatus(status) for callback, status in self._callbacks.items()}

    @property
    def satisfaction_score(self) -> int | None:
        return self._satisfaction_score

    @property
    def satisfaction_comment(self) -> str | None:
        return self._satisfaction_comment

    @property
    def agent_reply_count(self) -> int:
        return int(self._agent_replies)

    @property
    def customer_reply_count(self) -> int:
        return int(self._customer_replies)

    def to_dict(self) -> dict[str, Any]:
        """Return the public state, for audit output."""
        return {
            "id": self.id,
            "version": self.version,
            "customer_id": self.customer_id,
            "channel": self.channel,
            "department": self.department,
            "subject": self.subject,
            "priority": self.priority,
            "attributes": self.attributes,
            "status": self.status,
            "assignee_id": self.assignee_id,
            "resolution": self.resolution,
            "merged_into": self.merged_into,
            "callbacks": self.callbacks,
            "satisfaction_score": self.satisfaction_score,
            "satisfaction_comment": self.satisfaction_comment,
            "agent_reply_count": self.agent_reply_count,
            "customer_reply_count": self.customer_reply_count,
            "last_occurred_at": self.last_occurred_at,
        }

    # Guards.

    def _change_status(
        self,
        command: str,
        allowed: Collection[TicketStatus],
        event_class: type[Ticket.Event],
        *,
        occurred_at: datetime,
        command_key: str | None,
        actor_id: str | None,
    ) -> None:
        if self.has_applied(command_key):
            return
        at = self._business_time(occurred_at)
        self._require_status(command, allowed)
        self._trigger(event_class, occurred_at=at, command_key=command_key, actor_id=actor_id)

    def _require_requested_callback(self, command: str, callback_id: str) -> None:
        status = self._callbacks.get(callback_id)
        if status is None:
            self._reject(
                command,
                f"{self._cannot(command)} There is no callback {callback_id!r} on this "
                f"ticket. Request the callback first.",
            )
        if status != CallbackStatus.REQUESTED:
            self._reject(
                command,
                f"{self._cannot(command)} Callback {callback_id!r} was already "
                f"{status}, and a callback can be completed or missed only once.",
            )

    def _state_phrase(self) -> str:
        if self.status is TicketStatus.MERGED:
            return f"is merged into ticket {self._merged_into}"
        return f"is {status_words(self.status)}"

    def _transition_hint(self, command: str, allowed: Collection[StrEnum]) -> str:
        status = self.status
        if status is TicketStatus.MERGED:
            return f"A merged ticket accepts no commands, so send them to ticket {self._merged_into}."
        if status is TicketStatus.CLOSED:
            hint = "A closed ticket accepts only reopen and rate_satisfaction"
            return f"{hint}, so reopen it first." if TicketStatus.OPEN in allowed else f"{hint}."
        if status is TicketStatus.RESOLVED and TicketStatus.OPEN in allowed:
            return "Reopen it first."
        return super()._transition_hint(command, allowed)
