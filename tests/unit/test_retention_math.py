"""Calendar and rate arithmetic of the retention reports."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from projections.retention_queries import (
    add_months,
    customer_retention_rate,
    month_end,
    month_offset,
    month_start,
    ratio,
    turnover_rate,
)


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2024, 1, 31, 23, 59, tzinfo=timezone.utc), date(2024, 1, 1)),
        (datetime(2024, 2, 1, 0, 30, tzinfo=timezone(timedelta(hours=2))), date(2024, 1, 1)),
        (date(2024, 2, 29), date(2024, 2, 1)),
    ],
)
def test_month_start_in_utc(moment: datetime | date, expected: date) -> None:
    assert month_start(moment) == expected


def test_month_start_rejects_naive() -> None:
    with pytest.raises(ValueError, match="naive"):
        month_start(datetime(2024, 1, 1))


@pytest.mark.parametrize(
    ("month", "count", "expected"),
    [
        (date(2024, 1, 1), 0, date(2024, 1, 1)),
        (date(2024, 11, 15), 1, date(2024, 12, 1)),
        (date(2024, 12, 1), 1, date(2025, 1, 1)),
        (date(2024, 1, 1), 25, date(2026, 2, 1)),
        (date(2024, 1, 1), -1, date(2023, 12, 1)),
    ],
)
def test_add_months(month: date, count: int, expected: date) -> None:
    assert add_months(month, count) == expected


@pytest.mark.parametrize(
    ("cohort", "month", "expected"),
    [
        (date(2024, 1, 1), date(2024, 1, 1), 0),
        (date(2024, 11, 1), date(2025, 2, 1), 3),
        (date(2023, 12, 1), date(2025, 12, 1), 24),
    ],
)
def test_month_offset(cohort: date, month: date, expected: int) -> None:
    assert month_offset(cohort, month) == expected


def test_month_end_is_next_month_start() -> None:
    assert month_end(date(2024, 12, 1)) == datetime(2025, 1, 1, tzinfo=timezone.utc)
    assert month_end(date(2024, 2, 10)) == datetime(2024, 3, 1, tzinfo=timezone.utc)


def test_ratio_rounds_and_handles_zero() -> None:
    assert ratio(1, 3) == 0.3333
    assert ratio(2, 2) == 1.0
    assert ratio(0, 0) is None


def test_customer_retention_rate() -> None:
    # 10 active at the start, 12 at the end, of whom 4 joined during the month:
    # 8 of the 10 stayed.
    assert customer_retention_rate(10, 12, 4) == 0.8
    assert customer_retention_rate(0, 3, 3) is None


def test_turnover_rate_uses_mean_headcount() -> None:
    # 2 leavers over an average headcount of (10 + 6) / 2 = 8.
    assert turnover_rate(2, 10, 6) == 0.25
    assert turnover_rate(1, 0, 1) == 2.0
    assert turnover_rate(0, 0, 0) is None
