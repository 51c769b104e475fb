"""`ticketing import FILE`: import a helpdesk log (CSV) into the event store.

Exit codes: 0 when the import finished, 1 when a malformed row, a ticket the domain
rejects or the database stopped it, 2 when the mapping, the file, the rejects path or
the configuration is unusable.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NoReturn, Optional

import structlog
import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from ticketing.application import HelpdeskApplication
from ticketing.cli.servers import require_servers
from ticketing.importer.errors import ColumnError, ImporterError, MappingError, RejectsFileError, SourceError
from ticketing.importer.mapping import default_mapping_path, load_mapping
from ticketing.importer.rejects import check_rejects_path
from ticketing.importer.runner import DEFAULT_BATCH_SIZE, ImportOptions, ImportRun
from ticketing.importer.summary import ImportSummary
from ticketing.settings import Settings

log = structlog.get_logger(__name__)

EXIT_STOPPED = 1
EXIT_UNUSABLE_INPUT = 2


class RateColumn(ProgressColumn):
    """Tickets per second, averaged by rich over the last 30 seconds."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        return Text("- tickets/s" if speed is None else f"{speed:,.0f} tickets/s")


class RichProgress:
    """A progress bar with rate and ETA on standard error; it draws nothing when disabled."""

    def __init__(self, console: Console, enabled: bool) -> None:
        self._progress = Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            RateColumn(),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console,
            disable=not enabled,
        )
        self._task_id = self._progress.add_task("import", total=None, start=False)

    def start(self, total: int) -> None:
        self._progress.update(self._task_id, total=total)
        self._progress.start_task(self._task_id)

    def advance(self, count: int = 1) -> None:
        self._progress.advance(self._task_id, count)

    def __enter__(self) -> RichProgress:
        self._progress.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._progress.stop()


def import_log(
    file: Path = typer.Argument(..., help="CSV log to import, one row per activity or per ticket state."),
    mapping: Optional[Path] = typer.Option(
        None,
        "--mapping",
        help="Mapping YAML that names the columns and the command(s) of each activity. "
        "Default: the shipped mapping of the Italian helpdesk log.",
    ),
    skip_invalid: bool = typer.Option(
        False,
        "--skip-invalid",
        help="Skip malformed rows and tickets the domain rejects, list them in the rejects file, "
        "and import the rest. Without it the first such row stops the import with exit code 1.",
    ),
    rejects: Optional[Path] = typer.Option(
        None,
        "--rejects",
        help="CSV file for the rows that --skip-invalid skips, with line number and reason. "
        "Default: OUTPUT_DIR/<FILE name>-rejects.csv.",
    ),
    limit_cases: Optional[int] = typer.Option(
        None, "--limit-cases", min=1, help="Import only the first N cases of the file, for a quick run."
    ),
    no_progress: bool = typer.Option(
        False, "--no-progress", help="Draw no progress bar. It is also off when standard error is not a terminal."
    ),
    batch_size: int = typer.Option(
        DEFAULT_BATCH_SIZE, "--batch-size", min=1, help="Tickets stored per database transaction."
    ),
) -> None:
    """Import a helpdesk log; importing the same rows again stores nothing new."""
    settings = Settings.from_env()
    if rejects is not None and not skip_invalid:
        _stop(
            "--rejects needs --skip-invalid, because without it the first malformed row stops the import.",
            EXIT_UNUSABLE_INPUT,
        )

    mapping_path = mapping or default_mapping_path()
    try:
        loaded = load_mapping(mapping_path)
    except MappingError as error:
        _stop(str(error), EXIT_UNUSABLE_INPUT)

    rejects_path = rejects or Path(settings.output_dir) / f"{file.stem}-rejects.csv"
    if skip_invalid:
        _check_rejects(rejects_path, default=rejects is None)
    options = ImportOptions(
        skip_invalid=skip_invalid,
        rejects_path=rejects_path if skip_invalid else None,
        limit_cases=limit_cases,
        batch_size=batch_size,
    )

    console = Console(stderr=True)
    stopped: ImporterError | None = None
    with require_servers(settings, postgres=True):
        app = HelpdeskApplication(env=settings.eventsourcing_env())
        with RichProgress(console, enabled=not no_progress and console.is_terminal) as progress:
            run = ImportRun(app, loaded, file, options, progress)
            try:
                run.run()
            except ImporterError as error:
                stopped = error

    if isinstance(stopped, (ColumnError, SourceError, RejectsFileError)):
        _stop(str(stopped), EXIT_UNUSABLE_INPUT)
    _print_summary(run.summary)
    if stopped is not None:
        _stop(str(stopped), EXIT_STOPPED)
    if skip_invalid:
        typer.echo(f"rejected rows: {rejects_path}")


def _check_rejects(path: Path, *, default: bool) -> None:
    """Stop with exit code 2 unless the rejects file can be written, before anything is stored.

    The default path is in OUTPUT_DIR, which is created when missing. The folder of a
    path given with --rejects must exist.
    """
    if default:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            _stop(
                f"cannot create OUTPUT_DIR {path.parent} for the rejects file ({error.strerror or error}). "
                f"Set OUTPUT_DIR to a folder you can write to, or pass --rejects.",
                EXIT_UNUSABLE_INPUT,
            )
    try:
        check_rejects_path(path)
    except RejectsFileError as error:
        source = "OUTPUT_DIR" if default else "--rejects"
        _stop(f"{source}: {error}", EXIT_UNUSABLE_INPUT)


def _print_summary(summary: ImportSummary) -> None:
    console = Console()
    for table in summary.tables():
        console.print(table)


def _stop(message: str, code: int) -> NoReturn:
    log.error("import stopped", error=message, exit_code=code)
    print(f"error: {message}", file=sys.stderr)
    raise typer.Exit(code=code)


def register(app: typer.Typer) -> None:
    app.command(name="import")(import_log)
