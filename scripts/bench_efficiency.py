"""Efficiency benchmark behind Figure 3: ``make bench`` (or ``python scripts/bench_efficiency.py [quick=true]``).

Writes results/bench/efficiency.json (ratios, medians of interleaved trials, measured in this one run) and
prints a table.

Options (key=value): model=NAME (a config of configs/model, default smollm2_135m, the mini scale), quick=true (tiny
model, few trials: checks the pipeline in seconds), trials=N, parts=infer,train,pmrc (which parts to measure,
default all three), out=FILE (default results/bench/efficiency.json).
"""

import sys

from idlora.cli import flag, main_guard, parse_overrides


@main_guard
def main(argv=None) -> None:
    from idlora.errors import ConfigError

    args = parse_overrides(sys.argv[1:] if argv is None else argv,
                           {"model": None, "quick": ("true", "false"), "trials": None, "parts": None, "out": None})
    trials = args.get("trials")
    if trials is not None and not (trials.isdigit() and int(trials) > 0):
        raise ConfigError(f"trials={trials!r} is not valid: give a positive number of trials (e.g. trials=7).")
    from idlora.bench.efficiency import run_efficiency_benchmark

    quick = flag(args, "quick")
    run_efficiency_benchmark(model_name="tiny_llama" if quick else args.get("model", "smollm2_135m"), quick=quick,
                             trials=None if trials is None else int(trials),
                             out=args.get("out", "results/bench/efficiency.json"),
                             parts=args.get("parts", "infer,train,pmrc").split(","))


if __name__ == "__main__":
    main()
