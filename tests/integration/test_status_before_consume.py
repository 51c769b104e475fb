"""`ticketing status` and `replay --verify` when only the dispatcher has touched the notifications schema."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from consumers.replay import ReplayError, ReplayOptions, replay
from consumers.status import collect_status
from projections.notifications import PROJECTION
from projections.notifications.dispatcher import Dispatcher
from projections.notifications.rules import load_rules
from projections.notifications.schema import delivery_schema
from ticketing.settings import Settings


@pytest.fixture
def dispatched_only(settings: Settings, unique_name: Callable[[str], str]) -> Iterator[Settings]:
    """Settings whose notifications schema the dispatcher created before any consumer ran."""
    isolated = dataclasses.replace(settings, projection_prefix=f"{unique_name('st')}_")
    schema = isolated.projection_schema(PROJECTION.group)
    with psycopg.connect(isolated.database_url, autocommit=True) as conn:
        Dispatcher(conn, schema, load_rules(), {}).ensure_tables()
    yield isolated
    with psycopg.connect(isolated.database_url, autocommit=True) as conn:
        for name in (schema, delivery_schema(schema), f"{schema}_shadow"):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def test_status_shows_group_not_started(dispatched_only: Settings) -> None:
    (group,) = collect_status(dispatched_only, [PROJECTION])

    assert group.schema_exists is False
    assert group.lag == 0


def test_verify_says_group_not_run(dispatched_only: Settings) -> None:
    with pytest.raises(ReplayError) as caught:
        replay(dispatched_only, PROJECTION, ReplayOptions(verify=True, timeout_seconds=60))

    assert "no consumer of the group has run yet" in str(caught.value)
