"""Checks that the schemas in `schemas/` can still read every message written before.

The rule is Avro schema resolution (Avro specification, "Schema Resolution")
with the new schema as reader and the old one as writer: the current schema of a
record name must read data written with any earlier version of it. This module
reports each violation with the schema and the field, so that `ticketing schemas
check` can name them.

Beyond the specification, a change of logical type (timestamp-micros to
timestamp-millis, for example) counts as breaking, because Avro resolves the
underlying long without complaint and readers would silently misread the values.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping
import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ticketing.stream.schemas import ENVELOPE_NAME, SchemaRepository, StoredSchema

# Writer type -> reader types that can read it (Avro specification, "Schema Resolution").
PROMOTIONS = {
    "int": {"long", "float", "double"},
    "long": {"float", "double"},
    "float": {"double"},
    "string": {"bytes"},
    "bytes": {"string"},
}

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})


@dataclass(frozen=True)
class Incompatibility:
    """One change that breaks readers of old data."""

    schema: str
    """Full record name, such as helpdesk.events.TicketOpened."""
    field: str | None
    """Path of the field inside the record, or None for the schema as a whole."""
    problem: str
    # dataclasses.field in full, because this class has an attribute named field.
    writer: str | None = dataclasses.field(default=None, compare=False)
    """The old schema version that data was written with, such as "customer/history/CustomerRegistered.v1.avsc"."""
    writer_fingerprint: bytes | None = None
    """Fingerprint of that version. Two findings about the same version and field are the same finding."""

    def __str__(self) -> str:
        where = self.schema if self.field is None else f"{self.schema} field {self.field}"
        written = "" if self.writer is None else f" (writer schema {self.writer})"
        return f"{where}: {self.problem}{written}"


class GitError(RuntimeError):
    """git failed or the revision does not exist."""


def check_reader(reader: Mapping[str, Any], writer: Mapping[str, Any]) -> list[Incompatibility]:
    """Return why `reader` cannot read data written with `writer`, or an empty list.

    Both are record schemas as fastavro's parse_schema returns them.
    """
    checker = _ResolutionChecker(str(reader["name"]))
    checker.check(reader, writer, path="", reader_names={}, writer_names={})
    return checker.problems


def compare_repositories(
    old: SchemaRepository, new: SchemaRepository, *, revision: str | None = None
) -> list[Incompatibility]:
    """Return every change from `old` to `new` that breaks readers of data written with `old`.

    Three kinds: a record name that disappeared, a current schema that cannot read an
    old version, and an old version whose fingerprint no file keeps any more, so its
    messages could not be decoded. `revision` names where `old` comes from, such as a
    git revision, in the writer of each finding.
    """
    problems: list[Incompatibility] = []
    reported_removed: set[str] = set()

    for old_schema in old:
        reader = new.current(old_schema.name)
        if reader is None:
            if old_schema.name not in reported_removed:
                reported_removed.add(old_schema.name)
                problems.append(
                    Incompatibility(
                        old_schema.name,
                        None,
                        f"schema removed (was {old_schema.path}), so messages written with "
                        f"it would have no reader schema",
                    )
                )
            continue

        writer = old_schema.path if revision is None else f"{old_schema.path} at {revision}"
        problems.extend(_written_with(check_reader(reader.parsed, old_schema.parsed), writer, old_schema))

        # The envelope is documentation and never written on its own, so no message
        # carries its fingerprint.
        if old_schema.name != ENVELOPE_NAME and new.by_fingerprint(old_schema.fingerprint) is None:
            problems.append(
                Incompatibility(
                    old_schema.name,
                    None,
                    f"the old version {old_schema.path} (fingerprint {old_schema.fingerprint_hex}) "
                    f"is gone, so its messages cannot be decoded. Copy it to "
                    f"{history_path_hint(old_schema, new)}",
                )
            )
    return problems


def check_history(repository: SchemaRepository) -> list[Incompatibility]:
    """Return why a current schema cannot read an old version kept in a history folder."""
    problems: list[Incompatibility] = []
    for old_version in repository.history_schemas():
        reader = repository.current(old_version.name)
        if reader is not None:
            found = check_reader(reader.parsed, old_version.parsed)
            problems.extend(_written_with(found, old_version.path, old_version))
    return problems


def unique_incompatibilities(problems: list[Incompatibility]) -> list[Incompatibility]:
    """Drop repeated findings about the same writer version, keeping the first in order.

    A history file that both the git revision and the working tree contain is checked
    twice, once by `compare_repositories` and once by `check_history`. Both findings
    have the same fingerprint, schema, field and problem.
    """
    seen: set[Incompatibility] = set()
    unique = []
    for problem in problems:
        if problem not in seen:
            seen.add(problem)
            unique.append(problem)
    return unique


def _written_with(problems: list[Incompatibility], writer: str, schema: StoredSchema) -> list[Incompatibility]:
    return [dataclasses.replace(problem, writer=writer, writer_fingerprint=schema.fingerprint) for problem in problems]


def history_path_hint(old_schema: StoredSchema, new: SchemaRepository) -> str:
    """Return the next free history file name for an old version, such as customer/history/CustomerRegistered.v2.avsc."""
    current = new.current(old_schema.name)
    base = current.path if current is not None else old_schema.path
    folder, _, file_name = base.rpartition("/")
    stem = file_name.split(".", 1)[0]
    history_folder = folder if folder.endswith("history") else f"{folder}/history".lstrip("/")
    used = {schema.path for schema in new.history_schemas()}
    version = 1
    while f"{history_folder}/{stem}.v{version}.avsc" in used:
        version += 1
    return f"{history_folder}/{stem}.v{version}.avsc"


def schema_texts_at_revision(schemas_dir: Path, revision: str) -> dict[str, str]:
    """Return the `.avsc` files under `schemas_dir` at a git revision, keyed by path relative to it.

    A revision at which the folder did not exist returns an empty dict.
    """
    root = Path(_git(schemas_dir, "rev-parse", "--show-toplevel").strip())
    prefix = schemas_dir.resolve().relative_to(root.resolve()).as_posix()
    commit = _git(root, "rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}").strip()

    listing = _git(root, "ls-tree", "-r", "--name-only", commit, "--", f"{prefix}/")
    texts = {}
    for path in listing.splitlines():
        if path.endswith(".avsc"):
            texts[path[len(prefix) + 1 :]] = _git(root, "show", f"{commit}:{path}")
    return texts


def _git(cwd: Path, *args: str) -> str:
    try:
        completed = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise GitError(f"git {' '.join(args)} failed in {cwd}: {error}") from error
    if completed.returncode != 0:
        detail = completed.stderr.strip() or f"exit code {completed.returncode}"
        if args[:1] == ("rev-parse",) and "--verify" in args:
            detail = f"revision {args[-1].removesuffix('^{commit}')!r} not found"
        raise GitError(f"git {args[0]} failed in {cwd}: {detail}")
    return completed.stdout


class _ResolutionChecker:
    """Collector of the problems found by walking a reader and a writer schema side by side."""

    def __init__(self, schema_name: str) -> None:
        self.schema_name = schema_name
        self.problems: list[Incompatibility] = []
        self._seen: set[tuple[str, str]] = set()

    def fail(self, path: str, problem: str) -> None:
        self.problems.append(Incompatibility(self.schema_name, path or None, problem))

    def check(
        self,
        reader: Any,
        writer: Any,
        *,
        path: str,
        reader_names: dict[str, Any],
        writer_names: dict[str, Any],
    ) -> None:
        reader = _resolve(reader, reader_names)
        writer = _resolve(writer, writer_names)

        if isinstance(writer, list):
            self._check_writer_union(reader, writer, path, reader_names, writer_names)
            return
        if isinstance(reader, list):
            branch = _matching_branch(reader, writer, reader_names)
            if branch is None:
                self.fail(path, f"type {_describe(writer)} is no longer allowed: the reader union is {_describe(reader)}")
                return
            self.check(branch, writer, path=path, reader_names=reader_names, writer_names=writer_names)
            return

        reader_kind, writer_kind = _kind(reader), _kind(writer)
        if reader_kind != writer_kind:
            if reader_kind not in PROMOTIONS.get(writer_kind, set()):
                self.fail(path, f"type changed from {_describe(writer)} to {_describe(reader)}, which is not an Avro promotion")
            return

        self._check_logical_type(reader, writer, path)
        if writer_kind == "record":
            self._check_record(reader, writer, path, reader_names, writer_names)
        elif writer_kind == "enum":
            self._check_enum(reader, writer, path)
        elif writer_kind == "array":
            self.check(reader["items"], writer["items"], path=f"{path}[]", reader_names=reader_names, writer_names=writer_names)
        elif writer_kind == "map":
            self.check(reader["values"], writer["values"], path=f"{path}{{}}", reader_names=reader_names, writer_names=writer_names)
        elif writer_kind == "fixed":
            self._check_fixed(reader, writer, path)

    def _check_writer_union(
        self, reader: Any, writer: list[Any], path: str, reader_names: dict[str, Any], writer_names: dict[str, Any]
    ) -> None:
        # Every branch the old writer could have chosen must stay readable.
        for branch in writer:
            resolved = _resolve(branch, writer_names)
            if isinstance(reader, list):
                target = _matching_branch(reader, resolved, reader_names)
                if target is None:
                    self.fail(path, f"union branch {_describe(resolved)} was removed")
                    continue
            else:
                target = reader
                if _matching_branch([reader], resolved, reader_names) is None:
                    self.fail(
                        path,
                        f"the old union allowed {_describe(resolved)}, which {_describe(reader)} "
                        f"cannot read. Keep that branch in a union",
                    )
                    continue
            self.check(target, resolved, path=path, reader_names=reader_names, writer_names=writer_names)

    def _check_logical_type(self, reader: Any, writer: Any, path: str) -> None:
        reader_logical = reader.get("logicalType") if isinstance(reader, dict) else None
        writer_logical = writer.get("logicalType") if isinstance(writer, dict) else None
        if reader_logical != writer_logical:
            self.fail(
                path,
                f"logical type changed from {writer_logical or 'none'} to {reader_logical or 'none'}. "
                f"Avro would accept it, but readers would misread old values",
            )

    def _check_record(
        self, reader: dict[str, Any], writer: dict[str, Any], path: str, reader_names: dict[str, Any], writer_names: dict[str, Any]
    ) -> None:
        reader_names[reader["name"]] = reader
        writer_names[writer["name"]] = writer
        if not _names_match(reader, writer):
            self.fail(path, f"record {writer['name']} was renamed to {reader['name']} without an alias")
            return

        pair = (reader["name"], writer["name"])
        if pair in self._seen:
            return
        self._seen.add(pair)

        writer_fields = {item["name"]: item for item in writer["fields"]}
        for reader_field in reader["fields"]:
            name = reader_field["name"]
            field_path = f"{path}.{name}" if path else name
            writer_field = _find_writer_field(reader_field, writer_fields)
            if writer_field is not None:
                self.check(reader_field["type"], writer_field["type"], path=field_path, reader_names=reader_names, writer_names=writer_names)
            elif "default" not in reader_field:
                self.fail(field_path, "added without a default, so data written without it cannot be read")

    def _check_enum(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        if not _names_match(reader, writer):
            self.fail(path, f"enum {writer['name']} was renamed to {reader['name']} without an alias")
            return
        removed = [symbol for symbol in writer["symbols"] if symbol not in reader["symbols"]]
        if removed and "default" not in reader:
            self.fail(
                path,
                f"enum {reader['name']} lost symbols {', '.join(removed)}, which old data may contain",
            )

    def _check_fixed(self, reader: dict[str, Any], writer: dict[str, Any], path: str) -> None:
        if not _names_match(reader, writer) or reader["size"] != writer["size"]:
            self.fail(path, f"fixed {writer['name']}({writer['size']}) became {reader['name']}({reader['size']})")


def _resolve(avro_type: Any, names: dict[str, Any]) -> Any:
    """Return the definition behind a named-type reference, and remember new definitions."""
    if isinstance(avro_type, str) and avro_type not in PRIMITIVES:
        return names.get(avro_type, avro_type)
    if isinstance(avro_type, dict) and "name" in avro_type:
        names.setdefault(avro_type["name"], avro_type)
    return avro_type


def _kind(avro_type: Any) -> str:
    if isinstance(avro_type, dict):
        return str(avro_type["type"])
    return str(avro_type)


def _short_name(name: str) -> str:
    return name.rsplit(".", 1)[-1]


def _names_match(reader: dict[str, Any], writer: dict[str, Any]) -> bool:
    # The specification compares unqualified names, and the reader's aliases also match.
    writer_name = writer["name"]
    candidates = {reader["name"], *reader.get("aliases", [])}
    return writer_name in candidates or _short_name(writer_name) in {_short_name(name) for name in candidates}


def _find_writer_field(reader_field: dict[str, Any], writer_fields: dict[str, Any]) -> dict[str, Any] | None:
    for name in (reader_field["name"], *reader_field.get("aliases", [])):
        if name in writer_fields:
            return writer_fields[name]
    return None


def _matching_branch(union: list[Any], writer: Any, reader_names: dict[str, Any]) -> Any | None:
    """Return the first reader union branch that can read `writer`, as Avro resolution picks it."""
    resolved_branches = [_resolve(branch, reader_names) for branch in union]
    writer_kind = _kind(writer)

    for branch in resolved_branches:
        if _kind(branch) != writer_kind:
            continue
        if writer_kind in ("record", "enum", "fixed") and not _names_match(branch, writer):
            continue
        return branch

    for branch in resolved_branches:
        if _kind(branch) in PROMOTIONS.get(writer_kind, set()):
            return branch
    return None


def _describe(avro_type: Any) -> str:
    if isinstance(avro_type, list):
        return "[" + ", ".join(_describe(branch) for branch in avro_type) + "]"
    if isinstance(avro_type, dict):
        kind = avro_type["type"]
        if "name" in avro_type:
            return f"{kind} {avro_type['name']}"
        if "logicalType" in avro_type:
            return f"{kind} ({avro_type['logicalType']})"
        if kind == "array":
            return f"array of {_describe(avro_type['items'])}"
        if kind == "map":
            return f"map of {_describe(avro_type['values'])}"
        return str(kind)
    return str(avro_type)
