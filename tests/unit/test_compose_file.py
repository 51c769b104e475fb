"""docker-compose.yml is valid for users with Docker, checked without a Docker engine."""

import shutil
import subprocess
from pathlib import Path

import yaml

COMPOSE_FILE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE_FILE.read_text())


def test_servers_have_health_checks_and_named_volumes() -> None:
    services = _compose()["services"]

    for name in ("kafka", "postgres"):
        assert "healthcheck" in services[name], name
        volume = services[name]["volumes"][0].split(":")[0]
        assert volume in _compose()["volumes"], name


def test_kafka_runs_official_image_in_kraft_mode() -> None:
    kafka = _compose()["services"]["kafka"]

    assert kafka["image"].startswith("apache/kafka:4.")
    assert kafka["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


def test_app_processes_wait_for_healthy_servers() -> None:
    services = _compose()["services"]

    for name in ("relay", "consumer-reports", "consumer-retention", "consumer-notifications"):
        assert services[name]["depends_on"]["kafka"]["condition"] == "service_healthy", name


def test_compose_client_accepts_file() -> None:
    # Only a Docker client with the compose plugin can check the full schema; where there is
    # none, the YAML checks above are what we have.
    docker = shutil.which("docker")
    if docker is None or subprocess.run([docker, "compose", "version"], capture_output=True).returncode:
        return
    result = subprocess.run(
        [docker, "compose", "-f", str(COMPOSE_FILE), "config", "--quiet"], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
