"""Memory plan at paper scale: ``make memory_plan`` (or ``python scripts/memory_plan.py [key=value ...]``).

Keys: gpus (2), gpu_gib (80), fraction (0.9), micro_batch_size / max_length (scale=paper's), models
(llama3_8b,mistral_7b,llama32_3b). Writes results/bench/memory_plan.json and results/tables/memory_plan.md
(see idlora/bench/memory_plan.py for what is counted and how).
"""

import sys

from idlora.cli import main_guard, parse_overrides


@main_guard
def main(argv) -> None:
    from idlora.errors import ConfigError
    from idlora.bench.memory_plan import PAPER_MODELS, build_plan, markdown, write

    args = parse_overrides(argv, {"gpus": None, "gpu_gib": None, "fraction": None, "micro_batch_size": None,
                                  "max_length": None, "models": None})
    try:
        kw = {k: (float if k in ("gpu_gib", "fraction") else int)(v) for k, v in args.items() if k != "models"}
    except ValueError as e:
        raise ConfigError(f"{e}: gpus, micro_batch_size, max_length take integers, gpu_gib and fraction numbers "
                          "(e.g. gpus=2 gpu_gib=80 fraction=0.9)") from None
    models = tuple(args["models"].split(",")) if "models" in args else PAPER_MODELS
    unknown = [m for m in models if m not in PAPER_MODELS]
    if unknown:
        raise ConfigError(f"unknown model(s) {unknown}; valid: {', '.join(PAPER_MODELS)}")
    plan = build_plan(models=models, **kw)
    print(markdown(plan))
    print("wrote " + ", ".join(write(plan)))


if __name__ == "__main__":
    main(sys.argv[1:])
