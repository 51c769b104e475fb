"""`ticketing check`: validate the configuration and ask both servers for their versions."""

from __future__ import annotations

import typer

from ticketing.probe import ServiceUnavailable, probe_kafka, probe_postgres
from ticketing.settings import Settings


def check() -> None:
    """Validate the configuration and report whether Kafka and PostgreSQL respond, with their versions."""
    settings = Settings.from_env()
    failures = 0

    try:
        kafka = probe_kafka(settings.kafka_bootstrap_servers, settings.connect_timeout_seconds)
        typer.echo(f"kafka     ok      {settings.kafka_bootstrap_servers}: {kafka.describe()}")
    except ServiceUnavailable as error:
        typer.echo(f"kafka     failed  {error}", err=True)
        failures += 1

    try:
        postgres = probe_postgres(settings.database_url, settings.connect_timeout_seconds)
        typer.echo(f"postgres  ok      {postgres.address}: {postgres.describe()}")
    except ServiceUnavailable as error:
        typer.echo(f"postgres  failed  {error}", err=True)
        failures += 1

    if failures:
        raise typer.Exit(code=1)


def register(app: typer.Typer) -> None:
    app.command(name="check")(check)
