"""Build one of the paper's tables, running what it needs first: ``python scripts/make_table.py table=table1``.

Options (key=value): scale=mini|paper|tiny (default mini), cluster=local|slurm, results=DIR, out=DIR,
runs=DIR (where runs keep checkpoints and adapters; default runs/), jobs=N|auto (runs trained at once; auto: 2 on a
CPU-only machine at scale mini/tiny, else 1), slurm.<option>=VALUE (partition, account, qos, time, gpus, cpus, mem,
extra), and any Hydra override of the runs, given to every run of the table (local copies at paper scale:
local_data.saferpaca=FILE local_data.hexphi=DIR local_models.llama3_8b=DIR ...). `make tableN ARGS="..."` passes them.
"""

import sys

from idlora.cli import main_guard, split_arguments

OWN = {"table": None, "scale": None, "cluster": None, "results": None, "out": None, "runs": None, "jobs": None}


@main_guard
def main() -> None:
    args, slurm, overrides = split_arguments(sys.argv[1:], OWN)
    from idlora.errors import ConfigError
    from idlora.runs.orchestrate import make_table

    if "table" not in args:
        raise ConfigError("name the table: table=table1 … table8")
    raise SystemExit(make_table(args["table"], args.get("scale", "mini"), args.get("cluster", "local"),
                                args.get("results", "results/runs"), args.get("out", "results/tables"),
                                args.get("runs"), args.get("jobs", "auto"), overrides=overrides, slurm=slurm))


if __name__ == "__main__":
    main()
