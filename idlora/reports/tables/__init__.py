"""Tables of the paper rebuilt from this project's own numbers (``make tableN``)."""

from ...errors import ConfigError

RUN_TABLES = ("table1", "table2", "table3", "table7", "table8", "table_init", "table_rb", "table_router", "table_lr")
# Beyond the paper, ours only: table_init (its reviewers' question "why interpolative decomposition?"), table_rb (the
# Rank Boosting factor m), table_router (the router: linear, inner, the text's form, uniform) and table_lr (ID-LoRA's lr
# at mini, where every adapter shares one)
TABLES = ("table1", "table2", "table3", "table4", "table5", "table6", "table7", "table8", "table_init", "table_rb",
          "table_router", "table_lr")


def build_table(name: str, scale: str = "mini", results_dir: str = "results/runs", overrides: list[str] | None = None):
    """Build one table from results files (Tables 1-3, 7, 8), configs (4, 5) or adapters on meta models (6)."""
    if name not in TABLES:
        raise ConfigError(f"unknown table {name!r}; available: {', '.join(TABLES)}")
    if name == "table6":
        from .table6 import build

        return build(scale)
    if name in ("table4", "table5"):
        from .hyperparams import build

        return build(name, scale)
    from .from_runs import build

    return build(name, scale, results_dir, overrides)
