"""The cohort pivot layout and the pipeline's overviews, on report rows written by hand."""

from __future__ import annotations

from datetime import date

import pytest

from projections.report_queries import ReportResult, cohort_pivot
from ticketing.pipeline import agent_turnover_by_year, customer_retention_by_year, figures_overview

COHORT_COLUMNS = ["cohort", "cohort_month", "month_offset", "month", "cohort_customers", "active_customers",
                  "share", "active_share_percent", "complete"]


def cohort_row(cohort: str, offset: int, size: int, active: int, complete: bool = True) -> tuple:
    share = active / size
    return (cohort, None, offset, None, size, active, share, round(share * 100, 2), complete)


def test_pivot_has_one_row_per_cohort() -> None:
    long = ReportResult(
        columns=COHORT_COLUMNS,
        rows=[
            cohort_row("2013-11", 0, 3, 3),
            cohort_row("2013-11", 1, 3, 1),
            cohort_row("2013-11", 2, 3, 0, complete=False),
            cohort_row("2013-12", 0, 4, 4),
            cohort_row("2013-12", 1, 4, 1, complete=False),
        ],
    )

    pivot = cohort_pivot(long, "cohort_customers", max_offset=3)

    assert pivot.columns == ["cohort", "cohort_customers", "m0", "m1", "m2", "m3"]
    assert pivot.rows[0] == ("2013-11", 3, 100.0, 33.33, None, None)
    # An incomplete month can still grow, so its cell stays empty.
    assert pivot.rows[1] == ("2013-12", 4, 100.0, None, None, None)


def test_pivot_stops_at_max_offset() -> None:
    long = ReportResult(columns=COHORT_COLUMNS, rows=[cohort_row("2010-01", offset, 2, 1) for offset in range(20)])

    pivot = cohort_pivot(long, "cohort_customers")

    assert pivot.columns[-1] == "m12"
    assert pivot.rows == [("2010-01", 2, *([50.0] * 13))]


def test_pivot_of_no_rows_is_empty() -> None:
    assert cohort_pivot(ReportResult(columns=[], rows=[]), "hired").rows == []


FIGURE_COLUMNS = ["period_start", "period_end", "agent_id", "agent_name", "temporary", "opened", "resolved", "closed",
                  "reopened", "backlog", "first_response_median_seconds", "first_response_p90_seconds",
                  "resolution_median_seconds", "resolution_p90_seconds"]


def test_overview_shows_agents_by_name_in_hours() -> None:
    start, end = date(2010, 1, 13), date(2014, 1, 3)
    whole = ReportResult(
        columns=FIGURE_COLUMNS,
        rows=[
            (start, end, None, None, False, 9, 1, 1, 0, 2, None, None, 7200.0, 7200.0),
            (start, end, "id-10", "Value 10", False, 0, 3, 2, 1, 0, 1800.0, 3600.0, 36000.0, 72000.0),
            (start, end, "id-2", "Value 2", False, 0, 5, 5, 0, 1, 0.0, 900.0, None, None),
        ],
    )

    overview = figures_overview(whole, "agent")

    assert overview.columns == ["agent_name", "opened", "resolved", "closed", "reopened", "backlog",
                                "first_response_median_hours", "first_response_p90_hours",
                                "resolution_median_hours", "resolution_p90_hours"]
    assert [row[0] for row in overview.rows] == ["(no agent)", "Value 2", "Value 10"]
    assert overview.rows[2] == ("Value 10", 0, 3, 2, 1, 0, 0.5, 1.0, 10.0, 20.0)
    assert overview.rows[1][-2:] == (None, None)


RETENTION_COLUMNS = ["month", "active_at_start", "active_at_end", "new_customers", "reactivated_customers",
                     "retained_customers", "retention_rate_percent", "complete"]


def test_retention_summary_uses_complete_months() -> None:
    retention = ReportResult(
        columns=RETENTION_COLUMNS,
        rows=[
            (date(2010, 1, 1), 0, 5, 5, 0, 0, None, True),
            (date(2010, 2, 1), 5, 6, 2, 1, 3, 60.0, True),
            (date(2010, 3, 1), 6, 6, 1, 0, 5, 80.0, True),
            (date(2011, 1, 1), 6, 4, 0, 0, 4, 50.0, False),
        ],
    )

    summary = customer_retention_by_year(retention)

    assert summary.rows == [(2010, 3, 70.0, 60.0, 80.0, 8, 1)]


TURNOVER_COLUMNS = ["month", "employment", "headcount_start", "headcount_end", "average_headcount", "hires",
                    "leavers", "planned_ends", "turnover_rate_percent", "complete"]


def test_turnover_summary_is_leavers_over_mean_headcount() -> None:
    turnover = ReportResult(
        columns=TURNOVER_COLUMNS,
        rows=[
            (date(2012, 1, 1), "regular", 10, 11, 10.5, 2, 1, 0, 9.52, True),
            (date(2012, 1, 1), "temporary", 0, 0, 0.0, 0, 0, 0, None, True),
            (date(2012, 2, 1), "regular", 11, 12, 11.5, 2, 1, 0, 8.7, True),
            (date(2012, 2, 1), "temporary", 0, 0, 0.0, 0, 0, 0, None, True),
            (date(2012, 3, 1), "regular", 12, 0, 6.0, 0, 12, 0, 200.0, False),
        ],
    )

    summary = agent_turnover_by_year(turnover)

    assert len(summary.rows) == 1
    year, employment, start, end, hires, leavers, planned, percent = summary.rows[0]
    assert (year, employment, start, end, hires, leavers, planned) == (2012, "regular", 10, 12, 4, 2, 0)
    assert percent == pytest.approx(100 * 2 / 11)
