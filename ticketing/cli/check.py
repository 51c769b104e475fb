"""`ticketing check`: validate the configuration and ask both servers for their versions."""

from __future__ import annotations

import typer

from ticketing.probe import ServiceUnavailable, probe_kafka, probe_postgres
from ticketing.settings import Settings

EXIT_SERVER_FAILED = 1
EXIT_INVALID_CONFIGURATION = 2


def check() -> None:
    """Validate the configuration and the notification rules, and report whether Kafka and PostgreSQL respond, with their versions.

    Every status line goes to standard output, also a failed one. Exit code 1 means that a server did not respond, 2 that the configuration or the rules file is invalid.
    """
    # Imported here so that `ticketing --help` does not load the notification rules.
    from projections.notifications.rules import RulesError, load_rules

    settings = Settings.from_env()
    servers_failed = False
    rules_invalid = False

    try:
        kafka = probe_kafka(settings.kafka_bootstrap_servers, settings.connect_timeout_seconds)
        _status("kafka", "ok", f"{settings.kafka_bootstrap_servers}: {kafka.describe()}")
    except ServiceUnavailable as error:
        _status("kafka", "failed", str(error))
        servers_failed = True

    try:
        postgres = probe_postgres(settings.database_url, settings.connect_timeout_seconds)
        _status("postgres", "ok", f"{postgres.address}: {postgres.describe()}")
    except ServiceUnavailable as error:
        _status("postgres", "failed", str(error))
        servers_failed = True

    try:
        rules = load_rules(settings.notification_rules or None)
        _status("rules", "ok", f"{rules.path}: {len(rules.rules)} notification rules")
    except RulesError as error:
        _status("rules", "failed", str(error))
        rules_invalid = True

    if rules_invalid:
        raise typer.Exit(code=EXIT_INVALID_CONFIGURATION)
    if servers_failed:
        raise typer.Exit(code=EXIT_SERVER_FAILED)


def _status(component: str, outcome: str, detail: str) -> None:
    # Standard output for failures too, so that `check 2>/dev/null` still shows them.
    typer.echo(f"{component:<9} {outcome:<7} {detail}")


def register(app: typer.Typer) -> None:
    app.command(name="check")(check)
