"""Send the outbox: claim one due message, send it, record the attempt, in one transaction.

The claim is `SELECT ... FOR UPDATE SKIP LOCKED` and the row stays locked until the
outcome is committed, so two dispatchers never send one message twice: the second one
skips the locked row and takes the next. If the process dies after the server accepted
the message but before the commit, the message is sent again on the next claim, so
delivery is at least once. The X-Notification-Key header carries the dedup key, so a
receiver can drop such a repeat.

Failed attempts wait in the table, not in a sleep: `next_attempt_at` moves forward by
the policy's exponential backoff, and the claim skips rows that are not due yet.

Every attempt and every final outcome is also written, by dedup key, to the delivery
schema next to the notifications schema. A replay swaps in a rebuilt outbox whose
messages are all pending again; the dispatcher then copies the recorded outcome
instead of sending a message twice.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Mapping

import psycopg
import structlog
from psycopg import sql
from psycopg.rows import dict_row

from projections.notifications import recipients, schema as tables
from projections.notifications.channels import OutgoingMessage, Sender
from projections.notifications.errors import DeliveryError, PermanentDeliveryError, RecipientForgotten
from projections.notifications.model import RuleSet
from projections.notifications.templates import render

log = structlog.get_logger(__name__)

Clock = Callable[[], datetime]


@dataclass
class DispatchSummary:
    """Counts of the outcomes of one or more dispatch passes."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    cancelled: int = 0
    expired: int = 0
    restored: int = 0  # final outcomes copied from the delivery log after a replay, not sent again

    @property
    def processed(self) -> int:
        return sum(dataclasses.astuple(self))

    def add(self, other: DispatchSummary) -> None:
        for item in dataclasses.fields(self):
            setattr(self, item.name, getattr(self, item.name) + getattr(other, item.name))

    def count(self, outcome: str) -> None:
        name = "retried" if outcome == "retry" else outcome
        setattr(self, name, getattr(self, name) + 1)


class Dispatcher:
    """Sends due outbox messages of one notifications schema.

    `conn` must be in autocommit mode: each message gets a transaction of its own, so a
    slow SMTP server holds the lock of one row only.
    """

    def __init__(
        self,
        conn: psycopg.Connection,
        schema: str,
        rules: RuleSet,
        senders: Mapping[str, Sender],
        *,
        default_slack_webhook: str = "",
        clock: Clock | None = None,
    ) -> None:
        if not conn.autocommit:
            raise ValueError("the dispatcher needs a connection in autocommit mode, one transaction per message")
        self.conn = conn
        self.schema = schema
        self.rules = rules
        self.senders = dict(senders)
        self.default_slack_webhook = default_slack_webhook
        self.clock = clock or (lambda: datetime.now(timezone.utc))
        self._outbox = sql.Identifier(schema)
        self._delivery = sql.Identifier(tables.delivery_schema(schema))
        self._tables_ready = False

    def ensure_tables(self) -> None:
        """Create the notifications and delivery tables if they do not exist yet."""
        if self._tables_ready:
            return
        with self.conn.transaction():
            # The same lock as the consumer machinery takes, because concurrent
            # CREATE ... IF NOT EXISTS statements can fail on the catalog's unique index.
            self.conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"projection-schema:{self.schema}",))
            tables.create_tables(self.conn, self.schema)
            tables.create_delivery_tables(self.conn, self.schema)
        self._tables_ready = True

    def dispatch_due(self, max_messages: int = 100, *, due_by: datetime | None = None) -> DispatchSummary:
        """Process due messages one by one until none is due or `max_messages` were processed.

        With `due_by`, only messages whose next attempt is at or before that time count as due.
        """
        self.ensure_tables()
        summary = DispatchSummary()
        for _ in range(max_messages):
            outcome = self.dispatch_next(due_by=due_by)
            if outcome is None:
                break
            summary.count(outcome)
        return summary

    def drain(self, batch_size: int = 100) -> DispatchSummary:
        """Process every message that is due when the call starts, in passes of `batch_size`, then return.

        A message that fails now and is scheduled for a later retry is not taken again,
        because it is due only after the start. The passes stop at the latest after as
        many messages as were due at the start, so messages that the projection writes
        meanwhile cannot keep the call running.
        """
        self.ensure_tables()
        started = self.clock()
        remaining = self._count_due(started)
        total = DispatchSummary()
        while remaining > 0:
            summary = self.dispatch_due(min(batch_size, remaining), due_by=started)
            total.add(summary)
            remaining -= summary.processed
            if summary.processed == 0:
                break
        log.info("due notifications processed", **dataclasses.asdict(total))
        return total

    def run(
        self,
        *,
        batch_size: int = 100,
        poll_interval: float = 5.0,
        stop: threading.Event | None = None,
        max_seconds: float | None = None,
    ) -> DispatchSummary:
        """Dispatch until `stop` is set or `max_seconds` pass; wait `poll_interval` seconds when idle."""
        stop = stop or threading.Event()
        deadline = None if max_seconds is None else time.monotonic() + max_seconds
        total = DispatchSummary()
        log.info("dispatcher started", schema=self.schema, poll_interval=poll_interval)
        while not stop.is_set():
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                break
            summary = self.dispatch_due(batch_size)
            total.add(summary)
            if summary.processed < batch_size:
                stop.wait(poll_interval if remaining is None else min(poll_interval, remaining))
        log.info("dispatcher stopped", **dataclasses.asdict(total))
        return total

    def dispatch_next(self, *, due_by: datetime | None = None) -> str | None:
        """Claim, send and record one due message; return its outcome, or None if none is due.

        With `due_by`, a message is due only if its next attempt is at or before that time.
        """
        self.ensure_tables()
        with self.conn.transaction():
            now = self.clock()
            message = self._claim(now if due_by is None else min(now, due_by))
            if message is None:
                return None
            with structlog.contextvars.bound_contextvars(
                outbox_id=message["id"], rule=message["rule"], recipient=message["recipient"]
            ):
                return self._process(message, now)

    def _claim(self, due_by: datetime) -> dict[str, Any] | None:
        query = sql.SQL(
            "SELECT id, dedup_key, rule, channel, recipient, context, fired_at FROM {}.outbox "
            "WHERE status = 'pending' AND next_attempt_at <= %s "
            "ORDER BY next_attempt_at, id LIMIT 1 FOR UPDATE SKIP LOCKED"
        ).format(self._outbox)
        with self.conn.cursor(row_factory=dict_row) as cursor:
            return cursor.execute(query, (due_by,)).fetchone()

    def _count_due(self, due_by: datetime) -> int:
        row = self.conn.execute(
            sql.SQL("SELECT count(*) FROM {}.outbox WHERE status = 'pending' AND next_attempt_at <= %s").format(
                self._outbox
            ),
            (due_by,),
        ).fetchone()
        return int(row[0]) if row else 0

    def _process(self, message: dict[str, Any], now: datetime) -> str:
        if self._restore_outcome(message):
            return "restored"

        previous = self._attempts_so_far(message["dedup_key"])
        policy = self.rules.delivery
        if message["fired_at"] < now - policy.max_age:
            error = f"fired at {message['fired_at'].isoformat()}, more than {policy.max_age} ago"
            log.info("notification expired unsent", fired_at=message["fired_at"].isoformat())
            self._finish(message, now, tables.EXPIRED, attempts=previous, error=error)
            return "expired"

        attempt = previous + 1
        label = None
        try:
            destination = recipients.resolve(
                self.conn, self.schema, self.rules, message["recipient"], message["channel"], self.default_slack_webhook
            )
            label = destination.label
            self._send(message, destination)
        except RecipientForgotten as error:
            log.info("notification cancelled", reason=str(error))
            self._record_attempt(message, attempt, now, "cancelled", label, str(error))
            self._finish(message, now, tables.CANCELLED, attempts=attempt, error=str(error))
            return "cancelled"
        except DeliveryError as error:
            return self._failed(message, attempt, now, label, error, error.retriable)
        except psycopg.Error:
            raise
        except Exception as error:  # a bug must not block the queue: count it as a failed attempt
            log.exception("notification delivery raised an unexpected error")
            return self._failed(message, attempt, now, label, error, retriable=True)

        log.info("notification sent", attempt=attempt, channel=message["channel"])
        self._record_attempt(message, attempt, now, "sent", label, None)
        self._finish(message, now, tables.SENT, attempts=attempt, error=None, sent_at=now)
        return "sent"

    def _send(self, message: dict[str, Any], destination: recipients.Destination) -> None:
        rule = self.rules.rule(message["rule"])
        if rule is None:
            raise PermanentDeliveryError(f"rule {message['rule']!r} is no longer in {self.rules.path}")
        sender = self.senders.get(message["channel"])
        if sender is None:
            raise PermanentDeliveryError(f"no sender is configured for channel {message['channel']!r}")

        rendered = render(
            rule.template, message["context"], language=destination.language, recipient_name=destination.name
        )
        sender.send(
            OutgoingMessage(
                key=message["dedup_key"], addresses=destination.addresses, body=rendered.body, subject=rendered.subject
            )
        )

    def _failed(
        self, message: dict[str, Any], attempt: int, now: datetime, label: str | None, error: Exception, retriable: bool
    ) -> str:
        text = f"{type(error).__name__}: {error}"
        if retriable and attempt < self.rules.delivery.max_attempts:
            delay = self.rules.delivery.retry_delay(attempt)
            log.warning("notification delivery failed; retrying", attempt=attempt, error=text,
                        retry_in_seconds=delay.total_seconds())
            self._record_attempt(message, attempt, now, "retry", label, text)
            self._set_outbox(message, status=tables.PENDING, attempts=attempt, error=text, retry_at=now + delay)
            return "retry"
        log.error("notification delivery failed for good", attempt=attempt, error=text, retriable=retriable)
        self._record_attempt(message, attempt, now, "failed", label, text)
        self._finish(message, now, tables.FAILED, attempts=attempt, error=text)
        return "failed"

    def _restore_outcome(self, message: dict[str, Any]) -> bool:
        """Copy a final outcome recorded before a replay rebuilt the outbox; return whether there was one."""
        row = self.conn.execute(
            sql.SQL(
                "SELECT status, attempt_count, sent_at, last_error FROM {}.delivery_outcomes WHERE dedup_key = %s"
            ).format(self._delivery),
            (message["dedup_key"],),
        ).fetchone()
        if row is None:
            return False
        status, attempts, sent_at, error = row
        self._set_outbox(message, status=status, attempts=attempts, error=error, sent_at=sent_at)
        log.info("notification outcome restored from the delivery log", status=status)
        return True

    def _attempts_so_far(self, dedup_key: str) -> int:
        row = self.conn.execute(
            sql.SQL("SELECT coalesce(max(attempt), 0) FROM {}.delivery_attempts WHERE dedup_key = %s").format(
                self._delivery
            ),
            (dedup_key,),
        ).fetchone()
        return int(row[0]) if row else 0

    def _record_attempt(
        self, message: dict[str, Any], attempt: int, now: datetime, outcome: str, destination: str | None, error: str | None
    ) -> None:
        self.conn.execute(
            sql.SQL(
                "INSERT INTO {}.delivery_attempts (dedup_key, attempt, attempted_at, outcome, destination, error) "
                "VALUES (%s, %s, %s, %s, %s, %s)"
            ).format(self._delivery),
            (message["dedup_key"], attempt, now, outcome, destination, error),
        )

    def _finish(
        self,
        message: dict[str, Any],
        now: datetime,
        status: str,
        *,
        attempts: int,
        error: str | None,
        sent_at: datetime | None = None,
    ) -> None:
        """Record a final status in the outbox and in the delivery log."""
        self.conn.execute(
            sql.SQL(
                "INSERT INTO {}.delivery_outcomes (dedup_key, status, decided_at, attempt_count, sent_at, last_error) "
                "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (dedup_key) DO NOTHING"
            ).format(self._delivery),
            (message["dedup_key"], status, now, attempts, sent_at, error),
        )
        self._set_outbox(message, status=status, attempts=attempts, error=error, sent_at=sent_at)

    def _set_outbox(
        self,
        message: dict[str, Any],
        *,
        status: str,
        attempts: int,
        error: str | None,
        retry_at: datetime | None = None,
        sent_at: datetime | None = None,
    ) -> None:
        self.conn.execute(
            sql.SQL(
                "UPDATE {}.outbox SET status = %s, attempt_count = %s, last_error = %s, "
                "next_attempt_at = coalesce(%s, next_attempt_at), sent_at = %s WHERE id = %s"
            ).format(self._outbox),
            (status, attempts, error, retry_at, sent_at, message["id"]),
        )
