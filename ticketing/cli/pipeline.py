"""`ticketing pipeline`: the main job, from a helpdesk log to reports."""

from __future__ import annotations

from pathlib import Path

import typer

from ticketing.settings import Settings


def pipeline(
    context: typer.Context,
    log_file: Path = typer.Argument(..., help="Helpdesk log to import, e.g. ../shared/data/helpdesk/helpdesk.csv."),
    mapping: Path = typer.Option(None, help="Import mapping (YAML). Default: the shipped helpdesk mapping."),
    output_dir: Path = typer.Option(None, help="Folder for CSV files and heatmaps. Default: OUTPUT_DIR."),
    verify: bool = typer.Option(
        True,
        "--verify/--no-verify",
        help="Rebuild every group with `replay --verify` and compare it with the live tables. "
        "--no-verify skips that stage, for a rerun over data that an earlier run verified.",
    ),
) -> None:
    """Import a log, relay it to Kafka, run the three consumer groups, print and write every report, verify replays."""
    # Imported here, because the pipeline loads matplotlib and the report queries, which
    # every other `ticketing` command would otherwise pay for at start-up.
    from ticketing.pipeline import StageFailed, run_pipeline

    settings = Settings.from_env()
    if not log_file.is_file():
        typer.echo(f"error: the log file {log_file} was not found; pass the path of a CSV export", err=True)
        raise typer.Exit(code=2)

    try:
        timer = run_pipeline(
            settings,
            log_file,
            mapping,
            output_dir or Path(settings.output_dir),
            verify_replays=verify,
            log_level=_log_level(context),
        )
    except StageFailed as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(code=1) from error

    typer.echo("\nwall time per stage:")
    for stage, seconds in timer.seconds.items():
        typer.echo(f"  {stage:<16} {seconds:8.1f} s")
    typer.echo(f"  {'total':<16} {sum(timer.seconds.values()):8.1f} s")


def _log_level(context: typer.Context) -> str:
    """Return the --log-level given to `ticketing`, so that the stages log like the pipeline itself."""
    options = context.parent.params if context.parent is not None else {}
    return str(options.get("log_level") or "INFO").upper()


def register(app: typer.Typer) -> None:
    app.command(name="pipeline")(pipeline)
