"""Small helpers shared by the entry points in ``scripts/``."""

from __future__ import annotations

import functools
import sys

from .errors import ConfigError


def main_guard(fn):
    """Run ``fn``; a user error (``ConfigError``) prints one line naming the fix and exits 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*a, **kw):
        try:
            return fn(*a, **kw)
        except ConfigError as e:
            print(f"error: {e}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper


HELP = ("-h", "--help")


def print_help_if_asked(argv: list[str]) -> None:
    """``-h`` / ``--help``: print the entry point's docstring (its usage and options) and exit 0."""
    if any(a in HELP for a in argv):
        doc = getattr(sys.modules.get("__main__"), "__doc__", None) or "key=value arguments; see the script's source."
        print(doc.strip())
        raise SystemExit(0)


def flag(args: dict[str, str], key: str) -> bool:
    """A ``key=true|false`` argument (absent: false)."""
    return args.get(key, "false") == "true"


def parse_overrides(argv: list[str], allowed: dict[str, tuple | None]) -> dict[str, str]:
    """``key=value`` arguments; ``allowed`` maps each key to its valid values (None: any). ``--help`` prints the
    entry point's docstring."""
    print_help_if_asked(argv)
    out = {}
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"argument {arg!r} is not key=value; valid keys: {', '.join(allowed)}")
        if key not in allowed:
            raise ConfigError(f"unknown argument {key!r}; valid keys: {', '.join(allowed)}")
        if allowed[key] is not None and value not in allowed[key]:
            raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(allowed[key])}")
        out[key] = value
    return out


def split_arguments(argv: list[str], own: dict[str, tuple | None]) -> tuple[dict[str, str], dict[str, str], list[str]]:
    """``key=value`` arguments of an entry point that launches runs: (its own keys, checked as ``parse_overrides``
    does; ``slurm.<key>`` sbatch options; every other ``key=value``, a Hydra override passed to each run)."""
    print_help_if_asked(argv)
    mine, slurm, overrides = [], {}, []
    for arg in argv:
        key, sep, value = arg.partition("=")
        if not sep:
            raise ConfigError(f"argument {arg!r} is not key=value; valid keys: {', '.join(own)}, slurm.<option>, "
                              "or a Hydra override of the runs (e.g. local_data.hexphi=DIR)")
        if key in own:
            mine.append(arg)
        elif key.startswith("slurm."):
            slurm[key[len("slurm."):]] = value
        else:
            overrides.append(arg)
    return parse_overrides(mine, own), slurm, overrides
