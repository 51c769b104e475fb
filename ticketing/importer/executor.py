"""Drive one ticket through the commands of its case, in memory.

The executor turns each planned row into Ticket commands, handles the domain's
rejections with the rules in `recovery`, and returns the new ticket with its pending
events. Nothing is stored here. The runner saves the ticket together with the agents
and customers it refers to, so a ticket whose case fails half-way leaves nothing behind.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from domain.agent import Agent
from domain.errors import DomainError, InvalidTransition
from domain.ticket import ACTIVE, Ticket
from domain.values import ReplyVisibility, Resolution, TicketStatus
from ticketing.importer import keys
from ticketing.importer.actions import Action, ActionKind
from ticketing.importer.directory import Directory
from ticketing.importer.mapping import Mapping
from ticketing.importer.people import actor_for, is_system_resource
from ticketing.importer.planner import CasePlan, RowPlan
from ticketing.importer.quirks import Quirk
from ticketing.importer.recovery import RecoveryKind, recovery_for

# A rejected command is retried after at most one recovery command (reopen, or resolve
# before close), and a recovery never leads back to the same rejection.
MAX_ATTEMPTS = 3

_NEVER_CLOSED = {
    TicketStatus.OPEN: Quirk.NEVER_CLOSED_OPEN,
    TicketStatus.PENDING: Quirk.NEVER_CLOSED_PENDING,
    TicketStatus.ON_HOLD: Quirk.NEVER_CLOSED_ON_HOLD,
    TicketStatus.RESOLVED: Quirk.NEVER_CLOSED_RESOLVED,
}


class TicketRejected(Exception):
    """A row of the case cannot be applied. The ticket is not imported."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(f"line {line}: {reason}")
        self.line = line
        self.reason = reason


# The command key name of the assignment that a reply or resolution by an agent adds to
# an unassigned ticket. It differs from "assign", so it never matches the key of an
# assign action of the same row.
IMPLICIT_ASSIGN_KEY = "implicit_assign"
IMPLICIT_ASSIGN_LABEL = "assign to the replying or resolving agent"


@dataclass(frozen=True)
class Step:
    """A Ticket command that stored events, kept to replay it on a stored ticket."""

    method: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    line: int = 0
    """Line of the row that issued the command."""
    implicit: bool = False
    """Added by the importer, not asked for by the mapping: the assignment before a reply or resolution."""

    @property
    def command_key(self) -> str:
        return str(self.kwargs["command_key"])


@dataclass
class TicketOutcome:
    plan: CasePlan
    ticket: Ticket
    steps: list[Step] = field(default_factory=list)
    agent_ids: set[UUID] = field(default_factory=set)
    customer_ids: set[UUID] = field(default_factory=set)
    commands: int = 0
    commands_by_line: Counter[int] = field(default_factory=Counter)
    """Commands issued per row line, including those that stored no event."""
    not_needed: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    quirks: Counter[Quirk] = field(default_factory=Counter)


def drive_ticket(plan: CasePlan, mapping: Mapping, directory: Directory) -> TicketOutcome:
    """Run every row of the case on a new Ticket; raise TicketRejected if a row cannot apply."""
    return _CaseDriver(plan, mapping, directory).run()


def replay(outcome: TicketOutcome, stored: Ticket) -> None:
    """Apply the outcome's commands to a ticket that an earlier import stored.

    Commands whose key the stored ticket has applied change nothing, so only the rows
    that the earlier import did not have add events. Implicit assignments that the
    stored ticket lacks before its latest applied command are left out (see
    `missing_implicit_steps`).
    """
    if stored.creation_command_key != outcome.ticket.creation_command_key:
        raise TicketRejected(
            outcome.plan.first_line,
            f"ticket {stored.id} already exists, but was not opened by this case's first row "
            f"(stored key {stored.creation_command_key!r}). It was changed outside this "
            f"import, or the log's first row of the case changed",
        )

    left_out = missing_implicit_steps(outcome, stored)
    for index, step in enumerate(outcome.steps[1:], start=1):
        if index in left_out:
            continue
        try:
            getattr(stored, step.method)(*step.args, **step.kwargs)
        except DomainError as error:
            raise TicketRejected(
                outcome.plan.first_line,
                f"the stored ticket differs from the log, so {step.method} cannot be applied: {error}",
            ) from error


def is_fully_applied(outcome: TicketOutcome, stored: Ticket) -> bool:
    """Return True if the stored ticket has every command of the outcome that stores events.

    Implicit assignments that `missing_implicit_steps` leaves out do not count.
    """
    left_out = missing_implicit_steps(outcome, stored)
    return all(
        index in left_out or stored.has_applied(step.command_key) for index, step in enumerate(outcome.steps)
    )


def missing_implicit_steps(outcome: TicketOutcome, stored: Ticket) -> set[int]:
    """Return the indexes of implicit steps that the stored ticket lacks although it has a later step.

    An import made before implicit assignments existed stored such a ticket without
    them. They cannot be added now: the ticket's business time must not go backwards,
    and its later events already follow. So the stored ticket keeps its history, and a
    new import into an empty event store gives the assignments.
    """
    applied = [index for index, step in enumerate(outcome.steps) if stored.has_applied(step.command_key)]
    if not applied:
        return set()
    return {
        index
        for index, step in enumerate(outcome.steps[: applied[-1]])
        if step.implicit and not stored.has_applied(step.command_key)
    }


def rows_already_applied(outcome: TicketOutcome, stored: Ticket) -> int:
    """Return how many of the case's first rows the stored ticket has: up to the last row with an applied command.

    Rows after that one are new, such as the rows of a log that grew since the last import.
    """
    lines = {step.line for step in outcome.steps if stored.has_applied(step.command_key)}
    count = 0
    for index, row_plan in enumerate(outcome.plan.rows):
        if row_plan.row.line in lines:
            count = index + 1
    return count


@dataclass
class _RowContext:
    plan: RowPlan
    actor: str | None
    repeats: Counter[str] = field(default_factory=Counter)

    def key(self, command: str) -> str:
        return keys.command_key(self.plan.key, command, self.repeats[command] + 1)


class _CaseDriver:
    def __init__(self, plan: CasePlan, mapping: Mapping, directory: Directory) -> None:
        self.plan = plan
        self.mapping = mapping
        self.directory = directory
        self.ticket: Ticket | None = None
        self.outcome: TicketOutcome | None = None
        self.public_reply_sent = False
        # Agents that the case's rows name, including rows before the ticket exists.
        self.agent_ids: set[UUID] = set()

    def run(self) -> TicketOutcome:
        previous: RowPlan | None = None
        for row_plan in self.plan.rows:
            if row_plan.out_of_order and previous is not None:
                raise TicketRejected(
                    row_plan.row.line,
                    f"time {row_plan.row.occurred_at.isoformat()} is earlier than the previous "
                    f"row of case {self.plan.case!r} (line {previous.row.line}, "
                    f"{previous.row.occurred_at.isoformat()}). Rows of a case must be in time order, "
                    f"so correct the time of one of the two rows or move this row before the other.",
                )
            self._apply_row(row_plan)
            previous = row_plan

        outcome = self._outcome()
        outcome.agent_ids.update(self.agent_ids)
        outcome.quirks.update(self.plan.quirks)
        final_status = outcome.ticket.status
        if final_status in _NEVER_CLOSED:
            outcome.quirks[_NEVER_CLOSED[final_status]] += 1
        return outcome

    # Rows.

    def _apply_row(self, row_plan: RowPlan) -> None:
        row = row_plan.row
        context = _RowContext(row_plan, actor_for(row.resource, self.mapping))
        if self._is_agent(row.resource):
            self._use_agent(row.resource)

        if self.ticket is None:
            self._open(context)

        pending_syncs = self._syncs(row_plan)
        self._run_syncs(pending_syncs, context)
        for action in row_plan.actions:
            self._run_action(action, context)
            self._run_syncs(pending_syncs, context)

        # The syncs left were rejected in every state the row went through: attributes
        # on a closed ticket, priority and department on a resolved or closed one.
        outcome = self._outcome()
        for command, _ in pending_syncs:
            outcome.skipped[f"{command}: ticket is {self._ticket().status}"] += 1

    def _open(self, context: _RowContext) -> None:
        row = context.plan.row
        customer = self.directory.customer(self.plan.customer)
        priority = self.mapping.priority
        if self.mapping.priority_rule is not None and row.priority_value is not None:
            priority = self.mapping.priority_rule.values[row.priority_value]

        key = context.key("open")
        self.ticket = Ticket.open(
            self.plan.ticket_id,
            customer.id,
            self.mapping.channel,
            context.plan.department,
            self.mapping.subject.format(case=self.plan.case),
            priority,
            row.attributes,
            occurred_at=row.occurred_at,
            command_key=key,
            actor_id=context.actor,
        )
        context.repeats["open"] += 1

        outcome = self.outcome = TicketOutcome(plan=self.plan, ticket=self.ticket)
        outcome.customer_ids.add(customer.id)
        outcome.commands += 1
        outcome.commands_by_line[row.line] += 1
        outcome.steps.append(
            Step(
                "open",
                (),
                {"command_key": key, "occurred_at": row.occurred_at, "actor_id": context.actor},
                line=row.line,
            )
        )

    def _syncs(self, row_plan: RowPlan) -> list[tuple[str, tuple[Any, ...]]]:
        """Return the changes of ticket data that the row's values ask for."""
        if row_plan.foreign_customer:
            return []
        ticket = self._ticket()
        row = row_plan.row
        syncs: list[tuple[str, tuple[Any, ...]]] = []

        changed = {name: value for name, value in row.attributes.items() if ticket.attributes.get(name) != value}
        if changed:
            syncs.append(("change_attributes", (changed,)))

        rule = self.mapping.priority_rule
        if rule is not None and row.priority_value is not None:
            priority = rule.values[row.priority_value]
            if priority != ticket.priority:
                syncs.append(("change_priority", (priority,)))

        if row_plan.department != ticket.department:
            syncs.append(("transfer", (row_plan.department,)))
        return syncs

    def _run_syncs(self, syncs: list[tuple[str, tuple[Any, ...]]], context: _RowContext) -> None:
        """Apply the syncs that the ticket's state allows now; keep the others for later."""
        for sync in list(syncs):
            command, args = sync
            try:
                changed = self._call(command, context, *args)
            except InvalidTransition:
                continue
            syncs.remove(sync)
            if changed:
                self._outcome().quirks[_SYNC_QUIRKS[command]] += 1

    # Actions.

    def _run_action(self, action: Action, context: _RowContext) -> None:
        resource = context.plan.row.resource
        kind = action.kind
        if kind is ActionKind.OPEN:
            return  # the ticket exists. The row's values were synced above.

        if kind is ActionKind.ASSIGN:
            if self._agent_required("assign", resource):
                self._issue("assign", context, self._use_agent(resource))
        elif kind in (ActionKind.FIRST_REPLY, ActionKind.NOTE):
            self._reply(action, context)
        elif kind is ActionKind.RESOLVE:
            agent = self._use_agent(resource) if self._is_agent(resource) else None
            self._issue("resolve", context, action.resolution, assign_to=agent)
        else:
            self._issue(str(kind), context)

    def _reply(self, action: Action, context: _RowContext) -> None:
        first_reply = action.kind is ActionKind.FIRST_REPLY
        if first_reply and self.public_reply_sent:
            return
        resource = context.plan.row.resource
        command = str(action.kind)
        if not self._agent_required(command, resource):
            return

        agent = self._use_agent(resource)
        body = (action.body or "").format(
            activity=context.plan.row.label, case=self.plan.case, resource=resource
        )
        visibility = ReplyVisibility.PUBLIC if first_reply else ReplyVisibility.INTERNAL
        # An internal note assigns nobody, because in the logs it records work on a
        # linked record, such as a software anomaly, and not that the agent took the ticket.
        assign_to = agent if first_reply else None
        replied = self._issue(
            "reply_as_agent", context, agent.id, body, visibility, label=command, assign_to=assign_to
        )
        if replied and first_reply:
            self.public_reply_sent = True

    def _agent_required(self, command: str, resource: str) -> bool:
        """Return True if the row's resource is an agent; count the skip otherwise."""
        if self._is_agent(resource):
            return True
        reason = "resource is a system user" if resource else "row has no resource"
        self._outcome().skipped[f"{command}: {reason}"] += 1
        return False

    def _issue(
        self,
        command: str,
        context: _RowContext,
        *args: Any,
        label: str | None = None,
        assign_to: Agent | None = None,
    ) -> bool:
        """Run a command, with the recovery that a rejection calls for; return True if it ran.

        `label` names the mapping's action in the summary when it differs from the command.
        With `assign_to`, an open, pending or on-hold ticket without an assignee is first
        assigned to that agent, as Zendesk does on solve with "auto assign tickets upon
        solve" turned on. docs/import.md gives the reasons.
        """
        outcome = self._outcome()
        for _ in range(MAX_ATTEMPTS):
            ticket = self._ticket()
            status = ticket.status
            if assign_to is not None:
                self._assign_if_unassigned(assign_to, context)
            try:
                self._call(command, context, *args)
                return True
            except InvalidTransition as error:
                same_resolution = command == "resolve" and ticket.resolution == args[0]
                recovery = recovery_for(command, status, same_resolution=same_resolution)
                if recovery is None:
                    raise TicketRejected(context.plan.row.line, str(error)) from error

            if recovery.kind is RecoveryKind.NOT_NEEDED:
                outcome.not_needed[f"{label or command}: {recovery.reason}"] += 1
                return False
            if recovery.kind is RecoveryKind.SKIP:
                outcome.skipped[f"{label or command}: {recovery.reason}"] += 1
                return False

            if recovery.kind is RecoveryKind.REOPEN_FIRST:
                self._call("reopen", context)
            else:
                self._call("resolve", context, Resolution.SOLVED)
            if recovery.quirk is not None:
                outcome.quirks[recovery.quirk] += 1

        raise TicketRejected(
            context.plan.row.line,
            f"{command} was still rejected after {MAX_ATTEMPTS} attempts, in status {self._ticket().status}",
        )

    def _assign_if_unassigned(self, agent: Agent, context: _RowContext) -> None:
        """Assign an open, pending or on-hold ticket without an assignee to `agent`, with its own key."""
        ticket = self._ticket()
        if ticket.assignee_id is not None or ticket.status not in ACTIVE:
            return
        blocker = agent.assignment_blocker(ticket.department, context.plan.row.occurred_at)
        if blocker is not None:
            self._outcome().skipped[f"{IMPLICIT_ASSIGN_LABEL}: {blocker}"] += 1
            return
        if self._call("assign", context, agent, key_name=IMPLICIT_ASSIGN_KEY):
            self._outcome().quirks[Quirk.IMPLICIT_ASSIGN] += 1

    def _call(self, command: str, context: _RowContext, *args: Any, key_name: str | None = None) -> bool:
        """Call a Ticket command with the row's time, key and actor; return True if it stored events.

        `key_name` replaces the command's name in the idempotency key, for a command
        that the importer adds on its own.
        """
        ticket = self._ticket()
        name = key_name or command
        kwargs = {
            "occurred_at": context.plan.row.occurred_at,
            "command_key": context.key(name),
            "actor_id": context.actor,
        }
        version = ticket.version
        try:
            getattr(ticket, command)(*args, **kwargs)
        except InvalidTransition:
            raise
        except DomainError as error:
            raise TicketRejected(context.plan.row.line, str(error)) from error

        context.repeats[name] += 1
        outcome = self._outcome()
        outcome.commands += 1
        outcome.commands_by_line[context.plan.row.line] += 1
        if ticket.version == version:
            return False
        outcome.steps.append(Step(command, args, kwargs, line=context.plan.row.line, implicit=key_name is not None))
        return True

    # People.

    def _is_agent(self, resource: str) -> bool:
        return bool(resource) and not is_system_resource(resource, self.mapping)

    def _use_agent(self, resource: str) -> Agent:
        """Return the row's agent and remember that this ticket refers to it."""
        agent = self.directory.agent(resource)
        self.agent_ids.add(agent.id)
        return agent

    def _ticket(self) -> Ticket:
        if self.ticket is None:
            raise RuntimeError("the ticket is used before the first row opened it")
        return self.ticket

    def _outcome(self) -> TicketOutcome:
        if self.outcome is None:
            raise RuntimeError("the ticket is used before the first row opened it")
        return self.outcome


_SYNC_QUIRKS = {
    "change_attributes": Quirk.ATTRIBUTES_CHANGED,
    "change_priority": Quirk.PRIORITY_CHANGED,
    "transfer": Quirk.DEPARTMENT_CHANGED,
}
