"""`ticketing replay GROUP`: rebuild a group's tables from the beginning, then swap them in or verify them."""

from __future__ import annotations

from typing import TYPE_CHECKING

import structlog
import typer

from ticketing.cli.consume import GROUP_HELP, GroupName, projection_named
from ticketing.cli.servers import require_servers
from ticketing.settings import Settings

if TYPE_CHECKING:
    from consumers.verify import TableDifference

log = structlog.get_logger(__name__)


def replay(
    group: GroupName = typer.Argument(
        ..., case_sensitive=False, show_default=False, help=f"Projection group to rebuild: {GROUP_HELP}."
    ),
    verify: bool = typer.Option(
        False, "--verify", help="Compare the rebuilt tables with the live ones and drop them instead of swapping."
    ),
    from_event_store: bool = typer.Option(
        False, "--from-event-store", help="Read the event store's notification log instead of the topics."
    ),
    batch_size: int = typer.Option(
        500, "--batch-size", min=1, max=100_000, help="Maximum records applied in one PostgreSQL transaction."
    ),
    timeout: float = typer.Option(3600.0, "--timeout", min=1, help="Give up after this many seconds."),
) -> None:
    """Rebuild the group's tables in a shadow schema while the live group keeps running.

    Without --verify the shadow schema replaces the live one in one transaction.

    With --verify the differing rows are printed and the exit code is 1 if any table differs.

    Exit code 1 also means that Kafka or PostgreSQL could not be reached.
    """
    from consumers.replay import ReplayError, ReplayOptions
    from consumers.replay import replay as run_replay

    settings = Settings.from_env()
    projection = projection_named(group)
    options = ReplayOptions(
        batch_size=batch_size, timeout_seconds=timeout, verify=verify, from_event_store=from_event_store
    )
    # A replay from the event store reads no topic, so it runs without Kafka.
    with require_servers(settings, kafka=not from_event_store, postgres=True):
        try:
            result = run_replay(settings, projection, options)
        except ReplayError as error:
            log.error("replay failed", group=group.value, error=str(error))
            raise typer.Exit(1) from error

    for note in result.notes:
        typer.echo(f"note: {note}")
    if result.differences is None:
        typer.echo(
            f"rebuilt {settings.projection_schema(group.value)} from {result.records} record(s) "
            f"({result.dead_letters} dead letter(s)) and swapped it in"
        )
        return
    if not result.differences:
        typer.echo(f"no differences: {result.records} record(s) rebuilt, every table matches the live one")
        return

    for difference in result.differences:
        _print_difference(difference)
    raise typer.Exit(1)


def _print_difference(difference: TableDifference) -> None:
    if difference.problem:
        typer.echo(f"table {difference.table}: {difference.problem}")
        return
    typer.echo(
        f"table {difference.table}: {difference.only_live_count} row(s) only in live, "
        f"{difference.only_rebuilt_count} row(s) only in rebuilt"
    )
    # One line per row with every column named, so that a row reads alone and greps well.
    for side, rows in (("live", difference.only_live), ("rebuilt", difference.only_rebuilt)):
        for row in rows:
            values = ", ".join(
                f"{column}={'NULL' if value is None else value}" for column, value in zip(difference.columns, row)
            )
            typer.echo(f"  only in {side}: {values}")


def register(app: typer.Typer) -> None:
    app.command(name="replay")(replay)
