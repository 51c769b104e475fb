"""`ticketing report` rejects options a report cannot honour with a message, not a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

TICKETING = str(Path(sys.executable).with_name("ticketing"))


@pytest.mark.parametrize(
    "name", ["customer-cohorts", "customer-retention", "repeat-contacts", "agent-cohorts", "agent-turnover"]
)
def test_retention_report_rejects_department(name: str, database_url: str, unique_name) -> None:
    env = {**os.environ, "PROJECTION_PREFIX": f"{unique_name('r')}_"}

    result = subprocess.run(
        [TICKETING, "report", name, "--department", "Value 4"], env=env, capture_output=True, text=True, timeout=60
    )

    assert result.returncode == 2
    assert "no department breakdown" in result.stderr
    assert "Traceback" not in result.stderr
