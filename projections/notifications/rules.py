"""Load and validate the notification rules file (YAML).

`load_rules(path)` checks the whole file and raises one RulesError that lists every
problem, each with the rule, the field and what to change, so that one run of
`ticketing notify check-rules` shows everything that is wrong.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Mapping

import yaml

from projections.notifications import catalog
from projections.notifications.model import (
    OPERATORS,
    Condition,
    DeadlineTrigger,
    DeliveryPolicy,
    Department,
    EventTrigger,
    MessageTemplate,
    Rule,
    RuleSet,
    Template,
)
from ticketing.yaml_errors import describe_yaml_error

DEFAULT_RULES_PATH = Path(__file__).resolve().parent / "rules.yaml"
RULES_SETTING = "NOTIFICATION_RULES"

_TOP_LEVEL_KEYS = (
    "version",
    "default_language",
    "allowed_lateness",
    "admins",
    "slack_webhooks",
    "departments",
    "delivery",
    "rules",
)
_RULE_KEYS = ("name", "trigger", "conditions", "channel", "recipients", "template")
_DEPARTMENT_KEYS = ("slack_webhook", "team_lead_email", "team_lead_slack_webhook")
_DELIVERY_KEYS = ("max_attempts", "first_retry_after", "max_retry_after", "max_age")
_TEMPLATE_KEYS = {"email": ("subject", "body"), "slack": ("text",)}

_RULE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|m|h|d|w)\s*$")
_DURATION_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
_LANGUAGE = re.compile(r"^[a-z]{2,3}(-[a-z0-9]{2,8})*$")


@dataclass(frozen=True)
class Problem:
    """One invalid value: where it is (rule and field) and what to do about it."""

    rule: str | None
    field: str
    """Field path inside the rule or the file, or empty for a problem of the whole file."""
    message: str

    def describe(self) -> str:
        if not self.rule and not self.field:
            return self.message
        where = f"rule {self.rule!r}, field {self.field!r}" if self.rule else f"field {self.field!r}"
        return f"{where}: {self.message}"


class RulesError(ValueError):
    """The rules file is missing, not YAML, or has invalid rules. The message lists every problem."""

    def __init__(self, path: Path, problems: list[Problem]) -> None:
        lines = "\n".join(f"  - {problem.describe()}" for problem in problems)
        super().__init__(f"invalid notification rules in {path}:\n{lines}")
        self.path = path
        self.problems = problems


def load_rules(path: str | Path | None = None, *, given_by: str = RULES_SETTING) -> RuleSet:
    """Read, validate and return the rules file; None means the shipped default file.

    `given_by` names where the path came from: the NOTIFICATION_RULES variable, or a
    command-line argument such as "PATH". The error for a missing file names it as the
    thing to change.
    """
    path = Path(path) if path else DEFAULT_RULES_PATH
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RulesError(path, [_missing_file(given_by)]) from None
    except UnicodeDecodeError as error:
        raise RulesError(
            path, [Problem(None, "", f"the file is not UTF-8 ({error.reason} at byte {error.start}); save it as UTF-8")]
        ) from error
    except OSError as error:
        raise RulesError(path, [Problem(None, "", f"cannot read the file ({error.strerror or error})")]) from error

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise RulesError(
            path, [Problem(None, "", f"not valid YAML at {describe_yaml_error(error)}. Fix the syntax there")]
        ) from error

    return parse_rules(document, path)


def _missing_file(given_by: str) -> Problem:
    if given_by == RULES_SETTING:
        return Problem(
            None,
            RULES_SETTING,
            f"the file does not exist; point {RULES_SETTING} at an existing file, or unset it to use the "
            f"shipped default rules",
        )
    return Problem(
        None,
        "",
        f"the file given as {given_by} does not exist. Pass the path of an existing rules file, or leave "
        f"{given_by} out to check the file that {RULES_SETTING} names, or the shipped default rules",
    )


def parse_rules(document: Any, path: Path) -> RuleSet:
    """Validate a parsed YAML document; raise RulesError listing every problem."""
    parser = _Parser()
    ruleset = parser.ruleset(document, path)
    if parser.problems or ruleset is None:
        raise RulesError(path, parser.problems)
    return ruleset


def parse_duration(value: Any) -> timedelta:
    """Parse "30s", "15m", "4h", "3d" or "1w"; raise ValueError with the expected form."""
    match = _DURATION.match(str(value)) if isinstance(value, (str, int, float)) else None
    if not match or isinstance(value, bool):
        raise ValueError(f"{value!r} is not a duration; write a number and a unit, such as 30s, 15m, 4h or 3d")
    return timedelta(**{_DURATION_UNITS[match.group(2)]: float(match.group(1))})


class _Parser:
    """Collects problems while it converts the YAML document into a RuleSet."""

    def __init__(self) -> None:
        self.problems: list[Problem] = []

    def problem(self, rule: str | None, field: str, message: str) -> None:
        self.problems.append(Problem(rule, field, message))

    # --- file level -----------------------------------------------------------------

    def ruleset(self, document: Any, path: Path) -> RuleSet | None:
        if not isinstance(document, dict):
            self.problem(None, "(file)", "expected a mapping with a 'rules' list at the top level")
            return None
        self.unknown_keys(None, "", document, _TOP_LEVEL_KEYS)

        if document.get("version", 1) != 1:
            self.problem(None, "version", f"version {document.get('version')!r} is not supported; write version: 1")

        default_language = str(document.get("default_language", "en"))
        if not _LANGUAGE.match(default_language):
            self.problem(None, "default_language", f"{default_language!r} is not a language tag such as en or pt-br")

        slack_webhooks = self.slack_webhooks(document.get("slack_webhooks", {}))
        rules = self.rules(document.get("rules"), slack_webhooks)

        return RuleSet(
            path=path,
            rules=tuple(rules),
            default_language=default_language,
            allowed_lateness=self.duration(None, "allowed_lateness", document.get("allowed_lateness", "0s")),
            admins=tuple(self.emails(None, "admins", document.get("admins", []))),
            departments=self.departments(document.get("departments", {})),
            slack_webhooks=slack_webhooks,
            delivery=self.delivery(document.get("delivery", {})),
        )

    def slack_webhooks(self, value: Any) -> dict[str, str]:
        if not isinstance(value, dict):
            self.problem(None, "slack_webhooks", "expected a mapping of name to webhook URL")
            return {}
        return {
            str(name): url
            for name, url in value.items()
            if self.webhook(None, f"slack_webhooks.{name}", url)
        }

    def departments(self, value: Any) -> dict[str, Department]:
        if not isinstance(value, dict):
            self.problem(None, "departments", "expected a mapping of department name to its contacts")
            return {}

        departments = {}
        for name, contacts in value.items():
            where = f"departments.{name}"
            if not isinstance(contacts, dict):
                self.problem(None, where, f"expected a mapping with any of {', '.join(_DEPARTMENT_KEYS)}")
                continue
            self.unknown_keys(None, where + ".", contacts, _DEPARTMENT_KEYS)
            lead_email = contacts.get("team_lead_email")
            if lead_email is not None and not self.emails(None, where + ".team_lead_email", [lead_email]):
                lead_email = None
            departments[str(name)] = Department(
                slack_webhook=self.optional_webhook(where + ".slack_webhook", contacts.get("slack_webhook")),
                team_lead_email=lead_email,
                team_lead_slack_webhook=self.optional_webhook(
                    where + ".team_lead_slack_webhook", contacts.get("team_lead_slack_webhook")
                ),
            )
        return departments

    def delivery(self, value: Any) -> DeliveryPolicy:
        if not isinstance(value, dict):
            self.problem(None, "delivery", f"expected a mapping with any of {', '.join(_DELIVERY_KEYS)}")
            return DeliveryPolicy()
        self.unknown_keys(None, "delivery.", value, _DELIVERY_KEYS)

        default = DeliveryPolicy()
        max_attempts = value.get("max_attempts", default.max_attempts)
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            self.problem(None, "delivery.max_attempts", f"{max_attempts!r} is not a whole number of at least 1")
            max_attempts = default.max_attempts

        return DeliveryPolicy(
            max_attempts=max_attempts,
            first_retry_after=self.duration(None, "delivery.first_retry_after", value.get("first_retry_after", "30s")),
            max_retry_after=self.duration(None, "delivery.max_retry_after", value.get("max_retry_after", "1h")),
            max_age=self.duration(None, "delivery.max_age", value.get("max_age", "24h")),
        )

    # --- rules ----------------------------------------------------------------------

    def rules(self, value: Any, slack_webhooks: Mapping[str, str]) -> list[Rule]:
        if not isinstance(value, list):
            self.problem(None, "rules", "expected a list of rules, each a mapping with name, trigger, "
                         "channel, recipients and template")
            return []

        rules: list[Rule] = []
        seen: set[str] = set()
        for index, entry in enumerate(value):
            rule = self.rule(index, entry, slack_webhooks)
            if rule is None:
                continue
            if rule.name in seen:
                self.problem(rule.name, "name", "another rule has the same name; give each rule a unique name")
                continue
            seen.add(rule.name)
            rules.append(rule)
        return rules

    def rule(self, index: int, entry: Any, slack_webhooks: Mapping[str, str]) -> Rule | None:
        if not isinstance(entry, dict):
            self.problem(f"#{index + 1}", "(rule)", "expected a mapping with name, trigger, channel, "
                         "recipients and template")
            return None

        name = entry.get("name")
        if not isinstance(name, str) or not _RULE_NAME.match(name):
            self.problem(f"#{index + 1}", "name", f"{name!r} is not a rule name; use lowercase letters, digits, "
                         "'-' and '_', such as ticket-assigned")
            return None
        problems_before = len(self.problems)
        self.unknown_keys(name, "", entry, _RULE_KEYS)

        trigger = self.trigger(name, entry.get("trigger"))
        channel = entry.get("channel")
        if channel not in catalog.CHANNELS:
            self.problem(name, "channel", f"{channel!r} is not a channel; use one of {', '.join(catalog.CHANNELS)}")
            channel = None
        if trigger is None:
            return None

        fields = (
            catalog.event_context_fields(trigger.event_type)
            if isinstance(trigger, EventTrigger)
            else catalog.deadline_context_fields(trigger.deadline)
        )
        conditions = self.conditions(name, entry.get("conditions", {}), fields)
        recipients = self.recipients(name, entry.get("recipients"), trigger, channel, slack_webhooks)
        template = self.template(name, entry.get("template"), channel, fields) if channel else None

        if len(self.problems) > problems_before or channel is None or template is None:
            return None
        return Rule(
            name=name,
            trigger=trigger,
            channel=channel,
            recipients=tuple(recipients),
            template=template,
            conditions=tuple(conditions),
        )

    def trigger(self, rule: str, value: Any) -> EventTrigger | DeadlineTrigger | None:
        if not isinstance(value, dict) or ("event" in value) == ("deadline" in value):
            self.problem(rule, "trigger", "expected a mapping with either 'event: Ticket.Assigned' or "
                         f"'deadline: NAME' where NAME is one of {', '.join(catalog.DEADLINES)}")
            return None

        if "event" in value:
            self.unknown_keys(rule, "trigger.", value, ("event",))
            event_type = value["event"]
            if event_type not in catalog.EVENT_FIELDS:
                self.problem(rule, "trigger.event", f"{event_type!r} is not an event type; use one of "
                             f"{', '.join(catalog.EVENT_FIELDS)}")
                return None
            return EventTrigger(event_type)

        deadline = value["deadline"]
        kind = catalog.DEADLINES.get(deadline)
        if kind is None:
            self.problem(rule, "trigger.deadline", f"{deadline!r} is not a deadline; use one of "
                         f"{', '.join(catalog.DEADLINES)}")
            return None
        self.unknown_keys(rule, "trigger.", value, ("deadline", kind.offset_key))

        offsets = self.offsets(rule, f"trigger.{kind.offset_key}", value.get(kind.offset_key), kind.by_priority)
        if offsets is None:
            return None
        return DeadlineTrigger(deadline=deadline, aggregate_type=kind.aggregate_type, offsets=offsets)

    def offsets(self, rule: str, where: str, value: Any, by_priority: bool) -> dict[str, timedelta] | None:
        if value is None:
            self.problem(rule, where, "missing; give a duration such as 4h or 3d")
            return None
        if not isinstance(value, dict):
            duration = self.duration(rule, where, value)
            return {"*": duration}

        if not by_priority:
            self.problem(rule, where, "expected one duration such as 3d; only first_response takes one "
                         "duration per priority")
            return None
        offsets = {}
        for priority in catalog.PRIORITIES:
            if priority not in value:
                self.problem(rule, f"{where}.{priority}", "missing; give a duration for every priority "
                             f"({', '.join(catalog.PRIORITIES)}) or one duration for all")
                continue
            offsets[priority] = self.duration(rule, f"{where}.{priority}", value[priority])
        for key in value:
            if key not in catalog.PRIORITIES:
                self.problem(rule, f"{where}.{key}", f"not a priority; use {', '.join(catalog.PRIORITIES)}")
        return offsets

    def conditions(self, rule: str, value: Any, fields: frozenset[str]) -> list[Condition]:
        if not isinstance(value, dict):
            self.problem(rule, "conditions", "expected a mapping of field name to a value or to "
                         f"operators ({', '.join(OPERATORS)})")
            return []

        conditions = []
        for field_name, test in value.items():
            where = f"conditions.{field_name}"
            if field_name not in fields:
                self.problem(rule, where, f"not a field of this trigger; use one of {', '.join(sorted(fields))}")
                continue
            if not isinstance(test, dict):
                conditions.append(Condition(field_name, "equals", test))
                continue
            for operator, operand in test.items():
                condition = self.condition(rule, f"{where}.{operator}", field_name, operator, operand)
                if condition is not None:
                    conditions.append(condition)
        return conditions

    def condition(self, rule: str, where: str, field_name: str, operator: Any, operand: Any) -> Condition | None:
        if operator not in OPERATORS:
            self.problem(rule, where, f"{operator!r} is not an operator; use one of {', '.join(OPERATORS)}")
            return None
        if operator in ("in", "not_in") and not isinstance(operand, list):
            self.problem(rule, where, f"expected a list of values, such as [high, urgent], got {operand!r}")
            return None
        if operator in ("min", "max") and (isinstance(operand, bool) or not isinstance(operand, (int, float))):
            self.problem(rule, where, f"expected a number, got {operand!r}")
            return None
        return Condition(field_name, operator, operand)

    def recipients(
        self,
        rule: str,
        value: Any,
        trigger: EventTrigger | DeadlineTrigger,
        channel: str | None,
        slack_webhooks: Mapping[str, str],
    ) -> list[str]:
        if not isinstance(value, list) or not value:
            self.problem(rule, "recipients", "expected a non-empty list, such as [assigned_agent] or [department]")
            return []

        aggregate_type = trigger.aggregate_type
        recipients = []
        for recipient in value:
            where = f"recipients.{recipient}"
            if not isinstance(recipient, str):
                self.problem(rule, "recipients", f"{recipient!r} is not a recipient name")
            elif recipient.startswith("slack:"):
                if channel != "slack":
                    self.problem(rule, where, "a named Slack webhook needs channel: slack")
                elif recipient[len("slack:"):] not in slack_webhooks:
                    self.problem(rule, where, "no such name under slack_webhooks; add it there or fix the name")
                else:
                    recipients.append(recipient)
            elif "@" in recipient:
                if channel != "email":
                    self.problem(rule, where, "an e-mail address needs channel: email")
                elif self.emails(rule, where, [recipient]):
                    recipients.append(recipient)
            elif recipient in catalog.RECIPIENTS:
                recipients.extend(self.symbolic_recipient(rule, where, recipient, trigger, aggregate_type, channel))
            else:
                self.problem(rule, where, f"not a recipient; use one of {', '.join(catalog.RECIPIENTS)}, "
                             "an e-mail address or slack:NAME of a webhook under slack_webhooks")
        return recipients

    def symbolic_recipient(
        self,
        rule: str,
        where: str,
        recipient: str,
        trigger: EventTrigger | DeadlineTrigger,
        aggregate_type: str,
        channel: str | None,
    ) -> list[str]:
        aggregate_types, channels = catalog.RECIPIENTS[recipient]
        if aggregate_type not in aggregate_types:
            self.problem(rule, where, f"{recipient} is not known for {aggregate_type} rules; it applies "
                         f"to {', '.join(aggregate_types)} rules")
            return []
        if channel is not None and channel not in channels:
            self.problem(rule, where, f"{recipient} can be reached by {', '.join(channels)} only; "
                         "change the channel or the recipient")
            return []
        has_agent = isinstance(trigger, EventTrigger) and trigger.event_type in catalog.TICKET_EVENTS_WITH_AGENT
        if recipient == "agent" and aggregate_type == "Ticket" and not has_agent:
            self.problem(rule, where, "this ticket event names no agent; use assigned_agent, or trigger on "
                         f"one of {', '.join(catalog.TICKET_EVENTS_WITH_AGENT)}")
            return []
        return [recipient]

    def template(self, rule: str, value: Any, channel: str, fields: frozenset[str]) -> Template | None:
        keys = _TEMPLATE_KEYS[channel]
        if not isinstance(value, dict):
            self.problem(rule, "template", f"expected a mapping with {' and '.join(keys)} for channel {channel}")
            return None
        self.unknown_keys(rule, "template.", value, keys + ("translations",))

        default = self.message_template(rule, "template", value, keys, fields)
        translations_value = value.get("translations", {})
        translations = {}
        if not isinstance(translations_value, dict):
            self.problem(rule, "template.translations", "expected a mapping of language tag to "
                         f"{' and '.join(keys)}, such as de: {{{keys[-1]}: ...}}")
        else:
            for language, translated in translations_value.items():
                where = f"template.translations.{language}"
                tag = str(language).lower()
                if not _LANGUAGE.match(tag):
                    self.problem(rule, where, f"{language!r} is not a language tag such as de or pt-br")
                    continue
                if not isinstance(translated, dict):
                    self.problem(rule, where, f"expected a mapping with {' and '.join(keys)}")
                    continue
                self.unknown_keys(rule, where + ".", translated, keys)
                message = self.message_template(rule, where, translated, keys, fields)
                if message is not None:
                    translations[tag] = message

        if default is None:
            return None
        return Template(default=default, translations=translations)

    def message_template(
        self, rule: str, where: str, value: dict[str, Any], keys: tuple[str, ...], fields: frozenset[str]
    ) -> MessageTemplate | None:
        parts: dict[str, string.Template] = {}
        for key in keys:
            text = value.get(key)
            if not isinstance(text, str) or not text.strip():
                self.problem(rule, f"{where}.{key}", "missing or empty; write the text, with $field placeholders")
                continue
            template = string.Template(text)
            if not template.is_valid():
                self.problem(rule, f"{where}.{key}", "has a '$' that starts no placeholder; write $$ for a "
                             "dollar sign and $name or ${name} for a field")
                continue
            unknown = sorted(set(template.get_identifiers()) - fields)
            if unknown:
                self.problem(rule, f"{where}.{key}", f"unknown placeholder {', '.join('$' + u for u in unknown)}; "
                             f"use fields of this trigger: {', '.join(sorted(fields))}")
                continue
            parts[key] = template
        if len(parts) != len(keys):
            return None
        body = parts.get("body") or parts["text"]
        return MessageTemplate(body=body, subject=parts.get("subject"))

    # --- values ---------------------------------------------------------------------

    def duration(self, rule: str | None, where: str, value: Any) -> timedelta:
        try:
            duration = parse_duration(value)
        except ValueError as error:
            self.problem(rule, where, str(error))
            return timedelta(0)
        return duration

    def emails(self, rule: str | None, where: str, value: Any) -> list[str]:
        if not isinstance(value, list):
            self.problem(rule, where, "expected a list of e-mail addresses")
            return []
        valid = []
        for address in value:
            if isinstance(address, str) and _EMAIL.match(address):
                valid.append(address)
            else:
                self.problem(rule, where, f"{address!r} is not an e-mail address such as admin@example.org")
        return valid

    def webhook(self, rule: str | None, where: str, url: Any) -> bool:
        # The URL itself stays out of the message because a webhook URL is a secret.
        if isinstance(url, str) and url.startswith(("https://", "http://")):
            return True
        self.problem(rule, where, "not an http(s) URL; paste the incoming-webhook URL that Slack gave you")
        return False

    def optional_webhook(self, where: str, url: Any) -> str | None:
        if url is None or not self.webhook(None, where, url):
            return None
        return str(url)

    def unknown_keys(self, rule: str | None, prefix: str, mapping: dict[str, Any], known: tuple[str, ...]) -> None:
        for key in mapping:
            if key not in known:
                self.problem(rule, f"{prefix}{key}", f"unknown key; expected one of {', '.join(known)}")
