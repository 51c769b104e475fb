"""HelpdeskApplication: the write side of the helpdesk, built on eventsourcing.

Each command method loads one aggregate, calls one domain method and saves the new
events. Two writers that change the same aggregate at once both load version N and
both try to store version N + 1. PostgreSQL's unique key on (originator_id,
originator_version) rejects the second insert with an IntegrityError, and the loser
reloads and runs its command again, up to `max_attempts` times.

Events are stored in the tables `helpdesk_events` and `helpdesk_snapshots` of the
event-store schema, because eventsourcing names them after the application's `name`.
"""

from __future__ import annotations

import random
import time
from contextlib import contextmanager
from collections.abc import Callable, Collection, Iterator, Mapping
from datetime import date, datetime
from typing import Any, ClassVar, TypeVar
from uuid import UUID

import structlog
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.persistence import (
    ApplicationRecorder,
    EventStore,
    InfrastructureFactory,
    IntegrityError,
    JSONTranscoder,
    PersistenceError,
    Transcoding,
)
from eventsourcing.postgres import PostgresDatastore, PostgresFactory
from eventsourcing.utils import Environment
from psycopg.sql import SQL, Identifier, Literal
from structlog.typing import FilteringBoundLogger

from domain.agent import Agent
from domain.aggregate import HelpdeskAggregate
from domain.customer import DEFAULT_LANGUAGE, Customer
from domain.errors import AlreadyExists, DomainError, NotFound
from domain.ticket import Ticket
from domain.validation import uuid_value
from domain.values import (
    Channel,
    EmploymentKind,
    LeavingKind,
    PauseReason,
    Priority,
    ReplyVisibility,
    Resolution,
)

log = structlog.get_logger(__name__)

A = TypeVar("A", bound=HelpdeskAggregate)

DEFAULT_MAX_ATTEMPTS = 5
DEFAULT_RETRY_DELAY_SECONDS = 0.02
SNAPSHOT_INTERVAL = 50


class ConcurrencyConflict(Exception):
    """Other writers changed the aggregate during every attempt of a command."""

    # The conflict depends on timing, not on the command, so a later retry may pass.
    retriable: ClassVar[bool] = True

    def __init__(self, aggregate_type: str, aggregate_id: UUID, command: str, attempts: int) -> None:
        super().__init__(
            f"{command} on {aggregate_type} {aggregate_id} failed after {attempts} "
            f"attempts, because another writer stored a new version of the "
            f"{aggregate_type.lower()} between load and save each time. Retry the "
            f"command later, with the same command_key so that it cannot apply twice."
        )
        self.aggregate_type = aggregate_type
        self.aggregate_id = aggregate_id
        self.command = command
        self.attempts = attempts


class DateAsISO(Transcoding):
    """Transcoding of `datetime.date` values, such as an agent's engagement end, as "YYYY-MM-DD"."""

    type = date
    name = "date_iso"

    def encode(self, obj: date) -> str:
        return obj.isoformat()

    def decode(self, data: str) -> date:
        return date.fromisoformat(data)


class HelpdeskApplication(Application[UUID]):
    name = "Helpdesk"

    # Agents and customers live for years and collect many events (presence changes
    # for agents), so a snapshot every 50 events bounds the replay on load.
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {
        Agent: SNAPSHOT_INTERVAL,
        Customer: SNAPSHOT_INTERVAL,
    }

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry_delay_seconds: float = DEFAULT_RETRY_DELAY_SECONDS,
    ) -> None:
        """Connect to the event store that `env` configures.

        `max_attempts` bounds how often a command runs when other writers keep
        winning. Before attempt n + 1 the command sleeps `retry_delay_seconds`
        times 2**(n - 1), times a random factor from 0.5 to 1.5, so that the losers
        of one conflict do not collide again.
        """
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, but got {max_attempts}.")
        if retry_delay_seconds < 0:
            raise ValueError(f"retry_delay_seconds must not be negative, but got {retry_delay_seconds}.")
        self.max_attempts = max_attempts
        self.retry_delay_seconds = retry_delay_seconds
        super().__init__(env)

    def construct_factory(self, env: Environment) -> InfrastructureFactory:
        factory = super().construct_factory(env)
        # eventsourcing creates tables but not the schema they live in (9.5.6).
        if isinstance(factory, PostgresFactory) and factory.env_create_table():
            create_schema(factory.datastore)
        return factory

    def construct_recorder(self) -> ApplicationRecorder:
        with _table_creation_lock(self.factory):
            return super().construct_recorder()

    def construct_snapshot_store(self) -> EventStore[Any]:
        with _table_creation_lock(self.factory):
            return super().construct_snapshot_store()

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(DateAsISO())

    def take_snapshot(self, aggregate_id: UUID, version: int | None = None, **kwargs: Any) -> None:
        """Store a snapshot, and log a failure instead of raising it.

        Application.save takes snapshots after it has stored the events, and
        snapshots only speed up loading. Raising here would make the caller retry a
        command whose events are already stored.
        """
        try:
            super().take_snapshot(aggregate_id, version, **kwargs)
        except PersistenceError as error:
            log.warning(
                "snapshot failed, loading will replay more events",
                aggregate_id=str(aggregate_id),
                version=version,
                error=str(error),
            )

    # Reading.

    def get_ticket(self, ticket_id: UUID | str) -> Ticket:
        return self._load(Ticket, ticket_id)

    def get_agent(self, agent_id: UUID | str) -> Agent:
        return self._load(Agent, agent_id)

    def get_customer(self, customer_id: UUID | str) -> Customer:
        return self._load(Customer, customer_id)

    def load_or_none(
        self, aggregate_id: UUID | str, aggregate_class: type[A] | None = None
    ) -> A | HelpdeskAggregate | None:
        """Return the aggregate with this id, or None if it has no events.

        With `aggregate_class`, an id that belongs to another aggregate type raises
        NotFound, because creating it again would fail on the stored version 1.
        """
        identifier = uuid_value(aggregate_id, field="aggregate_id")
        try:
            aggregate = self.repository.get(identifier)
        except AggregateNotFoundError:
            return None

        if aggregate_class is not None and not isinstance(aggregate, aggregate_class):
            raise NotFound(
                _wrong_type_message(aggregate_class.__name__, identifier, aggregate),
                aggregate_type=aggregate_class.__name__,
                aggregate_id=identifier,
            )
        return aggregate

    # Tickets.

    def open_ticket(
        self,
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
    ) -> int:
        return self._create(
            Ticket,
            ticket_id,
            "open",
            command_key,
            lambda identifier: Ticket.open(
                identifier,
                customer_id,
                channel,
                department,
                subject,
                priority,
                attributes,
                occurred_at=occurred_at,
                command_key=command_key,
                actor_id=actor_id,
            ),
        )

    def change_ticket_attributes(
        self,
        ticket_id: UUID | str,
        attributes: Mapping[str, str],
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(
            Ticket, ticket_id, "change_attributes", lambda ticket: ticket.change_attributes(attributes, **meta)
        )

    def change_ticket_priority(
        self,
        ticket_id: UUID | str,
        priority: Priority | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(
            Ticket, ticket_id, "change_priority", lambda ticket: ticket.change_priority(priority, **meta)
        )

    def assign_ticket(
        self,
        ticket_id: UUID | str,
        agent_id: UUID | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        """Assign the ticket to the agent, whose current state the ticket checks."""
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(
            Ticket,
            ticket_id,
            "assign",
            lambda ticket: ticket.assign(self._load(Agent, agent_id), **meta),
        )

    def transfer_ticket(
        self,
        ticket_id: UUID | str,
        department: str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(Ticket, ticket_id, "transfer", lambda ticket: ticket.transfer(department, **meta))

    def reply_as_agent(
        self,
        ticket_id: UUID | str,
        agent_id: UUID | str,
        body: str,
        visibility: ReplyVisibility | str = ReplyVisibility.PUBLIC,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(
            Ticket,
            ticket_id,
            "reply_as_agent",
            lambda ticket: ticket.reply_as_agent(agent_id, body, visibility, **meta),
        )

    def reply_as_customer(
        self,
        ticket_id: UUID | str,
        body: str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(
            Ticket, ticket_id, "reply_as_customer", lambda ticket: ticket.reply_as_customer(body, **meta)
        )

    def move_ticket_to_pending(
        self,
        ticket_id: UUID | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(Ticket, ticket_id, "move_to_pending", lambda ticket: ticket.move_to_pending(**meta))

    def put_ticket_on_hold(
        self,
        ticket_id: UUID | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(Ticket, ticket_id, "put_on_hold", lambda ticket: ticket.put_on_hold(**meta))

    def resume_ticket(
        self,
        ticket_id: UUID | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(Ticket, ticket_id, "resume", lambda ticket: ticket.resume(**meta))

    def resolve_ticket(
        self,
        ticket_id: UUID | str,
        resolution: Resolution | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(Ticket, ticket_id, "resolve", lambda ticket: ticket.resolve(resolution, **meta))

    def reopen_ticket(
        self,
        ticket_id: UUID | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(Ticket, ticket_id, "reopen", lambda ticket: ticket.reopen(**meta))

    def close_ticket(
        self,
        ticket_id: UUID | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(Ticket, ticket_id, "close", lambda ticket: ticket.close(**meta))

    def merge_ticket(
        self,
        ticket_id: UUID | str,
        target_ticket_id: UUID | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        """Merge the ticket into the target ticket, whose current state the ticket checks."""
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(
            Ticket,
            ticket_id,
            "merge_into",
            lambda ticket: ticket.merge_into(self._load(Ticket, target_ticket_id), **meta),
        )

    def request_callback(
        self,
        ticket_id: UUID | str,
        callback_id: str,
        phone: str,
        window_start: datetime,
        window_end: datetime,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(
            Ticket,
            ticket_id,
            "request_callback",
            lambda ticket: ticket.request_callback(callback_id, phone, window_start, window_end, **meta),
        )

    def complete_callback(
        self,
        ticket_id: UUID | str,
        callback_id: str,
        agent_id: UUID | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(
            Ticket,
            ticket_id,
            "complete_callback",
            lambda ticket: ticket.complete_callback(callback_id, agent_id, **meta),
        )

    def miss_callback(
        self,
        ticket_id: UUID | str,
        callback_id: str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(
            Ticket, ticket_id, "miss_callback", lambda ticket: ticket.miss_callback(callback_id, **meta)
        )

    def rate_satisfaction(
        self,
        ticket_id: UUID | str,
        score: int,
        comment: str = "",
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(
            Ticket,
            ticket_id,
            "rate_satisfaction",
            lambda ticket: ticket.rate_satisfaction(score, comment, **meta),
        )

    # Agents.

    def hire_agent(
        self,
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
    ) -> int:
        return self._create(
            Agent,
            agent_id,
            "hire",
            command_key,
            lambda identifier: Agent.hire(
                identifier,
                name,
                email,
                employment,
                engagement_ends_on,
                departments,
                occurred_at=occurred_at,
                command_key=command_key,
                actor_id=actor_id,
            ),
        )

    def change_agent_departments(
        self,
        agent_id: UUID | str,
        departments: Collection[str],
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(
            Agent, agent_id, "change_departments", lambda agent: agent.change_departments(departments, **meta)
        )

    def set_agent_online(
        self,
        agent_id: UUID | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(Agent, agent_id, "go_online", lambda agent: agent.go_online(**meta))

    def set_agent_offline(
        self,
        agent_id: UUID | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(Agent, agent_id, "go_offline", lambda agent: agent.go_offline(**meta))

    def pause_agent(
        self,
        agent_id: UUID | str,
        reason: PauseReason | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(Agent, agent_id, "pause", lambda agent: agent.pause(reason, **meta))

    def resume_agent(
        self,
        agent_id: UUID | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(Agent, agent_id, "resume", lambda agent: agent.resume(**meta))

    def record_agent_leaving(
        self,
        agent_id: UUID | str,
        kind: LeavingKind | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(Agent, agent_id, "leave", lambda agent: agent.leave(kind, **meta))

    def end_agent_engagement(
        self,
        agent_id: UUID | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(Agent, agent_id, "end_engagement", lambda agent: agent.end_engagement(**meta))

    # Customers.

    def register_customer(
        self,
        customer_id: UUID | str,
        name: str,
        email: str,
        phone: str | None = None,
        language: str = DEFAULT_LANGUAGE,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        return self._create(
            Customer,
            customer_id,
            "register",
            command_key,
            lambda identifier: Customer.register(
                identifier,
                name,
                email,
                phone,
                language,
                occurred_at=occurred_at,
                command_key=command_key,
                actor_id=actor_id,
            ),
        )

    def change_customer_contact_details(
        self,
        customer_id: UUID | str,
        name: str | None = None,
        email: str | None = None,
        phone: str | None = None,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(
            Customer,
            customer_id,
            "change_contact_details",
            lambda customer: customer.change_contact_details(name, email, phone, **meta),
        )

    def forget_customer(
        self,
        customer_id: UUID | str,
        *,
        occurred_at: datetime,
        command_key: str | None = None,
        actor_id: str | None = None,
    ) -> int:
        meta = _metadata(occurred_at, command_key, actor_id)
        return self._update(Customer, customer_id, "forget", lambda customer: customer.forget(**meta))

    # Command execution.

    def _load(self, aggregate_class: type[A], aggregate_id: UUID | str) -> A:
        noun = aggregate_class.__name__.lower()
        identifier = uuid_value(aggregate_id, field=f"{noun}_id")
        try:
            aggregate = self.repository.get(identifier)
        except AggregateNotFoundError:
            raise NotFound(
                f"{aggregate_class.__name__} {identifier} was not found in the event store. "
                f"Check the id, or create the {noun} first.",
                aggregate_type=aggregate_class.__name__,
                aggregate_id=identifier,
            ) from None

        if not isinstance(aggregate, aggregate_class):
            raise NotFound(
                _wrong_type_message(aggregate_class.__name__, identifier, aggregate),
                aggregate_type=aggregate_class.__name__,
                aggregate_id=identifier,
            )
        return aggregate

    def _update(
        self,
        aggregate_class: type[A],
        aggregate_id: UUID | str,
        command: str,
        decide: Callable[[A], None],
    ) -> int:
        """Load, decide and save, retrying when another writer stored a version first."""
        identifier = uuid_value(aggregate_id, field=f"{aggregate_class.__name__.lower()}_id")
        logger = log.bind(command=command, aggregate_type=aggregate_class.__name__, aggregate_id=str(identifier))

        last_error: IntegrityError | None = None
        for attempt in range(1, self.max_attempts + 1):
            aggregate = self._load(aggregate_class, identifier)
            try:
                decide(aggregate)
            except DomainError as error:
                logger.info("command rejected", error=str(error))
                raise

            try:
                return self._save(aggregate, logger, attempt)
            except IntegrityError as error:
                last_error = error
                self._back_off(attempt, logger, error)

        raise self._conflict(aggregate_class, identifier, command, logger) from last_error

    def _create(
        self,
        aggregate_class: type[A],
        aggregate_id: UUID | str,
        command: str,
        command_key: str | None,
        build: Callable[[UUID], A],
    ) -> int:
        """Create and save a new aggregate, or return the version of the same creation.

        A repeated creation with the same command_key changes nothing. Any other
        creation with an id that is taken raises AlreadyExists.
        """
        identifier = uuid_value(aggregate_id, field=f"{aggregate_class.__name__.lower()}_id")
        logger = log.bind(command=command, aggregate_type=aggregate_class.__name__, aggregate_id=str(identifier))

        last_error: IntegrityError | None = None
        for attempt in range(1, self.max_attempts + 1):
            existing = self.load_or_none(identifier)
            if existing is not None:
                return self._repeat_creation(existing, aggregate_class, command, command_key, logger)

            # A conflict here means another writer created the id first, and the
            # next attempt compares its command key.
            try:
                return self._save(build(identifier), logger, attempt)
            except IntegrityError as error:
                last_error = error
                self._back_off(attempt, logger, error)

        raise self._conflict(aggregate_class, identifier, command, logger) from last_error

    def _repeat_creation(
        self,
        existing: HelpdeskAggregate,
        aggregate_class: type[A],
        command: str,
        command_key: str | None,
        logger: FilteringBoundLogger,
    ) -> int:
        same_creation = (
            isinstance(existing, aggregate_class)
            and command_key is not None
            and existing.creation_command_key == command_key
        )
        if same_creation:
            logger.info("repeated command ignored", version=existing.version)
            return existing.version

        noun = aggregate_class.__name__
        existing_type = type(existing).__name__
        if existing_type == noun:
            message = (
                f"{noun} {existing.id} already exists (created with command key "
                f"{existing.creation_command_key!r}), so {command} with command key "
                f"{command_key!r} was rejected. Use a new id, or repeat the original "
                f"command key to make the call a no-op."
            )
        else:
            message = (
                f"{noun} {existing.id} cannot be created by {command}, because the id "
                f"already belongs to {existing_type} {existing.id}. Use a new id."
            )
        logger.info("command rejected", error=message)
        raise AlreadyExists(
            message,
            aggregate_type=existing_type,
            aggregate_id=existing.id,
            state=str(existing.status),
            command=command,
        )

    def _save(self, aggregate: HelpdeskAggregate, logger: FilteringBoundLogger, attempt: int) -> int:
        """Save the pending events, if any, and return the aggregate's new version."""
        event_count = len(aggregate.pending_events)
        if event_count == 0:
            logger.info("command changed nothing", version=aggregate.version)
            return aggregate.version

        self.save(aggregate)
        logger.info("command applied", version=aggregate.version, events=event_count, attempts=attempt)
        return aggregate.version

    def _back_off(self, attempt: int, logger: FilteringBoundLogger, error: IntegrityError) -> None:
        """Log a version conflict and sleep before the next attempt, if there is one."""
        if attempt >= self.max_attempts:
            return
        delay = self.retry_delay_seconds * 2 ** (attempt - 1) * random.uniform(0.5, 1.5)
        logger.warning(
            "version conflict, retrying",
            attempt=attempt,
            max_attempts=self.max_attempts,
            delay_seconds=round(delay, 4),
            error=str(error),
        )
        time.sleep(delay)

    def _conflict(
        self, aggregate_class: type[A], identifier: UUID, command: str, logger: FilteringBoundLogger
    ) -> ConcurrencyConflict:
        logger.warning("version conflict, giving up", attempts=self.max_attempts)
        return ConcurrencyConflict(aggregate_class.__name__, identifier, command, self.max_attempts)


@contextmanager
def _table_creation_lock(factory: InfrastructureFactory) -> Iterator[None]:
    # Processes that start together (relay and consumers) would otherwise run
    # eventsourcing's CREATE TABLE and CREATE FUNCTION at once, and PostgreSQL rejects
    # the loser with "tuple concurrently updated". A transaction-level advisory lock,
    # held on its own pooled connection, makes them take turns.
    if not (isinstance(factory, PostgresFactory) and factory.env_create_table()):
        yield
        return
    with factory.datastore.transaction(commit=True) as cursor:
        cursor.execute(SQL("SELECT pg_advisory_xact_lock(hashtext({}))").format(Literal(_TABLE_LOCK_NAME)))
        yield


_TABLE_LOCK_NAME = "ticketing: create event store tables"


def create_schema(datastore: PostgresDatastore) -> None:
    """Create the datastore's schema unless it exists."""
    statement = SQL("CREATE SCHEMA IF NOT EXISTS {}").format(Identifier(datastore.schema))
    try:
        with datastore.transaction(commit=True) as cursor:
            cursor.execute(statement)
    except IntegrityError:
        # Two processes that start at once can both pass the IF NOT EXISTS check,
        # and the loser's insert into pg_namespace fails. The schema exists either way.
        log.debug("schema created by another process", schema=datastore.schema)


def _metadata(occurred_at: datetime, command_key: str | None, actor_id: str | None) -> dict[str, Any]:
    return {"occurred_at": occurred_at, "command_key": command_key, "actor_id": actor_id}


def _wrong_type_message(expected: str, identifier: UUID, aggregate: object) -> str:
    return (
        f"{expected} {identifier} was not found: that id belongs to "
        f"{type(aggregate).__name__} {identifier}. Check the id."
    )

