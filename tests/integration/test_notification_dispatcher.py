"""The dispatcher against a real SMTP server (aiosmtpd) and a real HTTP server, both on 127.0.0.1."""

from __future__ import annotations

import asyncio
import email
import email.policy
import json
import os
import socket
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable, Iterator

import psycopg
import pytest
import yaml
from aiosmtpd.controller import Controller
from psycopg import sql
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb

from projections.notifications import NotificationsProjection
from projections.notifications.channels import SlackSender, SmtpSender
from projections.notifications.dispatcher import Dispatcher
from projections.notifications.model import RuleSet
from projections.notifications.rules import DEFAULT_RULES_PATH, parse_rules
from projections.notifications.schema import delivery_schema
from tests.integration.test_notification_projection import Scenario, Stream, build_scenario, project

UTC = timezone.utc
TICKETING = [str(Path(sys.executable).with_name("ticketing"))]


# --- local servers --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Inbox:
    """aiosmtpd handler that keeps every message it accepts."""

    delay_seconds: float = 0.0
    messages: list[tuple[list[str], EmailMessage]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay_seconds:
            await asyncio.sleep(self.delay_seconds)
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self.lock:
            self.messages.append((list(envelope.rcpt_tos), message))  # type: ignore[arg-type]
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [message for recipients, message in self.messages if address in recipients]


@dataclass
class SmtpServer:
    port: int
    inbox: Inbox


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield SmtpServer(port=port, inbox=inbox)
    finally:
        controller.stop()


@dataclass
class WebhookServer:
    """Records JSON posts by path. A path listed in `statuses` responds with that status."""

    port: int
    statuses: dict[str, int]
    posts: list[tuple[str, dict[str, Any], str]]  # path, JSON body, X-Notification-Key

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def texts(self, path: str) -> list[str]:
        return [body["text"] for posted_path, body, _ in self.posts if posted_path == path]


@pytest.fixture
def webhook_server() -> Iterator[WebhookServer]:
    statuses: dict[str, int] = {}
    posts: list[tuple[str, dict[str, Any], str]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (the name http.server calls)
            length = int(self.headers.get("Content-Length", "0"))
            posts.append((self.path, json.loads(self.rfile.read(length)), self.headers.get("X-Notification-Key", "")))
            status = statuses.get(self.path, 200)
            self.send_response(status)
            self.end_headers()
            self.wfile.write(b"ok" if status == 200 else b"server_error")

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield WebhookServer(port=server.server_address[1], statuses=statuses, posts=posts)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


class FakeClock:
    """Wall clock of the dispatcher, moved by the test instead of by sleeping."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> None:
        self.now += delta


# --- fixtures -------------------------------------------------------------------------


def drop_schemas(database_url: str, schema: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        for name in (schema, delivery_schema(schema)):
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(name)))


@pytest.fixture
def schema(database_url: str, unique_name: Callable[[str], str]) -> Iterator[str]:
    name = unique_name("notifications")
    yield name
    drop_schemas(database_url, name)


def rules_document(webhooks: WebhookServer, **delivery: Any) -> dict[str, Any]:
    document = yaml.safe_load(DEFAULT_RULES_PATH.read_text(encoding="utf-8"))
    document["allowed_lateness"] = "0s"
    document["departments"] = {
        "billing": {"slack_webhook": webhooks.url("/billing"), "team_lead_slack_webhook": webhooks.url("/billing-lead")},
        "tech": {"slack_webhook": webhooks.url("/tech")},
    }
    document["delivery"] = {"max_attempts": 4, "first_retry_after": "30s", "max_retry_after": "10m", "max_age": "30d"}
    document["delivery"].update(delivery)
    return document


def recent_scenario() -> Scenario:
    # Ends one day before now, so that every message is younger than max_age.
    return build_scenario(t0=datetime.now(UTC).replace(microsecond=0) - timedelta(days=5))


def make_dispatcher(conn: psycopg.Connection, schema: str, rules: RuleSet, smtp: SmtpServer, clock: FakeClock,
                    default_slack_webhook: str = "") -> Dispatcher:
    senders = {"email": SmtpSender("127.0.0.1", smtp.port, "helpdesk@example.org", 5.0), "slack": SlackSender(5.0)}
    return Dispatcher(conn, schema, rules, senders, default_slack_webhook=default_slack_webhook, clock=clock)


def outbox(conn: psycopg.Connection, schema: str) -> dict[tuple[str, str], dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        rows = cursor.execute(
            sql.SQL("SELECT *, aggregate_id::text AS aggregate FROM {}.outbox").format(sql.Identifier(schema))
        ).fetchall()
    return {(row["rule"], row["aggregate"]): row for row in rows}


def attempts(conn: psycopg.Connection, schema: str, dedup_key: str) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cursor:
        return cursor.execute(
            sql.SQL("SELECT * FROM {}.delivery_attempts WHERE dedup_key = %s ORDER BY attempt").format(
                sql.Identifier(delivery_schema(schema))
            ),
            (dedup_key,),
        ).fetchall()


# --- tests ----------------------------------------------------------------------------


def test_every_notification_arrives(
    database_url: str, schema: str, smtp_server: SmtpServer, webhook_server: WebhookServer
) -> None:
    scenario = recent_scenario()
    ids = scenario.ids
    rules = parse_rules(rules_document(webhook_server), DEFAULT_RULES_PATH)
    projection = NotificationsProjection(rules)
    clock = FakeClock(datetime.now(UTC) + timedelta(minutes=1))

    with psycopg.connect(database_url) as conn:
        project(conn, schema, projection, scenario.stream.events)
    with psycopg.connect(database_url, autocommit=True) as conn:
        summary = make_dispatcher(conn, schema, rules, smtp_server, clock).dispatch_due()

        assert (summary.sent, summary.retried, summary.failed) == (7, 1, 0)
        rows = outbox(conn, schema)

    inbox = smtp_server.inbox
    assert len(inbox.messages) == 3

    [assigned] = inbox.to("ada@example.org")
    assert assigned["Subject"] == "Ticket assigned to you: Invoice wrong"
    assert assigned["From"] == "helpdesk@example.org"
    assert "Hello Ada," in assigned.get_content()
    assert "Priority:   urgent" in assigned.get_content()
    assert assigned["X-Notification-Key"] == rows[("ticket-assigned", ids["k1"])]["dedup_key"]

    [reminder] = inbox.to("clara@example.org")
    assert reminder["Subject"] == "Wir warten auf Ihre Antwort: Help"
    assert "Hallo Clara," in reminder.get_content()
    assert "3 Tage lang" in reminder.get_content()

    [ending] = inbox.to("helpdesk-admin@localhost")
    assert ending["Subject"].startswith("Temporary engagement of Tom ends on ")

    [billing] = webhook_server.texts("/billing")
    assert billing.startswith(f":warning: Ticket {ids['k1']} (urgent) has had no public reply for 1 hour")
    tech = webhook_server.texts("/tech")
    assert len(tech) == 2
    assert any(text.startswith(f":warning: Ticket {ids['k3']} (urgent)") for text in tech)
    assert any(text.startswith(f":telephone_receiver: Callback requested on ticket {ids['k6']}") for text in tech)
    assert webhook_server.texts("/billing-lead") == [f'Ticket {ids["k7"]} in billing was rated 2 of 5: "meh"']
    assert {key for _, _, key in webhook_server.posts} == {
        rows[(rule, ids[key])]["dedup_key"]
        for rule, key in (("first-response-overdue", "k1"), ("first-response-overdue", "k3"),
                          ("callback-requested", "k6"), ("low-rating", "k7"))
    }

    sent = [row for row in rows.values() if row["status"] == "sent"]
    assert len(sent) == 7
    assert all(row["attempt_count"] == 1 and row["sent_at"] == clock.now for row in sent)


def test_unknown_customer_waits_then_receives(
    database_url: str, schema: str, smtp_server: SmtpServer, webhook_server: WebhookServer
) -> None:
    scenario = recent_scenario()
    rules = parse_rules(rules_document(webhook_server), DEFAULT_RULES_PATH)
    projection = NotificationsProjection(rules)
    clock = FakeClock(datetime.now(UTC) + timedelta(minutes=1))
    eve = scenario.ids["eve"]

    with psycopg.connect(database_url) as conn:
        project(conn, schema, projection, scenario.stream.events)
    with psycopg.connect(database_url, autocommit=True) as conn:
        dispatcher = make_dispatcher(conn, schema, rules, smtp_server, clock)
        dispatcher.dispatch_due()
        waiting = outbox(conn, schema)[("pending-no-customer-reply", scenario.ids["k9"])]

        assert waiting["status"] == "pending"
        assert waiting["next_attempt_at"] == clock.now + timedelta(seconds=30)
        [first] = attempts(conn, schema, waiting["dedup_key"])
        assert first["outcome"] == "retry"
        assert f"customer {eve} is not known yet" in first["error"]

        # Eve's registration arrives on the customers topic.
        registration = Stream()
        registration.add("Customer.Registered", eve, clock.now - timedelta(hours=1), name="Eve",
                         email="eve@example.org", phone=None, language="es")
        with conn.transaction():
            projection.apply(conn, schema, registration.events[0])

        clock.advance(timedelta(seconds=29))
        assert dispatcher.dispatch_due().processed == 0
        clock.advance(timedelta(seconds=1))
        assert dispatcher.dispatch_due().sent == 1

        delivered = outbox(conn, schema)[("pending-no-customer-reply", scenario.ids["k9"])]
        assert delivered["status"] == "sent"
        assert [a["outcome"] for a in attempts(conn, schema, waiting["dedup_key"])] == ["retry", "sent"]

    [message] = smtp_server.inbox.to("eve@example.org")
    assert message["Subject"] == "Esperamos su respuesta: Help"
    assert "Hola Eve:" in message.get_content()
    assert "desde hace 3 días" in message.get_content()


def test_failing_webhook_retries_then_fails(
    database_url: str, schema: str, smtp_server: SmtpServer, webhook_server: WebhookServer
) -> None:
    scenario = recent_scenario()
    webhook_server.statuses["/tech"] = 500
    rules = parse_rules(rules_document(webhook_server), DEFAULT_RULES_PATH)
    clock = FakeClock(datetime.now(UTC) + timedelta(minutes=1))
    start = clock.now

    with psycopg.connect(database_url) as conn:
        project(conn, schema, NotificationsProjection(rules), scenario.stream.events)
    with psycopg.connect(database_url, autocommit=True) as conn:
        dispatcher = make_dispatcher(conn, schema, rules, smtp_server, clock)
        assert dispatcher.dispatch_due().retried == 3  # two to /tech, and Eve is unknown

        # Backoff 30 s, 60 s, 120 s: nothing is due a second before each retry.
        for delay in (30, 60, 120):
            clock.advance(timedelta(seconds=delay - 1))
            assert dispatcher.dispatch_due().processed == 0
            clock.advance(timedelta(seconds=1))
            assert dispatcher.dispatch_due().processed == 3

        rows = outbox(conn, schema)
        for key in (("first-response-overdue", scenario.ids["k3"]), ("callback-requested", scenario.ids["k6"])):
            row = rows[key]
            assert row["status"] == "failed"
            assert row["attempt_count"] == 4
            assert "HTTP 500" in row["last_error"]
            history = attempts(conn, schema, row["dedup_key"])
            assert [a["outcome"] for a in history] == ["retry", "retry", "retry", "failed"]
            assert [a["attempted_at"] - start for a in history] == [
                timedelta(0), timedelta(seconds=30), timedelta(seconds=90), timedelta(seconds=210)
            ]
            assert all("TemporaryDeliveryError: Slack webhook returned HTTP 500: server_error" == a["error"] for a in history)
            assert all(a["destination"] == "department:tech" for a in history)

        clock.advance(timedelta(hours=1))
        assert dispatcher.dispatch_due().processed == 0

    assert len(webhook_server.texts("/tech")) == 8


def test_two_dispatchers_send_each_once(
    database_url: str, schema: str, smtp_server: SmtpServer, webhook_server: WebhookServer
) -> None:
    document = rules_document(webhook_server)
    document["rules"] = [{
        "name": "ticket-opened-copy",
        "trigger": {"event": "Ticket.Opened"},
        "channel": "email",
        "recipients": ["ops@example.org"],
        "template": {"subject": "Opened $ticket_id", "body": "$subject"},
    }]
    rules = parse_rules(document, DEFAULT_RULES_PATH)
    stream = Stream()
    now = datetime.now(UTC)
    for _ in range(40):
        stream.open(str(uuid.uuid4()), str(uuid.uuid4()), now - timedelta(minutes=5), "normal", "tech")
    smtp_server.inbox.delay_seconds = 0.01
    clock = FakeClock(now + timedelta(minutes=1))

    with psycopg.connect(database_url) as conn:
        project(conn, schema, NotificationsProjection(rules), stream.events)

    summaries = []

    def run() -> None:
        with psycopg.connect(database_url, autocommit=True) as conn:
            summaries.append(make_dispatcher(conn, schema, rules, smtp_server, clock).dispatch_due(100))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert len(summaries) == 2
    assert sum(summary.sent for summary in summaries) == 40
    assert all(summary.sent > 0 for summary in summaries)
    keys = [message["X-Notification-Key"] for _, message in smtp_server.inbox.messages]
    assert len(keys) == 40
    assert len(set(keys)) == 40
    with psycopg.connect(database_url) as conn:
        counts = conn.execute(
            sql.SQL("SELECT count(*), count(DISTINCT dedup_key) FROM {}.delivery_attempts").format(
                sql.Identifier(delivery_schema(schema))
            )
        ).fetchone()
    assert counts == (40, 40)


def test_forgotten_expired_and_unconfigured(
    database_url: str, schema: str, smtp_server: SmtpServer, webhook_server: WebhookServer
) -> None:
    document = rules_document(webhook_server, max_age="2d")
    document["departments"] = {}
    rules = parse_rules(document, DEFAULT_RULES_PATH)
    projection = NotificationsProjection(rules)
    now = datetime.now(UTC)
    stream = Stream()
    forgotten, old, unrouted = (str(uuid.uuid4()) for _ in range(3))
    customer = str(uuid.uuid4())
    stream.add("Customer.Registered", customer, now - timedelta(days=20), name="F", email="f@example.org", phone=None, language="en")
    # Pending from 4 days ago: the 3-day reminder fired 1 day ago, to a customer who is then forgotten.
    stream.open(forgotten, customer, now - timedelta(days=4, hours=1), "normal", "billing")
    stream.reply(forgotten, now - timedelta(days=4, minutes=30))
    stream.add("Ticket.MovedToPending", forgotten, now - timedelta(days=4))
    stream.add("Customer.Forgotten", customer, now - timedelta(hours=12))
    # A callback 5 days ago is older than max_age (2 days).
    stream.open(old, str(uuid.uuid4()), now - timedelta(days=5, hours=1), "normal", "tech")
    stream.reply(old, now - timedelta(days=5, minutes=30))
    stream.add("Ticket.CallbackRequested", old, now - timedelta(days=5), callback_id="c", phone="+1",
               window_start=now - timedelta(days=5), window_end=now - timedelta(days=5))
    # A recent callback for a department without webhook, and no SLACK_WEBHOOK_URL.
    stream.open(unrouted, str(uuid.uuid4()), now - timedelta(hours=1), "normal", "sales")
    stream.add("Ticket.CallbackRequested", unrouted, now - timedelta(minutes=50), callback_id="c", phone="+1",
               window_start=now, window_end=now + timedelta(hours=1))
    clock = FakeClock(now + timedelta(minutes=1))

    with psycopg.connect(database_url) as conn:
        project(conn, schema, projection, stream.events)
    with psycopg.connect(database_url, autocommit=True) as conn:
        summary = make_dispatcher(conn, schema, rules, smtp_server, clock).dispatch_due()
        rows = outbox(conn, schema)

        assert (summary.cancelled, summary.expired, summary.failed) == (1, 1, 1)
        assert rows[("pending-no-customer-reply", forgotten)]["status"] == "cancelled"
        assert rows[("callback-requested", old)]["status"] == "expired"
        assert rows[("callback-requested", old)]["attempt_count"] == 0
        unconfigured = rows[("callback-requested", unrouted)]
        assert unconfigured["status"] == "failed"
        assert unconfigured["attempt_count"] == 1  # permanent: no retry
        assert "set departments.sales.slack_webhook" in unconfigured["last_error"]
        assert "SLACK_WEBHOOK_URL" in unconfigured["last_error"]

    assert smtp_server.inbox.messages == []
    assert webhook_server.posts == []


def test_cli_dispatch_once(
    database_url: str,
    unique_name: Callable[[str], str],
    smtp_server: SmtpServer,
    webhook_server: WebhookServer,
    tmp_path: Path,
) -> None:
    prefix = f"{unique_name('cli')}_"
    schema = f"{prefix}notifications"
    document = rules_document(webhook_server)
    document["departments"] = {}  # every Slack message goes to SLACK_WEBHOOK_URL
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(yaml.safe_dump(document), encoding="utf-8")
    scenario = recent_scenario()
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PROJECTION_PREFIX": prefix,
        "NOTIFICATION_RULES": str(rules_path),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_server.port),
        "SMTP_FROM": "desk@example.org",
        "SLACK_WEBHOOK_URL": webhook_server.url("/default"),
    }
    try:
        with psycopg.connect(database_url) as conn:
            project(conn, schema, NotificationsProjection(parse_rules(document, rules_path)), scenario.stream.events)

        result = subprocess.run(
            [*TICKETING, "notify", "dispatch", "--once"], env=env, capture_output=True, text=True, timeout=60
        )
    finally:
        drop_schemas(database_url, schema)

    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "sent 7, retrying 1, failed 0, cancelled 0, expired 0, restored 0"
    assert len(webhook_server.texts("/default")) == 4
    assert len(smtp_server.inbox.messages) == 3
    assert all(message["From"] == "desk@example.org" for _, message in smtp_server.inbox.messages)


def test_rebuilt_outbox_is_not_sent_again(
    database_url: str, schema: str, smtp_server: SmtpServer, webhook_server: WebhookServer
) -> None:
    scenario = recent_scenario()
    rules = parse_rules(rules_document(webhook_server), DEFAULT_RULES_PATH)
    clock = FakeClock(datetime.now(UTC) + timedelta(minutes=1))

    with psycopg.connect(database_url) as conn:
        project(conn, schema, NotificationsProjection(rules), scenario.stream.events)
    with psycopg.connect(database_url, autocommit=True) as conn:
        first = make_dispatcher(conn, schema, rules, smtp_server, clock).dispatch_due()
        assert (first.sent, first.retried) == (7, 1)
        before = {key: (row["status"], row["attempt_count"], row["sent_at"]) for key, row in outbox(conn, schema).items()}

        # What a replay's swap does: the schema is rebuilt from the events and replaces the live one.
        conn.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
    with psycopg.connect(database_url) as conn:
        project(conn, schema, NotificationsProjection(rules), scenario.stream.events)
    with psycopg.connect(database_url, autocommit=True) as conn:
        assert {row["status"] for row in outbox(conn, schema).values()} == {"pending"}

        second = make_dispatcher(conn, schema, rules, smtp_server, clock).dispatch_due()
        after = {key: (row["status"], row["attempt_count"], row["sent_at"]) for key, row in outbox(conn, schema).items()}
        eve_key = outbox(conn, schema)[("pending-no-customer-reply", scenario.ids["k9"])]["dedup_key"]

        # Eve's reminder is still unknown and retries with the next attempt number.
        assert (second.restored, second.sent, second.retried) == (7, 0, 1)
        assert [a["attempt"] for a in attempts(conn, schema, eve_key)] == [1, 2]

    assert {key: value for key, value in after.items() if value[0] == "sent"} == {
        key: value for key, value in before.items() if value[0] == "sent"
    }
    assert len(smtp_server.inbox.messages) == 3
    assert len(webhook_server.posts) == 4


def insert_outbox_messages(
    conn: psycopg.Connection, schema: str, count: int, *, due_at: datetime, prefix: str
) -> None:
    """Insert `count` pending ticket-assigned e-mails to one address, due at `due_at`."""
    context = {
        "subject": "Printer on fire",
        "ticket_id": str(uuid.uuid4()),
        "occurred_at": "2024-05-01T12:00:00+00:00",
        "department": "tech",
        "priority": "normal",
    }
    with conn.cursor() as cursor:
        cursor.executemany(
            sql.SQL(
                "INSERT INTO {}.outbox (dedup_key, rule, channel, recipient, aggregate_id, source_version, "
                "context, fired_at, next_attempt_at) VALUES (%s, 'ticket-assigned', 'email', "
                "'email:agent@example.org', %s, 1, %s, %s, %s)"
            ).format(sql.Identifier(schema)),
            [
                (f"{prefix}-{number}", uuid.uuid4(), Jsonb(context), due_at, due_at)
                for number in range(count)
            ],
        )


def test_cli_dispatch_once_drains_every_due_message(
    database_url: str, unique_name: Callable[[str], str], smtp_server: SmtpServer, webhook_server: WebhookServer, tmp_path: Path
) -> None:
    prefix = f"{unique_name('drain')}_"
    schema = f"{prefix}notifications"
    rules_path = tmp_path / "rules.yaml"
    rules_path.write_text(yaml.safe_dump(rules_document(webhook_server)), encoding="utf-8")
    now = datetime.now(UTC)
    due, batch_size = 25, 10
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "PROJECTION_PREFIX": prefix,
        "NOTIFICATION_RULES": str(rules_path),
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(smtp_server.port),
    }
    try:
        with psycopg.connect(database_url, autocommit=True) as conn:
            Dispatcher(conn, schema, parse_rules(rules_document(webhook_server), rules_path), {}).ensure_tables()
            insert_outbox_messages(conn, schema, due, due_at=now - timedelta(minutes=5), prefix="due")
            insert_outbox_messages(conn, schema, 2, due_at=now + timedelta(hours=1), prefix="later")

        result = subprocess.run(
            [*TICKETING, "notify", "dispatch", "--once", "--batch-size", str(batch_size)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        with psycopg.connect(database_url, autocommit=True) as conn:
            statuses = dict(
                conn.execute(
                    sql.SQL("SELECT status, count(*) FROM {}.outbox GROUP BY status").format(sql.Identifier(schema))
                ).fetchall()
            )
    finally:
        drop_schemas(database_url, schema)

    assert due > batch_size
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"sent {due}, retrying 0, failed 0, cancelled 0, expired 0, restored 0"
    assert len(smtp_server.inbox.messages) == due
    assert statuses == {"sent": due, "pending": 2}


def test_drain_attempts_failing_message_once(
    database_url: str, schema: str, smtp_server: SmtpServer, webhook_server: WebhookServer
) -> None:
    scenario = recent_scenario()
    webhook_server.statuses["/tech"] = 500
    rules = parse_rules(rules_document(webhook_server), DEFAULT_RULES_PATH)
    clock = FakeClock(datetime.now(UTC) + timedelta(minutes=1))

    with psycopg.connect(database_url) as conn:
        project(conn, schema, NotificationsProjection(rules), scenario.stream.events)
    with psycopg.connect(database_url, autocommit=True) as conn:
        dispatcher = make_dispatcher(conn, schema, rules, smtp_server, clock)
        due = sum(row["status"] == "pending" for row in outbox(conn, schema).values())
        first = dispatcher.drain(batch_size=2)
        second = dispatcher.drain(batch_size=2)

    # The three failures are rescheduled 30 s later, so no drain at the same time takes them again.
    assert due > 2
    assert first.retried == 3
    assert first.processed == due
    assert second.processed == 0
    assert len(webhook_server.texts("/tech")) == 2
