"""Options and help texts of the `ticketing` command that need no server."""

from __future__ import annotations

from functools import cache

import typer
from typer.testing import CliRunner

from projections.registry import PROJECTIONS
from ticketing.cli import LogLevel, app as ticketing_app, _register_commands
from ticketing.cli.consume import GroupName
from ticketing.stream.relay import RelayOptions


@cache
def full_app() -> typer.Typer:
    """Return the `ticketing` app with every subcommand, registered once per test session."""
    _register_commands()
    return ticketing_app


def test_unknown_log_level_exits_2() -> None:
    result = CliRunner().invoke(full_app(), ["--log-level", "foo", "check"])

    assert result.exit_code == 2
    assert "'foo'" in result.output
    for level in ("debug", "info", "warning", "error"):
        assert f"'{level}'" in result.output
    assert "Traceback" not in result.output


def test_log_level_any_letter_case() -> None:
    result = CliRunner().invoke(full_app(), ["--log-level", "wArNiNg", "schemas", "--help"])

    assert result.exit_code == 0, result.output


def test_log_levels_are_structlog_levels() -> None:
    assert [level.value for level in LogLevel] == ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]


def test_group_names_match_registry() -> None:
    assert {group.value for group in GroupName} == set(PROJECTIONS)


def test_group_commands_help_lists_groups() -> None:
    for command in ("consume", "replay", "status"):
        result = CliRunner().invoke(full_app(), [command, "--help"], env={"COLUMNS": "250"})

        assert result.exit_code == 0, result.output
        assert "reports, retention or notifications" in result.output, command


def test_unknown_group_exits_2() -> None:
    result = CliRunner().invoke(full_app(), ["consume", "report"])

    assert result.exit_code == 2
    assert "'report'" in result.output
    assert "notifications" in result.output


def test_relay_help_gives_grace_period() -> None:
    result = CliRunner().invoke(full_app(), ["relay", "--help"], env={"COLUMNS": "250"})

    grace = RelayOptions().shutdown_grace_seconds
    assert f"grace period of {grace:g} s" in result.output
    assert "short grace period" not in result.output


def test_history_as_of_help_in_plain_words() -> None:
    result = CliRunner().invoke(full_app(), ["history", "ticket", "--help"], env={"COLUMNS": "250"})

    assert "business time" not in result.output
    assert "ISO 8601" not in result.output
    assert "2024-05-01 for midnight UTC" in result.output
    assert "when each event happened" in result.output


def test_dispatch_once_help_drains() -> None:
    result = CliRunner().invoke(full_app(), ["notify", "dispatch", "--help"], env={"COLUMNS": "250"})

    assert "Send every message that is due now" in result.output
