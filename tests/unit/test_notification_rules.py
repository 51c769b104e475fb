"""Loading and validating the notification rules file."""

from __future__ import annotations

import copy
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from projections.notifications.model import Condition, DeadlineTrigger, DeliveryPolicy, EventTrigger
from projections.notifications.rules import DEFAULT_RULES_PATH, RulesError, load_rules, parse_duration, parse_rules

PATH = Path("/etc/helpdesk/rules.yaml")


def minimal_document() -> dict[str, Any]:
    return {
        "version": 1,
        "admins": ["admin@example.org"],
        "rules": [
            {
                "name": "ticket-assigned",
                "trigger": {"event": "Ticket.Assigned"},
                "channel": "email",
                "recipients": ["assigned_agent"],
                "template": {"subject": "Assigned: $subject", "body": "Hello $recipient_name"},
            }
        ],
    }


def with_rule(**changes: Any) -> dict[str, Any]:
    document = minimal_document()
    document["rules"][0].update(changes)
    return document


def problems_of(document: Any) -> list[str]:
    with pytest.raises(RulesError) as caught:
        parse_rules(document, PATH)
    return [problem.describe() for problem in caught.value.problems]


def test_shipped_rules_load() -> None:
    rules = load_rules()

    assert rules.path == DEFAULT_RULES_PATH
    assert [rule.name for rule in rules.rules] == [
        "ticket-assigned",
        "first-response-overdue",
        "pending-no-customer-reply",
        "callback-requested",
        "low-rating",
        "engagement-ending",
    ]


def test_shipped_first_response_offsets() -> None:
    rule = load_rules().rule("first-response-overdue")

    assert rule is not None
    assert isinstance(rule.trigger, DeadlineTrigger)
    assert rule.trigger.offset_for("urgent") == timedelta(hours=1)
    assert rule.trigger.offset_for("high") == timedelta(hours=4)
    assert rule.trigger.offset_for("normal") == timedelta(hours=24)
    assert rule.trigger.offset_for("low") == timedelta(hours=72)
    assert rule.channel == "slack"
    assert rule.recipients == ("department",)


def test_shipped_rules_channels_and_recipients() -> None:
    rules = {rule.name: rule for rule in load_rules().rules}

    assert (rules["ticket-assigned"].channel, rules["ticket-assigned"].recipients) == ("email", ("assigned_agent",))
    assert (rules["pending-no-customer-reply"].channel, rules["pending-no-customer-reply"].recipients) == (
        "email",
        ("customer",),
    )
    assert (rules["callback-requested"].channel, rules["callback-requested"].recipients) == ("slack", ("department",))
    assert (rules["low-rating"].channel, rules["low-rating"].recipients) == ("slack", ("team_lead",))
    assert rules["low-rating"].conditions == (Condition("score", "max", 2),)
    assert (rules["engagement-ending"].channel, rules["engagement-ending"].recipients) == ("email", ("admins",))


def test_shipped_pending_rule_has_translations() -> None:
    rule = load_rules().rule("pending-no-customer-reply")

    assert rule is not None
    assert set(rule.template.translations) == {"de", "fr", "es"}


def test_minimal_document_parses() -> None:
    rules = parse_rules(minimal_document(), PATH)

    rule = rules.rules[0]
    assert rule.trigger == EventTrigger("Ticket.Assigned")
    assert rules.admins == ("admin@example.org",)
    assert rules.delivery == DeliveryPolicy()
    assert rules.allowed_lateness == timedelta(0)


def test_error_names_file_rule_and_field() -> None:
    document = with_rule(trigger={"event": "Ticket.Asigned"})

    with pytest.raises(RulesError) as caught:
        parse_rules(document, PATH)

    message = str(caught.value)
    assert str(PATH) in message
    assert "rule 'ticket-assigned'" in message
    assert "field 'trigger.event'" in message
    assert "'Ticket.Asigned' is not an event type" in message
    assert "Ticket.Assigned" in message  # the list of valid types shows what to write


def test_all_problems_reported_together() -> None:
    document = with_rule(channel="sms", recipients=["nobody"])
    document["rules"][0]["conditions"] = {"colour": "red"}

    problems = problems_of(document)

    assert any("field 'channel'" in problem and "'sms' is not a channel" in problem for problem in problems)
    assert any("field 'recipients.nobody'" in problem for problem in problems)
    assert any("field 'conditions.colour'" in problem and "not a field" in problem for problem in problems)


def test_unknown_placeholder_rejected() -> None:
    document = with_rule(template={"subject": "Hi $nonexistent", "body": "x"})

    problems = problems_of(document)

    assert len(problems) == 1
    assert "field 'template.subject'" in problems[0]
    assert "unknown placeholder $nonexistent" in problems[0]


def test_lone_dollar_rejected() -> None:
    document = with_rule(template={"subject": "Costs 5 $", "body": "x"})

    problems = problems_of(document)

    assert "write $$ for a dollar sign" in problems[0]


def test_missing_template_part_rejected() -> None:
    document = with_rule(template={"subject": "Assigned"})

    problems = problems_of(document)

    assert any("field 'template.body'" in problem and "missing or empty" in problem for problem in problems)


def test_slack_template_takes_text_only() -> None:
    document = with_rule(
        trigger={"event": "Ticket.CallbackRequested"},
        channel="slack",
        recipients=["department"],
        template={"subject": "Callback", "text": "Call $phone"},
    )

    problems = problems_of(document)

    assert problems == ["rule 'ticket-assigned', field 'template.subject': unknown key; expected one of text, translations"]


def test_recipient_channel_mismatch_rejected() -> None:
    document = with_rule(channel="slack", recipients=["assigned_agent"], template={"text": "x"})

    problems = problems_of(document)

    assert problems == [
        "rule 'ticket-assigned', field 'recipients.assigned_agent': assigned_agent can be reached by email only; "
        "change the channel or the recipient"
    ]


def test_recipient_for_other_aggregate_rejected() -> None:
    document = with_rule(trigger={"event": "Agent.Hired"}, recipients=["customer"])

    problems = problems_of(document)

    assert any("customer is not known for Agent rules" in problem for problem in problems)


def test_agent_recipient_needs_event_with_agent() -> None:
    document = with_rule(trigger={"event": "Ticket.Opened"}, recipients=["agent"])

    problems = problems_of(document)

    assert any("this ticket event names no agent" in problem for problem in problems)


def test_named_slack_webhook_must_exist() -> None:
    document = with_rule(channel="slack", recipients=["slack:leads"], template={"text": "x"})

    problems = problems_of(document)

    assert any("field 'recipients.slack:leads'" in problem and "slack_webhooks" in problem for problem in problems)


def test_named_slack_webhook_accepted() -> None:
    document = with_rule(channel="slack", recipients=["slack:leads"], template={"text": "x"})
    document["slack_webhooks"] = {"leads": "https://hooks.example.org/T000/B000"}

    rules = parse_rules(document, PATH)

    assert rules.rules[0].recipients == ("slack:leads",)


def test_literal_email_recipient_accepted() -> None:
    rules = parse_rules(with_rule(recipients=["ops@example.org"]), PATH)

    assert rules.rules[0].recipients == ("ops@example.org",)


def test_first_response_needs_every_priority() -> None:
    document = with_rule(
        trigger={"deadline": "first_response", "after": {"urgent": "1h", "high": "4h", "normal": "24h"}},
        channel="slack",
        recipients=["department"],
        template={"text": "late"},
    )

    problems = problems_of(document)

    assert problems == [
        "rule 'ticket-assigned', field 'trigger.after.low': missing; give a duration for every priority "
        "(low, normal, high, urgent) or one duration for all"
    ]


def test_first_response_single_duration() -> None:
    document = with_rule(
        trigger={"deadline": "first_response", "after": "2h"},
        channel="slack",
        recipients=["department"],
        template={"text": "late by $delay"},
    )

    trigger = parse_rules(document, PATH).rules[0].trigger

    assert isinstance(trigger, DeadlineTrigger)
    assert trigger.offset_for("low") == timedelta(hours=2)
    assert trigger.offset_for("urgent") == timedelta(hours=2)


def test_customer_reply_rejects_per_priority() -> None:
    document = with_rule(
        trigger={"deadline": "customer_reply", "after": {"low": "1d"}},
        recipients=["customer"],
    )

    problems = problems_of(document)

    assert any("only first_response takes one duration per priority" in problem for problem in problems)


def test_engagement_end_uses_before() -> None:
    document = with_rule(
        trigger={"deadline": "engagement_end", "after": "24h"},
        recipients=["admins"],
        template={"subject": "ends", "body": "$agent_name"},
    )

    problems = problems_of(document)

    assert any("field 'trigger.after': unknown key; expected one of deadline, before" in p for p in problems)


def test_bad_duration_rejected() -> None:
    document = with_rule(
        trigger={"deadline": "customer_reply", "after": "three days"},
        recipients=["customer"],
    )

    problems = problems_of(document)

    assert problems == [
        "rule 'ticket-assigned', field 'trigger.after': 'three days' is not a duration; write a number and a "
        "unit, such as 30s, 15m, 4h or 3d"
    ]


def test_condition_operator_checked() -> None:
    document = with_rule(trigger={"event": "Ticket.SatisfactionRated"}, recipients=["admins"],
                         template={"subject": "s", "body": "$score"})
    document["rules"][0]["conditions"] = {"score": {"maximum": 2}, "comment": {"in": "bad"}}

    problems = problems_of(document)

    assert any("field 'conditions.score.maximum'" in p and "is not an operator" in p for p in problems)
    assert any("field 'conditions.comment.in'" in p and "expected a list" in p for p in problems)


def test_duplicate_rule_names_rejected() -> None:
    document = minimal_document()
    document["rules"].append(copy.deepcopy(document["rules"][0]))

    problems = problems_of(document)

    assert problems == ["rule 'ticket-assigned', field 'name': another rule has the same name; give each rule a unique name"]


def test_unknown_rule_key_rejected() -> None:
    document = with_rule(recipient=["assigned_agent"])

    problems = problems_of(document)

    assert problems == [
        "rule 'ticket-assigned', field 'recipient': unknown key; expected one of name, trigger, conditions, "
        "channel, recipients, template"
    ]


def test_bad_translation_language_rejected() -> None:
    document = with_rule(
        template={"subject": "s", "body": "b", "translations": {"German": {"subject": "s", "body": "b"}}}
    )

    problems = problems_of(document)

    assert any("field 'template.translations.German'" in p and "not a language tag" in p for p in problems)


def test_bad_webhook_message_hides_value() -> None:
    document = minimal_document()
    document["departments"] = {"billing": {"slack_webhook": "hooks.example.org/secret-token"}}

    problems = problems_of(document)

    assert problems == [
        "field 'departments.billing.slack_webhook': not an http(s) URL; paste the incoming-webhook URL that Slack gave you"
    ]
    assert "secret-token" not in problems[0]


def test_delivery_policy_parsed() -> None:
    document = minimal_document()
    document["delivery"] = {"max_attempts": 3, "first_retry_after": "10s", "max_retry_after": "1m", "max_age": "2d"}

    policy = parse_rules(document, PATH).delivery

    assert policy == DeliveryPolicy(
        max_attempts=3,
        first_retry_after=timedelta(seconds=10),
        max_retry_after=timedelta(minutes=1),
        max_age=timedelta(days=2),
    )


def test_delivery_max_attempts_checked() -> None:
    document = minimal_document()
    document["delivery"] = {"max_attempts": 0}

    problems = problems_of(document)

    assert problems == ["field 'delivery.max_attempts': 0 is not a whole number of at least 1"]


def test_retry_delay_doubles_up_to_cap() -> None:
    policy = DeliveryPolicy(first_retry_after=timedelta(seconds=30), max_retry_after=timedelta(minutes=3))

    delays = [policy.retry_delay(attempt) for attempt in range(1, 6)]

    assert delays == [
        timedelta(seconds=30),
        timedelta(seconds=60),
        timedelta(seconds=120),
        timedelta(seconds=180),
        timedelta(seconds=180),
    ]


def test_document_not_mapping_rejected() -> None:
    problems = problems_of(["rules"])

    assert problems == ["field '(file)': expected a mapping with a 'rules' list at the top level"]


def test_missing_file_names_setting(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(RulesError) as caught:
        load_rules(path)

    assert str(path) in str(caught.value)
    assert "NOTIFICATION_RULES" in str(caught.value)


def test_invalid_yaml_reported(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: [unclosed\n", encoding="utf-8")

    with pytest.raises(RulesError) as caught:
        load_rules(path)

    assert str(path) in str(caught.value)
    assert "not valid YAML" in str(caught.value)


def test_invalid_yaml_names_line(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text("version: 1\nrules:\n  - name: [unclosed\n", encoding="utf-8")

    with pytest.raises(RulesError) as caught:
        load_rules(path)

    message = str(caught.value)
    assert "not valid YAML at line 4, column 1" in message
    assert "flow sequence started at line 3, column 11" in message
    assert "<unicode string>" not in message


def test_missing_file_named_as_argument(tmp_path: Path) -> None:
    path = tmp_path / "absent.yaml"

    with pytest.raises(RulesError) as caught:
        load_rules(path, given_by="PATH")

    message = str(caught.value)
    assert str(path) in message
    assert "the file given as PATH does not exist" in message
    assert "point NOTIFICATION_RULES at" not in message


def test_rules_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(minimal_document()), encoding="utf-8")

    rules = load_rules(path)

    assert rules.path == path
    assert rules.rules[0].name == "ticket-assigned"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("30s", timedelta(seconds=30)),
        ("15m", timedelta(minutes=15)),
        ("4h", timedelta(hours=4)),
        ("3d", timedelta(days=3)),
        ("1w", timedelta(weeks=1)),
        ("0.5s", timedelta(milliseconds=500)),
        (" 2 h ", timedelta(hours=2)),
    ],
)
def test_parse_duration_accepts(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "4", "4 hours", "h4", "-1h", True, None])
def test_parse_duration_rejects(text: Any) -> None:
    with pytest.raises(ValueError, match="is not a duration"):
        parse_duration(text)


@pytest.mark.parametrize(
    ("condition", "context", "expected"),
    [
        (Condition("score", "max", 2), {"score": 2}, True),
        (Condition("score", "max", 2), {"score": 3}, False),
        (Condition("score", "min", 4), {"score": 5}, True),
        (Condition("score", "max", 2), {"score": None}, False),
        (Condition("score", "max", 2), {"score": True}, False),
        (Condition("priority", "equals", "high"), {"priority": "high"}, True),
        (Condition("priority", "not_equals", "high"), {"priority": "low"}, True),
        (Condition("priority", "in", ["high", "urgent"]), {"priority": "urgent"}, True),
        (Condition("priority", "not_in", ["high", "urgent"]), {"priority": "urgent"}, False),
        (Condition("ended_early", "equals", False), {"ended_early": False}, True),
        (Condition("score", "equals", 2), {"score": 2}, True),
        (Condition("score", "in", [1, 2]), {"score": 2}, True),
    ],
)
def test_condition_matches(condition: Condition, context: dict[str, Any], expected: bool) -> None:
    assert condition.matches(context) is expected
