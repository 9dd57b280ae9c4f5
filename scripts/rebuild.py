"""Rebuild every generated file under results/ from the committed results files, and compare: ``make rebuild``.

Options (key=value): results=DIR (default results), out=DIR (default build/results; emptied first), scale=mini|paper|tiny.
Trains and scores nothing (idlora/reports/rebuild.py says what each file is built from). Exit status 1, naming the
files, when a rebuilt file differs from the committed one: then the committed file is stale (rebuild it with its
make target) or its builder is not deterministic.
"""

import shutil
import sys
from pathlib import Path

from idlora.cli import main_guard, parse_overrides


@main_guard
def main() -> None:
    args = parse_overrides(sys.argv[1:], {"results": None, "out": None, "scale": ("mini", "paper", "tiny")})
    from idlora.errors import ConfigError
    from idlora.reports.rebuild import differences, rebuild

    results, out = args.get("results", "results"), Path(args.get("out", "build/results"))
    if out.resolve() == Path(results).resolve() or out.resolve() in Path(results).resolve().parents:
        raise ConfigError(f"out={out} would empty the committed {results}/ it compares against: give a scratch "
                          "directory (default build/results).")
    shutil.rmtree(out, ignore_errors=True)
    rebuilt = rebuild(results, out, args.get("scale", "mini"))
    diff = differences(results, out, rebuilt)
    print(f"rebuilt {len(rebuilt)} files into {out}/; {len(diff)} differ from {results}/")
    for rel in diff:
        print(f"  differs: {rel}")
    raise SystemExit(1 if diff else 0)


if __name__ == "__main__":
    main()
