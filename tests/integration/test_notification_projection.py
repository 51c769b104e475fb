"""Notifications projection on a real PostgreSQL schema: outbox rows, deadlines, arrival order."""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any, Callable, Iterator

import psycopg
import pytest
import yaml
from psycopg import sql
from psycopg.rows import dict_row

from projections.notifications import NotificationsProjection
from projections.notifications.model import RuleSet
from projections.notifications.rules import DEFAULT_RULES_PATH, parse_rules
from ticketing.stream.decoded import DecodedEvent

UTC = timezone.utc
T0 = datetime(2024, 3, 4, 9, 0, tzinfo=UTC)


def shipped_rules(**changes: Any) -> RuleSet:
    """Return the shipped rules with top-level keys replaced, e.g. allowed_lateness."""
    document = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    document.update(changes)
    return parse_rules(document, DEFAULT_RULES_PATH)


@dataclass
class Stream:
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

    def open(self, ticket: str, customer: str, at: datetime, priority: str, department: str, subject: str = "Help") -> None:
        self.add("Ticket.Opened", ticket, at, customer_id=customer, channel="email", department=department,
                 subject=subject, priority=priority, attributes={})

    def reply(self, ticket: str, at: datetime, visibility: str = "public") -> None:
        self.add("Ticket.AgentReplied", ticket, at, agent_id=str(uuid.uuid4()), visibility=visibility, body="b")


@dataclass
class Scenario:
    stream: Stream
    ids: dict[str, str]
    expected: set[tuple[str, str, str, datetime]]  # rule, aggregate id, recipient reference, fired_at
    expected_deadlines: dict[tuple[str, str], tuple[str, datetime, str]]  # (rule, aggregate) -> status, closed_at, by


def build_scenario(t0: datetime = T0) -> Scenario:
    """Events that trigger every shipped rule once, and as many that must not trigger one."""
    s = Stream()
    ids = {name: str(uuid.uuid4()) for name in (
        "ada", "tom", "tina", "clara", "dan", "eve",
        "k1", "k2", "k3", "k4", "k5", "k6", "k7", "k8", "k9", "k10",
    )}
    minute, hour, day = timedelta(minutes=1), timedelta(hours=1), timedelta(days=1)

    s.add("Agent.Hired", ids["ada"], t0 - 30 * day, name="Ada", email="ada@example.org", employment="regular",
          engagement_ends_on=None, departments=["billing"])
    tom_ends_on = (t0 + 2 * day).date()
    s.add("Agent.Hired", ids["tom"], t0 - 20 * day, name="Tom", email="tom@example.org", employment="temporary",
          engagement_ends_on=tom_ends_on, departments=["tech", "billing"])
    s.add("Agent.Hired", ids["tina"], t0 - 20 * day, name="Tina", email="tina@example.org", employment="temporary",
          engagement_ends_on=(t0 + 3 * day).date(), departments=["tech"])
    s.add("Agent.EngagementEnded", ids["tina"], t0 + day, ended_early=True)
    s.add("Customer.Registered", ids["clara"], t0 - 10 * day, name="Clara", email="clara@example.org", phone=None, language="de")
    s.add("Customer.Registered", ids["dan"], t0 - 10 * day, name="Dan", email="dan@example.org", phone="+100", language="en")
    # Eve never registers: her reminder is written all the same.

    # k1: assigned, no reply -> assignment e-mail and first response overdue after 1 h.
    s.open(ids["k1"], ids["clara"], t0, "urgent", "billing", "Invoice wrong")
    s.add("Ticket.Assigned", ids["k1"], t0 + 5 * minute, agent_id=ids["ada"])
    # k2: internal note does not count, the public reply at 2 h meets the 4 h deadline.
    s.open(ids["k2"], ids["dan"], t0, "high", "tech")
    s.reply(ids["k2"], t0 + hour, visibility="internal")
    s.reply(ids["k2"], t0 + 2 * hour)
    # k3: normal (24 h) raised to urgent at 2 h -> overdue at once, due at 1 h.
    s.open(ids["k3"], ids["dan"], t0, "normal", "tech")
    s.add("Ticket.PriorityChanged", ids["k3"], t0 + 2 * hour, priority="urgent")
    # k4: pending from 1 h, no customer reply -> reminder to Clara after 3 days.
    s.open(ids["k4"], ids["clara"], t0, "low", "billing")
    s.reply(ids["k4"], t0 + 30 * minute)
    s.add("Ticket.MovedToPending", ids["k4"], t0 + hour)
    # k5: pending, the customer replies after one day -> no reminder.
    s.open(ids["k5"], ids["dan"], t0, "normal", "tech")
    s.reply(ids["k5"], t0 + 10 * minute)
    s.add("Ticket.MovedToPending", ids["k5"], t0 + 20 * minute)
    s.add("Ticket.CustomerReplied", ids["k5"], t0 + day, body="here")
    # k6: callback request -> Slack to the department.
    s.open(ids["k6"], ids["dan"], t0, "high", "tech")
    s.reply(ids["k6"], t0 + minute)
    s.add("Ticket.CallbackRequested", ids["k6"], t0 + 2 * hour, callback_id="cb-1", phone="+100",
          window_start=t0 + 3 * hour, window_end=t0 + 4 * hour)
    # k7: rated 2 -> team lead; k8: rated 4 -> nothing.
    for key, score in (("k7", 2), ("k8", 4)):
        s.open(ids[key], ids["clara"], t0, "normal", "billing")
        s.reply(ids[key], t0 + minute)
        s.add("Ticket.Resolved", ids[key], t0 + hour, resolution="solved")
        s.add("Ticket.SatisfactionRated", ids[key], t0 + 2 * hour, score=score, comment="meh")
    # k9: Eve's ticket waits for her -> reminder to an unregistered customer.
    s.open(ids["k9"], ids["eve"], t0, "normal", "billing")
    s.reply(ids["k9"], t0 + minute)
    s.add("Ticket.MovedToPending", ids["k9"], t0 + 2 * minute)
    # k10: opened last; its 72 h deadline is still ahead of the clock.
    s.open(ids["k10"], ids["dan"], t0 + 4 * day, "low", "tech")

    tom_due = datetime(tom_ends_on.year, tom_ends_on.month, tom_ends_on.day, tzinfo=UTC)  # end (next midnight) - 24 h
    expected = {
        ("ticket-assigned", ids["k1"], f"agent:{ids['ada']}", t0 + 5 * minute),
        ("first-response-overdue", ids["k1"], "department:billing", t0 + hour),
        ("first-response-overdue", ids["k3"], "department:tech", t0 + hour),
        ("pending-no-customer-reply", ids["k4"], f"customer:{ids['clara']}", t0 + hour + 3 * day),
        ("pending-no-customer-reply", ids["k9"], f"customer:{ids['eve']}", t0 + 2 * minute + 3 * day),
        ("callback-requested", ids["k6"], "department:tech", t0 + 2 * hour),
        ("low-rating", ids["k7"], "team_lead:billing", t0 + 2 * hour),
        ("engagement-ending", ids["tom"], "admins", tom_due),
    }
    expected_deadlines = {
        ("first-response-overdue", ids["k1"]): ("fired", t0 + hour, "due"),
        ("first-response-overdue", ids["k2"]): ("cancelled", t0 + 2 * hour, "Ticket.AgentReplied"),
        ("first-response-overdue", ids["k3"]): ("fired", t0 + hour, "due"),
        ("first-response-overdue", ids["k4"]): ("cancelled", t0 + 30 * minute, "Ticket.AgentReplied"),
        ("pending-no-customer-reply", ids["k4"]): ("fired", t0 + hour + 3 * day, "due"),
        ("first-response-overdue", ids["k5"]): ("cancelled", t0 + 10 * minute, "Ticket.AgentReplied"),
        ("pending-no-customer-reply", ids["k5"]): ("cancelled", t0 + day, "Ticket.CustomerReplied"),
        ("first-response-overdue", ids["k6"]): ("cancelled", t0 + minute, "Ticket.AgentReplied"),
        ("first-response-overdue", ids["k7"]): ("cancelled", t0 + minute, "Ticket.AgentReplied"),
        ("first-response-overdue", ids["k8"]): ("cancelled", t0 + minute, "Ticket.AgentReplied"),
        ("first-response-overdue", ids["k9"]): ("cancelled", t0 + minute, "Ticket.AgentReplied"),
        ("pending-no-customer-reply", ids["k9"]): ("fired", t0 + 2 * minute + 3 * day, "due"),
        ("first-response-overdue", ids["k10"]): ("scheduled", None, None),
        ("engagement-ending", ids["tom"]): ("fired", tom_due, "due"),
        ("engagement-ending", ids["tina"]): ("cancelled", t0 + day, "Agent.EngagementEnded"),
    }
    return Scenario(stream=s, ids=ids, expected=expected, expected_deadlines=expected_deadlines)


def interleave(events: list[DecodedEvent], rng: random.Random) -> list[DecodedEvent]:
    """Return a random merge of the per-aggregate queues: each aggregate stays in order."""
    queues: dict[str, list[DecodedEvent]] = defaultdict(list)
    for event in events:
        queues[event.aggregate_id].append(event)
    for queue in queues.values():
        queue.reverse()
    merged = []
    while queues:
        key = rng.choice(sorted(queues))
        merged.append(queues[key].pop())
        if not queues[key]:
            del queues[key]
    return merged


def project(
    conn: psycopg.Connection,
    schema: str,
    projection: NotificationsProjection,
    events: list[DecodedEvent],
    rng: random.Random | None = None,
) -> None:
    """Apply events in batches like the runner does, calling after_batch with the running maximum time."""
    projection.create_tables(conn, schema)
    clock = None
    index = 0
    while index < len(events):
        size = rng.randint(1, 6) if rng else 1
        for event in events[index:index + size]:
            projection.apply(conn, schema, event)
            clock = event.occurred_at if clock is None else max(clock, event.occurred_at)
        projection.after_batch(conn, schema, clock)
        index += size
    conn.commit()


def outbox_rows(conn: psycopg.Connection, schema: str) -> list[dict[str, Any]]:
    query = sql.SQL(
        "SELECT dedup_key, rule, channel, recipient, aggregate_id::text, source_version, context, fired_at, status "
        "FROM {}.outbox ORDER BY dedup_key"
    ).format(sql.Identifier(schema))
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(query).fetchall()


def table(conn: psycopg.Connection, schema: str, name: str) -> list[tuple[Any, ...]]:
    query = sql.SQL("SELECT * FROM {}.{} ORDER BY 1, 2, 3").format(sql.Identifier(schema), sql.Identifier(name))
    return conn.execute(query).fetchall()


@pytest.fixture
def schemas(database_url: str, unique_name: Callable[[str], str]) -> Iterator[Callable[[], str]]:
    created: list[str] = []

    def make() -> str:
        created.append(unique_name("notifications"))
        return created[-1]

    yield make
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name in created:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


def test_outbox_has_each_expected_notification(database_url: str, schemas: Callable[[], str]) -> None:
    scenario = build_scenario()
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        project(conn, schema, NotificationsProjection(shipped_rules(allowed_lateness="0s")), scenario.stream.events)
        rows = outbox_rows(conn, schema)

    assert {(r["rule"], r["aggregate_id"], r["recipient"], r["fired_at"]) for r in rows} == scenario.expected
    assert len(rows) == len(scenario.expected)
    assert all(row["status"] == "pending" for row in rows)


def test_deadlines_table_records_outcomes(database_url: str, schemas: Callable[[], str]) -> None:
    scenario = build_scenario()
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        project(conn, schema, NotificationsProjection(shipped_rules(allowed_lateness="0s")), scenario.stream.events)
        rows = conn.execute(
            sql.SQL("SELECT rule, aggregate_id::text, status, closed_at, closed_by FROM {}.deadlines").format(
                sql.Identifier(schema)
            )
        ).fetchall()

    assert {(rule, aggregate): (status, closed_at, by) for rule, aggregate, status, closed_at, by in rows} == (
        scenario.expected_deadlines
    )


def test_outbox_context_and_keys(database_url: str, schemas: Callable[[], str]) -> None:
    scenario = build_scenario()
    ids = scenario.ids
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        project(conn, schema, NotificationsProjection(shipped_rules(allowed_lateness="0s")), scenario.stream.events)
        rows = {(r["rule"], r["aggregate_id"]): r for r in outbox_rows(conn, schema)}

    assigned = rows[("ticket-assigned", ids["k1"])]
    assert assigned["dedup_key"] == f"ticket-assigned|{ids['k1']}|v2|agent:{ids['ada']}"
    assert assigned["source_version"] == 2
    assert assigned["channel"] == "email"
    assert assigned["context"]["subject"] == "Invoice wrong"
    assert assigned["context"]["agent_id"] == ids["ada"]

    raised = rows[("first-response-overdue", ids["k3"])]
    assert raised["dedup_key"] == f"first-response-overdue|{ids['k3']}|deadline@v1|department:tech"
    assert raised["context"]["priority"] == "urgent"
    assert raised["context"]["delay"] == "1 hour"
    assert raised["context"]["due_at"] == "2024-03-04 10:00 UTC"

    overdue = rows[("first-response-overdue", ids["k1"])]
    assert overdue["context"]["assigned_agent_id"] == ids["ada"]

    reminder = rows[("pending-no-customer-reply", ids["k4"])]
    assert reminder["context"]["delay_seconds"] == 3 * 86400
    assert reminder["source_version"] == 3  # MovedToPending started the timer

    ending = rows[("engagement-ending", ids["tom"])]
    assert ending["context"]["agent_name"] == "Tom"
    assert ending["context"]["engagement_ends_on"] == "2024-03-06"

    rating = rows[("low-rating", ids["k7"])]
    assert rating["context"]["score"] == 2
    assert rating["context"]["department"] == "billing"


def test_shuffled_arrival_gives_same_tables(database_url: str, schemas: Callable[[], str]) -> None:
    scenario = build_scenario()
    projection = NotificationsProjection(shipped_rules(allowed_lateness="0s"))
    reference = schemas()
    with psycopg.connect(database_url) as conn:
        project(conn, reference, projection, scenario.stream.events)
        expected = {name: table(conn, reference, name) for name in ("tickets", "agents", "customers", "deadlines")}
        expected_outbox = outbox_rows(conn, reference)

        for seed in range(6):
            rng = random.Random(seed)
            schema = schemas()
            project(conn, schema, projection, interleave(scenario.stream.events, rng), rng)

            assert outbox_rows(conn, schema) == expected_outbox, f"outbox differs for shuffle seed {seed}"
            for name, rows in expected.items():
                assert table(conn, schema, name) == rows, f"{name} differs for shuffle seed {seed}"


def test_redelivered_event_writes_once(database_url: str, schemas: Callable[[], str]) -> None:
    scenario = build_scenario()
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        projection = NotificationsProjection(shipped_rules(allowed_lateness="0s"))
        project(conn, schema, projection, scenario.stream.events)
        before = outbox_rows(conn, schema)
        # The runner drops duplicates by key; the outbox's dedup key is the second guard.
        project(conn, schema, projection, [e for e in scenario.stream.events if e.event_type != "Ticket.Opened"])
        # The group's clock never goes back, so the batches end at the latest time seen.
        projection.after_batch(conn, schema, max(e.occurred_at for e in scenario.stream.events))

        assert outbox_rows(conn, schema) == before


def test_late_cancel_takes_message_back(database_url: str, schemas: Callable[[], str]) -> None:
    stream = Stream()
    ticket, customer = str(uuid.uuid4()), str(uuid.uuid4())
    stream.open(ticket, customer, T0, "high", "tech")
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        projection = NotificationsProjection(shipped_rules(allowed_lateness="0s"))
        project(conn, schema, projection, stream.events)
        # Another partition moved the group's clock past the 4 h deadline.
        projection.after_batch(conn, schema, T0 + timedelta(hours=5))
        assert [row["rule"] for row in outbox_rows(conn, schema)] == ["first-response-overdue"]

        stream.reply(ticket, T0 + timedelta(hours=2))
        projection.apply(conn, schema, stream.events[-1])
        projection.after_batch(conn, schema, T0 + timedelta(hours=5))

        assert outbox_rows(conn, schema) == []
        assert table(conn, schema, "deadlines")[0][6:] == ("cancelled", T0 + timedelta(hours=2), "Ticket.AgentReplied")


def test_late_event_refreshes_fired_context(database_url: str, schemas: Callable[[], str]) -> None:
    stream = Stream()
    ticket, customer, agent = str(uuid.uuid4()), str(uuid.uuid4()), str(uuid.uuid4())
    stream.open(ticket, customer, T0, "urgent", "tech")
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        projection = NotificationsProjection(shipped_rules(allowed_lateness="0s"))
        project(conn, schema, projection, stream.events)
        projection.after_batch(conn, schema, T0 + timedelta(hours=3))
        assert outbox_rows(conn, schema)[0]["context"]["assigned_agent_id"] is None

        stream.add("Ticket.Assigned", ticket, T0 + timedelta(minutes=10), agent_id=agent)
        projection.apply(conn, schema, stream.events[-1])
        projection.after_batch(conn, schema, T0 + timedelta(hours=3))

        overdue = [row for row in outbox_rows(conn, schema) if row["rule"] == "first-response-overdue"]
        assert len(overdue) == 1
        assert overdue[0]["context"]["assigned_agent_id"] == agent
        assert overdue[0]["fired_at"] == T0 + timedelta(hours=1)


def test_tried_message_is_withdrawn(database_url: str, schemas: Callable[[], str]) -> None:
    stream = Stream()
    ticket, customer = str(uuid.uuid4()), str(uuid.uuid4())
    stream.open(ticket, customer, T0, "urgent", "tech")
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        projection = NotificationsProjection(shipped_rules(allowed_lateness="0s"))
        project(conn, schema, projection, stream.events)
        projection.after_batch(conn, schema, T0 + timedelta(hours=3))
        # The dispatcher tried once and will retry.
        conn.execute(sql.SQL("UPDATE {}.outbox SET attempt_count = 1").format(sql.Identifier(schema)))

        stream.reply(ticket, T0 + timedelta(minutes=30))
        projection.apply(conn, schema, stream.events[-1])

        rows = outbox_rows(conn, schema)
        assert [row["status"] for row in rows] == ["withdrawn"]
        assert table(conn, schema, "deadlines")[0][6] == "cancelled"


def test_allowed_lateness_delays_clock_fire(database_url: str, schemas: Callable[[], str]) -> None:
    stream = Stream()
    ticket, customer = str(uuid.uuid4()), str(uuid.uuid4())
    stream.open(ticket, customer, T0, "urgent", "tech")
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        projection = NotificationsProjection(shipped_rules(allowed_lateness="10m"))
        project(conn, schema, projection, stream.events)

        projection.after_batch(conn, schema, T0 + timedelta(hours=1, minutes=9))
        assert outbox_rows(conn, schema) == []

        projection.after_batch(conn, schema, T0 + timedelta(hours=1, minutes=10))
        assert [row["fired_at"] for row in outbox_rows(conn, schema)] == [T0 + timedelta(hours=1)]


def test_conditions_checked_when_deadline_fires(database_url: str, schemas: Callable[[], str]) -> None:
    document = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    rule = next(r for r in document["rules"] if r["name"] == "first-response-overdue")
    rule["conditions"] = {"department": "billing"}
    projection = NotificationsProjection(parse_rules(document, DEFAULT_RULES_PATH))
    stream = Stream()
    billing, tech = str(uuid.uuid4()), str(uuid.uuid4())
    stream.open(billing, str(uuid.uuid4()), T0, "urgent", "tech")
    stream.add("Ticket.Transferred", billing, T0 + timedelta(minutes=5), department="billing")
    stream.open(tech, str(uuid.uuid4()), T0, "urgent", "tech")
    stream.open(str(uuid.uuid4()), str(uuid.uuid4()), T0 + timedelta(hours=2), "low", "tech")
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        project(conn, schema, projection, stream.events)
        rows = outbox_rows(conn, schema)
        statuses = dict(
            conn.execute(
                sql.SQL("SELECT aggregate_id::text, status FROM {}.deadlines WHERE due_at < %s").format(
                    sql.Identifier(schema)
                ),
                (T0 + timedelta(hours=2),),
            ).fetchall()
        )

    assert [(row["aggregate_id"], row["recipient"]) for row in rows] == [(billing, "department:billing")]
    assert statuses == {billing: "fired", tech: "skipped"}


def test_forgotten_customer_erased(database_url: str, schemas: Callable[[], str]) -> None:
    stream = Stream()
    customer = str(uuid.uuid4())
    stream.add("Customer.Registered", customer, T0, name="N", email="n@example.org", phone="+1", language="fr")
    stream.add("Customer.ContactDetailsChanged", customer, T0 + timedelta(days=1), name=None, email="new@example.org", phone=None)
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        project(conn, schema, NotificationsProjection(shipped_rules()), stream.events)
        assert table(conn, schema, "customers")[0][1:6] == ("N", "new@example.org", "+1", "fr", False)

        stream.add("Customer.Forgotten", customer, T0 + timedelta(days=2))
        project(conn, schema, NotificationsProjection(shipped_rules()), stream.events[-1:])

        assert table(conn, schema, "customers")[0][1:6] == (None, None, None, "fr", True)


def test_agent_state_tracks_departments(database_url: str, schemas: Callable[[], str]) -> None:
    stream = Stream()
    agent = str(uuid.uuid4())
    stream.add("Agent.Hired", agent, T0, name="Ada", email="ada@example.org", employment="regular",
               engagement_ends_on=None, departments=["billing"])
    stream.add("Agent.DepartmentsChanged", agent, T0 + timedelta(days=1), departments=["billing", "tech"])
    stream.add("Agent.Left", agent, T0 + timedelta(days=2), kind="voluntary")
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        project(conn, schema, NotificationsProjection(shipped_rules()), stream.events)
        row = table(conn, schema, "agents")[0]

    assert row[1:] == ("Ada", "ada@example.org", "regular", None, ["billing", "tech"], "left", 3)


def test_temporary_hired_on_last_day_fires_at_once(database_url: str, schemas: Callable[[], str]) -> None:
    stream = Stream()
    agent = str(uuid.uuid4())
    last_day: date = T0.date()
    stream.add("Agent.Hired", agent, T0, name="Late", email="late@example.org", employment="temporary",
               engagement_ends_on=last_day, departments=[])
    schema = schemas()
    with psycopg.connect(database_url) as conn:
        project(conn, schema, NotificationsProjection(shipped_rules()), stream.events[:1])
        rows = outbox_rows(conn, schema)

    assert [(row["rule"], row["fired_at"]) for row in rows] == [
        ("engagement-ending", datetime(last_day.year, last_day.month, last_day.day, tzinfo=UTC))
    ]
