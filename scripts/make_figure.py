"""Draw Figure 3 or 4 from results files: ``python scripts/make_figure.py fig=fig4 scale=mini``.

Options (key=value): fig=fig3|fig4|fig_rank|fig_budget|fig_router, scale=mini|paper|tiny (fig4), results=DIR,
bench=FILE (fig3), out=DIR; fig_router: run=<run id> (a trained ID-LoRA run), prompts=N (per benchmark, default 16):
``python scripts/make_figure.py fig=fig_router run=multitask_llama32.mini.idlora`` writes results/figures/fig_router.png
and results/router/<run id>.json.
``make fig3`` runs the efficiency benchmark first if its results file is missing; ``make fig4`` runs Table 7.
"""

import sys

from idlora.cli import main_guard, parse_overrides


@main_guard
def main() -> None:
    args = parse_overrides(sys.argv[1:], allowed={"fig": None, "scale": None, "results": None, "bench": None,
                                                  "out": None, "run": None, "prompts": None})
    from idlora.errors import ConfigError
    from idlora.reports.figures import make_figure

    if "fig" not in args:
        raise ConfigError("name the figure: fig=fig3 or fig=fig4")
    prompts = args.get("prompts")
    if prompts is not None and not prompts.isdigit():
        raise ConfigError(f"prompts={prompts!r}: give a positive whole number of prompts per benchmark.")
    path = make_figure(args["fig"], args.get("scale", "mini"), args.get("results", "results/runs"),
                       args.get("bench", "results/bench/efficiency.json"), args.get("out", "results/figures"),
                       run=args.get("run"), prompts=None if prompts is None else int(prompts))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
