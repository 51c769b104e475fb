"""Commands run as a person runs them while Kafka or PostgreSQL cannot be reached.

Each command must stop within seconds with exit code 1 and one `error:` line that names
the address and the next step, not with a traceback. The address is a port on 127.0.0.1
where nothing listens. The other server is the real one.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from ticketing.stream.topics import TopicSetupError, ensure_topics

TICKETING = [str(Path(sys.executable).with_name("ticketing"))]
TICKET_ID = "3f2c9a7e-0d4b-4c1e-9a53-5b1f2f0c8d11"

# Upper bound of one command, far below kafka-python's own 30 s bootstrap timeout.
MAX_SECONDS = 15
CONNECT_TIMEOUT_SECONDS = "3"


def free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture
def isolated_env(unique_name: Callable[[str], str], tmp_path: Path) -> dict[str, str]:
    """Environment with names of its own, so that nothing a command might create is shared."""
    name = unique_name("down")
    return {
        **os.environ,
        "EVENT_STORE_SCHEMA": f"{name}_events",
        "TOPIC_PREFIX": f"{name}.",
        "PROJECTION_PREFIX": f"{name}_",
        "OUTPUT_DIR": str(tmp_path / "output"),
        "CONNECT_TIMEOUT_SECONDS": CONNECT_TIMEOUT_SECONDS,
    }


def run(env: dict[str, str], *arguments: str) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [*TICKETING, "--log-level", "CRITICAL", *arguments],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, time.monotonic() - started


def log_file(directory: Path) -> Path:
    path = directory / "log.csv"
    path.write_text(
        "Case ID,Activity,Resource,Complete Timestamp,Variant,Variant index,Variant,seriousness,customer,product,"
        "responsible_section,seriousness_2,service_level,service_type,support_section,workgroup\n"
        "Case 1,Assign seriousness,Value 1,2012/1/1 10:00:00,Variant 1,1,Variant 1,Value 1,Value 1,Value 1,"
        "Value 1,Value 1,Value 1,Value 1,Value 1,Value 1\n",
        encoding="utf-8",
    )
    return path


POSTGRES_COMMANDS = [
    pytest.param(["history", "ticket", TICKET_ID], id="history"),
    pytest.param(["replay", "reports", "--verify"], id="replay"),
    pytest.param(["replay", "reports", "--verify", "--from-event-store"], id="replay-from-event-store"),
    pytest.param(["notify", "dispatch", "--once"], id="notify-dispatch"),
    pytest.param(["report", "departments"], id="report"),
    pytest.param(["status"], id="status"),
    pytest.param(["consume", "reports", "--timeout", "20"], id="consume"),
    pytest.param(["relay", "--once"], id="relay"),
    pytest.param(["import", "{log}", "--no-progress"], id="import"),
]

KAFKA_COMMANDS = [
    pytest.param(["status"], id="status"),
    pytest.param(["consume", "reports", "--timeout", "20"], id="consume"),
    pytest.param(["relay", "--once"], id="relay"),
    pytest.param(["replay", "reports", "--verify"], id="replay"),
]


@pytest.mark.parametrize("arguments", POSTGRES_COMMANDS)
def test_postgres_down_gives_one_error_line(
    arguments: list[str], isolated_env: dict[str, str], kafka_bootstrap: str, tmp_path: Path
) -> None:
    address = free_address()
    env = {**isolated_env, "DATABASE_URL": f"postgresql://helpdesk:helpdesk@{address}/helpdesk"}
    arguments = [argument.format(log=log_file(tmp_path)) for argument in arguments]

    result, seconds = run(env, *arguments)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"error: cannot connect to PostgreSQL at {address} (Connection refused). "
        f"Start it with scripts/services start or fix DATABASE_URL."
    ]
    assert seconds < MAX_SECONDS


@pytest.mark.parametrize("arguments", KAFKA_COMMANDS)
def test_kafka_down_gives_one_error_line_fast(
    arguments: list[str], isolated_env: dict[str, str], database_url: str
) -> None:
    address = free_address()
    env = {**isolated_env, "KAFKA_BOOTSTRAP_SERVERS": address}

    result, seconds = run(env, *arguments)

    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.splitlines() == [
        f"error: cannot connect to Kafka at {address} (Connection refused). "
        f"Start it with scripts/services start or fix KAFKA_BOOTSTRAP_SERVERS."
    ]
    assert seconds < MAX_SECONDS


def test_topic_setup_gives_up_after_connect_timeout() -> None:
    started = time.monotonic()

    with pytest.raises(TopicSetupError) as caught:
        ensure_topics(free_address(), ["never-created"], partitions=1, connect_timeout_seconds=2)

    assert "cannot connect to Kafka" in str(caught.value)
    assert time.monotonic() - started < 10
