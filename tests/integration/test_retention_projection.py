"""Retention projection on a real PostgreSQL schema.

Every report is checked against a plain-Python computation from the generated events,
and shuffled arrival orders (each aggregate's events still in order) must give the
same tables.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import psycopg
import pytest
from psycopg import sql

from projections import retention_queries as queries
from projections.retention import RetentionProjection
from ticketing.stream.decoded import DecodedEvent

UTC = timezone.utc
WINDOW = timedelta(days=90)
REPEAT_WINDOW = timedelta(days=7)
CLOCK = datetime(2024, 8, 20, 12, 0, tzinfo=UTC)


# --- events ---------------------------------------------------------------------------


@dataclass
class Stream:
    """Events in the order they happened, with per-aggregate versions."""

    events: list[DecodedEvent] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, event_type: str, aggregate_id: str, at: datetime, **fields: Any) -> DecodedEvent:
        self.versions[aggregate_id] += 1
        event = DecodedEvent(
            event_id=str(uuid.uuid4()),
            event_type=event_type,
            aggregate_type=event_type.split(".")[0],
            aggregate_id=aggregate_id,
            aggregate_version=self.versions[aggregate_id],
            occurred_at=at,
            recorded_at=at,
            fields=fields,
        )
        self.events.append(event)
        return event


@dataclass
class Scenario:
    stream: Stream
    tickets: list[tuple[str, str, datetime]]  # ticket id, customer id, opened at
    resolutions: list[tuple[str, datetime, str]]  # ticket id, resolved at, resolution
    agents: dict[str, dict[str, Any]]


def build_scenario(seed: int) -> Scenario:
    rng = random.Random(seed)
    stream = Stream()
    tickets: list[tuple[str, str, datetime]] = []
    resolutions: list[tuple[str, datetime, str]] = []
    start = datetime(2024, 1, 1, tzinfo=UTC)
    span_seconds = int((CLOCK - start).total_seconds())

    customers = [str(uuid.uuid4()) for _ in range(40)]
    for index, customer in enumerate(customers):
        stream.add("Customer.Registered", customer, start - timedelta(days=30), name=f"C{index}", email=f"c{index}@example.org", phone=None, language="en")
        first = start + timedelta(seconds=rng.randrange(span_seconds))
        moments = sorted([first] + [first + timedelta(days=rng.uniform(0, 120)) for _ in range(rng.randrange(0, 5))])
        for opened_at in moments:
            if opened_at >= CLOCK:
                continue
            ticket = str(uuid.uuid4())
            tickets.append((ticket, customer, opened_at))
            stream.add("Ticket.Opened", ticket, opened_at, customer_id=customer, channel="email", department="billing",
                       subject="s", priority="normal", attributes={})
            stream.add("Ticket.AgentReplied", ticket, opened_at + timedelta(hours=1), agent_id=str(uuid.uuid4()),
                       visibility="public", body="b")
            if rng.random() < 0.8:
                resolved_at = opened_at + timedelta(hours=rng.uniform(2, 72))
                resolution = rng.choice(["solved", "solved", "solved", "duplicate", "wont_fix", "invalid"])
                resolutions.append((ticket, resolved_at, resolution))
                stream.add("Ticket.Resolved", ticket, resolved_at, resolution=resolution)
                if rng.random() < 0.2:
                    stream.add("Ticket.Reopened", ticket, resolved_at + timedelta(days=1))
                    again = resolved_at + timedelta(days=2)
                    resolutions.append((ticket, again, "solved"))
                    stream.add("Ticket.Resolved", ticket, again, resolution="solved")

    # Boundary cases: a first ticket at the very start of a month, and a repeat ticket
    # exactly seven days after a resolution (inside the window) and one just past it.
    edge_customer = str(uuid.uuid4())
    edge_times = [datetime(2024, 3, 1, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC)]
    for opened_at in edge_times:
        ticket = str(uuid.uuid4())
        tickets.append((ticket, edge_customer, opened_at))
        stream.add("Ticket.Opened", ticket, opened_at, customer_id=edge_customer, channel="chat", department="tech",
                   subject="s", priority="low", attributes={})
    resolved = datetime(2024, 4, 10, 12, tzinfo=UTC)
    repeat_customer = str(uuid.uuid4())
    for ticket, opened_at in [(str(uuid.uuid4()), resolved - timedelta(days=1)), (str(uuid.uuid4()), resolved + REPEAT_WINDOW)]:
        tickets.append((ticket, repeat_customer, opened_at))
        stream.add("Ticket.Opened", ticket, opened_at, customer_id=repeat_customer, channel="chat", department="tech",
                   subject="s", priority="low", attributes={})
    first_ticket = tickets[-2][0]
    resolutions.append((first_ticket, resolved, "solved"))
    stream.add("Ticket.Resolved", first_ticket, resolved, resolution="solved")
    late = str(uuid.uuid4())
    tickets.append((late, repeat_customer, resolved + REPEAT_WINDOW + timedelta(days=20)))
    stream.add("Ticket.Opened", late, tickets[-1][2], customer_id=repeat_customer, channel="chat", department="tech",
               subject="s", priority="low", attributes={})
    resolutions.append((late, tickets[-1][2] + timedelta(hours=1), "solved"))
    stream.add("Ticket.Resolved", late, tickets[-1][2] + timedelta(hours=1), resolution="solved")
    just_past = str(uuid.uuid4())
    tickets.append((just_past, repeat_customer, tickets[-1][2] + timedelta(hours=1) + REPEAT_WINDOW + timedelta(seconds=1)))
    stream.add("Ticket.Opened", just_past, tickets[-1][2], customer_id=repeat_customer, channel="chat",
               department="tech", subject="s", priority="low", attributes={})

    agents = build_agents(rng, stream)

    # Drop what happens after the clock. Times grow within each aggregate, so this cuts
    # a tail off each aggregate's events and leaves the versions without gaps.
    stream.events = [event for event in stream.events if event.occurred_at < CLOCK]
    resolutions = [entry for entry in resolutions if entry[1] < CLOCK]
    return Scenario(stream=stream, tickets=tickets, resolutions=resolutions, agents=agents)


def build_agents(rng: random.Random, stream: Stream) -> dict[str, dict[str, Any]]:
    agents: dict[str, dict[str, Any]] = {}
    plans = [
        ("regular", None, None),
        ("regular", None, None),
        ("regular", "left", None),
        ("regular", "left", None),
        ("regular", "left", None),
        ("temporary", "ended_as_planned", None),
        ("temporary", "ended_as_planned", None),
        ("temporary", "ended_early", None),
        ("temporary", "left", "before_end"),
        ("temporary", "left", "after_end"),
        ("temporary", None, None),
    ]
    for employment, outcome, timing in plans * 2:
        agent = str(uuid.uuid4())
        hired_at = datetime(2024, 1, 1, tzinfo=UTC) + timedelta(days=rng.uniform(-40, 150), hours=rng.uniform(0, 23))
        ends_on = (hired_at + timedelta(days=rng.uniform(30, 90))).date() if employment == "temporary" else None
        facts: dict[str, Any] = {"employment": employment, "hired_at": hired_at, "ends_on": ends_on,
                                 "separated_at": None, "separation": None}
        stream.add("Agent.Hired", agent, hired_at, name="A", email="a@example.org", employment=employment,
                   engagement_ends_on=ends_on, departments=["billing"])
        stream.add("Agent.WentOnline", agent, hired_at + timedelta(hours=1))
        if outcome == "left":
            if timing == "after_end":
                at = datetime(ends_on.year, ends_on.month, ends_on.day, 17, tzinfo=UTC)
            elif timing == "before_end":
                at = hired_at + timedelta(days=10)
            else:
                at = hired_at + timedelta(days=rng.uniform(5, 120))
            if at < CLOCK:
                stream.add("Agent.Left", agent, at, kind=rng.choice(["voluntary", "involuntary"]))
                facts.update(separated_at=at, separation="left_after_end" if timing == "after_end" else "left")
        elif outcome in ("ended_as_planned", "ended_early"):
            early = outcome == "ended_early"
            at = hired_at + timedelta(days=10) if early else datetime(ends_on.year, ends_on.month, ends_on.day, 18, tzinfo=UTC)
            if at < CLOCK:
                stream.add("Agent.EngagementEnded", agent, at, ended_early=early)
                facts.update(separated_at=at, separation=outcome)
        agents[agent] = facts
    return agents


def interleavings(events: list[DecodedEvent], rng: random.Random) -> list[DecodedEvent]:
    """Return a random merge of the per-aggregate queues: each aggregate stays in order."""
    queues: dict[str, list[DecodedEvent]] = defaultdict(list)
    for event in events:
        queues[event.aggregate_id].append(event)
    pending = {key: list(reversed(queue)) for key, queue in queues.items()}
    merged = []
    while pending:
        key = rng.choice(sorted(pending))
        merged.append(pending[key].pop())
        if not pending[key]:
            del pending[key]
    return merged


# --- independent computation of the expected reports ----------------------------------


def first_of_month(moment: datetime) -> date:
    return date(moment.year, moment.month, 1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def instant(month: date) -> datetime:
    return datetime(month.year, month.month, 1, tzinfo=UTC)


def months_between(first: date, last: date) -> Iterator[date]:
    month = first
    while month <= last:
        yield month
        month = next_month(month)


def rate(numerator: float, denominator: float) -> float | None:
    return None if denominator == 0 else round(numerator / denominator, 4)


def expected_customer_cohorts(scenario: Scenario) -> list[dict[str, Any]]:
    by_customer: dict[str, list[datetime]] = defaultdict(list)
    for _, customer, opened_at in scenario.tickets:
        by_customer[customer].append(opened_at)
    cohorts: dict[date, list[str]] = defaultdict(list)
    for customer, times in by_customer.items():
        cohorts[first_of_month(min(times))].append(customer)

    rows = []
    for cohort in sorted(cohorts):
        members = cohorts[cohort]
        for offset, month in enumerate(months_between(cohort, first_of_month(CLOCK))):
            active = sum(1 for customer in members if any(first_of_month(t) == month for t in by_customer[customer]))
            rows.append({
                "cohort_month": cohort, "month_offset": offset, "month": month, "cohort_customers": len(members),
                "active_customers": active, "active_share": rate(active, len(members)),
                "complete": instant(next_month(month)) <= CLOCK,
            })
    return rows


def expected_customer_retention(scenario: Scenario) -> list[dict[str, Any]]:
    first_ticket: dict[str, datetime] = {}
    for _, customer, opened_at in scenario.tickets:
        first_ticket[customer] = min(opened_at, first_ticket.get(customer, opened_at))

    def active(at: datetime) -> set[str]:
        return {customer for _, customer, opened_at in scenario.tickets if at - WINDOW <= opened_at < at}

    rows = []
    first_month = first_of_month(min(opened_at for _, _, opened_at in scenario.tickets))
    for month in months_between(first_month, first_of_month(CLOCK)):
        start, end = instant(month), instant(next_month(month))
        at_start, at_end = active(start), active(end)
        joined = at_end - at_start
        new = {customer for customer in joined if first_ticket[customer] >= start}
        retained = at_start & at_end
        rows.append({
            "month": month, "active_at_start": len(at_start), "active_at_end": len(at_end),
            "new_customers": len(new), "reactivated_customers": len(joined - new),
            "retained_customers": len(retained), "retention_rate": rate(len(retained), len(at_start)),
            "complete": end <= CLOCK,
        })
    return rows


def expected_repeat_contacts(scenario: Scenario) -> list[dict[str, Any]]:
    customer_of = {ticket: customer for ticket, customer, _ in scenario.tickets}
    months: dict[date, list[tuple[str, bool]]] = defaultdict(list)
    for ticket, resolved_at, resolution in scenario.resolutions:
        if resolution == "duplicate":
            continue
        customer = customer_of[ticket]
        repeated = any(
            other != ticket and other_customer == customer and resolved_at < opened_at <= resolved_at + REPEAT_WINDOW
            for other, other_customer, opened_at in scenario.tickets
        )
        months[first_of_month(resolved_at)].append((customer, repeated))

    rows = []
    for month in sorted(months):
        entries = months[month]
        customers = {customer for customer, _ in entries}
        repeaters = {customer for customer, repeated in entries if repeated}
        repeats = sum(1 for _, repeated in entries if repeated)
        rows.append({
            "month": month, "resolutions": len(entries), "repeat_contacts": repeats,
            "repeat_contact_rate": rate(repeats, len(entries)), "customers": len(customers),
            "customers_with_repeat": len(repeaters), "customer_repeat_rate": rate(len(repeaters), len(customers)),
            "complete": instant(next_month(month)) + REPEAT_WINDOW <= CLOCK,
        })
    return rows


def counts_as_turnover(facts: dict[str, Any]) -> bool:
    if facts["separation"] is None:
        return False
    if facts["employment"] == "regular":
        return True
    return facts["separation"] in ("left", "ended_early")


def expected_agent_cohorts(scenario: Scenario) -> list[dict[str, Any]]:
    cohorts: dict[tuple[date, str], list[dict[str, Any]]] = defaultdict(list)
    for facts in scenario.agents.values():
        cohorts[(first_of_month(facts["hired_at"]), facts["employment"])].append(facts)

    rows = []
    for (cohort, employment) in sorted(cohorts):
        members = cohorts[(cohort, employment)]
        for offset, month in enumerate(months_between(cohort, first_of_month(CLOCK))):
            end = instant(next_month(month))
            employed = sum(1 for f in members if f["separated_at"] is None or f["separated_at"] >= end)
            rows.append({
                "cohort_month": cohort, "employment": employment, "month_offset": offset, "month": month,
                "hired": len(members), "still_employed": employed, "still_employed_share": rate(employed, len(members)),
                "complete": end <= CLOCK,
            })
    return rows


def expected_agent_turnover(scenario: Scenario) -> list[dict[str, Any]]:
    agents = list(scenario.agents.values())
    first_month = first_of_month(min(f["hired_at"] for f in agents))

    def employed_at(f: dict[str, Any], at: datetime) -> bool:
        return f["hired_at"] < at and (f["separated_at"] is None or f["separated_at"] >= at)

    rows = []
    for month in months_between(first_month, first_of_month(CLOCK)):
        start, end = instant(month), instant(next_month(month))
        for employment in ("regular", "temporary"):
            group = [f for f in agents if f["employment"] == employment]
            separated = [f for f in group if f["separated_at"] is not None and start <= f["separated_at"] < end]
            head_start = sum(1 for f in group if employed_at(f, start))
            head_end = sum(1 for f in group if employed_at(f, end))
            leavers = sum(1 for f in separated if counts_as_turnover(f))
            rows.append({
                "month": month, "employment": employment, "headcount_start": head_start, "headcount_end": head_end,
                "average_headcount": (head_start + head_end) / 2,
                "hires": sum(1 for f in group if start <= f["hired_at"] < end),
                "leavers": leavers,
                "planned_ends": len(separated) - leavers if employment == "temporary" else 0,
                "turnover_rate": rate(leavers, (head_start + head_end) / 2),
                "complete": end <= CLOCK,
            })
    return rows


# --- running the projection -----------------------------------------------------------


@pytest.fixture
def schemas(database_url: str, unique_name: Callable[[str], str]) -> Iterator[Callable[[], str]]:
    """Yield a factory of fresh schema names; drop every schema it made after the test."""
    created: list[str] = []

    def make() -> str:
        created.append(unique_name("retention"))
        return created[-1]

    yield make
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def project(conn: psycopg.Connection, schema: str, events: list[DecodedEvent], rng: random.Random | None = None) -> None:
    """Apply events in batches like the runner: after_batch with the running maximum event time."""
    projection = RetentionProjection()
    projection.create_tables(conn, schema)
    clock = None
    index = 0
    while index < len(events):
        size = rng.randint(1, 40) if rng else len(events)
        for event in events[index:index + size]:
            projection.apply(conn, schema, event)
            clock = event.occurred_at if clock is None else max(clock, event.occurred_at)
        projection.after_batch(conn, schema, clock)
        index += size
    conn.commit()


def table_contents(conn: psycopg.Connection, schema: str) -> dict[str, list[tuple[Any, ...]]]:
    contents = {}
    for table in ("ticket_openings", "customer_first_tickets", "ticket_resolutions", "agent_employment", "event_clock"):
        query = sql.SQL("SELECT * FROM {}.{} ORDER BY 1, 2").format(sql.Identifier(schema), sql.Identifier(table))
        contents[table] = conn.execute(query).fetchall()
    return contents


def all_reports(conn: psycopg.Connection, schema: str) -> dict[str, list[dict[str, Any]]]:
    return {name: report(conn, schema) for name, report in queries.QUERIES.items()}


@pytest.fixture(scope="module")
def scenario() -> Scenario:
    return build_scenario(seed=20240820)


def test_reports_match_computation(database_url: str, schemas: Callable[[], str], scenario: Scenario) -> None:
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        project(conn, schema, scenario.stream.events)
        # Events end before the clock of the scenario: a later event elsewhere moved it.
        RetentionProjection().after_batch(conn, schema, CLOCK)

        assert queries.event_clock(conn, schema) == CLOCK
        assert queries.customer_cohorts(conn, schema) == expected_customer_cohorts(scenario)
        assert queries.customer_retention(conn, schema) == expected_customer_retention(scenario)
        assert queries.repeat_contacts(conn, schema) == expected_repeat_contacts(scenario)
        assert queries.agent_cohorts(conn, schema) == expected_agent_cohorts(scenario)
        assert queries.agent_turnover(conn, schema) == expected_agent_turnover(scenario)


def test_fact_tables_match_events(database_url: str, schemas: Callable[[], str], scenario: Scenario) -> None:
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        project(conn, schema, scenario.stream.events)
        contents = table_contents(conn, schema)

    assert sorted((str(t), str(c), at) for t, c, at in contents["ticket_openings"]) == sorted(
        (t, c, at) for t, c, at in scenario.tickets
    )
    first: dict[str, tuple[datetime, str]] = {}
    for ticket, customer, opened_at in scenario.tickets:
        first[customer] = min((opened_at, ticket), first.get(customer, (opened_at, ticket)))
    assert sorted((str(c), str(t), at) for c, t, at in contents["customer_first_tickets"]) == sorted(
        (customer, ticket, at) for customer, (at, ticket) in first.items()
    )
    assert sorted((str(t), at, kind) for t, _, at, kind in contents["ticket_resolutions"]) == sorted(
        scenario.resolutions
    )
    assert len(contents["agent_employment"]) == len(scenario.agents)


def test_shuffled_arrival_gives_same_tables(database_url: str, schemas: Callable[[], str], scenario: Scenario) -> None:
    reference = schemas()
    with psycopg.connect(database_url) as conn:
        project(conn, reference, scenario.stream.events)
        expected_tables = table_contents(conn, reference)
        expected_reports = all_reports(conn, reference)

        for seed in (1, 2, 3):
            rng = random.Random(seed)
            shuffled = interleavings(scenario.stream.events, rng)
            assert shuffled != scenario.stream.events
            schema = schemas()
            project(conn, schema, shuffled, rng)

            assert table_contents(conn, schema) == expected_tables, f"tables differ for shuffle seed {seed}"
            assert all_reports(conn, schema) == expected_reports, f"reports differ for shuffle seed {seed}"


def test_ticket_before_registration_counts(database_url: str, schemas: Callable[[], str]) -> None:
    stream = Stream()
    customer, ticket = str(uuid.uuid4()), str(uuid.uuid4())
    opened = datetime(2024, 5, 3, 10, tzinfo=UTC)
    stream.add("Ticket.Opened", ticket, opened, customer_id=customer, channel="email", department="billing",
               subject="s", priority="normal", attributes={})
    stream.add("Customer.Registered", customer, opened + timedelta(days=1), name="N", email="n@example.org",
               phone=None, language="en")
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        project(conn, schema, stream.events)
        cohorts = queries.customer_cohorts(conn, schema)

    assert [(row["cohort_month"], row["cohort_customers"], row["active_customers"]) for row in cohorts] == [
        (date(2024, 5, 1), 1, 1)
    ]


def test_redelivered_events_change_nothing(database_url: str, schemas: Callable[[], str], scenario: Scenario) -> None:
    once, twice = schemas(), schemas()
    with psycopg.connect(database_url) as conn:
        project(conn, once, scenario.stream.events)
        project(conn, twice, scenario.stream.events + scenario.stream.events[::7])

        assert table_contents(conn, twice) == table_contents(conn, once)


def test_empty_schema_reports_nothing(database_url: str, schemas: Callable[[], str]) -> None:
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        RetentionProjection().create_tables(conn, schema)

        assert queries.event_clock(conn, schema) is None
        for name, report in queries.QUERIES.items():
            assert report(conn, schema) == [], name


def test_window_independent_of_session_time_zone(database_url: str, schemas: Callable[[], str], scenario: Scenario) -> None:
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        project(conn, schema, scenario.stream.events)
        in_utc = all_reports(conn, schema)
        conn.execute("SET TIME ZONE 'America/New_York'")
        in_new_york = all_reports(conn, schema)

    assert in_new_york == in_utc
