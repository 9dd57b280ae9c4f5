"""Submit runs to Slurm, skipping those whose results are complete or whose job is queued or running.

    python scripts/submit.py experiment=multitask_llama3 methods=idlora,lora,dora,hydralora,moelora,fft scale=paper
    python scripts/submit.py experiment=multitask_llama32 methods=idlora scale=paper method.k=6 run_tag=_k6 dry_run=true
    python scripts/submit.py experiment=safety_llama3 scale=paper slurm.partition=gpu slurm.account=proj \
        slurm.time=24:00:00 local_data.saferpaca=FILE local_data.hexphi=DIR

Own keys: experiment, methods (comma-separated), scale (default paper), dry_run (true: write the scripts only);
slurm.<option> (partition, account, qos, time, gpus, cpus, mem, extra: a raw #SBATCH line); every other key=value is
a Hydra override of scripts/train.py.
"""

import sys

from idlora.cli import main_guard, split_arguments
from idlora.errors import ConfigError

OWN = {"experiment": None, "methods": None, "scale": None, "dry_run": ("true", "false")}


@main_guard
def main(argv: list[str]) -> None:
    from idlora.experiments import Run
    from idlora.runs.launch import slurm_options, submit

    args, slurm, overrides = split_arguments(argv, OWN)
    slurm_options(slurm)
    if "experiment" not in args:
        raise ConfigError("name the experiment: experiment=<name> (see configs/experiment/)")
    methods = args.get("methods", "idlora").split(",")
    runs = [Run(args["experiment"], m, overrides, args.get("scale", "paper")) for m in methods]
    for run in runs:  # a bad override fails before anything is submitted
        run.config()
    for out in submit(runs, dry_run=args.get("dry_run") == "true", slurm=slurm):
        print(out)


if __name__ == "__main__":
    main(sys.argv[1:])
