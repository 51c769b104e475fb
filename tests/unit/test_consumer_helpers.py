"""Pure helpers of the consumer machinery: lag, dead-letter headers, records and settings."""

from __future__ import annotations

from collections import namedtuple
from datetime import date

import pytest

from consumers.batch import Delivery
from consumers.dead_letters import DeadLetter
from consumers.lag import partition_lag
from consumers.runner import GroupRunner, RunOptions
from projections.report_queries import ReportFilters, register_report
from projections.reports import PROJECTION
from ticketing.settings import ConfigError, Settings

Record = namedtuple("Record", "topic partition offset key value headers")


@pytest.mark.parametrize(
    ("stored", "beginning", "end", "lag"),
    [(None, 0, 10, 10), (None, 4, 10, 6), (7, 0, 10, 3), (10, 0, 10, 0), (12, 0, 10, 0), (None, 5, 5, 0)],
)
def test_partition_lag(stored: int | None, beginning: int, end: int, lag: int) -> None:
    assert partition_lag(stored, beginning, end) == lag


def test_dead_letter_headers_follow_original_headers() -> None:
    letter = DeadLetter(
        group="reports", topic="helpdesk.tickets", partition=2, offset=41, key=b"k", value=b"v",
        headers=(("event-type", b"Ticket.Opened"),), stage="decode", error_type="DecodeError", error="bad marker",
    )

    headers = letter.kafka_headers()

    assert headers[0] == ("event-type", b"Ticket.Opened")
    assert dict(headers) == {
        "event-type": b"Ticket.Opened",
        "dead-letter-error": b"bad marker",
        "dead-letter-error-type": b"DecodeError",
        "dead-letter-stage": b"decode",
        "dead-letter-group": b"reports",
        "dead-letter-topic": b"helpdesk.tickets",
        "dead-letter-partition": b"2",
        "dead-letter-offset": b"41",
    }
    assert letter.error_summary == "DecodeError: bad marker"


def test_dead_letter_error_is_truncated() -> None:
    letter = DeadLetter("g", "t", 0, 0, None, None, (), "apply", "ValueError", "x" * 5000)

    assert len(dict(letter.kafka_headers())["dead-letter-error"]) == 2000
    assert len(letter.error_summary) == 2000


def test_delivery_from_record_keeps_headers() -> None:
    record = Record("t", 1, 5, b"key", b"value", [("event-type", b"Ticket.Opened"), ("empty", None)])

    delivery = Delivery.from_record(record)

    assert (delivery.topic, delivery.partition, delivery.offset) == ("t", 1, 5)
    assert delivery.headers == (("event-type", b"Ticket.Opened"), ("empty", b""))
    assert delivery.event is None


def test_projection_prefix_names_schema_and_group() -> None:
    settings = Settings.from_env({"PROJECTION_PREFIX": "staging_"})

    assert settings.projection_schema("reports") == "staging_reports"
    assert settings.consumer_group("reports") == "staging_reports"
    assert Settings.from_env({}).projection_schema("reports") == "reports"


@pytest.mark.parametrize("value", ["Staging", "has space", "1starts_with_digit", "x" * 41])
def test_invalid_projection_prefix_names_variable(value: str) -> None:
    with pytest.raises(ConfigError, match="PROJECTION_PREFIX"):
        Settings.from_env({"PROJECTION_PREFIX": value})


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        GroupRunner(Settings(), PROJECTION, RunOptions(batch_size=0), decode=lambda delivery: None)  # type: ignore[arg-type,return-value]


def test_report_filters_reject_empty_range() -> None:
    with pytest.raises(ValueError, match="date range is empty"):
        ReportFilters(date_from=date(2024, 2, 2), date_to=date(2024, 2, 1))


def test_report_names_register_once() -> None:
    def first(conn, settings, filters):  # type: ignore[no-untyped-def]
        raise NotImplementedError

    with pytest.raises(ValueError, match="already registered"):
        register_report("departments")(first)
