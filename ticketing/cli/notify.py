"""`ticketing notify`: send the notification outbox and check a rules file."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from types import FrameType

import psycopg
import structlog
import typer

from projections.notifications import GROUP
from projections.notifications.channels import SlackSender, SmtpSender
from projections.notifications.dispatcher import Dispatcher
from projections.notifications.model import EventTrigger, RuleSet
from projections.notifications.rules import RULES_SETTING, RulesError, load_rules
from ticketing.cli.servers import require_servers
from ticketing.settings import Settings

log = structlog.get_logger(__name__)

notify_app = typer.Typer(
    help="Send notifications from the outbox by e-mail and Slack, and check notification rules.",
    no_args_is_help=True,
)


@notify_app.command("dispatch")
def dispatch(
    once: bool = typer.Option(
        False,
        "--once",
        help="Send every message that is due now, in passes of --batch-size, then exit. A message that "
        "fails now and is scheduled for a later retry waits for the next run.",
    ),
    batch_size: int = typer.Option(100, min=1, help="Maximum number of messages per pass."),
    poll_interval: float = typer.Option(5.0, min=0.1, help="Seconds to wait between passes when nothing is due."),
    for_seconds: float | None = typer.Option(None, min=0.1, help="Stop after this many seconds (default: until SIGINT or SIGTERM)."),
) -> None:
    """Send due outbox messages over SMTP and Slack webhooks, retrying failures with backoff."""
    settings = Settings.from_env()
    rules = _load_rules_or_exit(settings.notification_rules or None)
    schema = settings.projection_schema(GROUP)
    senders = {
        "email": SmtpSender(settings.smtp_host, settings.smtp_port, settings.smtp_from, settings.connect_timeout_seconds * 2),
        "slack": SlackSender(settings.connect_timeout_seconds * 2),
    }

    with (
        require_servers(settings, postgres=True),
        psycopg.connect(
            settings.database_url, autocommit=True, connect_timeout=max(1, int(settings.connect_timeout_seconds))
        ) as conn,
    ):
        dispatcher = Dispatcher(conn, schema, rules, senders, default_slack_webhook=settings.slack_webhook_url)
        if once:
            summary = dispatcher.drain(batch_size)
        else:
            stop = threading.Event()
            previous = _stop_on_signals(stop)
            try:
                summary = dispatcher.run(
                    batch_size=batch_size, poll_interval=poll_interval, stop=stop, max_seconds=for_seconds
                )
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)  # type: ignore[arg-type]

    typer.echo(
        f"sent {summary.sent}, retrying {summary.retried}, failed {summary.failed}, "
        f"cancelled {summary.cancelled}, expired {summary.expired}, restored {summary.restored}"
    )


@notify_app.command("check-rules")
def check_rules(
    path: Path | None = typer.Argument(None, help="Rules file to check (default: NOTIFICATION_RULES or the shipped rules)."),
) -> None:
    """Validate a notification rules file and list its rules."""
    settings = Settings.from_env()
    if path is not None:
        rules = _load_rules_or_exit(path, given_by="PATH")
    else:
        rules = _load_rules_or_exit(settings.notification_rules or None)
    for rule in rules.rules:
        trigger = rule.trigger
        described = trigger.event_type if isinstance(trigger, EventTrigger) else f"deadline {trigger.deadline}"
        typer.echo(f"{rule.name:32} {described:36} {rule.channel:6} {', '.join(rule.recipients)}")
    typer.echo(f"{rules.path}: {len(rules.rules)} rules are valid")


def _load_rules_or_exit(path: str | Path | None, *, given_by: str = RULES_SETTING) -> RuleSet:
    try:
        return load_rules(path, given_by=given_by)
    except RulesError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=2) from error


def _stop_on_signals(stop: threading.Event) -> dict[int, object]:
    def request_stop(signum: int, frame: FrameType | None) -> None:
        log.info("stop requested", signal=signal.Signals(signum).name)
        stop.set()

    return {signum: signal.signal(signum, request_stop) for signum in (signal.SIGINT, signal.SIGTERM)}


def register(app: typer.Typer) -> None:
    app.add_typer(notify_app, name="notify")
