"""Read the event store's notification log as deliveries, for a replay when topics lack history."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Iterator

from consumers.batch import Delivery
from ticketing.stream.codec import DecodeError, default_codec
from ticketing.stream.events import decoded_from_domain_event, topic_name_for

if TYPE_CHECKING:
    from ticketing.application import HelpdeskApplication
    from ticketing.stream.decoded import DecodedEvent

# Pseudo topic under which a replay from the event store stores its position and counts
# dead letters. Its partition is always 0, and its offset is the notification id.
EVENT_STORE_SOURCE = "event-store"


@dataclass
class NotificationBatch:
    deliveries: list[Delivery]
    last_id: int
    failures: dict[int, DecodeError]
    """Notification id -> why it could not become a DecodedEvent."""

    def decode(self, delivery: Delivery) -> DecodedEvent:
        """Raise the conversion error of a notification that carries no event (see Decoder)."""
        raise self.failures.get(delivery.offset) or DecodeError(
            "the notification carries no event", topic=delivery.topic, partition=delivery.partition, offset=delivery.offset
        )


class NotificationReader:
    """Reads notifications after a position and converts them as the relay does."""

    def __init__(self, application: HelpdeskApplication, logical_topics: tuple[str, ...]) -> None:
        self._application = application
        self._logical_topics = frozenset(logical_topics)
        self._repository = default_codec().repository

    def max_notification_id(self) -> int:
        return self._application.recorder.max_notification_id() or 0

    def read(self, after: int, limit: int, up_to: int | None = None) -> NotificationBatch | None:
        """Return up to `limit` notifications with ids above `after` (and at most `up_to`), or None."""
        notifications = self._application.recorder.select_notifications(
            start=after, limit=limit, stop=up_to, inclusive_of_start=False
        )
        if not notifications:
            return None
        batch = NotificationBatch(deliveries=[], last_id=after, failures={})
        for notification in notifications:
            batch.last_id = notification.id
            delivery = self._delivery(notification, batch.failures)
            if delivery is not None:
                batch.deliveries.append(delivery)
        return batch

    def batches(self, after: int, limit: int, up_to: int) -> Iterator[NotificationBatch]:
        """Yield batches up to notification `up_to`; bounded because ids only grow."""
        position = after
        while position < up_to:
            batch = self.read(position, limit, up_to)
            if batch is None:
                return
            position = batch.last_id
            yield batch

    def _delivery(self, notification: Any, failures: dict[int, DecodeError]) -> Delivery | None:
        where = {"topic": EVENT_STORE_SOURCE, "partition": 0, "offset": notification.id}
        try:
            event = decoded_from_domain_event(self._application.mapper.to_domain_event(notification), self._repository)
            logical_topic = topic_name_for(event.aggregate_type)
        except Exception as error:
            # The relay would stop on such an event. A rebuild counts it as a dead letter
            # and goes on, so that one bad stored event does not block the rebuild.
            failures[notification.id] = DecodeError(f"{type(error).__name__}: {error}", **where)
            return Delivery(**where, key=str(notification.originator_id).encode())
        if logical_topic not in self._logical_topics:
            return None
        return Delivery(**where, key=event.aggregate_id.encode(), event=event)
