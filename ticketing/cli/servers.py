"""Stop a command with one `error:` line when Kafka or PostgreSQL cannot be reached.

Commands wrap their work in `require_servers(settings, kafka=..., postgres=...)`. It
checks first that the servers accept a TCP connection, within CONNECT_TIMEOUT_SECONDS
per address, so that nothing is created on one server while the other is down. A
connection that is refused or lost later inside the block ends the command the same
way: the message names the address and the next step, and the exit code is 1.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import structlog
import typer

from ticketing.probe import ServiceUnavailable, check_kafka_reachable, check_postgres_reachable, unavailable_server
from ticketing.settings import Settings

log = structlog.get_logger(__name__)

EXIT_SERVER_UNAVAILABLE = 1


@contextmanager
def require_servers(settings: Settings, *, kafka: bool = False, postgres: bool = False) -> Iterator[None]:
    """Check that the flagged servers accept connections, then run the block.

    A refused or lost connection to a flagged server, before or inside the block,
    prints one `error:` line that names the address and exits with code 1. Other
    errors pass through unchanged.
    """
    try:
        if postgres:
            check_postgres_reachable(settings.database_url, settings.connect_timeout_seconds)
        if kafka:
            check_kafka_reachable(settings.kafka_bootstrap_servers, settings.connect_timeout_seconds)
        yield
    except ServiceUnavailable as error:
        _stop(error)
    except (typer.Exit, typer.Abort, typer.TyperException):
        # typer.Exit and the usage errors are Exceptions too. They already carry
        # their own message and exit code.
        raise
    except Exception as error:
        exit_if_unavailable(error, settings, kafka=kafka, postgres=postgres)
        raise


def exit_if_unavailable(error: BaseException, settings: Settings, *, kafka: bool = True, postgres: bool = True) -> None:
    """Print the `error:` line and exit with code 1 if `error` comes from a refused or lost connection.

    Return without doing anything for any other error, so that the caller handles it.
    """
    unavailable = unavailable_server(error, settings, kafka=kafka, postgres=postgres)
    if unavailable is not None:
        _stop(unavailable, cause=error)


def _stop(unavailable: ServiceUnavailable, cause: BaseException | None = None) -> NoReturn:
    details = {} if cause is None else {"error_type": type(cause).__name__}
    log.error("server unavailable", error=str(unavailable), **details)
    typer.echo(f"error: {unavailable}", err=True)
    raise typer.Exit(code=EXIT_SERVER_UNAVAILABLE) from (cause or unavailable)
