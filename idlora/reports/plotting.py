"""Matplotlib on the Agg backend and the atomic PNG write, shared by the figures."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display: set before pyplot is imported
import matplotlib.pyplot as plt  # noqa: E402

from ..files import atomic_write  # noqa: E402


def pyplot():
    return plt


def save(fig, path: Path) -> Path:
    """PNG written atomically (a crash leaves any previous figure intact)."""
    out = atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=150, bbox_inches="tight"), mode="wb")
    plt.close(fig)
    return out
