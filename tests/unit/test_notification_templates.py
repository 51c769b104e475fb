"""Rendering notification templates: languages, field display, durations."""

from __future__ import annotations

import string
import uuid
from datetime import date, datetime, timezone

import pytest

from projections.notifications.context import deadline_context, describe_duration, display_time, event_context
from projections.notifications.errors import PermanentDeliveryError
from projections.notifications.model import MessageTemplate, Template
from projections.notifications.rules import load_rules
from projections.notifications.templates import display_value, localized_duration, render
from ticketing.stream.decoded import DecodedEvent


def template(body: str, subject: str | None = None, **translations: tuple[str, str]) -> Template:
    return Template(
        default=MessageTemplate(body=string.Template(body), subject=string.Template(subject) if subject else None),
        translations={
            language: MessageTemplate(body=string.Template(text), subject=string.Template(title))
            for language, (title, text) in translations.items()
        },
    )


def test_render_default_language() -> None:
    rendered = render(template("Ticket $ticket_id", "About $subject"), {"ticket_id": "T1", "subject": "Login"})

    assert rendered.subject == "About Login"
    assert rendered.body == "Ticket T1"


def test_render_picks_translation() -> None:
    greeting = template("Hello $recipient_name", "Hi", de=("Hallo", "Hallo $recipient_name"))

    rendered = render(greeting, {}, language="de", recipient_name="Clara")

    assert rendered.subject == "Hallo"
    assert rendered.body == "Hallo Clara"


def test_render_region_falls_back_to_language() -> None:
    greeting = template("Hello", "Hi", pt=("Olá", "Olá"))

    assert render(greeting, {}, language="pt-BR").body == "Olá"
    assert render(greeting, {}, language="pt_br").body == "Olá"


def test_render_unknown_language_uses_default() -> None:
    greeting = template("Hello", "Hi", de=("Hallo", "Hallo"))

    assert render(greeting, {}, language="ja").body == "Hello"
    assert render(greeting, {}, language=None).body == "Hello"


def test_render_missing_field_is_permanent_error() -> None:
    with pytest.raises(PermanentDeliveryError, match="missing or invalid field 'score'"):
        render(template("Rated $score"), {})


def test_render_subject_stays_one_line() -> None:
    rendered = render(template("body", "About $subject"), {"subject": "Line one\r\nBcc: victim@example.org"})

    assert rendered.subject == "About Line one Bcc: victim@example.org"


def test_render_localizes_delay() -> None:
    waiting = template("waited $delay", "s", de=("s", "$delay lang"), fr=("s", "depuis $delay"))
    context = {"delay": "3 days", "delay_seconds": 3 * 86400}

    assert render(waiting, context).body == "waited 3 days"
    assert render(waiting, context, language="de").body == "3 Tage lang"
    assert render(waiting, context, language="fr").body == "depuis 3 jours"


def test_render_shipped_german_reminder() -> None:
    rule = load_rules().rule("pending-no-customer-reply")
    assert rule is not None

    rendered = render(
        rule.template,
        {"subject": "Rechnung", "delay": "3 days", "delay_seconds": 3 * 86400},
        language="de",
        recipient_name="Clara",
    )

    assert rendered.subject == "Wir warten auf Ihre Antwort: Rechnung"
    assert "Hallo Clara," in rendered.body
    assert "3 Tage lang keine Antwort" in rendered.body


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, ""),
        (True, "yes"),
        (False, "no"),
        (2, "2"),
        (["billing", "tech"], "billing, tech"),
        ({"plan": "gold", "country": "de"}, "country=de, plan=gold"),
    ],
)
def test_display_value(value: object, text: str) -> None:
    assert display_value(value) == text


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(3600, "1 hour"), (4 * 3600, "4 hours"), (86400, "1 day"), (90 * 60, "90 minutes"), (14 * 86400, "2 weeks"), (45, "45 seconds")],
)
def test_describe_duration(seconds: int, text: str) -> None:
    assert describe_duration(seconds) == text


def test_localized_duration_unknown_language_is_english() -> None:
    assert localized_duration(7200, "ja") == "2 hours"
    assert localized_duration(86400, "es") == "1 día"


def test_event_context_has_every_field() -> None:
    ticket_id, agent_id = str(uuid.uuid4()), str(uuid.uuid4())
    at = datetime(2024, 3, 4, 9, 5, tzinfo=timezone.utc)
    event = DecodedEvent(
        event_id=str(uuid.uuid4()),
        event_type="Ticket.Assigned",
        aggregate_type="Ticket",
        aggregate_id=ticket_id,
        aggregate_version=2,
        occurred_at=at,
        recorded_at=at,
        fields={"agent_id": agent_id},
    )

    context = event_context(event, None)

    assert context["agent_id"] == agent_id
    assert context["occurred_at"] == "2024-03-04 09:05 UTC"
    assert context["aggregate_version"] == 2
    assert context["subject"] is None  # no state yet, but the key exists for templates
    assert "recipient_name" in context


def test_deadline_context_fields() -> None:
    due = datetime(2024, 3, 4, 10, 0, tzinfo=timezone.utc)
    state = {
        "agent_id": uuid.uuid4(),
        "name": "Tom",
        "employment": "temporary",
        "engagement_ends_on": date(2024, 3, 5),
        "departments": ["billing"],
        "status": "employed",
    }

    context = deadline_context("engagement_end", "Agent", str(state["agent_id"]), 1, due, 86400, state)

    assert context["deadline"] == "engagement_end"
    assert context["due_at"] == display_time(due)
    assert context["delay"] == "1 day"
    assert context["delay_seconds"] == 86400
    assert context["agent_name"] == "Tom"
    assert context["engagement_ends_on"] == "2024-03-05"
    assert context["departments"] == ["billing"]
