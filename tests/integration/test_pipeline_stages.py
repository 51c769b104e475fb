"""The pipeline's child processes and its command line, without a full run on the real log."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPOSITORY
from ticketing.pipeline import ChildProcesses, StageFailed

# Upper bound of one `ticketing` command in these tests.
COMMAND_TIMEOUT_SECONDS = 60


def test_side_by_side_failure_names_group(capfd: pytest.CaptureFixture[str]) -> None:
    children = ChildProcesses("WARNING")

    with pytest.raises(StageFailed) as failure:
        children.run_side_by_side("consume", {"first": ["--help"], "second": ["consume", "no-such-group", "--help"],
                                              "third": ["consume", "no-such-group"]})

    assert failure.value.stage == "consume third"
    assert failure.value.returncode != 0
    printed = capfd.readouterr().out
    # Both successful processes printed their help, in group order.
    assert printed.index("Usage: python -m ticketing") < printed.index("Usage: python -m ticketing consume")


def test_child_command_carries_log_level() -> None:
    command = ChildProcesses("ERROR").command(["relay", "--once"])

    assert command[:3] == [sys.executable, "-m", "ticketing"]
    assert command[3:] == ["--log-level", "ERROR", "relay", "--once"]


def test_pipeline_rejects_missing_log(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "ticketing", "pipeline", str(tmp_path / "missing.csv")],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_SECONDS,
        check=False,
    )

    assert completed.returncode == 2
    assert "was not found" in completed.stderr
