"""`ticketing consume GROUP`: run one projection's consumer group."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

import structlog
import typer

from ticketing.cli.servers import exit_if_unavailable, require_servers
from ticketing.settings import Settings

if TYPE_CHECKING:
    from consumers.projection import Projection

log = structlog.get_logger(__name__)


class GroupName(StrEnum):
    """The projection groups of projections.registry, listed here so that `--help` loads no projection."""

    REPORTS = "reports"
    RETENTION = "retention"
    NOTIFICATIONS = "notifications"


GROUP_HELP = "reports, retention or notifications"


def consume(
    group: GroupName = typer.Argument(
        ..., case_sensitive=False, show_default=False, help=f"Projection group to run: {GROUP_HELP}."
    ),
    until_caught_up: bool = typer.Option(
        False, "--until-caught-up", help="Exit once the group's stored offsets reach the end of every partition."
    ),
    batch_size: int = typer.Option(
        500, "--batch-size", min=1, max=100_000, help="Maximum records applied in one PostgreSQL transaction."
    ),
    instance_id: str | None = typer.Option(
        None,
        "--instance-id",
        help="Static group membership id: a restarted process with the same id gets its partitions back "
        "at once instead of after the 45 s session timeout. Give each running process its own id.",
    ),
    timeout: float | None = typer.Option(
        None, "--timeout", min=1, help="Stop after this many seconds; by default run until SIGTERM or SIGINT."
    ),
) -> None:
    """Apply the group's topics to its PostgreSQL schema, one transaction per batch.

    Exit code 1 means the group failed, did not catch up within --timeout, or could not reach Kafka or PostgreSQL.
    """
    # Imported here so that `ticketing --help` does not import every projection.
    from consumers.runner import GroupRunner, RunOptions

    settings = Settings.from_env()
    projection = projection_named(group)
    options = RunOptions(
        batch_size=batch_size, until_caught_up=until_caught_up, timeout_seconds=timeout, instance_id=instance_id
    )
    with require_servers(settings, kafka=True, postgres=True):
        try:
            result = GroupRunner(settings, projection, options).run()
        except Exception as error:
            exit_if_unavailable(error, settings)
            log.error("consumer failed", group=group.value, error=str(error), error_type=type(error).__name__, exc_info=True)
            raise typer.Exit(1) from error
    if until_caught_up and not result.caught_up and result.timed_out:
        log.error("consumer did not catch up in time", group=group.value, timeout_seconds=timeout)
        raise typer.Exit(1)


def projection_named(group: str) -> Projection:
    """Return the registered projection of `group`; raise BadParameter listing the known groups."""
    from projections.registry import PROJECTIONS

    projection = PROJECTIONS.get(str(group))
    if projection is None:
        raise typer.BadParameter(f"unknown group {group!r}; known groups: {', '.join(sorted(PROJECTIONS))}")
    return projection


def register(app: typer.Typer) -> None:
    app.command(name="consume")(consume)
