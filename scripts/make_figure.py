"""Draw Figure 3 or 4 from results files: ``python scripts/make_figure.py fig=fig4 scale=mini``.

Options (key=value): fig=fig3|fig4|fig_rank|fig_budget|fig_router, scale=mini|paper|tiny (fig4), results=DIR,
bench=FILE (fig3), out=DIR; fig_router: run=<run id> (a trained ID-LoRA run), prompts=N (per benchmark, default 16):
``python scripts/make_figure.py fig=fig_router run=multitask_llama32.mini.idlora`` writes results/router/<run id>.json
(the analysis stage, idlora.analysis.router), then results/figures/fig_router.png from it; fig=fig_rank likewise
results/figures/fig_rank.json (idlora.analysis.effective_rank), then fig_rank.png.
``make fig3`` runs the efficiency benchmark first if its results file is missing; ``make fig4`` runs Table 7.
"""

import sys
from pathlib import Path

from idlora.cli import main_guard, parse_overrides


@main_guard
def main() -> None:
    args = parse_overrides(sys.argv[1:], allowed={"fig": None, "scale": None, "results": None, "bench": None,
                                                  "out": None, "run": None, "prompts": None})
    from idlora.errors import ConfigError
    from idlora.reports.figures import check_options, make_figure

    if "fig" not in args:
        raise ConfigError("name the figure: fig=fig3 or fig=fig4")
    prompts = args.get("prompts")
    if prompts is not None and not prompts.isdigit():
        raise ConfigError(f"prompts={prompts!r}: give a positive whole number of prompts per benchmark.")
    fig, run = args["fig"], args.get("run")
    results, out = args.get("results", "results/runs"), args.get("out", "results/figures")
    check_options(fig, run, prompts)
    if fig == "fig_router":  # the analysis stage first: it loads the run's adapter and writes the statistics
        from idlora.analysis.router import DEFAULT_PROMPTS, write_statistics

        stats = write_statistics(run, results, Path(out).parent / "router",
                                 DEFAULT_PROMPTS if prompts is None else int(prompts))
        print(f"wrote {stats}")
        run = stats.stem
    elif fig == "fig_rank":  # the analysis stage first: it loads Table 7's two adapters and writes the spectra
        from idlora.analysis.effective_rank import write_spectra

        print(f"wrote {write_spectra(args.get('scale', 'mini'), results, Path(out) / 'fig_rank.json')}")
    path = make_figure(fig, args.get("scale", "mini"), results, args.get("bench", "results/bench/efficiency.json"),
                       out, run=run)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
