"""Tables of the paper rebuilt from this project's own numbers (``make tableN``)."""

from ...errors import ConfigError
from ...experiments import RUN_TABLES
from . import from_runs, hyperparams, table6

# Every table: those built from runs (``experiments.RUN_TABLES``), and Tables 4-6, built from configs
TABLES = ("table1", "table2", "table3", "table4", "table5", "table6", "table7", "table8", "table_init", "table_rb",
          "table_router", "table_lr")
assert set(RUN_TABLES) <= set(TABLES)


def build_table(name: str, scale: str = "mini", results_dir: str = "results/runs", overrides: list[str] | None = None):
    """Build one table from results files (Tables 1-3, 7, 8), configs (4, 5) or adapters on meta models (6)."""
    if name not in TABLES:
        raise ConfigError(f"unknown table {name!r}; available: {', '.join(TABLES)}")
    if name == "table6":
        return table6.build(scale)
    if name in ("table4", "table5"):
        return hyperparams.build(name, scale)
    return from_runs.build(name, scale, results_dir, overrides)
