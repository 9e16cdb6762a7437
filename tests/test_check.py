"""`softgrade check`: the student's self-check, as a student runs it."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from notebook_edits import fill_in, stub_out, write
from test_source_notebook import CODE_PARTS, SOURCE, WRITTEN_PARTS

from grader.notebook import cell_with_grade_id, replace_in_cell

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "release" / "softmax_regression" / "softmax_regression.ipynb"


def check(path, *args):
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "check", str(path), *args],
                          capture_output=True, text=True, timeout=600, cwd=Path(path).parent)
    rows = {}
    for line in proc.stdout.splitlines()[1:]:
        fields = line.split(None, 2)
        if len(fields) >= 3 and fields[0] in CODE_PARTS + WRITTEN_PARTS:
            status_and_message = fields[2]
            status = ("not attempted" if status_and_message.startswith("not attempted")
                      else status_and_message.split()[0])
            rows[fields[0]] = (status, status_and_message[len(status):].strip())
    return proc, rows


def test_complete_notebook_passes():
    proc, rows = check(SOURCE)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert {part: rows[part][0] for part in CODE_PARTS} == dict.fromkeys(CODE_PARTS, "passed")
    assert {part: rows[part][0] for part in WRITTEN_PARTS} == dict.fromkeys(WRITTEN_PARTS,
                                                                           "answered")
    assert proc.stdout.splitlines()[-1].startswith("public tests: 15 passed (of 15 parts)")


def test_untouched_release_is_not_attempted_everywhere():
    proc, rows = check(RELEASE)
    assert proc.returncode == 1
    assert {part: rows[part][0] for part in CODE_PARTS} == dict.fromkeys(CODE_PARTS,
                                                                        "not attempted")
    assert {part: rows[part][0] for part in WRITTEN_PARTS} == dict.fromkeys(WRITTEN_PARTS,
                                                                           "unanswered")
    assert proc.stdout.splitlines()[-1].startswith("public tests: 15 not attempted (of 15 parts)")
    assert "Traceback" not in proc.stdout + proc.stderr


BISECTION = """\
    lo, hi = 0.0, torch.finfo(dtype).max
    while True:
        mid = torch.tensor((lo + hi) / 2, dtype=dtype).item()
        if mid in (lo, hi):
            return hi
        if torch.isinf(torch.exp(torch.tensor(mid, dtype=dtype))):
            hi = mid
        else:
            lo = mid"""
RETURNS_BEFORE_THE_STUB_LINE = """\
    X_exp = torch.exp(X)
    return X_exp / X_exp.sum(1, keepdim=True)
    raise NotImplementedError()"""


@pytest.fixture(scope="module")
def half_finished(tmp_path_factory):
    """The release with softmax written above a leftover stub line, and one of the two
    functions of exercise 1 written."""
    notebook = nbformat.read(RELEASE, as_version=4)
    fill_in(notebook, "softmax_solution", "softmax", RETURNS_BEFORE_THE_STUB_LINE)
    fill_in(notebook, "ex1_overflow_solution", "overflow_threshold", BISECTION)
    return check(write(notebook, tmp_path_factory.mktemp("half") / "student.ipynb"))


def test_a_function_that_returns_before_a_leftover_stub_line_is_attempted(half_finished):
    proc, rows = half_finished
    assert rows["softmax"] == ("passed", "")


def test_one_function_written_beside_a_stub_is_checked_and_the_stub_named(half_finished):
    proc, rows = half_finished
    status, message = rows["ex1_overflow"]
    assert status == "incomplete"
    assert "not attempted: naive_softmax_breaks (2 points)" in message
    assert "passed: overflow_threshold" in message
    untouched = [part for part in CODE_PARTS if part not in ("softmax", "ex1_overflow")]
    assert {part: rows[part][0] for part in untouched} == dict.fromkeys(untouched,
                                                                       "not attempted")
    assert proc.returncode == 1
    assert proc.stdout.splitlines()[-1].startswith(
        "public tests: 1 passed, 1 incomplete, 13 not attempted (of 15 parts)")


def test_each_function_has_its_own_public_tests(tmp_path):
    """The reference with one function of every part of several left a stub: the other
    functions' public tests still run and pass, and a written function that calls the
    stub says so."""
    notebook = nbformat.read(SOURCE, as_version=4)
    stubs = {"predict": "predict_ch3", "ex2_log_domain": "naive_cross_entropy_breaks",
             "ex3_stable_loss": "stable_softmax", "ex4_decision": "expected_cost",
             "ex5_large_vocab": "full_log_prob"}
    for part, function in stubs.items():
        stub_out(notebook, f"{part}_solution", function)
    proc, rows = check(write(notebook, tmp_path / "student.ipynb"))
    assert proc.returncode == 1
    for part, function in stubs.items():
        status, message = rows[part]
        assert status == "incomplete", (part, rows[part])
        assert message.startswith(f"not attempted: {function} ("), (part, message)
    assert "passed: get_fashion_mnist_labels" in rows["predict"][1]
    assert "passed: two_level_log_prob" in rows["ex5_large_vocab"][1]
    assert "bayes_decision calls expected_cost, which is still a stub" in rows["ex4_decision"][1]
    assert "passed: decide_with_reject" in rows["ex4_decision"][1]
    others = [part for part in CODE_PARTS if part not in stubs]
    assert {part: rows[part][0] for part in others} == dict.fromkeys(others, "passed")


def test_failures_errors_and_timeouts_each_cost_their_own_part(tmp_path):
    notebook = nbformat.read(SOURCE, as_version=4)
    replace_in_cell(notebook, "softmax_solution", "X_exp.sum(1, keepdim=True)",
                    "X_exp.sum(0, keepdim=True)")  # the classic wrong axis
    replace_in_cell(notebook, "ex4_decision_solution", "    return probs @ cost.T",
                    "    while True:\n        pass")
    cell = cell_with_grade_id(notebook, "ex5_large_vocab_solution")
    cell.source = cell.source.replace("def full_log_prob(H, y, W, b):",
                                      "def full_log_prob(H, y, W, b)")  # a syntax error
    # 20 s: under load the first cell (torch, matplotlib) can take 10
    proc, rows = check(write(notebook, tmp_path / "student.ipynb"), "--timeout", "20")
    assert proc.returncode == 1
    assert rows["softmax"][0] == "failed" and rows["softmax"][1]
    assert rows["ex4_decision"][0] == "timeout"
    assert rows["ex5_large_vocab"] == ("error", rows["ex5_large_vocab"][1])
    assert "SyntaxError" in rows["ex5_large_vocab"][1]
    for part in ("cross_entropy", "accumulator", "sgd", "ex1_overflow", "ex2_log_domain",
                 "ex3_stable_loss"):
        assert rows[part][0] == "passed", (part, rows[part])


def test_demo_cells_are_skipped(tmp_path):
    notebook = nbformat.read(SOURCE, as_version=4)
    demo = next(c for c in notebook.cells if "softgrade-demo" in c.metadata.get("tags", []))
    demo.source = "raise SystemExit('a demo cell ran')\n" + demo.source
    proc, rows = check(write(notebook, tmp_path / "student.ipynb"))
    assert proc.returncode == 0 and "a demo cell ran" not in proc.stdout


@pytest.mark.parametrize("content, complaint", [
    (b"{not json", "invalid JSON"),
    (b"\x89PNG\r\n\x1a\n\x00\x00", "not UTF-8"),
    (json.dumps({"cells": []}).encode(), "no 'nbformat' field"),
])
def test_unreadable_files_are_one_line_errors(tmp_path, content, complaint):
    path = tmp_path / "bad.ipynb"
    path.write_bytes(content)
    proc, _ = check(path)
    assert proc.returncode == 2
    assert complaint in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_file_and_missing_metadata(tmp_path):
    proc, _ = check(tmp_path / "nowhere.ipynb")
    assert proc.returncode == 2 and "no such file" in proc.stderr
    bare = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("x = 1")])
    proc, _ = check(write(bare, tmp_path / "bare.ipynb"))
    assert proc.returncode == 1 and "no graded cells found" in proc.stderr
