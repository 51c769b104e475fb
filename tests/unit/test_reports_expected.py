"""A generated helpdesk history and the report figures computed from it in plain Python.

The integration tests send `build_scenario()` through Kafka and compare every reports
table with the `expected_*` functions here. Those functions follow the definitions in
docs/projections.md directly (replaying each ticket up to the end of each day, for
example) instead of reusing the projection's code, so they check it independently. The
tests at the bottom check the functions themselves on a small hand-computed history.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from ticketing.stream.decoded import DecodedEvent

UTC = timezone.utc
START = datetime(2024, 5, 6, tzinfo=UTC)  # a Monday
DEPARTMENTS = ("billing", "technical", "sales")
CHANNELS = ("email", "chat", "phone", "web_form")
PRIORITIES = ("low", "normal", "high", "urgent")
PAUSE_REASONS = ("break", "lunch", "meeting", "training", "other")
BACKLOG = {"open", "pending", "on_hold"}

# ---------------------------------------------------------------------------
# Building a history


@dataclass
class History:
    """Events of several aggregates; each aggregate's list is in version order."""

    events: list[DecodedEvent] = field(default_factory=list)
    _versions: dict[str, int] = field(default_factory=dict)

    def emit(self, aggregate_type: str, aggregate_id: str, event_name: str, at: datetime, /, **fields: Any) -> DecodedEvent:
        version = self._versions.get(aggregate_id, 0) + 1
        self._versions[aggregate_id] = version
        event = DecodedEvent(
            event_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"{aggregate_id}/{version}")),
            event_type=f"{aggregate_type}.{event_name}",
            aggregate_type=aggregate_type,
            aggregate_id=aggregate_id,
            aggregate_version=version,
            occurred_at=at,
            recorded_at=at,
            actor_id=None,
            fields=fields,
        )
        self.events.append(event)
        return event

    def in_time_order(self) -> list[DecodedEvent]:
        """Return all events by occurred_at, which keeps per-aggregate order because times increase."""
        return sorted(self.events, key=lambda event: (event.occurred_at, event.aggregate_id, event.aggregate_version))

    def by_aggregate(self) -> dict[str, list[DecodedEvent]]:
        streams: dict[str, list[DecodedEvent]] = defaultdict(list)
        for event in self.events:
            streams[event.aggregate_id].append(event)
        return dict(streams)


def new_id(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


def build_scenario(seed: int = 11, tickets: int = 30) -> History:
    """Return four days of a small helpdesk: agents' shifts, customers and tickets of every kind."""
    rng = random.Random(seed)
    history = History()
    agents = _agents(history, rng)
    customers = _customers(history, rng)
    for number in range(tickets):
        _ticket(history, rng, number, agents, customers)
    return history


def _agents(history: History, rng: random.Random) -> list[str]:
    ids = [new_id(rng) for _ in range(4)]
    hired = START - timedelta(days=30)
    history.emit("Agent", ids[0], "Hired", hired, name="Ada", email="ada@example.org", employment="regular",
                 engagement_ends_on=None, departments=["billing"])
    history.emit("Agent", ids[1], "Hired", hired, name="Bo", email="bo@example.org", employment="regular",
                 engagement_ends_on=None, departments=["technical"])
    history.emit("Agent", ids[2], "Hired", hired, name="Cy", email="cy@example.org", employment="temporary",
                 engagement_ends_on=(START + timedelta(days=3)).date(), departments=["billing", "sales"])
    history.emit("Agent", ids[3], "Hired", hired, name="Di", email="di@example.org", employment="regular",
                 engagement_ends_on=None, departments=["technical"])
    history.emit("Agent", ids[1], "DepartmentsChanged", hired + timedelta(days=1), departments=["technical", "sales"])

    for day in range(4):
        base = START + timedelta(days=day)
        # Ada and Bo work days with a lunch and a short break; Ada stays online after day 3.
        for agent, offset in ((ids[0], 0), (ids[1], 30)):
            online = base + timedelta(hours=8, minutes=offset + rng.randrange(0, 20))
            history.emit("Agent", agent, "WentOnline", online)
            history.emit("Agent", agent, "Paused", online + timedelta(hours=4), reason="lunch")
            history.emit("Agent", agent, "Resumed", online + timedelta(hours=4, minutes=45))
            history.emit("Agent", agent, "Paused", online + timedelta(hours=6), reason=rng.choice(PAUSE_REASONS))
            history.emit("Agent", agent, "Resumed", online + timedelta(hours=6, minutes=10 + rng.randrange(20)))
            if not (agent == ids[0] and day == 3):
                history.emit("Agent", agent, "WentOffline", online + timedelta(hours=9))
        # Cy works nights across midnight, paused over midnight once.
        if day < 3:
            online = base + timedelta(hours=21)
            history.emit("Agent", ids[2], "WentOnline", online)
            history.emit("Agent", ids[2], "Paused", base + timedelta(hours=23, minutes=50), reason="break")
            history.emit("Agent", ids[2], "Resumed", base + timedelta(days=1, minutes=15))
            history.emit("Agent", ids[2], "WentOffline", base + timedelta(days=1, hours=3))
    history.emit("Agent", ids[2], "EngagementEnded", START + timedelta(days=3, hours=12), ended_early=False)

    # Di works two days and leaves while paused.
    for day in range(2):
        online = START + timedelta(days=day, hours=9)
        history.emit("Agent", ids[3], "WentOnline", online)
        history.emit("Agent", ids[3], "WentOffline", online + timedelta(hours=8))
    history.emit("Agent", ids[3], "WentOnline", START + timedelta(days=2, hours=9))
    history.emit("Agent", ids[3], "Paused", START + timedelta(days=2, hours=11), reason="meeting")
    history.emit("Agent", ids[3], "Left", START + timedelta(days=2, hours=11, minutes=30), kind="voluntary")
    return ids[:3]


def _customers(history: History, rng: random.Random) -> list[str]:
    ids = [new_id(rng) for _ in range(6)]
    for index, customer in enumerate(ids):
        history.emit("Customer", customer, "Registered", START - timedelta(days=10 - index),
                     name=f"Customer {index}", email=f"c{index}@example.org", phone=None,
                     language=rng.choice(("en", "de", "fr")))
    history.emit("Customer", ids[1], "ContactDetailsChanged", START - timedelta(days=1),
                 name=None, email="new@example.org", phone="+4912345")
    history.emit("Customer", ids[2], "Forgotten", START + timedelta(days=3, hours=20))
    return ids


def _ticket(history: History, rng: random.Random, number: int, agents: list[str], customers: list[str]) -> None:
    ticket = new_id(rng)
    clock = [START + timedelta(days=number % 4, hours=rng.randrange(6, 24), minutes=rng.randrange(60))]

    def later(max_minutes: int = 300) -> datetime:
        clock[0] += timedelta(minutes=rng.randrange(1, max_minutes))
        return clock[0]

    def emit(event_name: str, /, **fields: Any) -> None:
        history.emit("Ticket", ticket, event_name, later(), **fields)

    department = rng.choice(DEPARTMENTS)
    history.emit("Ticket", ticket, "Opened", clock[0], customer_id=rng.choice(customers), channel=rng.choice(CHANNELS),
                 department=department, subject=f"ticket {number}", priority=rng.choice(PRIORITIES),
                 attributes={"source": "test"})
    agent = rng.choice(agents)
    kind = number % 11

    def reply(visibility: str = "public", by: str | None = None) -> None:
        emit("AgentReplied", agent_id=by or agent, visibility=visibility, body="reply")

    if kind == 0:  # one touch, closed, rated
        emit("Assigned", agent_id=agent)
        reply()
        emit("Resolved", resolution="solved")
        emit("Closed")
        emit("SatisfactionRated", score=rng.randint(1, 5), comment="")
    elif kind == 1:  # internal note, two public replies, resolved
        emit("Assigned", agent_id=agent)
        reply("internal")
        emit("CustomerReplied", body="more")
        reply()
        reply()
        emit("Resolved", resolution=rng.choice(("solved", "wont_fix")))
    elif kind == 2:  # resolved, rated, reopened, resolved again and rated again
        emit("Assigned", agent_id=agent)
        reply()
        emit("Resolved", resolution="solved")
        emit("SatisfactionRated", score=2, comment="no")
        emit("Reopened")
        reply()
        emit("Resolved", resolution="solved")
        emit("SatisfactionRated", score=5, comment="yes")
    elif kind == 3:  # transferred and reassigned
        emit("Assigned", agent_id=agent)
        emit("Transferred", department=rng.choice([d for d in DEPARTMENTS if d != department]))
        emit("Assigned", agent_id=rng.choice(agents))
        reply(by=rng.choice(agents))
        emit("Resolved", resolution="solved")
        emit("Closed")
    elif kind == 4:  # completed callback
        emit("CallbackRequested", callback_id="cb-1", phone="+100", window_start=clock[0], window_end=clock[0] + timedelta(hours=2))
        emit("Assigned", agent_id=agent)
        emit("CallbackCompleted", callback_id="cb-1", agent_id=rng.choice(agents))
        emit("Resolved", resolution="solved")
    elif kind == 5:  # missed callback, stays open
        emit("CallbackRequested", callback_id="cb-1", phone="+100", window_start=clock[0], window_end=clock[0] + timedelta(hours=1))
        emit("CallbackMissed", callback_id="cb-1")
        emit("PriorityChanged", priority="urgent")
    elif kind == 6:  # untouched
        pass
    elif kind == 7:  # pending and on hold, then resolved
        emit("Assigned", agent_id=agent)
        emit("MovedToPending")
        emit("Resumed")
        emit("PutOnHold")
        emit("Resumed")
        reply()
        emit("Resolved", resolution="duplicate")
    elif kind == 8:  # merged
        emit("Assigned", agent_id=agent)
        emit("MergedInto", target_ticket_id=new_id(rng))
    elif kind == 9:  # closed, reopened after closing, resolved again, long gaps over days
        emit("Assigned", agent_id=agent)
        reply()
        emit("Resolved", resolution="solved")
        emit("Closed")
        later(2000)
        emit("Reopened")
        reply()
        emit("Resolved", resolution="invalid")
    else:  # replied to, still open, attributes changed
        emit("Assigned", agent_id=agent)
        emit("AttributesChanged", attributes={"tier": "gold"})
        reply()


# ---------------------------------------------------------------------------
# Expected figures


def day_of(moment: datetime) -> date:
    return moment.astimezone(UTC).date()


def percentile_cont(values: list[float], fraction: float) -> float | None:
    """PostgreSQL's percentile_cont: linear interpolation between the two nearest ranks."""
    if not values:
        return None
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


@dataclass
class TicketState:
    department: str
    channel: str
    agent: str | None = None
    status: str = "open"
    public_replies: int = 0
    resolved_since_reopen: bool = False


def _replay(events: list[DecodedEvent], until: datetime | None = None) -> TicketState | None:
    state: TicketState | None = None
    for event in events:
        if until is not None and event.occurred_at >= until:
            break
        name = event.event_type.split(".", 1)[1]
        fields = event.fields
        if name == "Opened":
            state = TicketState(department=fields["department"], channel=fields["channel"])
            continue
        assert state is not None
        if name == "Assigned":
            state.agent = fields["agent_id"]
        elif name == "Transferred":
            state.department = fields["department"]
        elif name == "AgentReplied" and fields["visibility"] == "public":
            state.public_replies += 1
        elif name == "Resolved":
            state.status = "resolved"
            state.resolved_since_reopen = True
        elif name == "Reopened":
            state.status = "open"
        elif name in ("Closed", "MergedInto"):
            state.status = "closed" if name == "Closed" else "merged"
        elif name == "MovedToPending":
            state.status = "pending"
        elif name == "PutOnHold":
            state.status = "on_hold"
        elif name == "Resumed":
            state.status = "open"
    return state


def _key(dimension: str, state: TicketState, agent: str | None = None) -> str | None:
    if dimension == "department":
        return state.department
    if dimension == "channel":
        return state.channel
    return agent if agent is not None else state.agent


def expected_daily(history: History, dimension: str, department: str | None = None) -> dict[tuple[date, str | None], dict[str, Any]]:
    """Return the daily figures per (day, key) with the definitions of docs/projections.md."""
    counts: dict[tuple[date, str | None], dict[str, Any]] = defaultdict(lambda: defaultdict(int))
    first_responses: dict[tuple[date, str | None], list[float]] = defaultdict(list)
    resolutions: dict[tuple[date, str | None], list[float]] = defaultdict(list)
    ratings: dict[tuple[date, str | None], list[int]] = defaultdict(list)

    tickets = {aggregate: events for aggregate, events in history.by_aggregate().items()
               if events[0].aggregate_type == "Ticket"}
    for events in tickets.values():
        opened_at = events[0].occurred_at
        final_resolution = None
        last_rating = None
        first_response_done = False
        resolved_since_reopen = False
        for index, event in enumerate(events):
            name = event.event_type.split(".", 1)[1]
            state = _replay(events[: index + 1])
            assert state is not None
            if department is not None and state.department != department:
                key = None
                counted = False
            else:
                counted = True
            agent = None
            if name in ("AgentReplied", "CallbackCompleted"):
                agent = event.fields["agent_id"]
            key = _key(dimension, state, agent)
            slot = (day_of(event.occurred_at), key)
            if name == "Resolved":
                resolved_since_reopen = True
                final_resolution = (event, slot, counted, state.public_replies)
            if name == "Reopened":
                if counted and resolved_since_reopen:
                    counts[slot]["reopened"] += 1
                resolved_since_reopen = False
                final_resolution = None
            if name == "SatisfactionRated":
                last_rating = (event, slot, counted)
            if not counted:
                if name == "AgentReplied" and event.fields["visibility"] == "public":
                    first_response_done = True
                continue
            if name == "Opened":
                counts[slot]["opened"] += 1
            elif name == "Resolved":
                counts[slot]["resolved"] += 1
            elif name == "Closed":
                counts[slot]["closed"] += 1
            elif name == "CallbackRequested":
                counts[slot]["callbacks_requested"] += 1
            elif name == "CallbackCompleted":
                counts[slot]["callbacks_completed"] += 1
            elif name == "CallbackMissed":
                counts[slot]["callbacks_missed"] += 1
            elif name == "AgentReplied" and event.fields["visibility"] == "public" and not first_response_done:
                first_responses[slot].append((event.occurred_at - opened_at).total_seconds())
            if name == "AgentReplied" and event.fields["visibility"] == "public":
                first_response_done = True
        if final_resolution is not None:
            event, slot, counted, replies = final_resolution
            if counted:
                resolutions[slot].append((event.occurred_at - opened_at).total_seconds())
                if replies == 1:
                    counts[slot]["one_touch_resolutions"] += 1
        if last_rating is not None and last_rating[2]:
            ratings[last_rating[1]].append(last_rating[0].fields["score"])

    for slot, values in first_responses.items():
        counts[slot]["first_response_count"] = len(values)
        counts[slot]["first_response_mean_seconds"] = sum(values) / len(values)
        counts[slot]["first_response_median_seconds"] = percentile_cont(values, 0.5)
        counts[slot]["first_response_p90_seconds"] = percentile_cont(values, 0.9)
    for slot, values in resolutions.items():
        counts[slot]["resolution_count"] = len(values)
        counts[slot]["resolution_mean_seconds"] = sum(values) / len(values)
        counts[slot]["resolution_median_seconds"] = percentile_cont(values, 0.5)
        counts[slot]["resolution_p90_seconds"] = percentile_cont(values, 0.9)
    for slot, scores in ratings.items():
        counts[slot]["ratings"] = len(scores)
        counts[slot]["average_rating"] = sum(scores) / len(scores)

    # Backlog at the end of each day from the first ticket day to the last day of any event.
    first_day = min(day_of(events[0].occurred_at) for events in tickets.values())
    last_day = max(day_of(event.occurred_at) for event in history.events)
    day = first_day
    while day <= last_day:
        end = datetime(day.year, day.month, day.day, tzinfo=UTC) + timedelta(days=1)
        for events in tickets.values():
            state = _replay(events, until=end)
            if state is None or state.status not in BACKLOG:
                continue
            if department is not None and state.department != department:
                continue
            counts[(day, _key(dimension, state))]["backlog"] += 1
        day += timedelta(days=1)

    return {slot: dict(values) for slot, values in counts.items() if any(values.values())}


def expected_agent_time(history: History) -> dict[tuple[date, str], dict[str, float]]:
    """Return online, paused (per reason) and work seconds per (day, agent), split at midnight UTC."""
    clock = max(event.occurred_at for event in history.events)
    totals: dict[tuple[date, str], dict[str, float]] = defaultdict(lambda: defaultdict(float))

    def add(agent: str, kind: str, start: datetime, end: datetime) -> None:
        while start < end:
            midnight = datetime(start.year, start.month, start.day, tzinfo=UTC) + timedelta(days=1)
            piece_end = min(end, midnight)
            totals[(start.date(), agent)][kind] += (piece_end - start).total_seconds()
            start = piece_end

    for agent, events in history.by_aggregate().items():
        if events[0].aggregate_type != "Agent":
            continue
        online: datetime | None = None
        paused: tuple[datetime, str] | None = None
        for event in events:
            name = event.event_type.split(".", 1)[1]
            at = event.occurred_at
            if name in ("Resumed", "WentOffline", "Left", "EngagementEnded") and paused:
                add(agent, "paused", paused[0], at)
                add(agent, f"paused_{paused[1]}", paused[0], at)
                paused = None
            if name in ("WentOffline", "Left", "EngagementEnded") and online:
                add(agent, "online", online, at)
                online = None
            if name == "WentOnline":
                online = at
            elif name == "Paused":
                paused = (at, event.fields["reason"])
        if paused:
            add(agent, "paused", paused[0], clock)
            add(agent, f"paused_{paused[1]}", paused[0], clock)
        if online:
            add(agent, "online", online, clock)

    result = {}
    for slot, values in totals.items():
        row = {"online_seconds": values["online"], "paused_seconds": values["paused"]}
        for reason in PAUSE_REASONS:
            row[f"paused_{reason}_seconds"] = values[f"paused_{reason}"]
        row["work_seconds"] = row["online_seconds"] - row["paused_seconds"]
        result[slot] = row
    return result


def expected_tickets(history: History) -> dict[str, dict[str, Any]]:
    """Return the fact-table columns of every ticket after all its events."""
    facts = {}
    for ticket, events in history.by_aggregate().items():
        if events[0].aggregate_type != "Ticket":
            continue
        opened = events[0]
        row: dict[str, Any] = {
            "department": opened.fields["department"], "channel": opened.fields["channel"],
            "customer_id": opened.fields["customer_id"], "agent_id": None, "priority": opened.fields["priority"],
            "status": "open", "opened_at": opened.occurred_at, "first_response_at": None, "resolved_at": None,
            "resolution": None, "closed_at": None, "reopen_count": 0, "rating": None, "callback_outcome": None,
            "public_reply_count": 0,
        }
        resolved_since_reopen = False
        for event in events[1:]:
            name = event.event_type.split(".", 1)[1]
            fields = event.fields
            if name == "Assigned":
                row["agent_id"] = fields["agent_id"]
            elif name == "Transferred":
                row["department"] = fields["department"]
            elif name == "PriorityChanged":
                row["priority"] = fields["priority"]
            elif name == "AgentReplied" and fields["visibility"] == "public":
                row["public_reply_count"] += 1
                row["first_response_at"] = row["first_response_at"] or event.occurred_at
            elif name == "Resolved":
                row.update(status="resolved", resolved_at=event.occurred_at, resolution=fields["resolution"])
                resolved_since_reopen = True
            elif name == "Reopened":
                row.update(status="open", resolved_at=None, resolution=None, closed_at=None)
                row["reopen_count"] += 1 if resolved_since_reopen else 0
                resolved_since_reopen = False
            elif name == "Closed":
                row.update(status="closed", closed_at=event.occurred_at)
            elif name == "MergedInto":
                row["status"] = "merged"
            elif name in ("MovedToPending", "PutOnHold", "Resumed"):
                row["status"] = {"MovedToPending": "pending", "PutOnHold": "on_hold", "Resumed": "open"}[name]
            elif name == "SatisfactionRated":
                row["rating"] = fields["score"]
            elif name.startswith("Callback"):
                row["callback_outcome"] = name.removeprefix("Callback").lower()
        facts[ticket] = row
    return facts


# ---------------------------------------------------------------------------
# The expected figures on a history small enough to compute by hand


def _hand_history() -> History:
    history = History()
    at = datetime(2024, 1, 1, 9, tzinfo=UTC)
    history.emit("Agent", "agent-a", "Hired", at, name="A", email="a@x", employment="temporary",
                 engagement_ends_on=None, departments=["billing"])
    history.emit("Agent", "agent-a", "WentOnline", at.replace(hour=22))
    history.emit("Agent", "agent-a", "Paused", at.replace(hour=23), reason="lunch")
    history.emit("Agent", "agent-a", "Resumed", at + timedelta(hours=15, minutes=30))
    history.emit("Agent", "agent-a", "WentOffline", at + timedelta(hours=16))
    history.emit("Ticket", "t1", "Opened", at, customer_id="c", channel="email", department="billing",
                 subject="s", priority="low", attributes={})
    history.emit("Ticket", "t1", "Assigned", at + timedelta(minutes=10), agent_id="agent-a")
    history.emit("Ticket", "t1", "AgentReplied", at + timedelta(minutes=30), agent_id="agent-a",
                 visibility="public", body="b")
    history.emit("Ticket", "t1", "Resolved", at + timedelta(hours=1), resolution="solved")
    history.emit("Ticket", "t1", "Reopened", at + timedelta(days=1))
    history.emit("Ticket", "t1", "Resolved", at + timedelta(days=1, hours=3), resolution="solved")
    history.emit("Ticket", "t2", "Opened", at + timedelta(hours=2), customer_id="c", channel="chat",
                 department="billing", subject="s", priority="low", attributes={})
    history.emit("Ticket", "t2", "AgentReplied", at + timedelta(hours=3), agent_id="agent-a",
                 visibility="public", body="b")
    return history


def test_daily_figures_by_hand() -> None:
    daily = expected_daily(_hand_history(), "department")
    first, second = date(2024, 1, 1), date(2024, 1, 2)

    assert daily[(first, "billing")]["opened"] == 2
    assert daily[(first, "billing")]["resolved"] == 1
    assert daily[(first, "billing")]["backlog"] == 1
    assert daily[(first, "billing")]["first_response_count"] == 2
    assert daily[(first, "billing")]["first_response_median_seconds"] == (1800 + 3600) / 2
    assert daily[(first, "billing")]["first_response_p90_seconds"] == 1800 + 0.9 * 1800
    assert "resolution_count" not in daily[(first, "billing")]
    assert daily[(second, "billing")]["reopened"] == 1
    assert daily[(second, "billing")]["resolution_count"] == 1
    assert daily[(second, "billing")]["resolution_mean_seconds"] == 27 * 3600
    assert daily[(second, "billing")]["one_touch_resolutions"] == 1
    assert daily[(second, "billing")]["backlog"] == 1


def test_agent_time_by_hand_splits_at_midnight() -> None:
    time = expected_agent_time(_hand_history())

    assert time[(date(2024, 1, 1), "agent-a")]["online_seconds"] == 2 * 3600
    assert time[(date(2024, 1, 1), "agent-a")]["paused_lunch_seconds"] == 3600
    assert time[(date(2024, 1, 2), "agent-a")]["online_seconds"] == 3600
    assert time[(date(2024, 1, 2), "agent-a")]["paused_seconds"] == 30 * 60
    assert time[(date(2024, 1, 2), "agent-a")]["work_seconds"] == 30 * 60


def test_percentile_cont_interpolates() -> None:
    assert percentile_cont([1.0, 2.0, 3.0, 4.0], 0.5) == 2.5
    assert percentile_cont([10.0], 0.9) == 10.0
    assert percentile_cont([0.0, 10.0], 0.9) == pytest.approx(9.0)
    assert percentile_cont([], 0.5) is None


def test_scenario_keeps_per_aggregate_time_order() -> None:
    history = build_scenario()

    for events in history.by_aggregate().values():
        times = [event.occurred_at for event in events]
        assert times == sorted(times)
        assert [event.aggregate_version for event in events] == list(range(1, len(events) + 1))
