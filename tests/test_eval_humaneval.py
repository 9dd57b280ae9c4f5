"""HumanEval scoring: the estimator, the canonical solutions, and hostile programs in the sandbox."""

import json
import os
import subprocess
import sys
from math import comb

import pytest

from idlora.eval.humaneval import build_program, pass_at_k, read_problems, score_samples_file
from idlora.eval.sandbox import run_program


@pytest.mark.parametrize("n,c,k", [(10, 0, 1), (10, 10, 1), (10, 3, 1), (10, 3, 5), (20, 1, 10), (20, 19, 10),
                                   (5, 2, 5), (1, 1, 1)])
def test_pass_at_k_matches_the_binomial_formula(n, c, k):
    expected = 1.0 - comb(n - c, k) / comb(n, k)
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-12)


def test_pass_at_k_hand_values():
    assert pass_at_k(10, 3, 1) == pytest.approx(0.3)
    assert pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)  # C(2,2)/C(4,2) = 1/6


def _samples(tmp_path, completions):
    path = tmp_path / "samples.jsonl"
    path.write_text("".join(json.dumps({"task_id": t, "completion": c}) + "\n" for t, c in completions))
    return path


def test_canonical_solutions_score_100_and_wrong_ones_0(tmp_path):
    problems = read_problems()
    subset = list(problems)[:20]
    good = _samples(tmp_path, [(t, problems[t]["canonical_solution"]) for t in subset])
    assert score_samples_file(good) == {"humaneval_pass@1": 100.0}
    bad = _samples(tmp_path, [(t, "    return None\n") for t in subset[:5]] + [(t, "") for t in subset[5:10]])
    assert score_samples_file(bad) == {"humaneval_pass@1": 0.0}


@pytest.mark.slow
def test_all_164_canonical_solutions_through_the_cli(tmp_path):
    problems = read_problems()
    path = _samples(tmp_path, [(t, p["canonical_solution"]) for t, p in problems.items()])
    out = subprocess.run([sys.executable, "-m", "idlora.eval.humaneval", "--samples", str(path)],
                         capture_output=True, text=True, check=True)
    assert json.loads(out.stdout)["humaneval_pass@1"] == 100.0


@pytest.mark.parametrize("content,match", [
    ('{"task_id": "HumanEval/0", "completion": "x"}\nnot json\n', "line 2: not valid JSON"),
    ('{"task_id": "HumanEval/999", "completion": "x"}\n', "line 1: unknown task_id 'HumanEval/999'"),
    ('{"task_id": "HumanEval/0"}\n', "line 1: expected"),
])
def test_bad_samples_files_exit_2_with_one_line(tmp_path, content, match):
    path = tmp_path / "s.jsonl"
    path.write_text(content)
    out = subprocess.run([sys.executable, "-m", "idlora.eval.humaneval", "--samples", str(path)],
                         capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert match in out.stderr


def test_model_rewriting_the_whole_function_is_accepted():
    problem = read_problems()["HumanEval/0"]
    completion = "```python\n" + problem["prompt"] + problem["canonical_solution"] + "```\nThis works."
    assert run_program(build_program(problem, completion)).passed


HOSTILE = {
    "infinite_loop": "while True:\n    pass\n",
    "huge_allocation": "x = bytearray(50 * 1024**3)\n",
    "fork_bomb": "import os\nwhile True:\n    os.fork()\n",
    "fork_bomb_ctypes": "import ctypes\nlibc = ctypes.CDLL(None)\nwhile True:\n    libc.fork()\n",
    "read_ssh": "print(open(os.path.expanduser('/root/.ssh/id_rsa')).read())\n",
    "write_outside": "open('{outside}/pwned.txt', 'w').write('x')\n",
    "write_outside_os": "import os\nfd = os.open('{outside}/pwned2.txt', os.O_CREAT | os.O_WRONLY)\nos.write(fd, b'x')\n",
    "delete_file": "import os\nos.remove('{victim}')\n",
    "delete_file_ctypes": "import ctypes\nctypes.CDLL(None).unlink(b'{victim}')\n",
    "network": "import socket\ns = socket.create_connection(('127.0.0.1', 22), timeout=2)\n",
    "network_raw": "import _socket\ns = _socket.socket()\ns.connect(('127.0.0.1', 22))\n",
    "kill_parent": "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n",
    "kill_parent_ctypes": "import ctypes, os\nctypes.CDLL(None).kill(os.getppid(), 9)\n",
    "close_stdout": "import sys, os\nsys.stdout.close()\nos.close(1)\nwhile True: pass\n",
    "subprocess": "import subprocess\nsubprocess.run(['sh', '-c', 'touch {outside}/pwned3.txt'])\n",
    "unicode_tricks": "x = 1\n\u202eif True: raise SystemExit(0)\nassert False\n",
    "exit_zero_early": "import os\nos._exit(0)\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_programs_fail_within_limits_and_leave_no_trace(name, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    code = HOSTILE[name].format(outside=outside, victim=victim)
    # a program that passes its test only if the hostile code completed without raising
    program = "import os\n" + code + ("\nraise SystemExit(1)\n" if name != "exit_zero_early" else "")
    result = run_program(program, timeout=5, cpu_seconds=5, memory_mb=512)
    assert not result.passed, (name, result)  # exit_zero_early: leaving before the end is not passing
    assert result.seconds < 15
    assert victim.read_text() == "keep me"
    assert list(outside.iterdir()) == []
    assert os.getpid() > 0  # the evaluator is alive (a killed parent would not get here)
    assert _live_sandbox_processes() == []


def _live_sandbox_processes() -> list[str]:
    """Processes of the sandbox user that are not zombies (killed children wait a moment for init to reap them)."""
    out = subprocess.run(["ps", "-u", "65534", "-o", "pid=,stat="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if line.split() and not line.split()[1].startswith("Z")]


COMPLETION_ENDS = [
    # a continuation of the prompt's function body: Chen et al.'s stop sequences from the start
    ("    return x + 1\n\n\ndef main():\n    pass\n", "    return x + 1\n\n"),
    ("    return 1\n# a test\nassert f() == 1\n", "    return 1"),
    ("    return 1\nif __name__ == '__main__':\n    f()\n", "    return 1"),
    ("    return 1\nprint(f())", "    return 1"),
    ("    return 1\nclass A:\n    pass", "    return 1"),
    ("    if x:\n        print(x)\n    # done\n    return 1\n", None),  # indented: inside the function
    # the whole function rewritten: imports, helpers and the function are kept; only top-level code that
    # would run (if, print) stops it, after its first def line
    ("from typing import List\n\n\ndef f(x: List[int]) -> int:\n    return sum(x)\n\n\nprint(f([1]))\n",
     "from typing import List\n\n\ndef f(x: List[int]) -> int:\n    return sum(x)\n\n"),
    ("def g():\n    pass\n\n# the function\ndef f(x):\n    return g()\nif True:\n    f(1)",
     "def g():\n    pass\n\n# the function\ndef f(x):\n    return g()"),
    ("def f(x):\n    return x\n\ndef g():\n    pass", None),
    # markdown: the code of the fence, up to its closing fence
    ("```python\ndef f(x):\n    return x\n```\nThis works because ...", "```python\ndef f(x):\n    return x\n"),
    ("Here it is:\n```python\n# helper\ndef f(x):\n    return x\n# note\n```",
     "Here it is:\n```python\n# helper\ndef f(x):\n    return x\n# note\n"),
    ("```python\ndef f(x):\n    return x", None),  # still writing
    ("``", None),
]


@pytest.mark.parametrize("text,cut", COMPLETION_ENDS)
def test_completion_end_at_stop_sequences_and_fences(text, cut):
    from idlora.eval.humaneval import completion_end

    end = completion_end(text)
    assert (None if end is None else text[:end]) == cut
    whole = end
    for n in range(len(text) + 1):  # prefix-stable: stopping at any point gives the same cut
        e = completion_end(text[:n])
        assert e is None or e == whole, (text, n)


def test_cut_completions_still_pass():
    from idlora.eval.generation import cut
    from idlora.eval.humaneval import completion_end

    problems = read_problems()
    for task_id in list(problems)[:4]:
        p = problems[task_id]
        assert cut(p["canonical_solution"], completion_end) == p["canonical_solution"]
        ran_on = p["canonical_solution"] + "\n\ndef test():\n    assert False\n\nif True:\n    raise SystemExit(1)\n"
        assert not run_program(build_program(p, ran_on)).passed  # uncut, the extra lines fail the program
        assert run_program(build_program(p, cut(ran_on, completion_end))).passed
        fenced = "```python\n" + p["prompt"] + p["canonical_solution"] + "```\nprint('explanation')\n"
        assert run_program(build_program(p, cut(fenced, completion_end))).passed


def test_synthetic_set_canonical_solutions_pass_and_wrong_bodies_fail_with_their_error_type():
    from idlora.eval.humaneval import error_type, run_all

    problems = read_problems("synthetic")
    assert len(problems) >= 30 and list(problems)[0] == "SyntheticEval/0"
    for task_id, p in problems.items():
        assert p["task_id"] == task_id and p["prompt"].startswith(f"def {p['entry_point']}(")
        assert "def check(candidate)" in p["test"] and p["test"].count("assert candidate(") >= 3
        wrong = ["    return None\n", "    return (\n"]
        results = run_all(p, [p["canonical_solution"]] + wrong)
        assert [r.passed for r in results] == [True, False, False], task_id
        assert [error_type(r) for r in results] == [None, "AssertionError", "SyntaxError"], task_id
    slow = run_all(problems["SyntheticEval/0"], ["    while True:\n        pass\n"], timeout=2)[0]
    assert error_type(slow) == "timeout"
    with pytest.raises(Exception, match="humaneval_set"):
        read_problems("openia")


def test_humaneval_records_each_sample_and_uses_the_configured_set():
    from idlora.eval.humaneval import HumanEval

    bench = HumanEval()
    items = bench.load_examples({"humaneval_set": "synthetic", "humaneval_problems": 3})
    assert [p["task_id"] for p in items] == ["SyntheticEval/0", "SyntheticEval/1", "SyntheticEval/2"]
    p = items[0]
    rec = bench.score(p, [p["canonical_solution"], "    return xs\n"])
    assert rec["passed"] == [True, False] and rec["correct"] == 1
    assert rec["samples"] == [{"completion": p["canonical_solution"], "passed": True, "error": None},
                              {"completion": "    return xs\n", "passed": False, "error": "AssertionError"}]
    assert bench.max_new_tokens({"max_new_tokens": 128, "humaneval_max_new_tokens": 96}) == 96
    assert bench.load_examples({"humaneval_problems": 2})[0]["task_id"] == "HumanEval/0"  # default: openai


def test_humaneval_instruction_is_the_training_items():
    from idlora.data.synthetic_code import INSTRUCTION as TRAIN_INSTRUCTION
    from idlora.eval.humaneval import INSTRUCTION

    assert TRAIN_INSTRUCTION == INSTRUCTION
