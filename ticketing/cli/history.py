"""`ticketing history ticket|agent|customer ID`: audit trail of one aggregate."""

# No `from __future__ import annotations` here: typer evaluates the annotations of
# the generated commands, and those refer to the closure variable `kind`.
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any
from uuid import UUID

import psycopg
import structlog
import typer
from eventsourcing.persistence import PersistenceError
from rich.console import Console
from rich.table import Table
from rich.text import Text

from domain.errors import NotFound
from ticketing.application import HelpdeskApplication
from ticketing.history import (
    REDACTED,
    AggregateKind,
    StateAsOf,
    Timeline,
    json_value,
    load_timeline,
    parse_timestamp,
    state_as_of,
)
from ticketing.cli.servers import exit_if_unavailable, require_servers
from ticketing.settings import Settings

log = structlog.get_logger(__name__)

# Table cells show at most this many characters of a value. The jsonl format shows all.
MAX_CELL_CHARS = 60

HISTORY_HELP = """\
Print the audit trail of one ticket, agent or customer from the event store.

Without --as-of: every stored event in version order, with the time it happened
(occurred_at), the time it was stored, its type, actor, command key and the fields it set.
With --as-of: the state rebuilt from the events that happened at or before that moment.

Examples: `ticketing history ticket 3f2c9a7e-0d4b-4c1e-9a53-5b1f2f0c8d11`,
`ticketing history agent 9b1e... --as-of 2024-05-01T12:00:00Z`,
`ticketing history customer 77aa... --format jsonl`.
"""


class OutputFormat(StrEnum):
    TABLE = "table"
    JSONL = "jsonl"


def register(app: typer.Typer) -> None:
    history_app = typer.Typer(name="history", help=HISTORY_HELP, no_args_is_help=True)
    for kind in AggregateKind:
        history_app.command(name=kind.value)(_command_for(kind))
    app.add_typer(history_app, name="history")


def _command_for(kind: AggregateKind) -> Callable[..., None]:
    def command(
        aggregate_id: Annotated[
            str, typer.Argument(metavar="ID", help=f"UUID of the {kind}.", show_default=False)
        ],
        as_of: Annotated[
            str | None,
            typer.Option(
                "--as-of",
                metavar="TIMESTAMP",
                help=(
                    "Print the state as it was at this moment instead of every event. "
                    "Write a UTC date and time such as 2024-05-01T12:00:00Z, a date such "
                    "as 2024-05-01 for midnight UTC, or a time with its UTC offset such as "
                    "2024-05-01T14:00:00+02:00. The moment is compared with when each "
                    "event happened, not with when it was stored."
                ),
            ),
        ] = None,
        output_format: Annotated[
            OutputFormat,
            typer.Option(
                "--format",
                help=(
                    f"table: a table for reading, with values cut at {MAX_CELL_CHARS} "
                    f"characters. jsonl: one JSON object per event, or one for the "
                    f"state, with full values."
                ),
            ),
        ] = OutputFormat.TABLE,
    ) -> None:
        show_history(kind, aggregate_id, as_of, output_format)

    command.__doc__ = (
        f"Print every event of one {kind} from the event store, or its state at --as-of."
    )
    return command


def show_history(
    kind: AggregateKind, raw_id: str, raw_as_of: str | None, output_format: OutputFormat
) -> None:
    """Print the timeline or the state. Exit 2 for a bad argument and 1 if nothing is found."""
    aggregate_id = _parse_id(kind, raw_id)
    as_of = _parse_as_of(raw_as_of)
    settings = Settings.from_env()

    with require_servers(settings, postgres=True), _open_event_store(settings) as app:
        try:
            if as_of is None:
                _print_timeline(load_timeline(app, kind, aggregate_id), output_format)
            else:
                _print_state(state_as_of(app, kind, aggregate_id, as_of), output_format)
        except NotFound as error:
            typer.echo(f"error: {error}", err=True)
            raise typer.Exit(code=1) from None
        except PersistenceError as error:
            exit_if_unavailable(error, settings, kafka=False)
            _fail_on_store_error(settings, kind, aggregate_id, error)


def _parse_id(kind: AggregateKind, raw_id: str) -> UUID:
    try:
        return UUID(raw_id)
    except ValueError:
        raise typer.BadParameter(
            f"{raw_id!r} is not a UUID. Pass the {kind} id, such as "
            f"3f2c9a7e-0d4b-4c1e-9a53-5b1f2f0c8d11.",
            param_hint="ID",
        ) from None


def _parse_as_of(raw_as_of: str | None) -> datetime | None:
    if raw_as_of is None:
        return None
    try:
        return parse_timestamp(raw_as_of)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--as-of") from None


@contextmanager
def _open_event_store(settings: Settings) -> Iterator[HelpdeskApplication]:
    # A read-only command should not create tables in a schema that has none.
    env = settings.eventsourcing_env() | {"CREATE_TABLE": "n"}
    app = HelpdeskApplication(env=env)
    try:
        yield app
    finally:
        app.close()


def _fail_on_store_error(
    settings: Settings, kind: AggregateKind, aggregate_id: UUID, error: PersistenceError
) -> None:
    schema = settings.event_store_schema
    if isinstance(error.__cause__, psycopg.errors.UndefinedTable):
        typer.echo(
            f"error: {kind.aggregate_class.__name__} {aggregate_id} was not found: the "
            f"event store schema {schema!r} has no events table, so nothing was stored "
            f"there yet. Check the EVENT_STORE_SCHEMA setting.",
            err=True,
        )
        raise typer.Exit(code=1) from None

    address = settings.database
    log.error("event store read failed", schema=schema, error=str(error))
    typer.echo(
        f"error: reading the event store failed (schema {schema!r} on "
        f"{address.host}:{address.port}/{address.dbname}): {error}. Check DATABASE_URL, "
        f"or start PostgreSQL with scripts/services start.",
        err=True,
    )
    raise typer.Exit(code=1) from None


def _print_timeline(timeline: Timeline, output_format: OutputFormat) -> None:
    if output_format is OutputFormat.JSONL:
        for entry in timeline.entries:
            typer.echo(json.dumps(entry.to_json(), ensure_ascii=False))
        return

    name = timeline.kind.aggregate_class.__name__
    table = Table(title=f"{name} {timeline.aggregate_id}", show_lines=True)
    table.add_column("Ver", justify="right")
    table.add_column("Business time (UTC)\nRecorded time (UTC)", no_wrap=True)
    table.add_column("Event", no_wrap=True)
    table.add_column("Actor\nCommand key", overflow="fold")
    table.add_column("Changes", overflow="fold")

    # Text cells, because rich would read "[forgotten]" in a plain string as markup.
    for entry in timeline.entries:
        table.add_row(
            str(entry.version),
            Text(f"{_format_time(entry.occurred_at)}\n{_format_time(entry.recorded_at)}"),
            Text(entry.event_type),
            Text(f"{entry.actor_id or '-'}\n{entry.command_key or '-'}"),
            Text(_format_fields(entry.changes)),
        )

    console = Console()
    console.print(table)
    if timeline.redacted:
        console.print(Text(f"Personal fields show {REDACTED}, because the customer was forgotten."))


def _print_state(state: StateAsOf, output_format: OutputFormat) -> None:
    if output_format is OutputFormat.JSONL:
        typer.echo(json.dumps(state.to_json(), ensure_ascii=False))
        return

    name = state.kind.aggregate_class.__name__
    table = Table(
        title=f"{name} {state.aggregate_id} as of {_format_time(state.as_of)} UTC",
        caption=f"rebuilt from {state.events_applied} event{'' if state.events_applied == 1 else 's'}",
    )
    table.add_column("Field", no_wrap=True)
    table.add_column("Value", overflow="fold")
    for field, value in state.state.items():
        table.add_row(Text(field), Text(_format_value(value)))

    console = Console()
    console.print(table)
    if state.redacted:
        console.print(Text(f"Personal fields show {REDACTED}, because the customer was forgotten."))


def _format_time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _format_fields(fields: Mapping[str, Any]) -> str:
    return "\n".join(f"{name}: {_format_value(value)}" for name, value in fields.items())


def _format_value(value: Any) -> str:
    plain = json_value(value)
    text = plain if isinstance(plain, str) else json.dumps(plain, ensure_ascii=False)
    if len(text) > MAX_CELL_CHARS:
        return text[: MAX_CELL_CHARS - 1] + "…"
    return text
