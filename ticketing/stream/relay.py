"""The relay: publishes every stored domain event to Kafka, in notification-log order.

Each round reads up to `batch_size` notifications after the recorded position,
sends them to the aggregate type's topic keyed by aggregate id, waits until Kafka
acknowledges them (acks=all), and only then records the position. A crash between
send and record therefore republishes the batch: delivery is at least once, and
subscribers drop duplicates by (aggregate_id, aggregate_version).

Order: the notification log orders events by commit (eventsourcing locks the events
table for each insert, so ids follow commit order). That lock is missing from
eventsourcing's insert function, which POSTGRES_ENABLE_DB_FUNCTIONS turns on, and
Settings.eventsourcing_env() leaves it off. One idempotent producer
keeps the send order per partition by its sequence numbers. One aggregate's
events all share a key and so a partition, so they arrive in version order.

Position after a failure: only the longest acknowledged prefix of a batch is
recorded, and the rest is republished by a new producer. The idempotent broker
accepts a partition's messages only in sequence order, so a message after a failed
one of the same partition normally fails too.

NOTE: if the producer reset its sequence numbers in the middle of a batch, a later
version of an aggregate could be written before the republished earlier one, and
subscribers would see that aggregate out of order. No test provokes this case.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from threading import Event
from typing import Any, Protocol

import structlog
from kafka import KafkaProducer
from kafka.errors import KafkaError, KafkaTimeoutError

from ticketing.settings import Settings
from ticketing.stream.codec import Codec, default_codec
from ticketing.stream.events import TOPIC_NAMES, UnpublishableEvent, decoded_from_domain_event, topic_name_for
from ticketing.stream.relay_session import RelaySession
from ticketing.stream.topics import ensure_topics

log = structlog.get_logger(__name__)

# Maximum wait per flush call, so that a stop request is noticed quickly.
ACK_WAIT_SLICE_SECONDS = 0.2
MAX_BACKOFF_SECONDS = 30.0


class RelayFailed(RuntimeError):
    """The relay stopped because it cannot publish: an unpublishable event or repeated Kafka failures."""


class NotificationSource(Protocol):
    """The part of eventsourcing's ApplicationRecorder that the relay reads."""

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Any]: ...


class EventMapper(Protocol):
    """The part of eventsourcing's Mapper that turns a stored event into a domain event."""

    def to_domain_event(self, stored_event: Any) -> Any: ...


@dataclass(frozen=True)
class RelayOptions:
    batch_size: int = 500
    """Maximum notifications read and published per round."""
    idle_poll_seconds: float = 5.0
    """Read again after this long without a notification, in case a writer did not NOTIFY."""
    delivery_timeout_seconds: float = 60.0
    """Maximum wait for Kafka to acknowledge one batch before the batch counts as failed."""
    shutdown_grace_seconds: float = 5.0
    """After a stop request, maximum further wait for the in-flight batch's acknowledgements."""
    max_consecutive_failures: int = 10
    """Failed batches in a row after which the relay gives up and exits."""
    linger_ms: int = 5
    """Producer linger: how long a partition's records wait to fill a request."""

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {self.batch_size}")


@dataclass(frozen=True)
class OutgoingMessage:
    notification_id: int
    topic: str
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass
class BatchOutcome:
    """Result of publishing one batch: how far Kafka acknowledged it and why it stopped there."""

    read: int
    acknowledged: int = 0
    position: int | None = None
    per_topic: Counter[str] = field(default_factory=Counter)
    delivery_error: str | None = None
    unpublishable: UnpublishableEvent | None = None
    abandoned: bool = False


@dataclass
class RelayTotals:
    published: int = 0
    batches: int = 0
    position: int = 0
    seconds: float = 0.0


ProducerFactory = Callable[[], KafkaProducer]


class Relay:
    """Publisher that follows the notification log and sends each event to its Kafka topic."""

    def __init__(
        self,
        settings: Settings,
        *,
        source: NotificationSource,
        mapper: EventMapper,
        channel: str,
        codec: Codec | None = None,
        options: RelayOptions = RelayOptions(),
        producer_factory: ProducerFactory | None = None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.mapper = mapper
        self.codec = codec or default_codec()
        self.options = options
        self.session = RelaySession(
            settings.database_url,
            schema=settings.event_store_schema,
            topic_prefix=settings.topic_prefix,
            channel=channel,
            connect_timeout=settings.connect_timeout_seconds,
        )
        self._producer_factory = producer_factory or self._new_producer
        self._log = log.bind(event_store_schema=settings.event_store_schema, topic_prefix=settings.topic_prefix)

    def topics(self) -> list[str]:
        return [self.settings.topic(name) for name in TOPIC_NAMES.values()]

    def run(self, stop: Event, *, once: bool = False) -> RelayTotals:
        """Publish until `stop` is set, or with `once` until the log is exhausted.

        Raises RelayFailed when an event cannot be published or Kafka keeps failing.
        """
        ensure_topics(
            self.settings.kafka_bootstrap_servers,
            self.topics(),
            partitions=self.settings.topic_partitions,
            connect_timeout_seconds=self.settings.connect_timeout_seconds,
        )
        self.session.open()
        try:
            if not self._lock(stop, once=once):
                return RelayTotals()
            return self._follow(stop, once=once)
        finally:
            self.session.close()

    def _lock(self, stop: Event, *, once: bool) -> bool:
        """Take the single-relay lock. A follower waits for it, and a one-off run fails at once."""
        if once and not self.session.try_lock():
            raise RelayFailed(
                f"another relay is publishing schema {self.settings.event_store_schema} to "
                f"prefix {self.settings.topic_prefix!r}. It publishes these events too, so "
                f"--once is not needed while it runs"
            )
        return self.session.wait_for_lock(stop, lambda: self._log.info("waiting for another relay to stop"))

    def _follow(self, stop: Event, *, once: bool) -> RelayTotals:
        # LISTEN before the first read, so that a commit between the read and the
        # wait still wakes the relay.
        self.session.listen()
        totals = RelayTotals(position=self.session.read_position())
        started = time.monotonic()
        self._log.info(
            "relay started",
            position=totals.position,
            topics=self.topics(),
            batch_size=self.options.batch_size,
            wake_up=f"LISTEN {self.session.channel}",
            once=once,
        )

        producer = self._producer_factory()
        failures = 0
        reason = "stop requested"
        close_timeout = self.options.shutdown_grace_seconds
        try:
            while not stop.is_set():
                notifications = self.source.select_notifications(
                    start=totals.position, limit=self.options.batch_size, inclusive_of_start=False
                )
                if not notifications:
                    if once:
                        reason = "log exhausted"
                        break
                    self.session.wait_for_events(self.options.idle_poll_seconds, stop)
                    continue

                outcome = self._publish(producer, notifications, stop)
                self._account(outcome, totals)
                if outcome.unpublishable is not None:
                    raise RelayFailed(str(outcome.unpublishable)) from outcome.unpublishable
                if outcome.abandoned:
                    # Drop what Kafka has not acknowledged. The recorded position excludes it.
                    close_timeout = 0.0
                    reason = "stop requested, in-flight batch abandoned"
                    break

                if outcome.delivery_error is None:
                    failures = 0
                    continue

                failures += 1
                producer = self._recover(producer, outcome, failures, stop)
        except BaseException as error:
            reason = f"failed: {error}"
            raise
        finally:
            producer.close(timeout=close_timeout)
            totals.seconds = time.monotonic() - started
            self._log.info(
                "relay stopped",
                reason=reason,
                published=totals.published,
                batches=totals.batches,
                position=totals.position,
                seconds=round(totals.seconds, 3),
            )
        return totals

    def _publish(self, producer: KafkaProducer, notifications: Sequence[Any], stop: Event) -> BatchOutcome:
        """Send one batch, wait for the acknowledgements, and record how far they reach."""
        outcome = BatchOutcome(read=len(notifications))
        messages = self._prepare(notifications, outcome)

        futures = []
        for message in messages:
            try:
                futures.append(
                    producer.send(message.topic, key=message.key, value=message.value, headers=message.headers)
                )
            except KafkaError as error:
                # send() raises for a record that is too large or for missing topic
                # metadata. Nothing after it may be sent, or it would overtake it.
                outcome.delivery_error = f"send failed for notification {message.notification_id}: {error!r}"
                break

        outcome.abandoned = not self._await_acknowledgements(producer, futures, stop)

        for message, future in zip(messages, futures):
            if not (future.is_done and future.succeeded()):
                if outcome.delivery_error is None:
                    detail = repr(future.exception) if future.is_done else "no acknowledgement in time"
                    outcome.delivery_error = f"notification {message.notification_id} to {message.topic}: {detail}"
                break
            outcome.acknowledged += 1
            outcome.position = message.notification_id
            outcome.per_topic[message.topic] += 1

        if outcome.position is not None:
            self.session.record_position(outcome.position)
        return outcome

    def _prepare(self, notifications: Sequence[Any], outcome: BatchOutcome) -> list[OutgoingMessage]:
        """Encode notifications in order up to the first one that cannot be published."""
        messages = []
        for notification in notifications:
            try:
                messages.append(self._message_for(notification))
            except UnpublishableEvent as error:
                outcome.unpublishable = error
                break
        return messages

    def _message_for(self, notification: Any) -> OutgoingMessage:
        where = f"notification {notification.id} ({notification.topic}, {notification.originator_id} version {notification.originator_version})"
        try:
            domain_event = self.mapper.to_domain_event(notification)
        except Exception as error:
            # eventsourcing raises MapperDeserialisationError for bad state and
            # TopicError or ImportError when the event class no longer exists.
            raise UnpublishableEvent(f"{where}: cannot rebuild the domain event: {error}") from error

        try:
            decoded = decoded_from_domain_event(domain_event, self.codec.repository)
            value, headers = self.codec.encode(decoded)
        except (UnpublishableEvent, ValueError) as error:
            raise UnpublishableEvent(f"{where}: {error}") from error

        return OutgoingMessage(
            notification_id=notification.id,
            topic=self.settings.topic(topic_name_for(decoded.aggregate_type)),
            key=decoded.aggregate_id.encode("utf-8"),
            value=value,
            headers=headers,
        )

    def _await_acknowledgements(self, producer: KafkaProducer, futures: list[Any], stop: Event) -> bool:
        """Wait until every future is done. Return False when the grace period after a stop request ended first."""
        deadline = time.monotonic() + self.options.delivery_timeout_seconds
        stop_deadline: float | None = None
        while not all(future.is_done for future in futures):
            try:
                producer.flush(timeout=ACK_WAIT_SLICE_SECONDS)
            except KafkaTimeoutError:
                pass

            now = time.monotonic()
            if stop.is_set():
                stop_deadline = stop_deadline or now + self.options.shutdown_grace_seconds
                if now >= stop_deadline and not all(future.is_done for future in futures):
                    return False
            if now >= deadline:
                return True
        return True

    def _account(self, outcome: BatchOutcome, totals: RelayTotals) -> None:
        totals.batches += 1
        totals.published += outcome.acknowledged
        first = totals.position
        if outcome.position is not None:
            totals.position = outcome.position

        details: dict[str, Any] = {
            f"events_{name}": outcome.per_topic.get(self.settings.topic(name), 0) for name in TOPIC_NAMES.values()
        }
        if outcome.delivery_error is not None:
            details["delivery_error"] = outcome.delivery_error
        if outcome.abandoned:
            details["abandoned"] = True

        complete = outcome.acknowledged == outcome.read
        line = self._log.info if complete else self._log.warning
        line(
            "batch published" if complete else "batch partly published",
            read=outcome.read,
            acknowledged=outcome.acknowledged,
            after_position=first,
            position=totals.position,
            **details,
        )

    def _recover(self, producer: KafkaProducer, outcome: BatchOutcome, failures: int, stop: Event) -> KafkaProducer:
        """Replace the producer after a failed batch, or raise RelayFailed after too many."""
        if failures >= self.options.max_consecutive_failures:
            raise RelayFailed(
                f"Kafka failed {failures} batches in a row. Last error: {outcome.delivery_error}"
            )

        # A fresh producer starts a new idempotence session, so nothing of the failed
        # one can be retried behind the republished messages.
        producer.close(timeout=0)
        backoff = min(MAX_BACKOFF_SECONDS, 0.5 * 2 ** (failures - 1))
        self._log.warning(
            "republishing from the recorded position after a delay",
            failures=failures,
            max_failures=self.options.max_consecutive_failures,
            delay_seconds=backoff,
        )
        stop.wait(backoff)
        return self._producer_factory()

    def _new_producer(self) -> KafkaProducer:
        return KafkaProducer(
            bootstrap_servers=self.settings.kafka_bootstrap_servers,
            client_id="ticketing-relay",
            acks="all",
            enable_idempotence=True,
            # Idempotence keeps the order per partition with at most 5 requests in flight
            # (kafka-python 3.0 raises KafkaConfigurationError for more).
            max_in_flight_requests_per_connection=5,
            linger_ms=self.options.linger_ms,
            batch_size=256 * 1024,
            # ensure_topics creates the topics with the right settings. Auto-creation
            # would give a mistyped topic the broker's defaults instead.
            allow_auto_create_topics=False,
            request_timeout_ms=15_000,
            delivery_timeout_ms=int(self.options.delivery_timeout_seconds * 1000),
            bootstrap_timeout_ms=max(int(self.settings.connect_timeout_seconds * 1000), 1000),
        )
