"""Retention end to end: events through Kafka, the consumer runner, the named reports."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import psycopg

from projections import retention_queries as queries
from projections.retention import RetentionProjection
from tests.integration.test_consumer_fixtures import (  # noqa: F401 (group_settings is a fixture)
    consume_until_caught_up,
    environment,
    group_settings,
    produce,
)
from tests.integration.test_retention_projection import (
    CLOCK,
    build_scenario,
    expected_agent_cohorts,
    expected_agent_turnover,
    expected_customer_cohorts,
    expected_customer_retention,
    expected_repeat_contacts,
)
from ticketing.heatmap import plot_cohort_heatmap
from ticketing.settings import Settings

TICKETING = [str(Path(sys.executable).with_name("ticketing"))]


def test_reports_through_kafka(group_settings: Settings, tmp_path: Path) -> None:  # noqa: F811
    scenario = build_scenario(seed=7)
    # An event at the scenario's clock moves the group's clock there; retention ignores it.
    steady = next(agent for agent, facts in scenario.agents.items() if facts["separation"] is None)
    scenario.stream.add("Agent.WentOffline", steady, CLOCK)
    produce(group_settings, scenario.stream.events)

    result = consume_until_caught_up(group_settings, batch_size=40, projection=RetentionProjection())

    assert result.dead_letters == 0
    # Retention reads the tickets and agents topics only.
    assert result.applied == sum(1 for event in scenario.stream.events if event.aggregate_type != "Customer")
    schema = group_settings.projection_schema("retention")
    with psycopg.connect(group_settings.database_url) as conn:
        assert queries.event_clock(conn, schema) == CLOCK
        assert queries.customer_cohorts(conn, schema) == expected_customer_cohorts(scenario)
        assert queries.customer_retention(conn, schema) == expected_customer_retention(scenario)
        assert queries.repeat_contacts(conn, schema) == expected_repeat_contacts(scenario)
        assert queries.agent_cohorts(conn, schema) == expected_agent_cohorts(scenario)
        assert queries.agent_turnover(conn, schema) == expected_agent_turnover(scenario)

    report = subprocess.run(
        [*TICKETING, "report", "customer-retention", "--format", "json", "--from", "2024-03-15", "--to", "2024-05-01"],
        env=environment(group_settings), capture_output=True, text=True, timeout=60,
    )
    assert report.returncode == 0, report.stderr
    expected = [row for row in expected_customer_retention(scenario) if "2024-03-01" <= row["month"].isoformat() <= "2024-05-01"]
    printed = json.loads(report.stdout)
    assert [row["month"] for row in printed] == ["2024-03-01", "2024-04-01", "2024-05-01"]
    assert [row["active_at_start"] for row in printed] == [row["active_at_start"] for row in expected]
    assert [row["retention_rate_percent"] for row in printed] == [
        None if row["retention_rate"] is None else round(row["retention_rate"] * 100, 2) for row in expected
    ]

    department = subprocess.run(
        [*TICKETING, "report", "agent-turnover", "--department", "billing"],
        env=environment(group_settings), capture_output=True, text=True, timeout=60,
    )
    assert department.returncode != 0
    assert "has no department breakdown" in department.stderr

    # The pipeline draws heatmaps from the CSV of the cohort reports.
    for name, share in (("customer-cohorts", "active_share"), ("agent-cohorts", "still_employed_share")):
        exported = subprocess.run(
            [*TICKETING, "report", name, "--format", "csv"],
            env=environment(group_settings), capture_output=True, text=True, timeout=60,
        )
        assert exported.returncode == 0, exported.stderr
        rows = list(csv.DictReader(io.StringIO(exported.stdout)))
        expected_rows = expected_customer_cohorts(scenario) if name == "customer-cohorts" else expected_agent_cohorts(scenario)
        assert len(rows) == len(expected_rows)
        assert [float(row["share"]) for row in rows] == [row[share] for row in expected_rows]
        assert rows[0]["cohort"] == f"{expected_rows[0]['cohort_month']:%Y-%m}" + (
            "" if name == "customer-cohorts" else f" {expected_rows[0]['employment']}"
        )
        image = plot_cohort_heatmap(rows, tmp_path / f"{name}.png", title=name, cohort_column="cohort",
                                    offset_column="month_offset", share_column="share")
        assert image.stat().st_size > 0
