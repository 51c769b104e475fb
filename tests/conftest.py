"""Fixtures shared by every test.

Integration tests use the real Kafka broker and PostgreSQL server that the test command
starts. A missing server fails the run with the address and the command that starts it,
because a quietly skipped integration test proves nothing.
"""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from typing import Callable, Iterator

import psycopg
import pytest

from ticketing import logs
from ticketing.probe import ServiceUnavailable, probe_kafka, probe_postgres
from ticketing.settings import Settings

REPOSITORY = Path(__file__).resolve().parent.parent
SHARED_DATA = REPOSITORY.parent / "shared" / "data"


def pytest_configure(config: pytest.Config) -> None:
    logs.configure("WARNING", json=True)


@pytest.fixture(scope="session")
def base_settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def database_url(base_settings: Settings) -> str:
    try:
        probe_postgres(base_settings.database_url)
    except ServiceUnavailable as error:
        pytest.fail(f"{error}; run scripts/services start", pytrace=False)
    return base_settings.database_url


@pytest.fixture(scope="session")
def kafka_bootstrap(base_settings: Settings) -> str:
    try:
        probe_kafka(base_settings.kafka_bootstrap_servers)
    except ServiceUnavailable as error:
        pytest.fail(f"{error}; run scripts/services start", pytrace=False)
    return base_settings.kafka_bootstrap_servers


@pytest.fixture
def unique_name() -> Callable[[str], str]:
    """Return a factory of names no other test run uses, valid as topic and schema names."""

    def make(prefix: str) -> str:
        return f"{prefix}_{uuid.uuid4().hex[:12]}"

    return make


@pytest.fixture
def pg_schema(database_url: str, unique_name: Callable[[str], str]) -> Iterator[str]:
    """Yield a fresh PostgreSQL schema name and drop the schema after the test."""
    name = unique_name("test")
    yield name
    with psycopg.connect(database_url, autocommit=True) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')


@pytest.fixture
def settings(
    base_settings: Settings,
    database_url: str,
    kafka_bootstrap: str,
    pg_schema: str,
    unique_name: Callable[[str], str],
) -> Settings:
    """Settings isolated per test: its own event-store schema and its own topic prefix."""
    return dataclasses.replace(
        base_settings,
        event_store_schema=pg_schema,
        topic_prefix=f"{unique_name('t')}.",
    )


@pytest.fixture(scope="session")
def helpdesk_csv() -> Path:
    path = SHARED_DATA / "helpdesk" / "helpdesk.csv"
    if not path.is_file():
        pytest.fail(f"the helpdesk log is missing at {path}; it ships in ../shared/data", pytrace=False)
    return path
