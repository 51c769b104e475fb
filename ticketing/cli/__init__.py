"""The `ticketing` command.

Each module in this package adds its subcommands through `register(app)`, so a new
capability plugs in without editing this file.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from enum import StrEnum

import typer

from ticketing import logs
from ticketing.settings import ConfigError

app = typer.Typer(
    name="ticketing",
    help="Event-sourced helpdesk backend: event store, Kafka relay, projections and reports.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _register_commands() -> None:
    for module_info in sorted(pkgutil.iter_modules(__path__), key=lambda info: info.name):
        module = importlib.import_module(f"{__name__}.{module_info.name}")
        register = getattr(module, "register", None)
        if register is not None:
            register(app)


class LogLevel(StrEnum):
    DEBUG = "DEBUG"
    INFO = "INFO"
    WARNING = "WARNING"
    ERROR = "ERROR"
    CRITICAL = "CRITICAL"


@app.callback()
def _configure_logging(
    log_level: LogLevel = typer.Option(
        LogLevel.INFO,
        case_sensitive=False,
        help="Lowest level of the log lines printed on standard error, in any letter case.",
    ),
) -> None:
    logs.configure(log_level.value)


def main() -> None:
    """Run the command line; turn configuration errors into a message and exit code 2."""
    _register_commands()
    try:
        app()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)
