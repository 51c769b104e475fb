"""`ticketing status`: how far each consumer group is, per partition."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from ticketing.cli.consume import GROUP_HELP, GroupName, projection_named
from ticketing.cli.servers import require_servers
from ticketing.settings import Settings


def status(
    groups: list[GroupName] = typer.Argument(
        None, case_sensitive=False, show_default=False, help=f"Groups to show ({GROUP_HELP}); all groups when omitted."
    ),
) -> None:
    """Show per group and partition: stored offset (PostgreSQL), Kafka's committed offset, end offset, lag, dead letters.

    The stored offset is where the group resumes. Kafka's committed offset follows it after each batch and is informational.

    Exit code 1 means that Kafka or PostgreSQL could not be reached.
    """
    from consumers.status import collect_status
    from projections.registry import PROJECTIONS

    settings = Settings.from_env()
    projections = [projection_named(group) for group in groups] if groups else list(PROJECTIONS.values())
    console = Console()
    # Topic names carry the prefix; cut to a narrow terminal they would all look alike.
    console.width = max(console.width, 110)

    with require_servers(settings, kafka=True, postgres=True):
        statuses = collect_status(settings, projections)

    for group in statuses:
        title = f"group {group.group} (schema {group.schema}): lag {group.lag}, dead letters {group.dead_letters}"
        if not group.schema_exists:
            title += ", not started"
        table = Table(title=title, title_justify="left")
        for header in ("Topic", "Partition", "Stored offset", "Kafka offset", "End offset", "Lag", "Dead letters"):
            table.add_column(header, justify="left" if header == "Topic" else "right", no_wrap=True)
        for row in group.partitions:
            table.add_row(
                row.topic,
                str(row.partition),
                _offset(row.stored_offset),
                _offset(row.kafka_offset),
                str(row.end_offset),
                str(row.lag),
                str(row.dead_letters),
            )
        if not group.partitions:
            table.add_row("(no topics yet)", "", "", "", "", "", "")
        console.print(table)
        if group.dead_letters_elsewhere:
            console.print(f"  {group.dead_letters_elsewhere} dead letter(s) counted during a replay from the event store")


def _offset(value: int | None) -> str:
    return "-" if value is None else str(value)


def register(app: typer.Typer) -> None:
    app.command(name="status")(status)
