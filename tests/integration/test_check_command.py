"""`ticketing check` as a person runs it: a real process, real servers, bad values."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

TICKETING = [str(Path(sys.executable).with_name("ticketing"))]


def _run(env_overrides: dict[str, str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **env_overrides}
    return subprocess.run(TICKETING + ["check"], env=env, capture_output=True, text=True, timeout=timeout)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_check_reports_both_servers(kafka_bootstrap: str, database_url: str) -> None:
    result = _run({})

    assert result.returncode == 0, result.stderr
    assert "KRaft mode" in result.stdout
    assert "Apache Kafka 4." in result.stdout
    assert "PostgreSQL" in result.stdout


def test_check_rejects_malformed_bootstrap_servers() -> None:
    result = _run({"KAFKA_BOOTSTRAP_SERVERS": "localhost-without-port"})

    assert result.returncode == 2
    assert "KAFKA_BOOTSTRAP_SERVERS" in result.stderr
    assert "'localhost-without-port'" in result.stderr


def test_check_fails_fast_where_nothing_listens(database_url: str) -> None:
    address = f"127.0.0.1:{_free_port()}"

    started = time.monotonic()
    result = _run({"KAFKA_BOOTSTRAP_SERVERS": address}, timeout=30)
    elapsed = time.monotonic() - started

    assert result.returncode == 1
    assert f"kafka     failed  cannot connect to Kafka at {address}" in result.stdout
    # A person waits seconds, not the client's default minute of retries.
    assert elapsed < 15, f"check took {elapsed:.1f} s"


def test_check_uses_any_answering_address(kafka_bootstrap: str, database_url: str) -> None:
    result = _run({"KAFKA_BOOTSTRAP_SERVERS": f"127.0.0.1:{_free_port()},{kafka_bootstrap}"})

    assert result.returncode == 0, result.stdout + result.stderr
    assert "kafka     ok" in result.stdout


def test_check_lists_every_silent_address(database_url: str) -> None:
    first, second = f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"

    result = _run({"KAFKA_BOOTSTRAP_SERVERS": f"{first},{second}"}, timeout=60)

    assert result.returncode == 1
    assert f"{first} (" in result.stdout
    assert f"{second} (" in result.stdout


def test_check_failure_on_standard_output(kafka_bootstrap: str) -> None:
    address = f"127.0.0.1:{_free_port()}"

    result = _run({"DATABASE_URL": f"postgresql://helpdesk:helpdesk@{address}/helpdesk"})

    assert result.returncode == 1
    assert "kafka     ok" in result.stdout
    assert f"postgres  failed  cannot connect to PostgreSQL at {address}" in result.stdout
    assert "scripts/services start or fix DATABASE_URL" in result.stdout
    assert result.stderr == ""


def test_check_validates_rules_file(kafka_bootstrap: str, database_url: str, tmp_path: Path) -> None:
    missing = tmp_path / "missing.yaml"
    invalid = tmp_path / "rules.yaml"
    invalid.write_text("rules:\n  - name: late\n    channel: pigeon\n", encoding="utf-8")

    absent = _run({"NOTIFICATION_RULES": str(missing)})
    broken = _run({"NOTIFICATION_RULES": str(invalid)})

    assert absent.returncode == 2
    assert f"rules     failed  invalid notification rules in {missing}" in absent.stdout
    assert broken.returncode == 2
    assert "'pigeon'" in broken.stdout
    assert "postgres  ok" in broken.stdout


def test_check_reports_shipped_rules(kafka_bootstrap: str, database_url: str) -> None:
    environment = {key: value for key, value in os.environ.items() if key != "NOTIFICATION_RULES"}

    result = subprocess.run(TICKETING + ["check"], env=environment, capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stdout
    assert "rules     ok" in result.stdout
    assert "rules.yaml: 6 notification rules" in result.stdout


def test_check_rejects_too_many_partitions() -> None:
    result = _run({"TOPIC_PARTITIONS": "100000"})

    assert result.returncode == 2
    assert "TOPIC_PARTITIONS='100000'" in result.stderr
    assert "from 1 to 1000" in result.stderr


def test_help_lists_subcommands() -> None:
    result = subprocess.run(TICKETING + ["--help"], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0
    assert "check" in result.stdout
