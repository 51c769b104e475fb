"""The main job: import a helpdesk history and produce every report end to end.

The import, the relay, the consumer groups and the replays run as child processes of
the same `ticketing` subcommands a person would run. So the job exercises the real
processes, and it stops at the first stage that fails, with that stage's exit code. The
reports run in this process over one database connection, because each report is one
query and a child process per report cost more time than the queries.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import structlog

from projections.report_queries import PIVOT_REPORTS, Period, ReportFilters, ReportResult, cohort_pivot, run_report
from ticketing.cli.report import print_table, report_connection, write_csv
from ticketing.heatmap import plot_cohort_heatmap
from ticketing.importer.mapping import default_mapping_path, load_mapping
from ticketing.settings import Settings

GROUPS = ("reports", "retention", "notifications")
FIGURE_REPORTS = {"departments": "department", "agents": "agent", "channels": "channel"}
HEATMAPS = {
    "customer-cohorts": "Customer retention by month of first ticket",
    "agent-cohorts": "Agents still employed by hire month",
}
PIVOT_TITLES = {
    "customer-cohorts": "share of each cohort (customers by month of first ticket) that opened a ticket in month mN, in percent",
    "agent-cohorts": "share of each cohort (agents by hire month and employment) still employed at the end of month mN, in percent",
}
# Columns of the printed overview of a figures report. The CSV files keep every column.
OVERVIEW_COUNTS = ("opened", "resolved", "closed", "reopened", "backlog")
OVERVIEW_TIMES = (
    "first_response_median_seconds",
    "first_response_p90_seconds",
    "resolution_median_seconds",
    "resolution_p90_seconds",
)
SECONDS_PER_HOUR = 3600.0

log = structlog.get_logger(__name__)

T = TypeVar("T")


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

    def run(self, stage: str, action: Callable[[], T]) -> T:
        started = time.monotonic()
        log.info("stage started", stage=stage)
        # Child processes write to the same standard output, so text printed so far
        # must reach it before they start.
        sys.stdout.flush()
        result = action()
        sys.stdout.flush()
        self.seconds[stage] = time.monotonic() - started
        log.info("stage finished", stage=stage, seconds=round(self.seconds[stage], 2))
        return result


def run_pipeline(
    settings: Settings,
    log_file: Path,
    mapping: Path | None,
    output_dir: Path,
    *,
    verify_replays: bool = True,
    log_level: str = "INFO",
) -> StageTimer:
    """Run every stage in order and return their wall times. Raise StageFailed on the first failure.

    Without `verify_replays` the replay stage is left out, for a rerun over data that an
    earlier run verified. Child processes log at `log_level`.
    """
    timer = StageTimer()
    children = ChildProcesses(log_level)
    output_dir.mkdir(parents=True, exist_ok=True)

    import_arguments: Sequence[str] = ("import", str(log_file))
    if mapping is not None:
        import_arguments = (*import_arguments, "--mapping", str(mapping))

    timer.run("import", lambda: children.run("import", import_arguments))
    timer.run("relay", lambda: children.run("relay", ("relay", "--once")))
    # Each group is its own process, as in production, and they catch up side by side.
    timer.run(
        "consume",
        lambda: children.run_side_by_side("consume", {group: ["consume", group, "--until-caught-up"] for group in GROUPS}),
    )
    reports = timer.run("reports", lambda: _write_and_print_reports(settings, output_dir))
    plots = timer.run("heatmaps", lambda: _plot_heatmaps(reports.cohorts, output_dir))
    if verify_replays:
        timer.run("replay --verify", lambda: _verify_replays(children))

    _print_channel_note(mapping)
    print("\nfiles written:")
    for path in [*reports.written, *plots]:
        print(f"  {path}")
    return timer


# --- stages in child processes ----------------------------------------------------------


@dataclass(frozen=True)
class ChildProcesses:
    """Launcher of `ticketing` subcommands as child processes that log at `log_level`."""

    log_level: str

    def command(self, arguments: Sequence[str]) -> list[str]:
        return [sys.executable, "-m", "ticketing", "--log-level", self.log_level, *arguments]

    def run(self, stage: str, arguments: Sequence[str]) -> None:
        completed = subprocess.run(self.command(arguments), check=False)
        if completed.returncode != 0:
            raise StageFailed(stage, completed.returncode)

    def run_side_by_side(self, stage: str, arguments: dict[str, list[str]]) -> None:
        """Run one child process per group at once, then print each one's output in group order.

        The output goes to a temporary file per process rather than a pipe, so a process
        that prints a lot cannot block on a full pipe while another one is waited for.
        """
        with tempfile.TemporaryDirectory(prefix="pipeline-") as folder:
            outputs = {group: (Path(folder) / f"{group}.out").open("w+") for group in arguments}
            try:
                processes = {
                    group: subprocess.Popen(self.command(command), stdout=outputs[group])
                    for group, command in arguments.items()
                }
                returncodes = {group: process.wait() for group, process in processes.items()}
                for output in outputs.values():
                    output.seek(0)
                    sys.stdout.write(output.read())
            finally:
                for output in outputs.values():
                    output.close()

        for group, returncode in returncodes.items():
            if returncode != 0:
                raise StageFailed(f"{stage} {group}", returncode)


def _verify_replays(children: ChildProcesses) -> None:
    # Each replay rebuilds its own group into its own shadow schema, so the three can
    # run at once.
    children.run_side_by_side("replay", {group: ["replay", group, "--verify"] for group in GROUPS})
    print("\nreplay --verify: the rebuilt tables equal the live ones for " + ", ".join(GROUPS))


# --- reports in this process -------------------------------------------------------------


@dataclass
class WrittenReports:
    written: list[Path] = field(default_factory=list)
    cohorts: dict[str, ReportResult] = field(default_factory=dict)


def _write_and_print_reports(settings: Settings, output_dir: Path) -> WrittenReports:
    """Write every report as CSV and print the overviews: figures for the whole history, cohort pivots, summaries."""
    # The registry imports every projection module, and each registers its reports.
    import projections.registry  # noqa: F401

    reports = WrittenReports()
    with report_connection(settings) as conn:
        for name in FIGURE_REPORTS:
            daily = run_report(conn, settings, name, ReportFilters())
            reports.written.append(_write(output_dir / f"{name}.csv", daily))

            whole = run_report(conn, settings, name, ReportFilters(period=Period.all))
            reports.written.append(_write(output_dir / f"{name}-all.csv", whole))
            _print_overview(name, whole)

        for name in HEATMAPS:
            cohorts = run_report(conn, settings, name, ReportFilters())
            reports.written.append(_write(output_dir / f"{name}.csv", cohorts))
            reports.cohorts[name] = cohorts
            print()
            print_table(cohort_pivot(cohorts, PIVOT_REPORTS[name]), f"{name}: {PIVOT_TITLES[name]}")

        retention = run_report(conn, settings, "customer-retention", ReportFilters())
        reports.written.append(_write(output_dir / "customer-retention.csv", retention))
        print()
        print_table(customer_retention_by_year(retention), "customer retention rate (CRR) per year, complete months only")

        turnover = run_report(conn, settings, "agent-turnover", ReportFilters())
        reports.written.append(_write(output_dir / "agent-turnover.csv", turnover))
        print()
        print_table(agent_turnover_by_year(turnover), "agent turnover per year, complete months only")
    return reports


def _write(path: Path, result: ReportResult) -> Path:
    with path.open("w", encoding="utf-8", newline="") as stream:
        write_csv(result, stream)
    return path


def _print_overview(name: str, whole: ReportResult) -> None:
    overview = figures_overview(whole, FIGURE_REPORTS[name])
    rows = _dicts(whole)
    span = ""
    if rows:
        span = f", {min(row['period_start'] for row in rows)} to {max(row['period_end'] for row in rows)}"
    print()
    print_table(overview, f"{name}{span} (--period all, times in hours): {len(overview.rows)} row(s)")


def figures_overview(whole: ReportResult, dimension: str) -> ReportResult:
    """Return the key, the counts and the median and p90 times in hours of a figures report.

    Agents are shown by name, and work on tickets without an assigned agent as "(no agent)".
    """
    position = {column: index for index, column in enumerate(whole.columns)}
    key_column = "agent_name" if dimension == "agent" else dimension
    rows = []
    for row in whole.rows:
        key = row[position[key_column]]
        if dimension == "agent" and row[position["agent_id"]] is None:
            key = "(no agent)"
        counts = [row[position[column]] for column in OVERVIEW_COUNTS]
        hours = [_hours(row[position[column]]) for column in OVERVIEW_TIMES]
        rows.append((key, *counts, *hours))
    rows.sort(key=lambda values: _natural_key(str(values[0])))
    columns = [key_column, *OVERVIEW_COUNTS, *(column.replace("_seconds", "_hours") for column in OVERVIEW_TIMES)]
    return ReportResult(columns=columns, rows=rows)


def _natural_key(text: str) -> list[str | int]:
    """Return a sort key that orders "Value 2" before "Value 10"."""
    # re.split with a group alternates text and digits, so equal positions have equal types.
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def _hours(seconds: float | None) -> float | None:
    return None if seconds is None else seconds / SECONDS_PER_HOUR


def customer_retention_by_year(retention: ReportResult) -> ReportResult:
    """Summarize the monthly CRR per calendar year: its mean, minimum and maximum, and the customers gained.

    The mean is the plain mean of the monthly rates and not a yearly rate, because a
    yearly CRR needs the customers active at the year's start and end, which monthly
    rows lack.
    """
    years: dict[int, list[dict[str, Any]]] = {}
    for row in _dicts(retention):
        if row["complete"]:
            years.setdefault(row["month"].year, []).append(row)

    rows = []
    for year, months in sorted(years.items()):
        rates = [month["retention_rate_percent"] for month in months if month["retention_rate_percent"] is not None]
        rows.append(
            (
                year,
                len(months),
                sum(rates) / len(rates) if rates else None,
                min(rates, default=None),
                max(rates, default=None),
                sum(month["new_customers"] for month in months),
                sum(month["reactivated_customers"] for month in months),
            )
        )
    columns = [
        "year",
        "months",
        "mean_monthly_crr_percent",
        "min_monthly_crr_percent",
        "max_monthly_crr_percent",
        "new_customers",
        "reactivated_customers",
    ]
    return ReportResult(columns=columns, rows=rows)


def agent_turnover_by_year(turnover: ReportResult) -> ReportResult:
    """Summarize agent turnover per calendar year and employment kind.

    The yearly rate is the year's leavers divided by the mean of the headcounts at the
    start of its first and the end of its last complete month, the same formula as the
    monthly rate. Kinds without any agent in a year are left out.
    """
    years: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for row in _dicts(turnover):
        if row["complete"]:
            years.setdefault((row["month"].year, row["employment"]), []).append(row)

    rows = []
    for (year, employment), months in sorted(years.items()):
        start = months[0]["headcount_start"]
        end = months[-1]["headcount_end"]
        hires = sum(month["hires"] for month in months)
        if start == end == hires == 0:
            continue
        leavers = sum(month["leavers"] for month in months)
        average = (start + end) / 2
        rows.append(
            (
                year,
                employment,
                start,
                end,
                hires,
                leavers,
                sum(month["planned_ends"] for month in months),
                100 * leavers / average if average else None,
            )
        )
    columns = [
        "year",
        "employment",
        "headcount_start",
        "headcount_end",
        "hires",
        "leavers",
        "planned_ends",
        "turnover_percent",
    ]
    return ReportResult(columns=columns, rows=rows)


def _dicts(result: ReportResult) -> list[dict[str, Any]]:
    return [dict(zip(result.columns, row)) for row in result.rows]


def _plot_heatmaps(cohorts: dict[str, ReportResult], output_dir: Path) -> list[Path]:
    written = []
    for name, title in HEATMAPS.items():
        path = plot_cohort_heatmap(
            _dicts(cohorts[name]),
            output_dir / f"{name}.png",
            title=title,
            cohort_column="cohort",
            offset_column="month_offset",
            share_column="share",
        )
        written.append(path)
    return written


def _print_channel_note(mapping: Path | None) -> None:
    # Import mappings have no channel column, so every ticket gets the mapping's default.
    channel = load_mapping(mapping or default_mapping_path()).channel
    print(
        f"\nnote: the log has no channel column, so every imported ticket has the channel "
        f"'{channel.value}' that the mapping sets (defaults.channel)."
    )
