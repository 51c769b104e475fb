"""Ask Kafka and PostgreSQL whether they answer, and which versions they run.

`python -m ticketing.probe kafka HOST:PORT` and `... postgres URL` print one line and
exit 0 when the server answers; scripts/services uses them to wait for a start.
"""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass

import psycopg
from kafka import KafkaAdminClient
from kafka.errors import KafkaError

from ticketing.settings import parse_bootstrap_servers


class ServiceUnavailable(RuntimeError):
    """A server did not answer at the configured address."""


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


def _check_reachable(host: str, port: int, timeout: float) -> None:
    # kafka-python retries a refused bootstrap address until its own timeouts expire, which
    # would take far longer than a person waits for `ticketing check`; a plain TCP connect
    # tells within the timeout whether anything listens at all.
    try:
        with socket.create_connection((host, port), timeout=timeout):
            pass
    except OSError as error:
        raise ServiceUnavailable(
            f"nothing answers at {host}:{port} ({error.strerror or error}); start it with "
            f"scripts/services start or fix the address"
        ) from error


def probe_kafka(bootstrap_servers: str, timeout: float = 5.0) -> KafkaInfo:
    """Return the broker's version and mode; raise ServiceUnavailable naming the address."""
    addresses = parse_bootstrap_servers(bootstrap_servers)
    host, port = addresses[0]
    _check_reachable(host, port, timeout)

    timeout_ms = int(timeout * 1000)
    try:
        admin = KafkaAdminClient(
            bootstrap_servers=bootstrap_servers,
            client_id="ticketing-probe",
            request_timeout_ms=timeout_ms,
        )
    except KafkaError as error:
        raise ServiceUnavailable(
            f"Kafka at {bootstrap_servers} did not answer within {timeout:g} s: {error}"
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
    # Only a KRaft cluster answers DescribeQuorum (KIP-595); a ZooKeeper-mode broker rejects it.
    try:
        return admin.describe_metadata_quorum()
    except KafkaError:
        return None


def probe_postgres(database_url: str, timeout: float = 5.0) -> PostgresInfo:
    """Return the server version; raise ServiceUnavailable naming the host and port."""
    try:
        with psycopg.connect(database_url, connect_timeout=max(1, int(timeout))) as connection:
            row = connection.execute("SHOW server_version").fetchone()
    except psycopg.Error as error:
        safe_address = database_url.rsplit("@", 1)[-1]
        raise ServiceUnavailable(
            f"PostgreSQL at {safe_address} did not accept a connection: {error}".strip()
        ) from error
    return PostgresInfo(address=database_url.rsplit("@", 1)[-1], server_version=str(row[0]))


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
