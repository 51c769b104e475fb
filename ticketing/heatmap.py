"""Retention cohort heatmaps as PNG files."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import matplotlib

# The main job runs without a display, so pick the file-only backend before pyplot loads.
matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402


def plot_cohort_heatmap(
    rows: Iterable[Mapping[str, Any]],
    path: Path,
    *,
    title: str,
    cohort_column: str,
    offset_column: str,
    share_column: str,
    max_offset: int = 24,
) -> Path:
    """Draw one row per cohort and one column per month offset, coloured by share (0 to 1)."""
    shares: dict[str, dict[int, float]] = {}
    for row in rows:
        offset = int(row[offset_column])
        if offset <= max_offset and row[share_column] is not None:
            shares.setdefault(str(row[cohort_column]), {})[offset] = float(row[share_column])

    cohorts = sorted(shares)
    width = 1 + max((max(by_offset) for by_offset in shares.values()), default=0)
    grid = [[shares[cohort].get(offset, float("nan")) for offset in range(width)] for cohort in cohorts]

    figure, axes = plt.subplots(figsize=(max(6, width * 0.45), max(3, len(cohorts) * 0.28)))
    image = axes.imshow(grid, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
    axes.set_title(title)
    axes.set_xlabel("months since cohort start")
    axes.set_ylabel("cohort")
    axes.set_yticks(range(len(cohorts)), labels=cohorts, fontsize=7)
    figure.colorbar(image, ax=axes, label="share of cohort")
    figure.tight_layout()

    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
