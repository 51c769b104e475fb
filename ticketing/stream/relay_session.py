"""The relay's own PostgreSQL session: its position, its single-instance lock and its wake-ups.

Position table `<event_store_schema>.relay_position`, one row per topic prefix:

    topic_prefix          text primary key   where the events go, e.g. "helpdesk."
    last_notification_id  bigint             last notification Kafka acknowledged
    updated_at            timestamptz

Wake-ups use LISTEN/NOTIFY. eventsourcing 9.5's PostgresApplicationRecorder runs
`NOTIFY <events table name>` inside every transaction that inserts events
(postgres.py, `_notify_channel` and the insert function), and PostgreSQL delivers a
notification only when that transaction commits, so a notification means that new
events are visible. Channels are per database, not per schema, so relays of other
event-store schemas in the same database cause harmless extra reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from threading import Event

import psycopg
from psycopg import sql

LOCK_RETRY_SECONDS = 1.0

# Maximum wait per call into psycopg, so that a stop request (set by a signal handler
# while the call waits) is noticed within this time.
WAIT_SLICE_SECONDS = 0.2


class RelaySessionError(RuntimeError):
    """The relay's PostgreSQL session failed."""


class RelaySession:
    """One autocommit connection that holds the relay lock, listens and stores the position."""

    def __init__(self, database_url: str, *, schema: str, topic_prefix: str, channel: str, connect_timeout: float) -> None:
        self.schema = schema
        self.topic_prefix = topic_prefix
        self.channel = channel
        self._database_url = database_url
        self._connect_timeout = connect_timeout
        self._connection: psycopg.Connection | None = None

    def open(self) -> None:
        """Connect and create the position table if it is missing."""
        try:
            self._connection = psycopg.connect(
                self._database_url,
                autocommit=True,
                connect_timeout=max(1, int(self._connect_timeout)),
                application_name="ticketing-relay",
            )
            self._connection.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(self.schema)))
            self._connection.execute(
                sql.SQL(
                    "CREATE TABLE IF NOT EXISTS {}.relay_position ("
                    " topic_prefix text PRIMARY KEY,"
                    " last_notification_id bigint NOT NULL,"
                    " updated_at timestamptz NOT NULL DEFAULT now())"
                ).format(sql.Identifier(self.schema))
            )
        except psycopg.Error as error:
            raise RelaySessionError(f"cannot prepare {self.schema}.relay_position: {error}") from error

    def close(self) -> None:
        # Closing the session also releases the advisory lock.
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def try_lock(self) -> bool:
        """Take the session-level advisory lock of this schema and topic prefix, without waiting.

        Two relays on the same event store and prefix would publish every event
        twice, so the second one waits. PostgreSQL releases the lock when the
        holder's session ends, also when the process is killed.
        """
        key = f"ticketing-relay:{self.schema}:{self.topic_prefix}"
        row = self._execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()
        return bool(row and row[0])

    def wait_for_lock(self, stop: Event, on_wait: Callable[[], None]) -> bool:
        """Retry try_lock every second until it succeeds or `stop` is set; call on_wait once before waiting."""
        if self.try_lock():
            return True
        on_wait()
        while not stop.wait(LOCK_RETRY_SECONDS):
            if self.try_lock():
                return True
        return False

    def listen(self) -> None:
        """Subscribe to the recorder's channel. Call before the first read so no commit is missed."""
        self._execute(sql.SQL("LISTEN {}").format(sql.Identifier(self.channel)))

    def wait_for_events(self, timeout: float, stop: Event) -> bool:
        """Return True as soon as a notification arrives, False after `timeout` seconds or on stop."""
        connection = self._require_connection()
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                for _ in connection.notifies(timeout=min(remaining, WAIT_SLICE_SECONDS), stop_after=1):
                    return True
            except psycopg.Error as error:
                raise RelaySessionError(f"lost the PostgreSQL session while waiting for events: {error}") from error
        return False

    def read_position(self) -> int:
        """Return the id of the last acknowledged notification, 0 when nothing was published yet."""
        row = self._execute(
            sql.SQL("SELECT last_notification_id FROM {}.relay_position WHERE topic_prefix = %s").format(
                sql.Identifier(self.schema)
            ),
            (self.topic_prefix,),
        ).fetchone()
        return int(row[0]) if row else 0

    def record_position(self, notification_id: int) -> None:
        """Store the id of the last notification that Kafka acknowledged."""
        self._execute(
            sql.SQL(
                "INSERT INTO {}.relay_position (topic_prefix, last_notification_id, updated_at)"
                " VALUES (%s, %s, now())"
                " ON CONFLICT (topic_prefix) DO UPDATE"
                " SET last_notification_id = EXCLUDED.last_notification_id, updated_at = now()"
            ).format(sql.Identifier(self.schema)),
            (self.topic_prefix, notification_id),
        )

    def _execute(self, query: sql.Composable | str, params: tuple[object, ...] | None = None) -> psycopg.Cursor:
        try:
            return self._require_connection().execute(query, params)  # type: ignore[arg-type]
        except psycopg.Error as error:
            raise RelaySessionError(f"relay session query failed on schema {self.schema}: {error}") from error

    def _require_connection(self) -> psycopg.Connection:
        if self._connection is None:
            raise RelaySessionError("the relay session is not open; call open() first")
        return self._connection
