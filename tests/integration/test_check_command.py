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
    assert address in result.stderr
    # A person waits seconds, not the client's default minute of retries.
    assert elapsed < 15, f"check took {elapsed:.1f} s"


def test_help_lists_subcommands() -> None:
    result = subprocess.run(TICKETING + ["--help"], capture_output=True, text=True, timeout=60)

    assert result.returncode == 0
    assert "check" in result.stdout
