"""The pre-registered claims (``claims/preregistered.yaml``): loaded, checked, and split into their test families.

A claim quotes what the paper says (``text``) and fixes, before the runs that judge it, how it is judged: the table,
the two rows compared (``arm_a`` minus ``arm_b``, named as ``experiments/<table>.yaml`` names its rows), the
benchmarks (the tables' column keys), the test (superiority, or non-inferiority with a ``margin`` in points: one
number, or one per benchmark), and where the paper speaks of a parameter budget the rule its trainable counts must
meet at this scale (``params``: ``match_within`` a fraction at most 0.10, or the ``ratio`` arm_a / arm_b named, to 2
decimals). A ``count`` claim is about numbers that are counted, not sampled (Table 6): it states its ``rule`` and
enters no family. At most ``MAX_PRIMARY`` claims are primary.

Families (``idlora.reports.paired``): one hypothesis per claim and benchmark; Holm at 0.05 across the primary claims'
hypotheses, Benjamini-Hochberg at q = 0.1 across the exploratory ones.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import ConfigError
from ..protocol import CLAIMS_FILE, read_claims
from .paired import FAMILIES, NON_INFERIORITY, SUPERIORITY
MAX_PRIMARY = 8
MAX_MATCH = 0.10  # "matched" trainable counts: within 10% of each other at this scale
KINDS = tuple(FAMILIES)  # primary, exploratory
COUNT = "count"
TESTS = (SUPERIORITY, NON_INFERIORITY, COUNT)
REQUIRED = {SUPERIORITY: ("id", "kind", "text", "table", "arm_a", "arm_b", "benchmarks", "test"),
            NON_INFERIORITY: ("id", "kind", "text", "table", "arm_a", "arm_b", "benchmarks", "test", "margin"),
            COUNT: ("id", "kind", "text", "table", "test", "rule")}
OPTIONAL = {SUPERIORITY: ("params", "reading"), NON_INFERIORITY: ("params", "reading"), COUNT: ("reading",)}


def load_claims(path: str | Path = CLAIMS_FILE) -> list[dict]:
    """The claims of ``path``, checked (``check_claims``)."""
    return check_claims(read_claims(path), str(path))


def check_claims(doc, source: str = "claims file") -> list[dict]:
    """``doc["claims"]`` if every claim obeys the schema (module docstring), else one ConfigError listing each
    problem and its fix."""
    if not isinstance(doc, dict) or set(doc) != {"claims"} or not isinstance(doc["claims"], list):
        raise ConfigError(f"{source}: expected one top-level key `claims:` holding a list of claims")
    claims, problems = doc["claims"], []
    for i, claim in enumerate(claims):
        name = claim.get("id", f"claim #{i + 1}") if isinstance(claim, dict) else f"claim #{i + 1}"
        problems += [f"{name}: {p}" for p in claim_problems(claim)]
    ids = [c.get("id") for c in claims if isinstance(c, dict)]
    problems += [f"{d}: two claims have this id; give each claim its own" for d in sorted({i for i in ids
                                                                                          if ids.count(i) > 1})]
    primary = [c.get("id") for c in claims if isinstance(c, dict) and c.get("kind") == "primary"]
    if len(primary) > MAX_PRIMARY:
        problems.append(f"{len(primary)} primary claims ({', '.join(map(str, primary))}): at most {MAX_PRIMARY}; "
                        "make the others exploratory")
    if problems:
        raise ConfigError(f"{source}:\n  " + "\n  ".join(problems))
    return claims


def claim_problems(claim) -> list[str]:
    """What is wrong with one claim, each with its fix (empty: nothing)."""
    if not isinstance(claim, dict):
        return ["a claim is a mapping of keys (id, kind, text, table, ...)"]
    test = claim.get("test")
    if test not in TESTS:
        return [f"test {test!r} is not one of {', '.join(TESTS)}"]
    allowed = (*REQUIRED[test], *OPTIONAL[test])
    out = [f"a {test} claim takes no margin: remove it" + (", or make the test non-inferiority"
                                                              if test == SUPERIORITY else "") if k == "margin" else
           f"unknown key {k!r}; a {test} claim takes {', '.join(allowed)}" for k in claim if k not in allowed]
    out += [f"missing {k!r}" + (": a non-inferiority claim states its margin in points (e.g. 3 multiple choice, "
                                "5 generative)" if k == "margin" else "") for k in REQUIRED[test] if k not in claim]
    if claim.get("kind") not in KINDS:
        out.append(f"kind {claim.get('kind')!r} is not one of {', '.join(KINDS)}")
    if not isinstance(claim.get("text", ""), str) or not claim.get("text", "x").strip():
        out.append("text must quote what the paper says")
    if out:
        return out
    return _name_problems(claim) + _margin_problems(claim) + _params_problems(claim)


def _name_problems(claim: dict) -> list[str]:
    """Unknown table, row or benchmark names."""
    from .tables import RUN_TABLES, TABLES

    table, test = claim["table"], claim["test"]
    known = TABLES if test == COUNT else RUN_TABLES
    if table not in known:
        return [f"unknown table {table!r}; a {test} claim names one of {', '.join(known)}"]
    if test == COUNT:
        return []
    rows, columns = _rows_and_columns(table)
    out = [f"{key} {claim[key]!r} is not a row of experiments/{table}.yaml ({', '.join(rows)})"
           for key in ("arm_a", "arm_b") if claim[key] not in rows]
    if claim["arm_a"] == claim["arm_b"]:
        out.append("arm_a and arm_b are the same row: name the two rows compared")
    benchmarks = claim["benchmarks"]
    if not isinstance(benchmarks, list) or not benchmarks:
        return out + ["benchmarks must be a non-empty list of column keys"]
    out += [f"unknown benchmark {b!r} for {table}; one of {', '.join(columns)}" for b in benchmarks
            if b not in columns]
    return out


def _rows_and_columns(table: str) -> tuple[list[str], list[str]]:
    """The rows of a table's experiment list and the benchmark columns it can judge (the paper's columns where the
    paper has the table, else every scored metric)."""
    from ..experiments import experiment_list
    from .tables.from_runs import METRIC_SOURCE
    from .tables.render import paper_numbers

    rows = list(dict.fromkeys(r.row for r in experiment_list(table)["runs"]))
    paper = paper_numbers().get(table, {}).get("columns")
    return rows, [c for c in (paper or METRIC_SOURCE) if c in METRIC_SOURCE]


def _margin_problems(claim: dict) -> list[str]:
    if claim["test"] != NON_INFERIORITY:
        return []
    margin = claim["margin"]
    values = margin.values() if isinstance(margin, dict) else [margin]
    out = [] if all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in values) else [
        f"margin {margin!r}: a positive number of points, or one per benchmark"]
    if isinstance(margin, dict) and set(margin) != set(claim["benchmarks"]):
        out.append(f"margin names {sorted(margin)}, benchmarks are {sorted(claim['benchmarks'])}: give one margin "
                   "per benchmark, or one number for all")
    return out


def _params_problems(claim: dict) -> list[str]:
    params = claim.get("params")
    if params is None and claim["table"] == "table7":
        return ["Table 7 compares parameter budgets: add params: {match_within: 0.10} (ranks whose trainable counts "
                "match at this scale) or {ratio: <arm_a / arm_b>} (the ratio named)"]
    if params is None:
        return []
    if not isinstance(params, dict) or len(params) != 1 or not set(params) <= {"match_within", "ratio"}:
        return [f"params {params!r}: exactly one of match_within (a fraction) or ratio (arm_a / arm_b)"]
    (key, value), = params.items()
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0
    if not ok or (key == "match_within" and value > MAX_MATCH):
        return [f"params {key}: {value!r}: " + (f"at most {MAX_MATCH} (counts within 10%), or name the ratio"
                                                 if ok else "a positive number")]
    return []


def margin(claim: dict, benchmark: str) -> float | None:
    """The claim's non-inferiority margin on ``benchmark``, in points (None for other tests)."""
    m = claim.get("margin")
    return m.get(benchmark) if isinstance(m, dict) else m


def hypotheses(claims: list[dict], kind: str) -> list[tuple[str, str]]:
    """(claim id, benchmark) of each test in ``kind``'s family, in file order; count claims enter none."""
    return [(c["id"], b) for c in claims if c["kind"] == kind and c["test"] != COUNT for b in c["benchmarks"]]


def budget_problem(claim: dict, trainable_a: int, trainable_b: int) -> str | None:
    """Why the runs' trainable counts break the claim's ``params`` rule (the verdict is then invalid), or None."""
    params = claim.get("params")
    if not params:
        return None
    ratio = trainable_a / trainable_b
    counts = f"trainable {claim['arm_a']} {trainable_a:,}, {claim['arm_b']} {trainable_b:,} (ratio {ratio:.2f})"
    if "match_within" in params and abs(ratio - 1) > params["match_within"]:
        return f"{counts}: not within {params['match_within']:.0%}; choose ranks that match, or name the ratio"
    if "ratio" in params and round(ratio, 2) != params["ratio"]:
        return f"{counts}: not the ratio {params['ratio']} the claims file names"
    return None


def within_printed_precision(count: int, printed: str) -> bool:
    """True if ``count`` agrees with a figure printed as the paper prints Table 6 ("10.4M", "1.3B": M = 1e6,
    B = 1e9) to within one unit of its last printed digit: rounding and truncation both agree."""
    scale = {"K": 1e3, "M": 1e6, "B": 1e9}[printed[-1]]
    number = printed[:-1]
    unit = 10 ** -(len(number.split(".")[1]) if "." in number else 0) * scale
    return abs(count - float(number) * scale) <= unit * (1 + 1e-9)
