"""The projection of the "notifications" consumer group."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import psycopg
import structlog
from psycopg import sql

from projections.notifications import deadlines, outbox, schema as tables, state
from projections.notifications.context import event_context
from projections.notifications.model import RuleSet
from projections.notifications.rules import load_rules
from ticketing.settings import Settings
from ticketing.stream.decoded import DecodedEvent

log = structlog.get_logger(__name__)

GROUP = "notifications"


class NotificationsProjection:
    """Turns events and deadlines into outbox rows (implements consumers.projection.Projection).

    The rules file is read on first use, not at import, from `rules`, else from
    `rules_path`, else from the NOTIFICATION_RULES setting, else the shipped default.
    """

    group = GROUP
    topics = ("tickets", "agents", "customers")

    # Columns that the dispatcher writes, which `ticketing replay --verify` must not
    # compare with a rebuild: a rebuilt outbox has every message pending again.
    verify_ignored_columns = {
        "outbox": frozenset({"id", "created_at", "status", "attempt_count", "next_attempt_at", "sent_at", "last_error"})
    }

    def __init__(self, rules: RuleSet | None = None, rules_path: str | Path | None = None) -> None:
        self._rules = rules
        self._rules_path = rules_path

    @property
    def rules(self) -> RuleSet:
        if self._rules is None:
            path = self._rules_path or Settings.from_env().notification_rules or None
            self._rules = load_rules(path)
            log.info("notification rules loaded", path=str(self._rules.path), rules=len(self._rules.rules))
        return self._rules

    def create_tables(self, conn: psycopg.Connection, schema: str) -> None:
        # Loading the rules here makes a consumer with an invalid rules file stop at
        # start-up with the file's problems instead of at its first event.
        self.rules  # noqa: B018
        tables.create_tables(conn, schema)

    def apply(self, conn: psycopg.Connection, schema: str, event: DecodedEvent) -> None:
        rules = self.rules
        identifier = sql.Identifier(schema)

        # A deadline that the group's clock fired before this earlier event arrived is
        # scheduled again. Then the deadlines that passed before the event happened
        # fire, with the state as it was then.
        deadlines.reopen_premature(conn, identifier, event)
        deadlines.fire_due(conn, identifier, rules, event.occurred_at, aggregate_id=event.aggregate_id)

        state.apply(conn, identifier, event)
        current = state.load(conn, identifier, event.aggregate_type, event.aggregate_id)
        deadlines.on_event(conn, identifier, rules, event, current)

        # A deadline started or moved by this event may already be due, for instance
        # when a priority change makes the first response overdue at once.
        deadlines.fire_due(conn, identifier, rules, event.occurred_at, aggregate_id=event.aggregate_id)

        for rule in rules.event_rules(event.event_type):
            context = event_context(event, current)
            if rule.matches(context):
                outbox.write(
                    conn,
                    identifier,
                    rule,
                    context,
                    aggregate_id=event.aggregate_id,
                    source=outbox.EVENT_SOURCE,
                    source_version=event.aggregate_version,
                    fired_at=event.occurred_at,
                )

    def after_batch(self, conn: psycopg.Connection, schema: str, clock: datetime | None) -> None:
        # The runner passes None before the group has seen any event.
        if clock is None:
            return
        rules = self.rules
        fired = deadlines.fire_due(conn, sql.Identifier(schema), rules, clock - rules.allowed_lateness)
        if fired:
            log.info("deadlines fired", schema=schema, count=fired, clock=clock.isoformat())
