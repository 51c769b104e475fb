"""Importer mapping format and local-time parsing: every check and its message."""

from __future__ import annotations

import copy
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from domain.values import Channel, Priority, Resolution
from ticketing.importer.actions import Action, ActionKind
from ticketing.importer.errors import MappingError
from ticketing.importer.mapping import (
    ColumnRef,
    Mode,
    default_mapping_path,
    load_mapping,
    parse_mapping,
    slug,
)
from ticketing.importer.timestamps import LocalTimeIssue, parse_timestamp

ROME = ZoneInfo("Europe/Rome")
LOG_FORMAT = "%Y/%m/%d %H:%M:%S"

HELPDESK_ACTIVITIES = {
    "Take in charge ticket",
    "Resolve ticket",
    "Assign seriousness",
    "Closed",
    "Wait",
    "Require upgrade",
    "Insert ticket",
    "Create SW anomaly",
    "Resolve SW anomaly",
    "Schedule intervention",
    "VERIFIED",
    "RESOLVED",
    "INVALID",
    "DUPLICATE",
}

MINIMAL: dict[str, Any] = {
    "name": "test-log",
    "columns": {
        "case": "ticket",
        "activity": "activity",
        "timestamp": "time",
        "resource": "agent",
        "customer": "customer",
        "department": "team",
    },
    "timestamp": {"format": "%Y-%m-%d %H:%M", "timezone": "Europe/Rome"},
    "activity_commands": {"New": ["open"], "Done": [{"resolve": "solved"}, "close"]},
}


def mapping_with(**changes: Any) -> dict[str, Any]:
    document = copy.deepcopy(MINIMAL)
    document.update(changes)
    return document


def mapping_error(document: object) -> MappingError:
    with pytest.raises(MappingError) as caught:
        parse_mapping(document, path="test.yaml")
    return caught.value


# The shipped mapping.


def test_shipped_mapping_maps_all_activities() -> None:
    mapping = load_mapping(default_mapping_path())

    assert set(mapping.commands) == HELPDESK_ACTIVITIES
    assert mapping.mode is Mode.EVENTS
    assert mapping.channel is Channel.WEB_FORM
    assert mapping.timezone == ROME
    assert mapping.system_resources == {"Value 3", "Value 5"}


def test_shipped_mapping_keeps_ticket_attributes() -> None:
    mapping = load_mapping(default_mapping_path())

    assert set(mapping.attributes) == {
        "product",
        "support_section",
        "workgroup",
        "service_level",
        "service_type",
        "seriousness",
        "seriousness_2",
    }
    assert mapping.department_column == ColumnRef(name="responsible_section")
    assert mapping.customer_column == ColumnRef(name="customer")


def test_shipped_mapping_actions() -> None:
    commands = load_mapping(default_mapping_path()).commands

    assert commands["Resolve ticket"][-1] == Action(ActionKind.RESOLVE, resolution=Resolution.SOLVED)
    assert [action.kind for action in commands["Closed"]] == [ActionKind.CLOSE]
    assert [action.kind for action in commands["Wait"]] == [ActionKind.MOVE_TO_PENDING, ActionKind.FIRST_REPLY]
    assert [action.kind for action in commands["Create SW anomaly"]] == [ActionKind.PUT_ON_HOLD]
    assert [action.kind for action in commands["VERIFIED"]] == [ActionKind.NOTE]


# Valid documents.


def test_minimal_mapping_defaults() -> None:
    mapping = parse_mapping(MINIMAL)

    assert mapping.delimiter == ","
    assert mapping.encoding == "utf-8-sig"
    assert mapping.channel is Channel.WEB_FORM
    assert mapping.priority is Priority.NORMAL
    assert mapping.subject == "{case}"
    assert mapping.customer_contact.render("Value 12") == ("Value 12", "customer-value-12@example.invalid")
    assert mapping.agent_contact.render("Value 3") == ("Value 3", "agent-value-3@example.invalid")
    assert mapping.system_resources == frozenset()


def test_column_by_occurrence_and_position() -> None:
    document = mapping_with(attributes={"variant": {"name": "Variant", "occurrence": 2}, "fifth": {"position": 5}})

    mapping = parse_mapping(document)

    assert mapping.attributes["variant"] == ColumnRef(name="Variant", occurrence=2)
    assert mapping.attributes["fifth"] == ColumnRef(position=5)


def test_snapshot_mode_reads_status_commands() -> None:
    document = mapping_with(status_commands={"new": ["open"], "solved": [{"resolve": "solved"}]})
    del document["activity_commands"]
    document["mode"] = "snapshot"
    document["columns"] = {**document["columns"], "status": "state"}
    del document["columns"]["activity"]
    document["assign_on_resource_change"] = True

    mapping = parse_mapping(document)

    assert mapping.mode is Mode.SNAPSHOT
    assert mapping.label_column == ColumnRef(name="state")
    assert set(mapping.commands) == {"new", "solved"}
    assert mapping.assign_on_resource_change is True


def test_priority_rule_parsed() -> None:
    document = mapping_with(priority={"column": "severity", "values": {"S1": "urgent", "S3": "low"}})

    rule = parse_mapping(document).priority_rule

    assert rule is not None
    assert rule.column == ColumnRef(name="severity")
    assert rule.values == {"S1": Priority.URGENT, "S3": Priority.LOW}


def test_default_department_replaces_column() -> None:
    document = mapping_with(defaults={"department": "support"})
    del document["columns"]["department"]

    mapping = parse_mapping(document)

    assert mapping.department_column is None
    assert mapping.department == "support"


def test_slug_of_anonymised_values() -> None:
    assert slug("Value 12") == "value-12"
    assert slug("  Ünïcode / Team ") == "n-code-team"
    assert slug("***") == "blank"


# Rejected documents: each message names the key and the fix.


def test_missing_file_rejected(tmp_path: Path) -> None:
    with pytest.raises(MappingError) as caught:
        load_mapping(tmp_path / "absent.yaml")

    assert "absent.yaml" in str(caught.value)
    assert "--mapping" in str(caught.value)


def test_invalid_yaml_rejected(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("columns: [unclosed\n", encoding="utf-8")

    with pytest.raises(MappingError) as caught:
        load_mapping(path)

    assert "invalid YAML" in str(caught.value)


def test_invalid_yaml_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("name: x\ncolumns:\n  case: Case ID\n   activity: Activity\n", encoding="utf-8")

    with pytest.raises(MappingError) as caught:
        load_mapping(path)

    message = str(caught.value)
    assert message.startswith(f"{path}: invalid YAML at line 4, column ")
    assert "<unicode string>" not in message
    assert "\n" not in message


def test_mapping_not_utf8_rejected(tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes("name: caff\xe8\n".encode("latin-1"))

    with pytest.raises(MappingError) as caught:
        load_mapping(path)

    assert str(path) in str(caught.value)
    assert "not UTF-8" in str(caught.value)


def test_mapping_file_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "log.yaml"
    path.write_text(yaml.safe_dump(MINIMAL), encoding="utf-8")

    assert load_mapping(path).path == str(path)


@pytest.mark.parametrize(
    ("section", "key", "expected_key"),
    [
        ("columns", "case", "columns.case"),
        ("columns", "timestamp", "columns.timestamp"),
        ("columns", "customer", "columns.customer"),
        ("timestamp", "format", "timestamp.format"),
        ("timestamp", "timezone", "timestamp.timezone"),
    ],
)
def test_missing_key_named(section: str, key: str, expected_key: str) -> None:
    document = mapping_with()
    del document[section][key]

    error = mapping_error(document)

    assert error.key == expected_key
    assert "is missing" in str(error)


def test_unknown_key_named() -> None:
    error = mapping_error(mapping_with(colums={}))

    assert error.key == "colums"
    assert "Known keys here" in error.problem


def test_unknown_column_key_named() -> None:
    document = mapping_with()
    document["columns"]["custmer"] = "customer"

    assert mapping_error(document).key == "columns.custmer"


def test_invalid_timezone_rejected() -> None:
    document = mapping_with(timestamp={"format": "%Y", "timezone": "Europe/Atlantis"})

    error = mapping_error(document)

    assert error.key == "timestamp.timezone"
    assert "IANA" in error.problem


def test_format_without_directive_rejected() -> None:
    error = mapping_error(mapping_with(timestamp={"format": "YYYY-MM-DD", "timezone": "UTC"}))

    assert error.key == "timestamp.format"


def test_unknown_action_lists_actions() -> None:
    error = mapping_error(mapping_with(activity_commands={"New": ["open", "escalate"]}))

    assert error.key == "activity_commands.New[1]"
    assert "'escalate' is not valid" in error.problem
    assert "move_to_pending" in error.problem


def test_resolve_needs_resolution() -> None:
    error = mapping_error(mapping_with(activity_commands={"Done": ["resolve"]}))

    assert error.key == "activity_commands.Done[0]"
    assert "resolution" in error.problem


def test_invalid_resolution_rejected() -> None:
    error = mapping_error(mapping_with(activity_commands={"Done": [{"resolve": "fixed"}]}))

    assert error.key == "activity_commands.Done[0].resolve"
    assert "wont_fix" in error.problem


def test_argument_on_plain_action_rejected() -> None:
    error = mapping_error(mapping_with(activity_commands={"Done": [{"close": "now"}]}))

    assert "takes no argument" in error.problem


def test_unknown_template_field_rejected() -> None:
    error = mapping_error(mapping_with(activity_commands={"Note": [{"note": "by {agent}"}]}))

    assert error.key == "activity_commands.Note[0].note"
    assert "{agent}" in error.problem
    assert "{resource}" in error.problem


def test_unknown_subject_field_rejected() -> None:
    error = mapping_error(mapping_with(defaults={"subject": "{title}"}))

    assert error.key == "defaults.subject"


def test_contact_email_template_checked() -> None:
    error = mapping_error(mapping_with(customers={"email": "{slug}"}))

    assert error.key == "customers.email"


def test_invalid_channel_lists_channels() -> None:
    error = mapping_error(mapping_with(defaults={"channel": "fax"}))

    assert error.key == "defaults.channel"
    assert "web_form" in error.problem


def test_commands_of_other_mode_rejected() -> None:
    error = mapping_error(mapping_with(status_commands={"new": ["open"]}))

    assert error.key == "status_commands"
    assert "activity_commands" in error.problem


def test_snapshot_mode_rejects_activity_column() -> None:
    document = mapping_with(mode="snapshot", status_commands={"new": ["open"]})
    del document["activity_commands"]

    assert mapping_error(document).key == "columns.activity"


def test_snapshot_mode_needs_status_column() -> None:
    document = mapping_with(mode="snapshot", status_commands={"new": ["open"]})
    del document["activity_commands"]
    del document["columns"]["activity"]

    error = mapping_error(document)

    assert error.key == "columns.status"
    assert "is missing" in error.problem


def test_resource_change_option_only_for_snapshots() -> None:
    error = mapping_error(mapping_with(assign_on_resource_change=True))

    assert error.key == "assign_on_resource_change"


def test_missing_department_without_default_rejected() -> None:
    document = mapping_with()
    del document["columns"]["department"]

    error = mapping_error(document)

    assert error.key == "columns.department"
    assert "defaults.department" in error.problem


def test_column_occurrence_must_be_positive() -> None:
    error = mapping_error(mapping_with(attributes={"variant": {"name": "Variant", "occurrence": 0}}))

    assert error.key == "attributes.variant.occurrence"


def test_column_position_alone() -> None:
    error = mapping_error(mapping_with(attributes={"x": {"name": "X", "position": 2}}))

    assert "either `position` alone" in error.problem


def test_empty_commands_rejected() -> None:
    error = mapping_error(mapping_with(activity_commands={}))

    assert error.key == "activity_commands"


def test_unsupported_format_version_rejected() -> None:
    error = mapping_error(mapping_with(format=2))

    assert error.key == "format"


def test_invalid_priority_value_rejected() -> None:
    error = mapping_error(mapping_with(priority={"column": "severity", "values": {"S1": "critical"}}))

    assert error.key == "priority.values.S1"


def test_system_resources_must_be_list() -> None:
    error = mapping_error(mapping_with(system_resources="Value 3"))

    assert error.key == "system_resources"


def test_top_level_must_be_mapping() -> None:
    error = mapping_error(["not", "a", "mapping"])

    assert error.key == "top level"


# Local time.


def test_winter_time_is_utc_plus_one() -> None:
    parsed = parse_timestamp("2012/1/9 14:50:17", LOG_FORMAT, ROME)

    assert parsed.utc == datetime(2012, 1, 9, 13, 50, 17, tzinfo=timezone.utc)
    assert parsed.issue is None


def test_summer_time_is_utc_plus_two() -> None:
    parsed = parse_timestamp("2012/10/9 14:50:17", LOG_FORMAT, ROME)

    assert parsed.utc == datetime(2012, 10, 9, 12, 50, 17, tzinfo=timezone.utc)
    assert parsed.utc.tzinfo is timezone.utc


def test_unpadded_and_padded_agree() -> None:
    assert parse_timestamp("2012/3/5 7:05:09", LOG_FORMAT, ROME) == parse_timestamp(
        "2012/03/05 07:05:09", LOG_FORMAT, ROME
    )


def test_ambiguous_local_time_uses_first() -> None:
    parsed = parse_timestamp("2012/10/28 02:30:00", LOG_FORMAT, ROME)

    assert parsed.issue == LocalTimeIssue.AMBIGUOUS
    assert parsed.utc == datetime(2012, 10, 28, 0, 30, tzinfo=timezone.utc)


def test_nonexistent_local_time_flagged() -> None:
    parsed = parse_timestamp("2012/3/25 02:30:00", LOG_FORMAT, ROME)

    assert parsed.issue == LocalTimeIssue.NONEXISTENT
    assert parsed.utc == datetime(2012, 3, 25, 1, 30, tzinfo=timezone.utc)


def test_explicit_offset_ignores_zone() -> None:
    parsed = parse_timestamp("2012-10-09 14:50:17+0000", "%Y-%m-%d %H:%M:%S%z", ROME)

    assert parsed.utc == datetime(2012, 10, 9, 14, 50, 17, tzinfo=timezone.utc)
    assert parsed.issue is None


@pytest.mark.parametrize("text", ["2012/13/01 10:00:00", "yesterday", "2012/10/9", ""])
def test_unparsable_time_raises(text: str) -> None:
    with pytest.raises(ValueError):
        parse_timestamp(text, LOG_FORMAT, ROME)
