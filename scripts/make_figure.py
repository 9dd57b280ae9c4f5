"""Draw Figure 3 or 4 from results files: ``python scripts/make_figure.py fig=fig4 scale=mini``.

Options (key=value): fig=fig3|fig4|fig_rank|fig_budget, scale=mini|paper|tiny (fig4), results=DIR, bench=FILE (fig3), out=DIR.
``make fig3`` runs the efficiency benchmark first if its results file is missing; ``make fig4`` runs Table 7.
"""

import sys

from idlora.cli import main_guard, parse_overrides


@main_guard
def main() -> None:
    args = parse_overrides(sys.argv[1:], allowed={"fig": None, "scale": None, "results": None, "bench": None,
                                                  "out": None})
    from idlora.errors import ConfigError
    from idlora.reports.figures import make_figure

    if "fig" not in args:
        raise ConfigError("name the figure: fig=fig3 or fig=fig4")
    path = make_figure(args["fig"], args.get("scale", "mini"), args.get("results", "results/runs"),
                       args.get("bench", "results/bench/efficiency.json"), args.get("out", "results/figures"))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
