"""Replay from the event store's notification log: events written by the application, relayed and consumed."""

from __future__ import annotations

import subprocess
import sys
import uuid
from datetime import date, datetime, timedelta, timezone

from typer.testing import CliRunner

from consumers.status import collect_status
from projections.reports import PROJECTION
from tests.integration.test_consumer_fixtures import (  # noqa: F401  (fixtures)
    consume_until_caught_up,
    environment,
    group_settings,
    rows,
)
from ticketing.application import HelpdeskApplication
from ticketing.cli import _register_commands, app
from ticketing.settings import Settings

AT = datetime(2024, 7, 1, 8, tzinfo=timezone.utc)


def _write_history(settings: Settings) -> dict[str, str]:
    """Store a small history through the application's commands; return the ids by role."""
    ids = {name: str(uuid.uuid4()) for name in ("customer", "regular", "temporary", "solved", "reopened")}
    application = HelpdeskApplication(env=settings.eventsourcing_env())
    try:
        def at(minutes: int) -> dict[str, datetime]:
            return {"occurred_at": AT + timedelta(minutes=minutes)}

        application.register_customer(ids["customer"], "Cleo", "cleo@example.org", language="en", **at(0))
        application.hire_agent(ids["regular"], "Rae", "rae@example.org", "regular", None, ["billing"], **at(1))
        application.hire_agent(ids["temporary"], "Tam", "tam@example.org", "temporary", date(2024, 12, 31),
                               ["billing"], **at(2))
        application.set_agent_online(ids["regular"], **at(60))
        application.open_ticket(ids["solved"], ids["customer"], "email", "billing", "Invoice", "high", {}, **at(61))
        application.open_ticket(ids["reopened"], ids["customer"], "chat", "billing", "Login", "low", {}, **at(62))
        application.assign_ticket(ids["solved"], ids["regular"], **at(70))
        application.reply_as_agent(ids["solved"], ids["regular"], "Here you go", "public", **at(80))
        application.resolve_ticket(ids["solved"], "solved", **at(90))
        application.close_ticket(ids["solved"], **at(100))
        application.rate_satisfaction(ids["solved"], 4, "ok", **at(110))
        application.assign_ticket(ids["reopened"], ids["temporary"], **at(120))
        application.reply_as_agent(ids["reopened"], ids["temporary"], "Note", "internal", **at(121))
        application.resolve_ticket(ids["reopened"], "solved", **at(130))
        application.reopen_ticket(ids["reopened"], **at(24 * 60))
        application.resolve_ticket(ids["reopened"], "wont_fix", **at(25 * 60))
        application.pause_agent(ids["regular"], "lunch", **at(240))
        application.resume_agent(ids["regular"], **at(270))
        application.set_agent_offline(ids["regular"], **at(540))
    finally:
        application.close()
    return ids


def test_rebuild_from_event_store_matches_topics_and_swaps(group_settings: Settings) -> None:
    ids = _write_history(group_settings)
    env = environment(group_settings)
    relayed = subprocess.run([sys.executable, "-c", "from ticketing.cli import main; main()", "relay", "--once"],
                             env=env, capture_output=True, timeout=60)
    assert relayed.returncode == 0, relayed.stderr.decode()[-2000:]
    consume_until_caught_up(group_settings)
    _register_commands()
    runner = CliRunner()

    verified = runner.invoke(app, ["replay", "reports", "--from-event-store", "--verify"], env=env)
    swapped = runner.invoke(app, ["replay", "reports", "--from-event-store"], env=env)
    consume_until_caught_up(group_settings)

    assert verified.exit_code == 0, verified.output
    assert "no differences" in verified.stdout
    assert swapped.exit_code == 0, swapped.output
    assert "swapped it in" in swapped.stdout
    tickets = {row["ticket_id"]: row for row in rows(group_settings, "SELECT * FROM {schema}.tickets")}
    assert set(tickets) == {ids["solved"], ids["reopened"]}
    assert tickets[ids["solved"]]["rating"] == 4
    assert tickets[ids["reopened"]]["reopen_count"] == 1
    assert tickets[ids["reopened"]]["resolution"] == "wont_fix"
    time = rows(group_settings, "SELECT * FROM {schema}.agent_time_daily WHERE agent_id = %s", (ids["regular"],))
    assert [(row["online_seconds"], row["paused_lunch_seconds"]) for row in time] == [(8 * 3600.0, 1800.0)]
    status = collect_status(group_settings, [PROJECTION])[0]
    assert status.lag == 0
    offsets = rows(group_settings, "SELECT DISTINCT topic FROM {schema}.consumer_offsets")
    assert {row["topic"] for row in offsets} <= {group_settings.topic(name) for name in ("tickets", "agents", "customers")}
