"""GPU check: ``make gpu-check`` (or ``python scripts/gpu_check.py [dry_run=true] [parts=train,pmrc,...] [out=FILE]``).

On one CUDA device, in under 8 minutes: training steps of every method, PMRC's torch backend, Figure 3's ratios at
LLaMA-3-8B shapes, generation tokens/s, compiled ratios (see idlora/bench/gpu_check.py). Writes
results/bench/gpu_check.json; without a CUDA device it says so and writes nothing. dry_run=true runs every part on
the CPU at tiny sizes (writes only to out=FILE). Exits 1 if a part failed.
"""

import sys

from idlora.cli import main_guard, parse_overrides


@main_guard
def main(argv) -> None:
    from idlora.bench.gpu_check import PARTS, run

    args = parse_overrides(argv,
                           {"dry_run": ("true", "false"), "parts": None, "out": None})
    report = run(dry_run=args.get("dry_run") == "true", out=args.get("out"),
                 parts=tuple(args["parts"].split(",")) if "parts" in args else PARTS)
    if report and any(p["status"] != "ok" for p in report["parts"].values()):
        failed = {k: p.get("error") for k, p in report["parts"].items() if p["status"] != "ok"}
        print(f"gpu-check: failed parts: {failed}", file=sys.stderr)
        raise SystemExit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
