"""Schema evolution rules: the new schema as reader must read data written with the old one."""

from __future__ import annotations

import copy
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastavro
import pytest
import typer
from typer.testing import CliRunner, Result

from ticketing.cli import schemas as schemas_cli
from ticketing.stream.compatibility import (
    check_history,
    check_reader,
    compare_repositories,
    schema_texts_at_revision,
    unique_incompatibilities,
)
from ticketing.stream.schemas import DEFAULT_SCHEMAS_DIR, SchemaRepository

REPOSITORY_ROOT = DEFAULT_SCHEMAS_DIR.parent

OLD = {
    "type": "record",
    "name": "Thing",
    "namespace": "helpdesk.events",
    "fields": [
        {"name": "thing_id", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "count", "type": "int"},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["small", "large", "huge"]}},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "labels", "type": {"type": "map", "values": "string"}},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "seen_at", "type": {"type": "long", "logicalType": "timestamp-micros"}},
    ],
}


def changed(edit: Callable[[dict[str, Any]], object]) -> dict[str, Any]:
    """Return a deep copy of OLD after `edit` ran on it."""
    schema = copy.deepcopy(OLD)
    edit(schema)
    return schema


def field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(item for item in schema["fields"] if item["name"] == name)


def problems(new: dict[str, Any], old: dict[str, Any] = OLD) -> list[str]:
    return [str(problem) for problem in check_reader(fastavro.parse_schema(copy.deepcopy(new)), fastavro.parse_schema(copy.deepcopy(old)))]


def repository(*schemas: tuple[str, dict[str, Any]]) -> SchemaRepository:
    return SchemaRepository.from_texts({path: json.dumps(schema) for path, schema in schemas})


# Breaking changes, one kind per test.


def test_added_field_without_default_breaks() -> None:
    new = changed(lambda schema: schema["fields"].append({"name": "owner", "type": "string"}))

    assert problems(new) == [
        "helpdesk.events.Thing field owner: added without a default, so data written without it cannot be read"
    ]


def test_type_change_without_promotion_breaks() -> None:
    new = changed(lambda schema: field(schema, "count").update(type="string"))

    assert problems(new) == [
        "helpdesk.events.Thing field count: type changed from int to string, which is not an Avro promotion"
    ]


def test_narrowing_long_to_int_breaks() -> None:
    old = changed(lambda schema: field(schema, "count").update(type="long"))

    assert problems(OLD, old) == [
        "helpdesk.events.Thing field count: type changed from long to int, which is not an Avro promotion"
    ]


def test_removed_enum_symbol_breaks() -> None:
    new = changed(lambda schema: field(schema, "kind")["type"].update(symbols=["small", "large"]))

    assert problems(new) == [
        "helpdesk.events.Thing field kind: enum helpdesk.events.Kind lost symbols huge, which old data may contain"
    ]


def test_optional_field_made_required_breaks() -> None:
    def edit(schema: dict[str, Any]) -> None:
        field(schema, "note").update(type="string")
        del field(schema, "note")["default"]

    assert problems(changed(edit)) == [
        "helpdesk.events.Thing field note: the old union allowed null, which string cannot read. Keep that branch in a union"
    ]


def test_changed_array_items_break() -> None:
    new = changed(lambda schema: field(schema, "tags")["type"].update(items="int"))

    assert problems(new) == [
        "helpdesk.events.Thing field tags[]: type changed from string to int, which is not an Avro promotion"
    ]


def test_changed_logical_type_breaks() -> None:
    new = changed(lambda schema: field(schema, "seen_at")["type"].update(logicalType="timestamp-millis"))

    found = problems(new)

    assert len(found) == 1
    assert "field seen_at: logical type changed from timestamp-micros to timestamp-millis" in found[0]


def test_renamed_record_breaks() -> None:
    new = changed(lambda schema: schema.update(name="Gadget"))

    assert problems(new) == [
        "helpdesk.events.Gadget: record helpdesk.events.Thing was renamed to helpdesk.events.Gadget without an alias"
    ]


def test_removed_schema_breaks() -> None:
    other = changed(lambda schema: schema.update(name="Other"))
    old = repository(("thing/Thing.avsc", OLD), ("thing/Other.avsc", other))
    new = repository(("thing/Other.avsc", other))

    found = [str(problem) for problem in compare_repositories(old, new)]

    assert found == [
        "helpdesk.events.Thing: schema removed (was thing/Thing.avsc), so messages written with it would have no reader schema"
    ]


def test_dropped_old_version_breaks() -> None:
    new = changed(lambda schema: schema["fields"].append({"name": "owner", "type": "string", "default": "nobody"}))

    found = compare_repositories(repository(("thing/Thing.avsc", OLD)), repository(("thing/Thing.avsc", new)))

    assert len(found) == 1
    assert found[0].schema == "helpdesk.events.Thing"
    assert "the old version thing/Thing.avsc" in found[0].problem
    assert "Copy it to thing/history/Thing.v1.avsc" in found[0].problem


def test_history_version_unreadable_by_current_breaks() -> None:
    new = changed(lambda schema: schema["fields"].append({"name": "owner", "type": "string"}))

    found = check_history(repository(("thing/Thing.avsc", new), ("thing/history/Thing.v1.avsc", OLD)))

    assert [str(problem) for problem in found] == [
        "helpdesk.events.Thing field owner: added without a default, so data written without it cannot be read "
        "(writer schema thing/history/Thing.v1.avsc)"
    ]


def test_every_problem_is_reported() -> None:
    def edit(schema: dict[str, Any]) -> None:
        schema["fields"].append({"name": "owner", "type": "string"})
        field(schema, "count").update(type="boolean")

    fields = {problem.field for problem in check_reader(fastavro.parse_schema(changed(edit)), fastavro.parse_schema(OLD))}

    assert fields == {"owner", "count"}


# Compatible changes.


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(
            lambda schema: schema["fields"].append({"name": "owner", "type": "string", "default": "nobody"}),
            id="field added with default",
        ),
        pytest.param(lambda schema: schema["fields"].pop(1), id="field removed"),
        pytest.param(lambda schema: field(schema, "count").update(type="long"), id="int promoted to long"),
        pytest.param(lambda schema: field(schema, "count").update(type="double"), id="int promoted to double"),
        pytest.param(
            lambda schema: field(schema, "kind")["type"]["symbols"].append("tiny"), id="enum symbol added"
        ),
        pytest.param(
            lambda schema: field(schema, "kind")["type"].update(symbols=["small", "large"], default="small"),
            id="enum symbol removed with enum default",
        ),
        pytest.param(lambda schema: field(schema, "count").update(type=["null", "int"]), id="required made optional"),
        pytest.param(lambda schema: schema.update(doc="Documented later."), id="doc changed"),
        pytest.param(
            lambda schema: field(schema, "note").update(aliases=["remark"], name="comment"),
            id="field renamed with no default but alias",
        ),
    ],
)
def test_compatible_change_passes(edit: Callable[[dict[str, Any]], object]) -> None:
    assert problems(changed(edit)) == []


def test_kept_old_version_passes() -> None:
    new = changed(lambda schema: schema["fields"].append({"name": "owner", "type": "string", "default": "nobody"}))

    old = repository(("thing/Thing.avsc", OLD))
    current = repository(("thing/Thing.avsc", new), ("thing/history/Thing.v1.avsc", OLD))

    assert compare_repositories(old, current) == []
    assert check_history(current) == []


def test_repository_schemas_read_their_history() -> None:
    current = SchemaRepository.load(DEFAULT_SCHEMAS_DIR)

    assert current.history_schemas(), "schemas/ should keep at least one old version"
    assert check_history(current) == []
    assert compare_repositories(current, current) == []


# The command, against git revisions.


def git(cwd: Path, *args: str) -> str:
    completed = subprocess.run(
        ["git", "-c", "user.name=Schema Test", "-c", "user.email=schema-test@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    return completed.stdout


@pytest.fixture
def schema_checkout(tmp_path: Path) -> Path:
    """Return the schemas folder of a new git repository whose first commit contains a copy of schemas/."""
    shutil.copytree(DEFAULT_SCHEMAS_DIR, tmp_path / "schemas")
    git(tmp_path, "init", "--quiet")
    git(tmp_path, "add", "schemas")
    git(tmp_path, "commit", "--quiet", "-m", "Add schemas")
    return tmp_path / "schemas"


def run_check(schemas_dir: Path, *extra: str) -> Result:
    app = typer.Typer()
    schemas_cli.register(app)
    # A second command keeps typer from folding the single group into the top level.
    app.command("noop")(lambda: None)
    return CliRunner().invoke(app, ["schemas", "check", "--schemas-dir", str(schemas_dir), *extra])


def test_texts_at_revision_match_the_commit(schema_checkout: Path) -> None:
    texts = schema_texts_at_revision(schema_checkout, "HEAD")

    assert "ticket/TicketOpened.avsc" in texts
    assert "customer/history/CustomerRegistered.v1.avsc" in texts
    assert texts["Envelope.avsc"] == (schema_checkout / "Envelope.avsc").read_text()


def test_check_passes_for_unchanged_schemas(schema_checkout: Path) -> None:
    result = run_check(schema_checkout)

    assert result.exit_code == 0, result.output
    assert "schemas check passed" in result.output


def test_check_fails_naming_schema_and_field(schema_checkout: Path) -> None:
    path = schema_checkout / "ticket" / "TicketResolved.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append({"name": "resolved_by", "type": "string", "doc": "Agent who resolved it."})
    path.write_text(json.dumps(schema, indent=2))

    result = run_check(schema_checkout)

    assert result.exit_code == 1
    assert "helpdesk.events.TicketResolved field resolved_by: added without a default" in result.output
    assert "ticket/history/TicketResolved.v1.avsc" in result.output


def test_check_fails_for_removed_enum_symbol(schema_checkout: Path) -> None:
    path = schema_checkout / "ticket" / "TicketResolved.avsc"
    schema = json.loads(path.read_text())
    resolution = schema["fields"][-1]["type"]
    resolution["symbols"] = [symbol for symbol in resolution["symbols"] if symbol != "invalid"]
    path.write_text(json.dumps(schema, indent=2))

    result = run_check(schema_checkout)

    assert result.exit_code == 1
    assert "helpdesk.events.TicketResolved field resolution: enum helpdesk.events.Resolution lost symbols" in result.output


def test_check_passes_for_evolution_with_history(schema_checkout: Path) -> None:
    path = schema_checkout / "ticket" / "TicketResolved.avsc"
    (schema_checkout / "ticket" / "history").mkdir()
    shutil.copy(path, schema_checkout / "ticket" / "history" / "TicketResolved.v1.avsc")
    schema = json.loads(path.read_text())
    schema["fields"].append(
        {"name": "resolved_by", "type": ["null", "string"], "default": None, "doc": "Agent who resolved it."}
    )
    path.write_text(json.dumps(schema, indent=2))

    result = run_check(schema_checkout)

    assert result.exit_code == 0, result.output


def test_check_fails_for_deleted_schema_file(schema_checkout: Path) -> None:
    (schema_checkout / "agent" / "AgentLeft.avsc").unlink()

    result = run_check(schema_checkout)

    assert result.exit_code == 1
    assert "helpdesk.events.AgentLeft: schema removed (was agent/AgentLeft.avsc)" in result.output


def test_check_reports_layout_problems(schema_checkout: Path) -> None:
    path = schema_checkout / "agent" / "AgentLeft.avsc"
    schema = json.loads(path.read_text())
    schema["fields"] = schema["fields"][1:] + schema["fields"][:1]
    path.write_text(json.dumps(schema, indent=2))

    result = run_check(schema_checkout)

    assert result.exit_code == 1
    assert "invalid: agent/AgentLeft.avsc: field 1 must be envelope field 'event_id'" in result.output


def test_check_exits_2_for_unknown_revision(schema_checkout: Path) -> None:
    result = run_check(schema_checkout, "--against", "no-such-branch")

    assert result.exit_code == 2
    assert "revision 'no-such-branch' not found" in result.output


def test_check_exits_2_for_invalid_json(schema_checkout: Path) -> None:
    (schema_checkout / "agent" / "AgentLeft.avsc").write_text("{ not json")

    result = run_check(schema_checkout)

    assert result.exit_code == 2
    assert "agent/AgentLeft.avsc: invalid JSON" in result.output


def test_repository_schemas_pass_against_head() -> None:
    completed = subprocess.run(
        [str(Path(sys.executable).parent / "ticketing"), "schemas", "check", "--against", "HEAD"],
        cwd=REPOSITORY_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert completed.returncode == 0, completed.stderr
    assert "schemas check passed" in completed.stdout


def test_check_names_writer_of_each_finding(schema_checkout: Path) -> None:
    path = schema_checkout / "customer" / "CustomerRegistered.avsc"
    schema = json.loads(path.read_text())
    schema["fields"].append({"name": "nickname", "type": "string"})
    path.write_text(json.dumps(schema, indent=2))

    result = run_check(schema_checkout)

    lines = [line for line in result.output.splitlines() if line.startswith("incompatible: ")]
    assert result.exit_code == 1
    assert len(lines) == len(set(lines))
    assert f"failed: {len(lines)} breaking change(s)" in result.output
    nickname = [line for line in lines if "field nickname" in line]
    assert [line.rsplit("(writer schema ", 1)[-1] for line in nickname] == [
        "customer/CustomerRegistered.avsc at HEAD)",
        "customer/history/CustomerRegistered.v1.avsc at HEAD)",
    ]


def test_same_writer_found_twice_reported_once() -> None:
    new = changed(lambda schema: schema["fields"].append({"name": "owner", "type": "string"}))
    # An older version without the field "note", kept in history at the revision and in the working tree.
    history = ("thing/history/Thing.v1.avsc", changed(lambda schema: schema["fields"].remove(field(schema, "note"))))
    old = repository(("thing/Thing.avsc", OLD), history)
    current = repository(("thing/Thing.avsc", new), history)

    found = unique_incompatibilities([*compare_repositories(old, current, revision="HEAD"), *check_history(current)])

    owner = [problem.writer for problem in found if problem.field == "owner"]
    assert owner == ["thing/Thing.avsc at HEAD", "thing/history/Thing.v1.avsc at HEAD"]
