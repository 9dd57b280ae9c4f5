"""How large B's input is, ID-LoRA against LoRA at initialisation: ``python scripts/base_scale.py [scale=mini]``.

Writes results/bench/base_scale.json (see idlora/bench/base_scale.py): per projection type, the RMS of ID-LoRA's
sum_i alpha_i A_i h over that of LoRA's A h, i.e. how much further one Adam step at the same lr moves ID-LoRA's output.
"""

import sys

from idlora.cli import main_guard, parse_overrides


@main_guard
def main() -> None:
    args = parse_overrides(sys.argv[1:], {"scale": ("mini", "tiny", "paper")})
    from idlora.bench.base_scale import run

    doc = run(scale=args.get("scale", "mini"))
    for proj, r in doc["ratio_by_projection"].items():
        print(f"{proj}: ID-LoRA / LoRA RMS of B's input {r['mean']:.2f} (layers {r['min']:.2f}..{r['max']:.2f})")
    print(f"mean over projection types: {doc['mean_ratio']:.2f} -> results/bench/base_scale.json")


if __name__ == "__main__":
    main()
