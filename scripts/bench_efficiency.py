"""Efficiency benchmark behind Figure 3: ``make bench`` (or ``python scripts/bench_efficiency.py [--quick]``).

Writes results/bench/efficiency.json (ratios, medians of interleaved trials, measured in this one run) and
prints a table. --model NAME takes any model config of configs/model (default smollm2_135m, the mini scale).
"""

import argparse
import sys

from idlora.cli import main_guard


@main_guard
def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="smollm2_135m", help="a config name of configs/model (default: smollm2_135m)")
    ap.add_argument("--quick", action="store_true", help="tiny model, few trials: checks the pipeline in seconds")
    ap.add_argument("--trials", type=int, default=None)
    ap.add_argument("--skip-pmrc", action="store_true", help="leave out the PMRC backend comparison")
    ap.add_argument("--parts", default="infer,train,pmrc", help="which parts to measure (default: all three)")
    ap.add_argument("--out", default="results/bench/efficiency.json")
    args = ap.parse_args(argv)
    from idlora.bench.efficiency import run_efficiency_benchmark

    run_efficiency_benchmark(model_name="tiny_llama" if args.quick else args.model, quick=args.quick,
                             trials=args.trials, out=args.out,
                             parts=[p for p in args.parts.split(",") if not (args.skip_pmrc and p == "pmrc")])


if __name__ == "__main__":
    main(sys.argv[1:])
