"""How far a group is behind the end of its partitions."""

from __future__ import annotations


def partition_lag(stored_offset: int | None, beginning_offset: int, end_offset: int) -> int:
    """Return the number of offsets between the group's position and the end of a partition.

    A partition without a stored offset is read from its beginning, so everything from
    the beginning offset (the oldest record Kafka still keeps) to the end is lag.
    """
    position = beginning_offset if stored_offset is None else stored_offset
    return max(end_offset - position, 0)
