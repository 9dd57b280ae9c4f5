"""Matplotlib on the Agg backend and the atomic PNG write, shared by the figures and the effective-rank study."""

from __future__ import annotations

from pathlib import Path

from ..files import atomic_write


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(fig, path: Path) -> Path:
    """PNG written atomically (a crash leaves any previous figure intact)."""
    out = atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=150, bbox_inches="tight"), mode="wb")
    pyplot().close(fig)
    return out
