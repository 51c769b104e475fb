"""Events that a group could not decode or apply, and where they are sent.

A dead letter keeps the original key, value and headers, and adds headers that name
the error, the group and the original position, so an operator can find the record,
fix the cause and re-publish it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, Sequence

import structlog

if TYPE_CHECKING:
    from kafka import KafkaProducer

log = structlog.get_logger(__name__)

# Header names added to every dead letter, after the original record's headers.
HEADER_ERROR = "dead-letter-error"
HEADER_ERROR_TYPE = "dead-letter-error-type"
HEADER_STAGE = "dead-letter-stage"
HEADER_GROUP = "dead-letter-group"
HEADER_TOPIC = "dead-letter-topic"
HEADER_PARTITION = "dead-letter-partition"
HEADER_OFFSET = "dead-letter-offset"

# Kafka limits a record to about 1 MB by default, and a traceback-sized message in a
# header is of no use to anyone reading the topic.
_MAX_ERROR_CHARS = 2000


class DeadLetterPublishError(RuntimeError):
    """Kafka did not acknowledge a dead letter; the batch must be retried."""


@dataclass(frozen=True)
class DeadLetter:
    """One record that failed, with the failure; `stage` is "decode" or "apply"."""

    group: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    stage: str
    error_type: str
    error: str

    @property
    def error_summary(self) -> str:
        return f"{self.error_type}: {self.error}"[:_MAX_ERROR_CHARS]

    def kafka_headers(self) -> list[tuple[str, bytes]]:
        added = [
            (HEADER_ERROR, self.error[:_MAX_ERROR_CHARS].encode()),
            (HEADER_ERROR_TYPE, self.error_type.encode()),
            (HEADER_STAGE, self.stage.encode()),
            (HEADER_GROUP, self.group.encode()),
            (HEADER_TOPIC, self.topic.encode()),
            (HEADER_PARTITION, str(self.partition).encode()),
            (HEADER_OFFSET, str(self.offset).encode()),
        ]
        return [*self.headers, *added]


class DeadLetterSink(Protocol):
    def publish(self, letters: Sequence[DeadLetter]) -> None:
        """Store `letters` durably before the batch commits, or raise."""
        ...


class KafkaDeadLetterSink:
    """Produces dead letters to the dead-letter topic and waits for the broker's acknowledgement."""

    def __init__(self, producer: KafkaProducer, topic: str, timeout_seconds: float) -> None:
        self._producer = producer
        self._topic = topic
        self._timeout_seconds = timeout_seconds

    def publish(self, letters: Sequence[DeadLetter]) -> None:
        if not letters:
            return
        futures = [
            self._producer.send(self._topic, key=letter.key, value=letter.value, headers=letter.kafka_headers())
            for letter in letters
        ]
        self._producer.flush(timeout=self._timeout_seconds)
        try:
            for future in futures:
                future.get(timeout=self._timeout_seconds)
        except Exception as error:
            raise DeadLetterPublishError(
                f"producing {len(letters)} dead letter(s) to {self._topic} failed: {error}"
            ) from error
        log.info("dead letters published", topic=self._topic, count=len(letters))


class UnpublishedDeadLetters:
    """Counts dead letters without producing them.

    Replay uses it because the live group already produced each dead letter when it
    first met the record; producing them again would only duplicate them.
    """

    def publish(self, letters: Sequence[DeadLetter]) -> None:
        return None
