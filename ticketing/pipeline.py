"""The main job: import a helpdesk history and produce every report end to end.

Each stage runs the same `ticketing` subcommand a person would run, as a child process,
so the job exercises the real processes (relay, consumer groups, replay) and stops at
the first stage that fails, with that stage's exit code.
"""

from __future__ import annotations

import csv
import io
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from ticketing.heatmap import plot_cohort_heatmap

GROUPS = ("reports", "retention", "notifications")
PRINTED_REPORTS = ("departments", "agents", "channels", "customer-cohorts", "agent-cohorts")
HEATMAPS = {
    "customer-cohorts": "Customer retention by month of first ticket",
    "agent-cohorts": "Agents still employed by hire month",
}

log = structlog.get_logger(__name__)


class StageFailed(RuntimeError):
    """A stage's process exited with a non-zero code."""

    def __init__(self, stage: str, returncode: int) -> None:
        super().__init__(f"stage '{stage}' failed with exit code {returncode}; its output is above")
        self.stage = stage
        self.returncode = returncode


@dataclass
class StageTimer:
    """Wall time of each stage, in the order the stages ran."""

    seconds: dict[str, float] = field(default_factory=dict)

    def run(self, stage: str, action) -> object:
        started = time.monotonic()
        log.info("stage started", stage=stage)
        result = action()
        self.seconds[stage] = time.monotonic() - started
        log.info("stage finished", stage=stage, seconds=round(self.seconds[stage], 2))
        return result


def ticketing_command(*arguments: str) -> list[str]:
    return [sys.executable, "-m", "ticketing", *arguments]


def _run(stage: str, *arguments: str, capture: bool = False) -> str:
    completed = subprocess.run(
        ticketing_command(*arguments),
        stdout=subprocess.PIPE if capture else None,
        text=True,
        check=False,
    )
    if completed.returncode != 0:
        raise StageFailed(stage, completed.returncode)
    return completed.stdout or ""


def _consume_all_groups() -> None:
    # Each group is its own process, as in production; they catch up side by side.
    processes = {
        group: subprocess.Popen(ticketing_command("consume", group, "--until-caught-up"))
        for group in GROUPS
    }
    failed = {group: process.wait() for group, process in processes.items()}
    for group, returncode in failed.items():
        if returncode != 0:
            raise StageFailed(f"consume {group}", returncode)


def _write_reports(output_dir: Path) -> list[Path]:
    written = []
    for name in PRINTED_REPORTS:
        print(f"\n== {name} ==", flush=True)
        _run(f"report {name}", "report", name, "--format", "table")

        path = output_dir / f"{name}.csv"
        path.write_text(_run(f"report {name} csv", "report", name, "--format", "csv", capture=True))
        written.append(path)
    return written


def _plot_heatmaps(output_dir: Path) -> list[Path]:
    written = []
    for name, title in HEATMAPS.items():
        rows = list(csv.DictReader(io.StringIO((output_dir / f"{name}.csv").read_text())))
        path = plot_cohort_heatmap(
            rows,
            output_dir / f"{name}.png",
            title=title,
            cohort_column="cohort",
            offset_column="month_offset",
            share_column="share",
        )
        written.append(path)
    return written


def _verify_replays() -> None:
    for group in GROUPS:
        _run(f"replay {group}", "replay", group, "--verify")
    print("\nreplay --verify: the rebuilt tables equal the live ones for " + ", ".join(GROUPS))


def run_pipeline(log_file: Path, mapping: Path | None, output_dir: Path) -> StageTimer:
    """Run every stage in order and return their wall times; raise StageFailed on the first failure."""
    timer = StageTimer()
    output_dir.mkdir(parents=True, exist_ok=True)

    import_arguments: Sequence[str] = ("import", str(log_file))
    if mapping is not None:
        import_arguments = (*import_arguments, "--mapping", str(mapping))

    timer.run("import", lambda: _run("import", *import_arguments))
    timer.run("relay", lambda: _run("relay", "relay", "--once"))
    timer.run("consume", _consume_all_groups)
    written = timer.run("reports", lambda: _write_reports(output_dir))
    plots = timer.run("heatmaps", lambda: _plot_heatmaps(output_dir))
    timer.run("replay --verify", _verify_replays)

    print("\nfiles written:")
    for path in [*written, *plots]:
        print(f"  {path}")
    return timer
