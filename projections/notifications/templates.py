"""Render a rule's template for one recipient, in the recipient's language."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

from projections.notifications.context import DURATION_UNITS, describe_duration
from projections.notifications.errors import PermanentDeliveryError
from projections.notifications.model import Template

# Unit words (singular, plural) for the $delay field of the shipped translations. A
# language missing here gets the English words.
_DURATION_WORDS: dict[str, dict[str, tuple[str, str]]] = {
    "de": {
        "week": ("Woche", "Wochen"),
        "day": ("Tag", "Tage"),
        "hour": ("Stunde", "Stunden"),
        "minute": ("Minute", "Minuten"),
        "second": ("Sekunde", "Sekunden"),
    },
    "fr": {
        "week": ("semaine", "semaines"),
        "day": ("jour", "jours"),
        "hour": ("heure", "heures"),
        "minute": ("minute", "minutes"),
        "second": ("seconde", "secondes"),
    },
    "es": {
        "week": ("semana", "semanas"),
        "day": ("día", "días"),
        "hour": ("hora", "horas"),
        "minute": ("minuto", "minutos"),
        "second": ("segundo", "segundos"),
    },
}


@dataclass(frozen=True)
class RenderedMessage:
    subject: str | None
    body: str


def render(
    template: Template,
    context: Mapping[str, Any],
    *,
    language: str | None = None,
    recipient_name: str | None = None,
) -> RenderedMessage:
    """Fill in the template's translation for `language`; raise PermanentDeliveryError on a missing field."""
    message = template.for_language(language)
    values = {name: display_value(value) for name, value in context.items()}
    values["recipient_name"] = recipient_name or ""
    if isinstance(context.get("delay_seconds"), int):
        values["delay"] = localized_duration(context["delay_seconds"], language)

    try:
        subject = message.subject.substitute(values) if message.subject else None
        body = message.body.substitute(values)
    except (KeyError, ValueError) as error:
        # The rules loader checks placeholders against the catalog, so this means a
        # context written by an older version lacks a field that the template needs now.
        raise PermanentDeliveryError(f"template cannot be filled in: missing or invalid field {error}") from error

    if subject is not None:
        # A line break in a header would start a new header.
        subject = " ".join(subject.split())
    return RenderedMessage(subject=subject, body=body)


def display_value(value: Any) -> str:
    """Return the text a template shows for a context value."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(display_value(item) for item in value)
    if isinstance(value, Mapping):
        return ", ".join(f"{key}={display_value(item)}" for key, item in sorted(value.items()))
    return str(value)


def localized_duration(seconds: int, language: str | None) -> str:
    """Return a duration in its largest whole unit, in `language` where _DURATION_WORDS has it."""
    words = _DURATION_WORDS.get((language or "").lower().replace("_", "-").split("-", 1)[0])
    if words is None:
        return describe_duration(seconds)
    for unit, size in DURATION_UNITS:
        if seconds >= size and seconds % size == 0:
            count = seconds // size
            singular, plural = words[unit]
            return f"{count} {singular if count == 1 else plural}"
    return f"{seconds} {words['second'][1]}"
