"""Ask Kafka and PostgreSQL whether they respond, and which versions they run.

`python -m ticketing.probe kafka HOST:PORT` and `... postgres URL` print one line and
exit 0 when the server responds, so scripts/services uses them to wait for a start.
"""

from __future__ import annotations

import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from ticketing.settings import Settings, parse_bootstrap_servers, parse_database_url

# Next steps at the end of the messages about a server that cannot be reached.
KAFKA_HINT = "Start it with scripts/services start or fix KAFKA_BOOTSTRAP_SERVERS."
POSTGRES_HINT = "Start it with scripts/services start or fix DATABASE_URL."
# For a PostgreSQL server that accepts TCP connections but rejects or drops the session.
POSTGRES_LOGIN_HINT = "Check the user, password and database name in DATABASE_URL, and the server log."

# SQLSTATE values of a refused, lost or not yet accepted connection (PostgreSQL manual,
# appendix A): class 08, and 57P01 to 57P03 for a server that shuts down or starts up.
# Other OperationalErrors, such as a lock timeout, come from a server that responds.
_CONNECTION_SQLSTATE_PREFIXES = ("08", "57P01", "57P02", "57P03")

# Causes followed from a wrapped error down to the driver error, at most this many.
_MAX_CAUSE_DEPTH = 10


class ServiceUnavailable(RuntimeError):
    """A server did not respond at the configured address."""


@dataclass(frozen=True)
class KafkaInfo:
    address: str
    api_version: str
    cluster_id: str
    controller_id: int
    brokers: int
    metadata_version: int | None
    kraft: bool

    def describe(self) -> str:
        mode = "KRaft" if self.kraft else "ZooKeeper"
        level = f", metadata.version level {self.metadata_version}" if self.metadata_version else ""
        return (
            f"Apache Kafka {self.api_version} (API versions), {mode} mode{level}, "
            f"cluster {self.cluster_id}, {self.brokers} broker(s)"
        )


@dataclass(frozen=True)
class PostgresInfo:
    address: str
    server_version: str

    def describe(self) -> str:
        return f"PostgreSQL {self.server_version}"


def _connect_error(host: str, port: int, timeout: float) -> str | None:
    """Return why a TCP connection to host:port failed within `timeout` seconds, or None if it opened."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as error:
        return str(error.strerror or error)


def _format_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def check_kafka_reachable(bootstrap_servers: str, timeout: float) -> list[str]:
    """Return the bootstrap addresses that accept a TCP connection within `timeout` seconds each.

    Raise ServiceUnavailable, naming every address with its error, when none does.
    kafka-python retries a refused bootstrap address until its own timeouts expire,
    which takes far longer than a person waits. A plain TCP connect tells within the
    timeout whether anything listens at all.
    """
    reachable = []
    failures = []
    for host, port in parse_bootstrap_servers(bootstrap_servers):
        address = _format_address(host, port)
        reason = _connect_error(host, port, timeout)
        if reason is None:
            reachable.append(address)
        else:
            failures.append(f"{address} ({reason})")

    if not reachable:
        where = failures[0] if len(failures) == 1 else "any of " + ", ".join(failures)
        raise ServiceUnavailable(f"cannot connect to Kafka at {where}. {KAFKA_HINT}")
    return reachable


def check_postgres_reachable(database_url: str, timeout: float) -> None:
    """Raise ServiceUnavailable unless the host and port of `database_url` accept a TCP connection."""
    address = parse_database_url(database_url)
    reason = _connect_error(address.host, address.port, timeout)
    if reason is not None:
        raise ServiceUnavailable(
            f"cannot connect to PostgreSQL at {_format_address(address.host, address.port)} ({reason}). {POSTGRES_HINT}"
        )


def postgres_location(database_url: str) -> str:
    """Return host:port/database of a PostgreSQL URL, without the user and password."""
    address = parse_database_url(database_url)
    return f"{_format_address(address.host, address.port)}/{address.dbname}"


def unavailable_server(
    error: BaseException, settings: Settings, *, kafka: bool = True, postgres: bool = True
) -> ServiceUnavailable | None:
    """Return a ServiceUnavailable naming the server when `error` comes from a refused or lost connection.

    Return None for any other error, including a Kafka error while some bootstrap
    address still accepts connections, so that the caller reports it as it is. Only
    the servers flagged with `kafka` and `postgres` are considered. For Kafka this
    connects to the bootstrap addresses again, which takes up to the connect timeout
    per address.
    """
    causes = list(_causes(error))
    timeout = settings.connect_timeout_seconds

    if postgres and any(_is_connection_failure(cause) for cause in causes):
        try:
            check_postgres_reachable(settings.database_url, timeout)
        except ServiceUnavailable as unavailable:
            return unavailable
        detail = next(str(cause) for cause in causes if _is_connection_failure(cause)).strip().splitlines()[0]
        return ServiceUnavailable(
            f"PostgreSQL at {postgres_location(settings.database_url)} rejected or dropped the connection: "
            f"{detail}. {POSTGRES_LOGIN_HINT}"
        )

    if kafka and any(isinstance(cause, KafkaError) for cause in causes):
        try:
            check_kafka_reachable(settings.kafka_bootstrap_servers, timeout)
        except ServiceUnavailable as unavailable:
            return unavailable
    return None


def _causes(error: BaseException) -> Iterator[BaseException]:
    """Yield `error`, then what it was raised from or during, up to _MAX_CAUSE_DEPTH levels."""
    current: BaseException | None = error
    for _ in range(_MAX_CAUSE_DEPTH):
        if current is None:
            return
        yield current
        current = current.__cause__ or current.__context__


def _is_connection_failure(error: BaseException) -> bool:
    if not isinstance(error, psycopg.OperationalError):
        return False
    sqlstate = error.sqlstate
    return sqlstate is None or sqlstate.startswith(_CONNECTION_SQLSTATE_PREFIXES)


def probe_kafka(bootstrap_servers: str, timeout: float = 5.0) -> KafkaInfo:
    """Return the broker's version and mode; raise ServiceUnavailable naming the addresses.

    Any bootstrap address that accepts a connection is enough.
    """
    reachable = check_kafka_reachable(bootstrap_servers, timeout)

    timeout_ms = max(int(timeout * 1000), 1000)
    try:
        # Only the addresses that accepted a connection, so that the client does not
        # spend its bootstrap timeout on the others.
        admin = KafkaAdminClient(
            bootstrap_servers=",".join(reachable),
            client_id="ticketing-probe",
            request_timeout_ms=timeout_ms,
            bootstrap_timeout_ms=timeout_ms,
        )
    except KafkaError as error:
        raise ServiceUnavailable(
            f"Kafka at {bootstrap_servers} did not respond within {timeout:g} s: {error}"
        ) from error

    try:
        cluster = admin.describe_cluster()
        features = admin.describe_features()
        quorum = _describe_quorum(admin)
        version = admin._manager.broker_version  # inferred from ApiVersions; no public getter in kafka-python 3.0
    except KafkaError as error:
        raise ServiceUnavailable(
            f"Kafka at {bootstrap_servers} did not return cluster metadata: {error}"
        ) from error
    finally:
        admin.close()

    metadata_level = features.get("metadata.version", {}).get("finalized", (None, None))[1]
    return KafkaInfo(
        address=bootstrap_servers,
        api_version=".".join(str(part) for part in version),
        cluster_id=str(cluster.get("cluster_id")),
        controller_id=int(cluster.get("controller_id", -1)),
        brokers=len(cluster.get("brokers", [])),
        metadata_version=metadata_level,
        kraft=quorum is not None,
    )


def _describe_quorum(admin: KafkaAdminClient) -> dict | None:
    # Only a KRaft cluster serves DescribeQuorum (KIP-595), and a ZooKeeper-mode broker rejects it.
    try:
        return admin.describe_metadata_quorum()
    except KafkaError:
        return None


def probe_postgres(database_url: str, timeout: float = 5.0) -> PostgresInfo:
    """Return the server version; raise ServiceUnavailable naming the host and port."""
    check_postgres_reachable(database_url, timeout)
    location = postgres_location(database_url)
    try:
        with psycopg.connect(database_url, connect_timeout=max(1, int(timeout))) as connection:
            row = connection.execute("SHOW server_version").fetchone()
    except psycopg.Error as error:
        # psycopg's message has a second line with a hint for the local socket, not needed here.
        detail = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        raise ServiceUnavailable(
            f"PostgreSQL at {location} did not accept a connection: {detail}. {POSTGRES_LOGIN_HINT}"
        ) from error
    return PostgresInfo(address=location, server_version=str(row[0]))


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("kafka", "postgres"):
        print("usage: python -m ticketing.probe kafka HOST:PORT | postgres URL", file=sys.stderr)
        return 2
    try:
        info = probe_kafka(argv[1]) if argv[0] == "kafka" else probe_postgres(argv[1])
    except (ServiceUnavailable, ValueError) as error:
        print(error, file=sys.stderr)
        return 1
    print(info.describe())
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
