"""`softgrade check`: the student's self-check, as a student runs it."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader.notebook import cell_with_grade_id, replace_in_cell
from notebook_edits import write
from test_source_notebook import CODE_PARTS, SOURCE, WRITTEN_PARTS

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
    assert "Traceback" not in proc.stdout + proc.stderr


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
