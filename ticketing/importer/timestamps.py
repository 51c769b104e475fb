"""Parse the log's local timestamps into aware UTC datetimes.

Logs often write wall-clock time without an offset. The mapping names the IANA zone of
that clock, and the zone's rules (zoneinfo, from the system or the tzdata package)
give the offset of each date, so summer and winter times convert correctly.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from zoneinfo import ZoneInfo


class LocalTimeIssue:
    """Names of the two kinds of wall-clock time that daylight saving makes unclear."""

    # The clock went back, so this wall-clock time happened twice. The first one is used.
    AMBIGUOUS = "ambiguous local time (clock went back), earlier instant used"
    # The clock went forward over this wall-clock time. zoneinfo gives it the offset from
    # before the change, which is what a clock that was not yet moved would show.
    NONEXISTENT = "nonexistent local time (clock went forward), offset before the change used"


@dataclass(frozen=True)
class ParsedTime:
    utc: datetime
    issue: str | None = None


def parse_timestamp(text: str, time_format: str, zone: ZoneInfo) -> ParsedTime:
    """Parse `text` with a strptime format and return the instant in UTC.

    A format with %z gives the offset itself, and the zone is then not used. Raises
    ValueError when `text` does not match the format.
    """
    parsed = datetime.strptime(text.strip(), time_format)
    if parsed.tzinfo is not None:
        return ParsedTime(parsed.astimezone(timezone.utc))

    local = parsed.replace(tzinfo=zone)
    issue = local_time_issue(parsed, zone)
    return ParsedTime(local.astimezone(timezone.utc), issue)


def local_time_issue(wall_clock: datetime, zone: ZoneInfo) -> str | None:
    """Return why a naive wall-clock time has no single instant in `zone`, or None."""
    first = wall_clock.replace(tzinfo=zone, fold=0)
    second = wall_clock.replace(tzinfo=zone, fold=1)
    if first.utcoffset() == second.utcoffset():
        return None

    # A time that exists converts to UTC and back to the same wall-clock reading.
    back = first.astimezone(timezone.utc).astimezone(zone).replace(tzinfo=None)
    if back == wall_clock:
        return LocalTimeIssue.AMBIGUOUS
    return LocalTimeIssue.NONEXISTENT
