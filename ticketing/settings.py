"""Configuration read once from environment variables.

Every variable has a default that points at the local services started by
`scripts/services`, so a fresh checkout works without any set-up.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Mapping
from urllib.parse import unquote, urlsplit

DEFAULT_KAFKA_BOOTSTRAP_SERVERS = "127.0.0.1:9092"
DEFAULT_DATABASE_URL = "postgresql://helpdesk:helpdesk@127.0.0.1:5432/helpdesk"

_HOST_PORT = re.compile(r"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_TOPIC_PREFIX = re.compile(r"^[A-Za-z0-9._-]{0,200}$")
_EMAIL = re.compile(r"^[^@\s<>]+@[^@\s<>]+$")
# Upper bound of TOPIC_PARTITIONS. Every partition costs the broker open files and
# memory, and a consumer group runs at most one process per partition, so a larger
# value is most likely a typing error.
MAX_TOPIC_PARTITIONS = 1000
# At most 40 characters, so that prefix + group + "_shadow" stays within PostgreSQL's 63.
_PROJECTION_PREFIX = re.compile(r"^([a-z_][a-z0-9_]{0,39})?$")


class ConfigError(ValueError):
    """A configuration variable is missing or malformed."""

    def __init__(self, variable: str, value: str, expected: str, example: str) -> None:
        super().__init__(
            f"{variable}={value!r} is invalid: expected {expected}, for example {variable}={example}"
        )
        self.variable = variable
        self.value = value


@dataclass(frozen=True)
class DatabaseAddress:
    """The parts of a PostgreSQL URL that eventsourcing's PostgreSQL module reads."""

    host: str
    port: int
    user: str
    password: str
    dbname: str


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap_servers: str = DEFAULT_KAFKA_BOOTSTRAP_SERVERS
    database_url: str = DEFAULT_DATABASE_URL
    event_store_schema: str = "event_store"
    topic_prefix: str = "helpdesk."
    topic_partitions: int = 6
    output_dir: str = "output"
    connect_timeout_seconds: float = 5.0
    projection_prefix: str = ""
    notification_rules: str = ""  # empty: the rules.yaml shipped in projections/notifications
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_from: str = "helpdesk@localhost"
    slack_webhook_url: str = field(default="", repr=False)  # a secret: anyone with it can post
    database: DatabaseAddress = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "database", parse_database_url(self.database_url))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every variable; raise ConfigError on the first bad one."""
        env = os.environ if environ is None else environ

        kafka = env.get("KAFKA_BOOTSTRAP_SERVERS", DEFAULT_KAFKA_BOOTSTRAP_SERVERS)
        parse_bootstrap_servers(kafka)

        return cls(
            kafka_bootstrap_servers=kafka,
            database_url=env.get("DATABASE_URL", DEFAULT_DATABASE_URL),
            event_store_schema=_identifier(env, "EVENT_STORE_SCHEMA", "event_store"),
            topic_prefix=_topic_prefix(env),
            topic_partitions=_bounded_int(env, "TOPIC_PARTITIONS", 6, maximum=MAX_TOPIC_PARTITIONS),
            output_dir=env.get("OUTPUT_DIR", "output") or "output",
            connect_timeout_seconds=_positive_float(env, "CONNECT_TIMEOUT_SECONDS", 5.0),
            projection_prefix=_projection_prefix(env),
            notification_rules=env.get("NOTIFICATION_RULES", ""),
            smtp_host=env.get("SMTP_HOST", "127.0.0.1") or "127.0.0.1",
            smtp_port=_port(env, "SMTP_PORT", 25),
            smtp_from=_email(env, "SMTP_FROM", "helpdesk@localhost"),
            slack_webhook_url=_webhook_url(env, "SLACK_WEBHOOK_URL"),
        )

    def topic(self, name: str) -> str:
        return f"{self.topic_prefix}{name}"

    def projection_schema(self, group: str) -> str:
        """Return the PostgreSQL schema of a projection group, e.g. "reports"."""
        return f"{self.projection_prefix}{group}"

    def consumer_group(self, group: str) -> str:
        """Return the Kafka consumer group id of a projection group; it carries the same prefix."""
        return f"{self.projection_prefix}{group}"

    def eventsourcing_env(self) -> dict[str, str]:
        """Return the variables that eventsourcing's PostgreSQL module expects."""
        db = self.database
        return {
            "PERSISTENCE_MODULE": "eventsourcing.postgres",
            "POSTGRES_DBNAME": db.dbname,
            "POSTGRES_HOST": db.host,
            "POSTGRES_PORT": str(db.port),
            "POSTGRES_USER": db.user,
            "POSTGRES_PASSWORD": db.password,
            "POSTGRES_SCHEMA": self.event_store_schema,
            "POSTGRES_CONNECT_TIMEOUT": str(int(self.connect_timeout_seconds)),
            "CREATE_TABLE": "y",
        }


def parse_bootstrap_servers(value: str) -> list[tuple[str, int]]:
    """Split 'host:port,host:port' and check each part; raise ConfigError naming the variable."""
    addresses = []
    for part in value.split(","):
        match = _HOST_PORT.match(part.strip())
        port = int(match.group(2)) if match else 0
        if not match or not 0 < port < 65536:
            raise ConfigError(
                "KAFKA_BOOTSTRAP_SERVERS",
                value,
                "a comma-separated list of host:port with a port from 1 to 65535",
                DEFAULT_KAFKA_BOOTSTRAP_SERVERS,
            )
        addresses.append((match.group(1).strip("[]"), port))
    return addresses


def parse_database_url(value: str) -> DatabaseAddress:
    """Check a postgresql:// URL and split it; raise ConfigError naming DATABASE_URL."""
    parts = urlsplit(value)
    try:
        port = parts.port or 5432
    except ValueError:
        port = 0

    if parts.scheme not in ("postgresql", "postgres") or not parts.hostname or not port:
        raise ConfigError(
            "DATABASE_URL",
            value,
            "a URL postgresql://USER:PASSWORD@HOST:PORT/DATABASE",
            DEFAULT_DATABASE_URL,
        )

    dbname = parts.path.lstrip("/")
    if not dbname or not parts.username:
        raise ConfigError(
            "DATABASE_URL",
            value,
            "a URL that names both a user and a database",
            DEFAULT_DATABASE_URL,
        )

    return DatabaseAddress(
        host=parts.hostname,
        port=port,
        user=unquote(parts.username),
        password=unquote(parts.password or ""),
        dbname=unquote(dbname),
    )


def _identifier(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default)
    if not _IDENTIFIER.match(value):
        raise ConfigError(
            name, value, "a lowercase PostgreSQL identifier (letters, digits, underscore)", default
        )
    return value


def _topic_prefix(env: Mapping[str, str]) -> str:
    value = env.get("TOPIC_PREFIX", "helpdesk.")
    if not _TOPIC_PREFIX.match(value):
        raise ConfigError(
            "TOPIC_PREFIX", value, "letters, digits, '.', '_' or '-' only", "helpdesk."
        )
    return value


def _projection_prefix(env: Mapping[str, str]) -> str:
    value = env.get("PROJECTION_PREFIX", "")
    if not _PROJECTION_PREFIX.match(value):
        raise ConfigError(
            "PROJECTION_PREFIX",
            value,
            "empty or a lowercase PostgreSQL identifier of at most 40 characters",
            "staging_",
        )
    return value


def _bounded_int(env: Mapping[str, str], name: str, default: int, *, maximum: int) -> int:
    raw = env.get(name, str(default))
    if not raw.isdigit() or not 1 <= int(raw) <= maximum:
        raise ConfigError(name, raw, f"a whole number from 1 to {maximum}", str(default))
    return int(raw)


def _port(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, str(default))
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ConfigError(name, raw, "a port number from 1 to 65535", str(default))
    return int(raw)


def _email(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, default)
    if not _EMAIL.match(value):
        raise ConfigError(name, value, "an e-mail address", default)
    return value


def _webhook_url(env: Mapping[str, str], name: str) -> str:
    value = env.get(name, "")
    if value and not value.startswith(("https://", "http://")):
        # The value is a secret, so the message shows only its first characters.
        raise ConfigError(name, value[:8] + "...", "an http(s) URL or nothing", "https://hooks.slack.com/services/...")
    return value


def _positive_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, str(default))
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise ConfigError(name, raw, "a number of seconds greater than 0", str(default))
    return value
