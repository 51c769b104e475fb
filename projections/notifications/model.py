"""The notification configuration after validation: rules, templates, contacts, delivery policy."""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping


@dataclass(frozen=True)
class Condition:
    """A test on one context field. `operator` is one of OPERATORS."""

    field: str
    operator: str
    value: Any

    def matches(self, context: Mapping[str, Any]) -> bool:
        actual = context.get(self.field)
        if self.operator == "equals":
            return _same(actual, self.value)
        if self.operator == "not_equals":
            return not _same(actual, self.value)
        if self.operator == "in":
            return any(_same(actual, option) for option in self.value)
        if self.operator == "not_in":
            return not any(_same(actual, option) for option in self.value)
        if actual is None or isinstance(actual, bool) or not isinstance(actual, (int, float)):
            return False
        if self.operator == "min":
            return actual >= self.value
        return actual <= self.value  # "max"


OPERATORS = ("equals", "not_equals", "in", "not_in", "min", "max")


def _same(actual: Any, expected: Any) -> bool:
    # YAML gives `true`, 2 or "high"; event fields give bool, int or str. Comparing
    # text forms lets `score: 2` match 2 and `ended_early: false` match False.
    return _text(actual) == _text(expected)


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


@dataclass(frozen=True)
class MessageTemplate:
    """One language of a template. `subject` is None for Slack messages."""

    body: string.Template
    subject: string.Template | None = None


@dataclass(frozen=True)
class Template:
    """A message template with its default language and optional translations."""

    default: MessageTemplate
    translations: Mapping[str, MessageTemplate] = field(default_factory=dict)

    def for_language(self, language: str | None) -> MessageTemplate:
        """Return the translation for `language` ("pt-BR" falls back to "pt"), else the default."""
        if not language:
            return self.default
        tag = language.strip().lower().replace("_", "-")
        for candidate in (tag, tag.split("-", 1)[0]):
            if candidate in self.translations:
                return self.translations[candidate]
        return self.default


@dataclass(frozen=True)
class EventTrigger:
    event_type: str

    @property
    def aggregate_type(self) -> str:
        return self.event_type.split(".", 1)[0]


@dataclass(frozen=True)
class DeadlineTrigger:
    """A timer. `offsets` maps a ticket priority to its duration, or "*" to one duration for all."""

    deadline: str
    aggregate_type: str
    offsets: Mapping[str, timedelta]

    def offset_for(self, priority: str | None) -> timedelta | None:
        if "*" in self.offsets:
            return self.offsets["*"]
        return self.offsets.get(priority or "")


@dataclass(frozen=True)
class Rule:
    name: str
    trigger: EventTrigger | DeadlineTrigger
    channel: str
    recipients: tuple[str, ...]
    template: Template
    conditions: tuple[Condition, ...] = ()

    def matches(self, context: Mapping[str, Any]) -> bool:
        return all(condition.matches(context) for condition in self.conditions)


@dataclass(frozen=True)
class Department:
    """Contacts of one department. Webhook URLs are secrets: never log them."""

    slack_webhook: str | None = field(default=None, repr=False)
    team_lead_email: str | None = None
    team_lead_slack_webhook: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class DeliveryPolicy:
    """Retry policy of the dispatcher: exponential backoff from `first_retry_after`, doubled each time."""

    max_attempts: int = 5
    first_retry_after: timedelta = timedelta(seconds=30)
    max_retry_after: timedelta = timedelta(hours=1)
    # A message whose fired_at (event time) lies further than this before the wall
    # clock is marked expired instead of sent, so that importing or replaying old
    # history does not mail customers about tickets from last year.
    max_age: timedelta = timedelta(hours=24)

    def retry_delay(self, attempt: int) -> timedelta:
        """Return the wait after failed attempt number `attempt` (1 for the first)."""
        delay = self.first_retry_after * (2 ** (attempt - 1))
        return min(delay, self.max_retry_after)


@dataclass(frozen=True)
class RuleSet:
    """The whole validated rules file."""

    path: Path
    rules: tuple[Rule, ...]
    default_language: str = "en"
    allowed_lateness: timedelta = timedelta(0)
    admins: tuple[str, ...] = ()
    departments: Mapping[str, Department] = field(default_factory=dict)
    slack_webhooks: Mapping[str, str] = field(default_factory=dict, repr=False)
    delivery: DeliveryPolicy = DeliveryPolicy()

    def rule(self, name: str) -> Rule | None:
        for rule in self.rules:
            if rule.name == name:
                return rule
        return None

    def event_rules(self, event_type: str) -> list[Rule]:
        return [
            rule
            for rule in self.rules
            if isinstance(rule.trigger, EventTrigger) and rule.trigger.event_type == event_type
        ]

    def deadline_rules(self, deadline: str) -> list[Rule]:
        return [
            rule
            for rule in self.rules
            if isinstance(rule.trigger, DeadlineTrigger) and rule.trigger.deadline == deadline
        ]
