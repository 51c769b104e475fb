"""`ticketing notify check-rules` on good and bad files."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from ticketing.cli import notify


def app() -> typer.Typer:
    root = typer.Typer()
    root.callback()(lambda: None)
    notify.register(root)
    return root


def test_check_rules_lists_shipped_rules(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFICATION_RULES", raising=False)

    result = CliRunner().invoke(app(), ["notify", "check-rules"])

    assert result.exit_code == 0, result.output
    assert "first-response-overdue" in result.output
    assert "deadline first_response" in result.output
    assert "6 rules are valid" in result.output


def test_check_rules_reports_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "rules:\n"
        "  - name: late\n"
        "    trigger: {deadline: first_response, after: 4 hours}\n"
        "    channel: slack\n"
        "    recipients: [department]\n"
        "    template: {text: late}\n",
        encoding="utf-8",
    )

    result = CliRunner().invoke(app(), ["notify", "check-rules", str(path)])

    assert result.exit_code == 2
    assert f"invalid notification rules in {path}" in result.output
    assert "rule 'late', field 'trigger.after': '4 hours' is not a duration" in result.output


def test_check_rules_uses_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NOTIFICATION_RULES", str(tmp_path / "missing.yaml"))

    result = CliRunner().invoke(app(), ["notify", "check-rules"])

    assert result.exit_code == 2
    assert "missing.yaml" in result.output
    assert "the file does not exist" in result.output


def test_check_rules_names_missing_argument(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFICATION_RULES", raising=False)
    path = tmp_path / "nonexist.yaml"

    result = CliRunner().invoke(app(), ["notify", "check-rules", str(path)])

    assert result.exit_code == 2
    assert str(path) in result.output
    assert "the file given as PATH does not exist" in result.output
    assert "field 'NOTIFICATION_RULES'" not in result.output
