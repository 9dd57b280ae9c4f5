"""Score a trained run and add the numbers to its results file.

    python scripts/evaluate.py run=<run id | results file> [eval=gsm8k,humaneval] [limit=N]

By default the run's own benchmarks (its config's eval.benchmarks) are scored; eval= picks others
(gsm8k, humaneval, hexphi, mmlu, cqa).
"""

import sys

from idlora.cli import main_guard, parse_overrides


@main_guard
def main() -> None:
    from omegaconf import OmegaConf

    from idlora.errors import ConfigError
    from idlora.eval.evaluate import evaluate_run, find_run, load_trained

    args = parse_overrides(sys.argv[1:], allowed={"run": None, "eval": None, "limit": None, "results": None})
    if "run" not in args:
        raise ConfigError("name the run: run=<run id or results file> (see results/runs/)")
    path, record = find_run(args["run"], args.get("results", "results/runs"))
    cfg = OmegaConf.create(record["config"])
    if "limit" in args:
        cfg.eval.limit = int(args["limit"])
    names = args["eval"].split(",") if "eval" in args else list(cfg.eval.benchmarks)
    from idlora.eval.evaluate import available_benchmarks

    unknown = [n for n in names if n not in available_benchmarks()]
    if unknown:  # before loading any weights
        raise ConfigError(f"unknown benchmark(s) {unknown}; valid: {', '.join(available_benchmarks())}")
    model, tokenizer = load_trained(record)
    evaluate_run(cfg, model=model, tokenizer=tokenizer, benchmarks=names, results_path=path)


if __name__ == "__main__":
    main()
