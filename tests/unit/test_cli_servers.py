"""`require_servers`: the shared stop of a command whose server cannot be reached."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from ticketing.cli.servers import require_servers
from ticketing.settings import Settings


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


def command_raising(error: Exception, settings: Settings) -> typer.Typer:
    app = typer.Typer()

    @app.command()
    def work() -> None:
        with require_servers(settings, postgres=True):
            raise error

    app.command("noop")(lambda: None)
    return app


def settings_for(port: int) -> Settings:
    return dataclasses.replace(
        Settings(), database_url=f"postgresql://helpdesk:secret@127.0.0.1:{port}/helpdesk", connect_timeout_seconds=2.0
    )


def test_connection_lost_inside_block_exits_1(listening_port: int) -> None:
    settings = settings_for(listening_port)
    lost = RuntimeError("batch failed")
    lost.__cause__ = psycopg.OperationalError("consuming input failed: server closed the connection unexpectedly")

    result = CliRunner().invoke(command_raising(lost, settings), ["work"])

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"error: PostgreSQL at 127.0.0.1:{listening_port}/helpdesk rejected or dropped the connection: consuming input failed: "
        f"server closed the connection unexpectedly. Check the user, password and database name in "
        f"DATABASE_URL, and the server log."
    ]


def test_other_error_passes_through(listening_port: int) -> None:
    result = CliRunner().invoke(command_raising(ValueError("a bug"), settings_for(listening_port)), ["work"])

    assert isinstance(result.exception, ValueError)


def test_exit_inside_block_keeps_its_code(listening_port: int) -> None:
    exit_error = typer.Exit(code=3)
    exit_error.__cause__ = psycopg.OperationalError("connection failed")

    result = CliRunner().invoke(command_raising(exit_error, settings_for(listening_port)), ["work"])

    assert result.exit_code == 3
    assert result.output == ""
