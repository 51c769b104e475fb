"""Expected report figures per week, month or whole range, computed from the events in plain Python.

`tests/integration/test_report_periods.py` compares `ticketing report ... --period` with
these functions. Counts and the backlog come from the daily figures of
test_reports_expected (counts add up over days, and the backlog of a period is the
backlog of its last day). Means, medians and p90 are computed here again from each
ticket's events, over all values of the period at once, because a median of daily
medians is not the period's median. The tests at the bottom check the functions on a
history small enough to compute by hand.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import date, datetime, timedelta
from typing import Any

import pytest

from tests.unit.test_reports_expected import (
    History,
    _hand_history,
    _key,
    _replay,
    build_scenario,
    day_of,
    expected_agent_time,
    expected_daily,
    percentile_cont,
)

PERIODS = ("day", "week", "month", "all")

ADDITIVE = (
    "opened",
    "resolved",
    "closed",
    "reopened",
    "first_response_count",
    "resolution_count",
    "one_touch_resolutions",
    "callbacks_requested",
    "callbacks_completed",
    "callbacks_missed",
    "ratings",
)

# The second part of the two-month history starts this many days after the first, on
# Saturday 2024-06-01, so its days fall in two weeks and in another month.
SHIFT_DAYS = 26

Slot = tuple[date, date, Any]


# ---------------------------------------------------------------------------
# A history over several weeks and two months


def two_month_history() -> History:
    """Return the generated scenario of May 2024 and a second one shifted to June.

    Tickets of the first part that stay open are in the backlog of every later week,
    also of weeks without any event.
    """
    history = build_scenario()
    shifted_copy(build_scenario(seed=12), history, days=SHIFT_DAYS, tag="june")
    return history


def shifted_copy(source: History, target: History, *, days: int, tag: str) -> None:
    """Emit every event of `source` into `target`, `days` later and under new aggregate ids.

    References to the source's aggregates (customer and agent ids in ticket events) get
    the new ids, and dates and times in fields move with the events.
    """
    delta = timedelta(days=days)
    known = {event.aggregate_id for event in source.events}
    renamed: dict[str, str] = {}

    def rename(aggregate_id: str) -> str:
        return renamed.setdefault(aggregate_id, str(uuid.uuid5(uuid.NAMESPACE_URL, f"{tag}/{aggregate_id}")))

    def shift(value: Any) -> Any:
        if isinstance(value, (datetime, date)):
            return value + delta
        if isinstance(value, str) and value in known:
            return rename(value)
        if isinstance(value, list):
            return [shift(item) for item in value]
        return value

    # Source events are in emission order, which keeps each aggregate's version order.
    for event in source.events:
        target.emit(
            event.aggregate_type,
            rename(event.aggregate_id),
            event.event_type.split(".", 1)[1],
            event.occurred_at + delta,
            **{name: shift(value) for name, value in event.fields.items()},
        )


# ---------------------------------------------------------------------------
# Expected figures per period


def period_key(day: date, period: str) -> date | None:
    """Return the first calendar day of the period that contains `day`, or None for "all"."""
    if period == "day":
        return day
    if period == "week":
        return day - timedelta(days=day.weekday())
    if period == "month":
        return day.replace(day=1)
    return None


def days_between(first: date, last: date) -> list[date]:
    return [first + timedelta(days=offset) for offset in range((last - first).days + 1)]


def in_range(day: date, date_from: date | None, date_to: date | None) -> bool:
    return (date_from is None or day >= date_from) and (date_to is None or day <= date_to)


def period_spans(days: list[date], period: str) -> dict[date, tuple[date, date]]:
    """Return, for each day, the first and last of `days` in its period."""
    groups: dict[date | None, list[date]] = defaultdict(list)
    for day in days:
        groups[period_key(day, period)].append(day)
    return {day: (min(members), max(members)) for members in groups.values() for day in members}


def report_days(
    history: History, department: str | None, date_from: date | None, date_to: date | None
) -> list[date]:
    """Return the days a figures report covers: first counted ticket event to the clock, inside the range."""
    first = min(
        day_of(event.occurred_at)
        for events in _tickets(history).values()
        for index, event in enumerate(events)
        if department is None or _state_after(events, index).department == department
    )
    # The group's clock is the latest event of any aggregate.
    last = max(day_of(event.occurred_at) for event in history.events)
    return [day for day in days_between(first, last) if in_range(day, date_from, date_to)]


def measured_values(history: History, dimension: str, department: str | None = None) -> dict[str, list[tuple[date, Any, float]]]:
    """Return every first response time, final resolution time and latest rating as (day, key, value).

    The definitions are those of docs/projections.md: the first public reply counts for
    its writer, the final resolution and the latest rating for the agent assigned then,
    and with `department` only values of tickets in that department at the time count.
    """
    values: dict[str, list[tuple[date, Any, float]]] = defaultdict(list)
    for events in _tickets(history).values():
        opened_at = events[0].occurred_at
        replied = False
        final_resolution: tuple[date, Any, float] | None = None
        final_counted = False
        latest_rating: tuple[date, Any, float] | None = None
        rating_counted = False
        for index, event in enumerate(events):
            name = event.event_type.split(".", 1)[1]
            state = _state_after(events, index)
            counted = department is None or state.department == department
            day = day_of(event.occurred_at)
            if name == "AgentReplied" and event.fields["visibility"] == "public":
                if not replied and counted:
                    key = _key(dimension, state, event.fields["agent_id"])
                    values["first_response"].append((day, key, (event.occurred_at - opened_at).total_seconds()))
                replied = True
            elif name == "Resolved":
                final_resolution = (day, _key(dimension, state), (event.occurred_at - opened_at).total_seconds())
                final_counted = counted
            elif name == "Reopened":
                final_resolution = None
            elif name == "SatisfactionRated":
                latest_rating = (day, _key(dimension, state), float(event.fields["score"]))
                rating_counted = counted
        if final_resolution is not None and final_counted:
            values["resolution"].append(final_resolution)
        if latest_rating is not None and rating_counted:
            values["rating"].append(latest_rating)
    return values


def expected_periods(
    history: History,
    dimension: str,
    period: str,
    *,
    date_from: date | None = None,
    date_to: date | None = None,
    department: str | None = None,
) -> dict[Slot, dict[str, Any]]:
    """Return the figures per (period_start, period_end, key) as `ticketing report --period` defines them."""
    spans = period_spans(report_days(history, department, date_from, date_to), period)
    daily = expected_daily(history, dimension, department)
    figures: dict[Slot, dict[str, Any]] = defaultdict(lambda: defaultdict(int))

    for (day, key), values in daily.items():
        if day not in spans:
            continue
        row = figures[(*spans[day], key)]
        for column in ADDITIVE:
            row[column] += values.get(column, 0)
        # The backlog of a period is the one at the end of its last day.
        if day == spans[day][1]:
            row["backlog"] = values.get("backlog", 0)

    grouped: dict[tuple[str, Slot], list[float]] = defaultdict(list)
    for measure, entries in measured_values(history, dimension, department).items():
        for day, key, value in entries:
            if day in spans:
                grouped[(measure, (*spans[day], key))].append(value)
    for (measure, slot), values in grouped.items():
        row = figures[slot]
        if measure == "rating":
            row["average_rating"] = sum(values) / len(values)
            continue
        row[f"{measure}_mean_seconds"] = sum(values) / len(values)
        row[f"{measure}_median_seconds"] = percentile_cont(values, 0.5)
        row[f"{measure}_p90_seconds"] = percentile_cont(values, 0.9)

    return {
        slot: dict(row)
        for slot, row in figures.items()
        if row.get("backlog", 0) != 0 or any(row.get(column, 0) > 0 for column in ADDITIVE)
    }


def expected_agent_time_periods(
    history: History, period: str, *, date_from: date | None = None, date_to: date | None = None
) -> dict[Slot, dict[str, float]]:
    """Return agent time per (period_start, period_end, agent): sums of the daily seconds.

    A period runs from the first to the last day in it on which any agent has time.
    """
    daily = {
        (day, agent): values
        for (day, agent), values in expected_agent_time(history).items()
        if in_range(day, date_from, date_to)
    }
    spans = period_spans(sorted({day for day, _ in daily}), period)
    totals: dict[Slot, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    for (day, agent), values in daily.items():
        for column, seconds in values.items():
            totals[(*spans[day], agent)][column] += seconds
    return {slot: dict(values) for slot, values in totals.items()}


def _tickets(history: History) -> dict[str, list[Any]]:
    return {aggregate: events for aggregate, events in history.by_aggregate().items() if events[0].aggregate_type == "Ticket"}


def _state_after(events: list[Any], index: int) -> Any:
    state = _replay(events[: index + 1])
    assert state is not None
    return state


# ---------------------------------------------------------------------------
# The expected figures on a history small enough to compute by hand


def only(figures: dict[Slot, dict[str, Any]], key: str) -> tuple[Slot, dict[str, Any]]:
    """Return the single row of `key`, failing when there is not exactly one."""
    rows = [(slot, row) for slot, row in figures.items() if slot[2] == key]
    assert len(rows) == 1, f"expected one row for {key}, got {rows}"
    return rows[0]


def test_whole_range_by_hand() -> None:
    (start, end, _), row = only(expected_periods(_hand_history(), "department", "all"), "billing")

    assert (start, end) == (date(2024, 1, 1), date(2024, 1, 2))
    assert row["opened"] == 2
    assert row["resolved"] == 2
    assert row["reopened"] == 1
    assert row["first_response_count"] == 2
    assert row["first_response_median_seconds"] == (1800 + 3600) / 2
    assert row["first_response_p90_seconds"] == 1800 + 0.9 * 1800
    assert row["resolution_count"] == 1
    assert row["resolution_median_seconds"] == 27 * 3600
    assert row["backlog"] == 1


def test_range_cut_keeps_backlog_by_hand() -> None:
    figures = expected_periods(_hand_history(), "department", "week", date_from=date(2024, 1, 2))
    (start, end, _), row = only(figures, "billing")

    assert (start, end) == (date(2024, 1, 2), date(2024, 1, 2))
    assert row["opened"] == 0
    assert row["reopened"] == 1
    assert row["first_response_count"] == 0
    assert row["resolution_count"] == 1
    # Ticket t2 was opened the day before the range and is still in the backlog.
    assert row["backlog"] == 1


def test_period_key_weeks_start_on_monday() -> None:
    assert period_key(date(2024, 6, 2), "week") == date(2024, 5, 27)
    assert period_key(date(2024, 6, 3), "week") == date(2024, 6, 3)
    assert period_key(date(2024, 6, 3), "month") == date(2024, 6, 1)
    assert period_key(date(2024, 6, 3), "all") is None


def test_two_month_history_spans_weeks_and_months() -> None:
    history = two_month_history()
    days = {day_of(event.occurred_at) for event in history.events if event.aggregate_type == "Ticket"}

    assert len({period_key(day, "week") for day in days}) >= 3
    assert {period_key(day, "month") for day in days} == {date(2024, 5, 1), date(2024, 6, 1)}
    for events in history.by_aggregate().values():
        times = [event.occurred_at for event in events]
        assert times == sorted(times)


def test_period_medians_differ_from_daily_medians() -> None:
    # The period checks are only meaningful if a period's median differs from the mean
    # of its daily medians, so the scenario must contain such a week.
    history = two_month_history()
    weekly = expected_periods(history, "department", "week")
    daily = expected_daily(history, "department")

    differing = 0
    for (start, end, key), row in weekly.items():
        medians = [
            values["resolution_median_seconds"]
            for (day, daily_key), values in daily.items()
            if daily_key == key and start <= day <= end and "resolution_median_seconds" in values
        ]
        if len(medians) > 1 and row["resolution_median_seconds"] != pytest.approx(sum(medians) / len(medians)):
            differing += 1
    assert differing > 0


def test_agent_time_whole_range_by_hand() -> None:
    figures = expected_agent_time_periods(_hand_history(), "all")

    assert list(figures) == [(date(2024, 1, 1), date(2024, 1, 2), "agent-a")]
    row = figures[(date(2024, 1, 1), date(2024, 1, 2), "agent-a")]
    assert row["online_seconds"] == 3 * 3600
    assert row["paused_lunch_seconds"] == 1.5 * 3600
    assert row["work_seconds"] == 1.5 * 3600
