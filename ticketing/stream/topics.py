"""Creation and inspection of the event topics.

The topics are the permanent record that new services replay from, so they keep
every message: retention.ms and retention.bytes are -1, and cleanup.policy must be
"delete". Compaction keyed by aggregate id would keep only the last event of each
aggregate. An existing topic with other settings is reported, never changed,
because altering a shared topic is an operator's decision.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import structlog
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType
from kafka.errors import KafkaError, TopicAlreadyExistsError

log = structlog.get_logger(__name__)

REQUIRED_CONFIGS = {"retention.ms": "-1", "retention.bytes": "-1", "cleanup.policy": "delete"}
CREATE_CONFIGS = {"retention.ms": "-1", "retention.bytes": "-1"}

TOPIC_READY_TIMEOUT_MS = 30_000


class TopicSetupError(RuntimeError):
    """Kafka rejected a request to create or describe a topic."""


@dataclass(frozen=True)
class TopicMismatch:
    """A setting of an existing topic that differs from what the relay would create."""

    topic: str
    setting: str
    expected: str
    actual: str


def ensure_topics(
    bootstrap_servers: str,
    topics: Iterable[str],
    *,
    partitions: int,
    connect_timeout_seconds: float = 5.0,
    request_timeout_ms: int = 30_000,
) -> list[TopicMismatch]:
    """Create the missing topics and return how the existing ones differ from the expected settings.

    Each mismatch is also logged as a warning. Raises TopicSetupError when no broker
    accepts a connection within `connect_timeout_seconds`, or Kafka rejects a request.
    """
    names = sorted(set(topics))
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            client_id="ticketing-relay-admin",
            request_timeout_ms=request_timeout_ms,
            # kafka-python's default is 30 s, which a refused address would wait in full.
            bootstrap_timeout_ms=max(int(connect_timeout_seconds * 1000), 1000),
        )
    except KafkaError as error:
        raise TopicSetupError(f"cannot connect to Kafka at {bootstrap_servers}: {error}") from error

    try:
        existing = set(admin.list_topics())
        created = _create_missing(admin, [name for name in names if name not in existing], partitions)
        mismatches = _inspect(admin, [name for name in names if name not in created], partitions)
    except KafkaError as error:
        raise TopicSetupError(f"Kafka rejected the topic set-up for {', '.join(names)}: {error}") from error
    finally:
        admin.close()

    for mismatch in mismatches:
        log.warning(
            "topic setting differs from the expected one, left unchanged",
            topic=mismatch.topic,
            setting=mismatch.setting,
            expected=mismatch.expected,
            actual=mismatch.actual,
        )
    return mismatches


def _create_missing(admin: KafkaAdminClient, names: list[str], partitions: int) -> set[str]:
    if not names:
        return set()

    request = {
        name: {
            "num_partitions": partitions,
            # -1 takes the broker's default.replication.factor, which brokers accept since Kafka 2.4.
            "replication_factor": -1,
            "configs": dict(CREATE_CONFIGS),
        }
        for name in names
    }
    response = admin.create_topics(request, raise_errors=False)

    created = set()
    for result in response["topics"]:
        error_code = result["error_code"]
        # Another process may create the same topic between list and create. Then
        # the topic is inspected like any existing one.
        if error_code == TopicAlreadyExistsError.errno:
            continue
        if error_code != 0:
            raise TopicSetupError(
                f"Kafka did not create topic {result['name']}: error {error_code} "
                f"{result.get('error_message') or ''}".strip()
            )
        created.add(result["name"])
        log.info("topic created", topic=result["name"], partitions=partitions, **CREATE_CONFIGS)

    if created:
        admin.wait_for_topics(sorted(created), timeout_ms=TOPIC_READY_TIMEOUT_MS)
    return created


def _inspect(admin: KafkaAdminClient, names: list[str], partitions: int) -> list[TopicMismatch]:
    if not names:
        return []

    mismatches = []
    for description in admin.describe_topics(names):
        actual = len(description.get("partitions") or [])
        if actual != partitions:
            mismatches.append(TopicMismatch(description["name"], "partitions", str(partitions), str(actual)))

    resources = [ConfigResource(ConfigResourceType.TOPIC, name, list(REQUIRED_CONFIGS)) for name in names]
    configs = admin.describe_configs(resources, config_filter="all").get("topic", {})
    for name in names:
        for setting, expected in REQUIRED_CONFIGS.items():
            actual_value = configs.get(name, {}).get(setting, {}).get("value")
            if actual_value != expected:
                mismatches.append(TopicMismatch(name, setting, expected, str(actual_value)))
    return mismatches
