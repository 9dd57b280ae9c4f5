"""The measured numbers the README links to, from results files only: ``python scripts/make_results_page.py``.

Options (key=value): results=DIR (default results: reads its bench/, router/ and runs/ files and writes README.md
there). What the page holds and which file each section reads: idlora/reports/results_page.py.
"""

import sys

from idlora.cli import main_guard, parse_overrides


@main_guard
def main() -> None:
    args = parse_overrides(sys.argv[1:], {"results": None})
    from idlora.reports.results_page import build, write

    results = args.get("results", "results")
    print(f"wrote {write(build(results), results)}")


if __name__ == "__main__":
    main()
