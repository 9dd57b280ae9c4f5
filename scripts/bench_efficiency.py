"""Efficiency benchmark behind Figure 3: ``make bench`` (or ``python scripts/bench_efficiency.py [quick=true]``).

Writes results/bench/efficiency.json (ratios, medians of interleaved trials, measured in this one run) and
prints a table.

Options (key=value): model=NAME (a config of configs/model, default smollm2_135m, the mini scale), quick=true (tiny
model, few trials: checks the pipeline in seconds), trials=N (the mini panel's paired trials, default 7),
shape_trials=N (the paper-shape panel's, at least N, default 40, then more up to 120 until each interval is within
0.03 of its median; unmerged DoRA's at most 5), pair_trials=N (the ID-LoRA vs unmerged LoRA decoding pairs', at
least N, default 40, then more up to 160 until the interval is within 0.015), parts=shapes,infer,decode,train,pmrc[,compile,compile_decode] (which
parts to measure, default shapes,infer,decode,train,pmrc; ``shapes``: every method at the paper's ranks on
LLaMA-3-8B-shaped decoder layers, Figure 3's primary panel; ``decode``: ID-LoRA's batch-1 decoding over unmerged
LoRA's, paired; ``compile``: the prompt forward of every method torch.compile'd over the compiled merged model, and
``compile_decode``: ID-LoRA's compiled batch-1 decoding over unmerged LoRA's, both only when named, as inductor
compiles for minutes on a CPU; ``cpu``: the machine's throughput for the mini replication, fp32 against bf16,
padded against packed batches, the roofline of a training step and of generation, idlora.bench.cpu, written to
cpu_out=FILE, default results/bench/cpu.json, only when named), compile_backend=NAME (the compile parts' torch.compile backend, default inductor;
quick: eager), out=FILE (default results/bench/efficiency.json).
"""

import sys

from idlora.cli import flag, main_guard, parse_overrides


@main_guard
def main(argv=None) -> None:
    from idlora.errors import ConfigError

    args = parse_overrides(sys.argv[1:] if argv is None else argv,
                           {"model": None, "quick": ("true", "false"), "trials": None, "shape_trials": None,
                            "pair_trials": None, "parts": None,
                            "out": None, "cpu_out": None,
                            "compile_backend": None})
    for key in ("trials", "shape_trials", "pair_trials"):
        value = args.get(key)
        if value is not None and not (value.isdigit() and int(value) > 0):
            raise ConfigError(f"{key}={value!r} is not valid: give a positive number of trials (e.g. {key}=7).")
    trials, shape_trials, pair_trials = (args.get(k) for k in ("trials", "shape_trials", "pair_trials"))
    backend = args.get("compile_backend")
    if backend is not None:
        import torch

        if backend not in torch._dynamo.list_backends(exclude_tags=()):
            raise ConfigError(f"compile_backend={backend!r} is not a torch.compile backend; valid: "
                              f"{', '.join(torch._dynamo.list_backends(exclude_tags=()))}.")
    from idlora.bench.efficiency import COMPILE_PARTS, DEFAULT_PARTS, run_efficiency_benchmark

    parts = args.get("parts", ",".join(DEFAULT_PARTS)).split(",")
    if "cpu" in parts:  # its own file: the machine's throughput, not Figure 3's ratios (idlora.bench.cpu)
        from idlora.bench.cpu import run_cpu_benchmark

        run_cpu_benchmark(out=args.get("cpu_out", "results/bench/cpu.json"), quick=flag(args, "quick"),
                          **({"trials": int(trials)} if trials is not None else {}))
        parts = [p for p in parts if p != "cpu"]
        if not parts:
            return
    if backend is not None and not set(COMPILE_PARTS) & set(parts):
        raise ConfigError(f"compile_backend= is the compile parts' option, but parts={','.join(parts)} has neither "
                          "compile nor compile_decode: add one (e.g. parts=compile,compile_decode) or drop "
                          "compile_backend.")
    quick = flag(args, "quick")
    run_efficiency_benchmark(model_name="tiny_llama" if quick else args.get("model", "smollm2_135m"), quick=quick,
                             trials=None if trials is None else int(trials),
                             shape_trials=None if shape_trials is None else int(shape_trials),
                             pair_trials=None if pair_trials is None else int(pair_trials),
                             out=args.get("out", "results/bench/efficiency.json"),
                             parts=parts, compile_backend=backend)


if __name__ == "__main__":
    main()
