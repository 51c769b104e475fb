"""Aggregate ids and idempotency keys derived from the log's content.

Ids are UUIDv5 of the mapping's name and the log's own identifier (case id, resource
value, customer value). So the same log imported with the same mapping always
addresses the same aggregates, and two logs with a "Case 1" each do not collide.

Command keys derive from a row's mapped values, not from the file's name, path or line
number, so re-importing the same rows stores nothing new even from a copy or a re-export
with other unmapped columns.
"""

from __future__ import annotations

import hashlib
import uuid
from uuid import UUID

# Fixed namespace of this importer's UUIDv5 ids. Changing it gives every imported
# aggregate a new id, so a re-import would duplicate everything.
IMPORT_NAMESPACE = UUID("4f6b2d1e-8c3a-5b7e-9d20-6a1c3e5f7b90")

# Hex digits of SHA-256 kept in a key: 128 bits, far beyond any log's row count.
KEY_DIGITS = 32

IMPORTER_ACTOR = "system:importer"


def ticket_id(source: str, case: str) -> UUID:
    return uuid.uuid5(IMPORT_NAMESPACE, f"{source}/ticket/{case}")


def agent_id(source: str, resource: str) -> UUID:
    return uuid.uuid5(IMPORT_NAMESPACE, f"{source}/agent/{resource}")


def customer_id(source: str, value: str) -> UUID:
    return uuid.uuid5(IMPORT_NAMESPACE, f"{source}/customer/{value}")


def row_key(source: str, content: str, occurrence: int) -> str:
    """Return the key of a row: its mapped values and its index among identical rows of its case."""
    digest = hashlib.sha256(f"{source}\x1f{content}\x1f{occurrence}".encode("utf-8"))
    return digest.hexdigest()[:KEY_DIGITS]


def command_key(row: str, command: str, repeat: int = 1) -> str:
    """Return the key of the `repeat`-th `command` that a row issues."""
    suffix = "" if repeat == 1 else f"#{repeat}"
    return f"import:{row}:{command}{suffix}"


def person_key(source: str, role: str, value: str, command: str) -> str:
    """Return the key of a command that the importer issues for an agent or customer."""
    digest = hashlib.sha256(f"{source}\x1f{role}\x1f{value}".encode("utf-8")).hexdigest()[:KEY_DIGITS]
    return f"import:{role}:{digest}:{command}"
