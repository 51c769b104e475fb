"""Reachability checks and the classification of connection errors, against sockets on 127.0.0.1."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator

import psycopg
import pytest
from kafka.errors import KafkaTimeoutError

from ticketing.probe import ServiceUnavailable, check_kafka_reachable, check_postgres_reachable, unavailable_server
from ticketing.settings import Settings
from ticketing.stream.topics import TopicSetupError


@pytest.fixture
def listening_port() -> Iterator[int]:
    """Yield the port of a socket that accepts TCP connections on 127.0.0.1."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.fixture
def closed_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def settings_for(kafka: str, database_port: int) -> Settings:
    return dataclasses.replace(
        Settings(),
        kafka_bootstrap_servers=kafka,
        database_url=f"postgresql://helpdesk:helpdesk@127.0.0.1:{database_port}/helpdesk",
        connect_timeout_seconds=2.0,
    )


def test_any_answering_bootstrap_address_is_enough(listening_port: int, closed_port: int) -> None:
    servers = f"127.0.0.1:{closed_port},127.0.0.1:{listening_port}"

    assert check_kafka_reachable(servers, 2.0) == [f"127.0.0.1:{listening_port}"]


def test_unreachable_bootstrap_lists_every_address(closed_port: int) -> None:
    servers = f"127.0.0.1:{closed_port},127.0.0.1:{closed_port}"

    with pytest.raises(ServiceUnavailable) as caught:
        check_kafka_reachable(servers, 2.0)

    message = str(caught.value)
    assert message.count(f"127.0.0.1:{closed_port} (") == 2
    assert "any of" in message
    assert "scripts/services start" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message


def test_unreachable_postgres_names_address(closed_port: int) -> None:
    with pytest.raises(ServiceUnavailable) as caught:
        check_postgres_reachable(f"postgresql://u:secret@127.0.0.1:{closed_port}/desk", 2.0)

    message = str(caught.value)
    assert f"127.0.0.1:{closed_port}" in message
    assert "DATABASE_URL" in message
    assert "secret" not in message


def test_refused_postgres_connection_classified(closed_port: int, listening_port: int) -> None:
    settings = settings_for(f"127.0.0.1:{listening_port}", closed_port)
    with pytest.raises(psycopg.OperationalError) as refused:
        psycopg.connect(settings.database_url, connect_timeout=2)
    wrapped = RuntimeError("reading the event store failed")
    wrapped.__cause__ = refused.value

    unavailable = unavailable_server(wrapped, settings)

    assert unavailable is not None
    assert f"cannot connect to PostgreSQL at 127.0.0.1:{closed_port}" in str(unavailable)


def test_error_without_connection_cause_not_classified(closed_port: int) -> None:
    settings = settings_for(f"127.0.0.1:{closed_port}", closed_port)

    assert unavailable_server(RuntimeError("a bug"), settings) is None


def test_postgres_error_of_answering_server_not_classified(listening_port: int) -> None:
    settings = settings_for(f"127.0.0.1:{listening_port}", listening_port)
    lock_timeout = psycopg.errors.LockNotAvailable("canceling statement due to lock timeout")

    assert unavailable_server(lock_timeout, settings) is None


def test_kafka_error_classified_only_when_unreachable(listening_port: int, closed_port: int) -> None:
    error = TopicSetupError("cannot connect")
    error.__cause__ = KafkaTimeoutError("Unable to bootstrap")

    down = unavailable_server(error, settings_for(f"127.0.0.1:{closed_port}", listening_port))
    up = unavailable_server(error, settings_for(f"127.0.0.1:{listening_port}", listening_port))

    assert down is not None
    assert f"cannot connect to Kafka at 127.0.0.1:{closed_port}" in str(down)
    assert up is None


def test_unflagged_server_not_classified(closed_port: int, listening_port: int) -> None:
    error = TopicSetupError("cannot connect")
    error.__cause__ = KafkaTimeoutError("Unable to bootstrap")

    assert unavailable_server(error, settings_for(f"127.0.0.1:{closed_port}", listening_port), kafka=False) is None
