"""The mapping format: which column contains what, and which activity becomes which command.

A mapping is a YAML file. `load_mapping` reads and checks all of it before any row is
read, and raises MappingError naming the file, the key and the fix. The format is
described with an example in docs/import.md. The mapping for the Italian helpdesk
log ships as `ticketing/importer/mappings/helpdesk.yaml`.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from domain.values import Channel, Priority, Resolution
from ticketing.importer.actions import BODY_FIELDS, DEFAULT_BODIES, Action, ActionKind
from ticketing.importer.errors import MappingError
from ticketing.yaml_errors import describe_yaml_error

FORMAT_VERSION = 1
DEFAULT_MAPPING = "helpdesk.yaml"

SUBJECT_FIELDS = frozenset({"case"})
CONTACT_FIELDS = frozenset({"value", "slug"})

_TOP_LEVEL_KEYS = frozenset(
    {
        "format",
        "name",
        "mode",
        "csv",
        "columns",
        "timestamp",
        "attributes",
        "defaults",
        "customers",
        "agents",
        "system_resources",
        "activity_commands",
        "status_commands",
        "assign_on_resource_change",
        "priority",
    }
)


class Mode(StrEnum):
    EVENTS = "events"  # one row per activity
    SNAPSHOT = "snapshot"  # one row per ticket state after an update


@dataclass(frozen=True)
class ColumnRef:
    """A column of the log, by header name or by 1-based position.

    `occurrence` picks among several columns with the same header name, because some
    exports repeat a name (the helpdesk log has `Variant` twice).
    """

    name: str | None = None
    occurrence: int | None = None
    position: int | None = None

    def describe(self) -> str:
        if self.position is not None:
            return f"column {self.position}"
        if self.occurrence is not None:
            return f"column {self.name!r} (occurrence {self.occurrence})"
        return f"column {self.name!r}"


@dataclass(frozen=True)
class ContactTemplate:
    """Placeholder name and e-mail address for people that the log identifies only by a value."""

    name: str
    email: str

    def render(self, value: str) -> tuple[str, str]:
        fields = {"value": value, "slug": slug(value)}
        return self.name.format(**fields), self.email.format(**fields)


@dataclass(frozen=True)
class PriorityRule:
    column: ColumnRef
    values: dict[str, Priority]


@dataclass(frozen=True)
class Mapping:
    """A checked mapping. `commands` maps an activity (events mode) or a status (snapshot mode) to actions."""

    path: str
    name: str
    mode: Mode
    delimiter: str
    encoding: str
    case_column: ColumnRef
    label_column: ColumnRef
    timestamp_column: ColumnRef
    resource_column: ColumnRef | None
    customer_column: ColumnRef
    department_column: ColumnRef | None
    timestamp_format: str
    timezone: ZoneInfo
    attributes: dict[str, ColumnRef]
    channel: Channel
    priority: Priority
    subject: str
    language: str
    department: str | None
    customer_contact: ContactTemplate
    agent_contact: ContactTemplate
    system_resources: frozenset[str]
    commands: dict[str, tuple[Action, ...]]
    assign_on_resource_change: bool = False
    priority_rule: PriorityRule | None = None
    label_name: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "label_name", "activity" if self.mode is Mode.EVENTS else "status")

    def columns(self) -> dict[str, ColumnRef]:
        """Return every column that the mapping reads, by the mapping key that names it."""
        named: dict[str, ColumnRef | None] = {
            "columns.case": self.case_column,
            f"columns.{self.label_name}": self.label_column,
            "columns.timestamp": self.timestamp_column,
            "columns.resource": self.resource_column,
            "columns.customer": self.customer_column,
            "columns.department": self.department_column,
        }
        named.update({f"attributes.{key}": column for key, column in self.attributes.items()})
        if self.priority_rule is not None:
            named["priority.column"] = self.priority_rule.column
        return {key: column for key, column in named.items() if column is not None}


def slug(value: str) -> str:
    """Return `value` in lowercase with every run of other characters than letters and digits as '-'."""
    characters = [char.lower() if char.isascii() and char.isalnum() else "-" for char in value]
    return "-".join(part for part in "".join(characters).split("-") if part) or "blank"


def default_mapping_path() -> Path:
    """Return the path of the mapping shipped for the Italian helpdesk log."""
    return Path(str(resources.files("ticketing.importer.mappings").joinpath(DEFAULT_MAPPING)))


def load_mapping(path: Path | str) -> Mapping:
    """Read and check a mapping file; raise MappingError on the first problem."""
    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as error:
        raise MappingError(source, "", f"cannot read the mapping file ({error.strerror}). Check the --mapping path.") from error
    except UnicodeDecodeError as error:
        raise MappingError(
            source, "", f"the mapping file is not UTF-8 ({error.reason} at byte {error.start}). Save it as UTF-8."
        ) from error

    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise MappingError(source, "", f"invalid YAML at {describe_yaml_error(error)}. Fix the syntax there.") from error

    return parse_mapping(document, path=source)


def parse_mapping(document: object, *, path: Path | str = "<mapping>") -> Mapping:
    """Check a mapping already parsed from YAML and return it as a Mapping."""
    reader = _Reader(path)
    top = reader.section(document, "")
    reader.reject_unknown_keys(top, _TOP_LEVEL_KEYS, "")

    version = top.get("format", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        reader.fail("format", f"unsupported format {version!r}. This importer reads format {FORMAT_VERSION}.")

    mode = reader.enum(top.get("mode", Mode.EVENTS.value), Mode, "mode")
    label_name = "activity" if mode is Mode.EVENTS else "status"
    commands_key = "activity_commands" if mode is Mode.EVENTS else "status_commands"
    other_commands_key = "status_commands" if mode is Mode.EVENTS else "activity_commands"
    if other_commands_key in top:
        reader.fail(other_commands_key, f"is not used in {mode} mode. Use {commands_key} instead.")

    csv_section = reader.section(top.get("csv", {}), "csv")
    reader.reject_unknown_keys(csv_section, {"delimiter", "encoding"}, "csv")
    delimiter = reader.text(csv_section.get("delimiter", ","), "csv.delimiter")
    if len(delimiter) != 1:
        reader.fail("csv.delimiter", f"must be one character, but is {delimiter!r}.")
    encoding = reader.text(csv_section.get("encoding", "utf-8-sig"), "csv.encoding")

    columns = reader.section(reader.required(top, "columns", ""), "columns")
    column_keys = {"case", label_name, "timestamp", "resource", "customer", "department"}
    reader.reject_unknown_keys(columns, column_keys, "columns")

    timestamp = reader.section(reader.required(top, "timestamp", ""), "timestamp")
    reader.reject_unknown_keys(timestamp, {"format", "timezone"}, "timestamp")
    timestamp_format = reader.text(reader.required(timestamp, "format", "timestamp"), "timestamp.format")
    if "%" not in timestamp_format:
        reader.fail("timestamp.format", f"{timestamp_format!r} has no strptime directive such as %Y.")
    timezone = reader.zone(reader.required(timestamp, "timezone", "timestamp"), "timestamp.timezone")

    defaults = reader.section(top.get("defaults", {}), "defaults")
    reader.reject_unknown_keys(defaults, {"channel", "priority", "subject", "language", "department"}, "defaults")
    department_column = reader.optional_column(columns, "department")
    default_department = defaults.get("department")
    if department_column is None and default_department is None:
        reader.fail("columns.department", "is missing. Name the department column, or set defaults.department.")

    commands = reader.commands(reader.required(top, commands_key, ""), commands_key)

    assign_on_change = top.get("assign_on_resource_change", False)
    if not isinstance(assign_on_change, bool):
        reader.fail("assign_on_resource_change", f"must be true or false, but is {assign_on_change!r}.")
    if assign_on_change and mode is not Mode.SNAPSHOT:
        reader.fail("assign_on_resource_change", "applies to snapshot mode only. Add an assign action to the activities instead.")

    return Mapping(
        path=str(path),
        name=reader.text(reader.required(top, "name", ""), "name"),
        mode=mode,
        delimiter=delimiter,
        encoding=encoding,
        case_column=reader.column(reader.required(columns, "case", "columns"), "columns.case"),
        label_column=reader.column(reader.required(columns, label_name, "columns"), f"columns.{label_name}"),
        timestamp_column=reader.column(reader.required(columns, "timestamp", "columns"), "columns.timestamp"),
        resource_column=reader.optional_column(columns, "resource"),
        customer_column=reader.column(reader.required(columns, "customer", "columns"), "columns.customer"),
        department_column=department_column,
        timestamp_format=timestamp_format,
        timezone=timezone,
        attributes=reader.attributes(top.get("attributes", {})),
        channel=reader.enum(defaults.get("channel", Channel.WEB_FORM.value), Channel, "defaults.channel"),
        priority=reader.enum(defaults.get("priority", Priority.NORMAL.value), Priority, "defaults.priority"),
        subject=reader.template(defaults.get("subject", "{case}"), "defaults.subject", SUBJECT_FIELDS),
        language=reader.text(defaults.get("language", "en"), "defaults.language"),
        department=None if default_department is None else reader.text(default_department, "defaults.department"),
        customer_contact=reader.contact(top.get("customers", {}), "customers", "customer"),
        agent_contact=reader.contact(top.get("agents", {}), "agents", "agent"),
        system_resources=reader.system_resources(top.get("system_resources", [])),
        commands=commands,
        assign_on_resource_change=assign_on_change,
        priority_rule=reader.priority_rule(top.get("priority")),
    )


class _Reader:
    """Typed access to the YAML document; every failure names the mapping key."""

    def __init__(self, path: Path | str) -> None:
        self.path = path

    def fail(self, key: str, problem: str) -> NoReturn:
        raise MappingError(self.path, key, problem)

    def section(self, value: object, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(key or "top level", f"must be a mapping of keys to values, but is {value!r}.")
        for name in value:
            if not isinstance(name, str):
                self.fail(key or "top level", f"has a key {name!r} that is not a string. Quote it in the YAML.")
        return value

    def required(self, section: dict[str, Any], name: str, parent: str) -> Any:
        if name not in section:
            self.fail(_join(parent, name), "is missing.")
        return section[name]

    def reject_unknown_keys(self, section: dict[str, Any], known: set[str] | frozenset[str], parent: str) -> None:
        unknown = sorted(set(section) - set(known))
        if unknown:
            self.fail(
                _join(parent, unknown[0]),
                f"is not a known key. Known keys here: {', '.join(sorted(known))}.",
            )

    def text(self, value: object, key: str) -> str:
        if not isinstance(value, str) or not value:
            self.fail(key, f"must be a non-empty string, but is {value!r}.")
        return value

    def enum(self, value: object, enum_type: type[StrEnum], key: str) -> Any:
        try:
            return enum_type(value)
        except ValueError:
            options = ", ".join(member.value for member in enum_type)
            self.fail(key, f"{value!r} is not valid. Use one of: {options}.")

    def zone(self, value: object, key: str) -> ZoneInfo:
        name = self.text(value, key)
        try:
            return ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail(key, f"{name!r} is not an IANA time zone. Use a name such as Europe/Rome or UTC.")

    def column(self, value: object, key: str) -> ColumnRef:
        if isinstance(value, str) and value:
            return ColumnRef(name=value)
        if isinstance(value, dict):
            return self._column_from_section(value, key)
        self.fail(
            key,
            f"must be a column name, or a mapping with `name` and `occurrence`, or with "
            f"`position`, but is {value!r}.",
        )

    def _column_from_section(self, value: dict[str, Any], key: str) -> ColumnRef:
        self.reject_unknown_keys(value, {"name", "occurrence", "position"}, key)
        if "position" in value:
            if set(value) != {"position"}:
                self.fail(key, "takes either `position` alone, or `name` with an optional `occurrence`.")
            return ColumnRef(position=self._positive(value["position"], f"{key}.position"))

        name = self.text(self.required(value, "name", key), f"{key}.name")
        occurrence = value.get("occurrence")
        if occurrence is not None:
            occurrence = self._positive(occurrence, f"{key}.occurrence")
        return ColumnRef(name=name, occurrence=occurrence)

    def _positive(self, value: object, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.fail(key, f"must be a whole number of at least 1, but is {value!r}.")
        return int(value)  # type: ignore[arg-type]

    def optional_column(self, columns: dict[str, Any], name: str) -> ColumnRef | None:
        if columns.get(name) is None:
            return None
        return self.column(columns[name], f"columns.{name}")

    def attributes(self, value: object) -> dict[str, ColumnRef]:
        section = self.section(value, "attributes")
        return {name: self.column(column, f"attributes.{name}") for name, column in section.items()}

    def template(self, value: object, key: str, allowed: frozenset[str]) -> str:
        text = self.text(value, key)
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}
        except ValueError as error:
            self.fail(key, f"{text!r} is not a valid template ({error}). Write a literal brace as {{{{ or }}}}.")
        unknown = sorted(fields - allowed)
        if unknown:
            self.fail(
                key,
                f"uses the unknown field {{{unknown[0]}}}. Fields available here: "
                f"{', '.join('{' + name + '}' for name in sorted(allowed))}.",
            )
        return text

    def contact(self, value: object, key: str, role: str) -> ContactTemplate:
        section = self.section(value, key)
        self.reject_unknown_keys(section, {"name", "email"}, key)
        name = self.template(section.get("name", "{value}"), f"{key}.name", CONTACT_FIELDS)
        email = self.template(
            section.get("email", f"{role}-{{slug}}@example.invalid"), f"{key}.email", CONTACT_FIELDS
        )
        if email.count("@") != 1 or email.startswith("@") or email.endswith("@"):
            self.fail(f"{key}.email", f"{email!r} does not render an e-mail address. Use a form such as {role}-{{slug}}@example.invalid.")
        return ContactTemplate(name=name, email=email)

    def system_resources(self, value: object) -> frozenset[str]:
        if not isinstance(value, list):
            self.fail("system_resources", f"must be a list of resource values, but is {value!r}.")
        for index, item in enumerate(value):
            self.text(item, f"system_resources[{index}]")
        return frozenset(value)

    def commands(self, value: object, key: str) -> dict[str, tuple[Action, ...]]:
        section = self.section(value, key)
        if not section:
            self.fail(key, "is empty. Map every value of the column to a list of actions.")
        commands = {}
        for label, actions in section.items():
            entry = f"{key}.{label}"
            if actions is None:
                actions = []
            if not isinstance(actions, list):
                self.fail(entry, f"must be a list of actions, but is {actions!r}.")
            commands[label] = tuple(self.action(item, f"{entry}[{index}]") for index, item in enumerate(actions))
        return commands

    def action(self, value: object, key: str) -> Action:
        options = ", ".join(kind.value for kind in ActionKind)
        if isinstance(value, str):
            kind = self.enum(value, ActionKind, key)
            if kind is ActionKind.RESOLVE:
                self.fail(key, "needs a resolution. Write {resolve: solved}, or another resolution.")
            return Action(kind=kind, body=DEFAULT_BODIES.get(kind))

        if not isinstance(value, dict) or len(value) != 1:
            self.fail(key, f"must be an action name or a one-key mapping such as {{resolve: solved}}. Actions: {options}.")
        (name, argument), = value.items()
        kind = self.enum(name, ActionKind, key)
        if kind is ActionKind.RESOLVE:
            return Action(kind=kind, resolution=self.enum(argument, Resolution, f"{key}.resolve"))
        if kind in DEFAULT_BODIES:
            return Action(kind=kind, body=self.template(argument, f"{key}.{kind}", BODY_FIELDS))
        self.fail(key, f"action {kind} takes no argument. Write it as a plain name.")

    def priority_rule(self, value: object) -> PriorityRule | None:
        if value is None:
            return None
        section = self.section(value, "priority")
        self.reject_unknown_keys(section, {"column", "values"}, "priority")
        column = self.column(self.required(section, "column", "priority"), "priority.column")
        values = self.section(self.required(section, "values", "priority"), "priority.values")
        if not values:
            self.fail("priority.values", "is empty. Map each value of the column to low, normal, high or urgent.")
        return PriorityRule(
            column=column,
            values={
                source: self.enum(target, Priority, f"priority.values.{source}")
                for source, target in values.items()
            },
        )


def _join(parent: str, name: str) -> str:
    return f"{parent}.{name}" if parent else name
