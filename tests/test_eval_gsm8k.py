import pytest

from idlora.eval.gsm8k import extract_answer, is_correct, reference_answer

CASES = [
    ("The answer is 42.", "42"),
    ("She has 3 + 4 = 7 apples.\n#### 7", "7"),
    ("Total: $1,234.50", "1234.5"),
    ("It costs $5.00.", "5"),
    ("5.0", "5"),
    ("The final answer is: 18. Checking: 9 + 9 = 18, and 20 is wrong.", "18"),
    ("The final answer is 12 apples, not 13.", "12"),
    ("the final answer is: -3", "-3"),
    ("First 10, then 20, finally 30", "30"),
    ("Temperature drops to -15 degrees", "-15"),
    ("No numbers here at all.", None),
    ("", None),
    ("1,000,000 people", "1000000"),
    ("So x = .5", "0.5"),
    ("Answer: 007", "7"),
    ("We get 3.14159", "3.14159"),
    ("6 * 7 = 42.", "42"),
    ("The final answer is: $2,400", "2400"),
    ("between 3 and 4, so 3.5.", "3.5"),
    ("Step 1: 12\nStep 2: 24\n", "24"),
    ("0", "0"),
    ("-0.0", "0"),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


def test_numeric_comparison_with_reference():
    ref = "Natalia sold 48/2 = 24 clips in May.\nNatalia sold 48+24 = 72 clips.\n#### 72"
    assert reference_answer(ref) == "72"
    assert is_correct("So she sold 72.0 clips.", ref)
    assert is_correct("The final answer is: 72", ref)
    assert not is_correct("The final answer is: 71", ref)
    assert not is_correct("I don't know", ref)
    assert is_correct("#### 1,000", "#### 1000")


def _cut_is_prefix_stable(end, text):
    """For every prefix at which ``end`` says the text has ended, the cut is the cut of the whole text."""
    whole = end(text)
    for n in range(len(text) + 1):
        e = end(text[:n])
        if e is not None:
            assert whole == e, (text, n)


ANSWER_ENDS = [
    ("Step 1: 9 + 9 = 18.\nThe final answer is: 18\nThe final answer is: 20\n",
     "Step 1: 9 + 9 = 18.\nThe final answer is: 18\n"),
    ("The final answer is: 18. Checking: 9 + 9 = 18, and 20 is wrong.\nMore",
     "The final answer is: 18. Checking: 9 + 9 = 18, and 20 is wrong.\n"),
    ("the final answer is $1,200\n\nExtra", "the final answer is $1,200\n"),
    ("The final answer is:\n42\nbye", "The final answer is:\n42\n"),
    ("The final answer is: 18", None),           # no line end yet: may still run on
    ("The final answer is: unclear\n7\n", None),  # no number right after the phrase
    ("So 5 + 7 = 12\n", None),
]


@pytest.mark.parametrize("text,cut", ANSWER_ENDS)
def test_a_completion_ends_after_its_first_final_answer_line(text, cut):
    from idlora.eval.gsm8k import answer_end

    end = answer_end(text)
    assert (None if end is None else text[:end]) == cut
    _cut_is_prefix_stable(answer_end, text)


def test_the_score_of_a_cut_completion_is_its_first_final_answer():
    from idlora.eval.generation import cut
    from idlora.eval.gsm8k import GSM8K

    bench, example = GSM8K(), {"id": 0, "answer": "#### 18"}
    ran_on = "9 + 9 = 18\nThe final answer is: 18\nWait, the final answer is: 20\n"
    stopped = "9 + 9 = 18\nThe final answer is: 18\n"
    assert not is_correct(ran_on, example["answer"])  # uncut, the later answer would count
    for text in (ran_on, stopped):
        assert bench.score(example, [cut(text, bench.stop)])["score"] == 1.0


def test_each_scored_example_keeps_its_answer_and_the_reference_for_audit():
    from idlora.eval.gsm8k import GSM8K

    row = GSM8K().score({"id": 3, "answer": "2 * 6 = 12\n#### 12"}, ["2 * 6 = 13\nThe final answer is: 13\n"])
    assert row == {"id": 3, "score": 0.0, "prediction": "13", "target": "12",
                   "completion": "2 * 6 = 13\nThe final answer is: 13\n"}
