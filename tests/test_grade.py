"""`softgrade grade` end to end: the examples score what they should, a bug costs
exactly its part, a crash or a timeout only the part that caused it."""

import json
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from notebook_edits import write
from test_source_notebook import CODE_PARTS, WRITTEN_PARTS

from grader.grade import grade_notebook
from grader.notebook import replace_in_cell

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "submissions"
SOURCE = ROOT / "assignments" / "softmax_regression" / "softmax_regression.ipynb"
BUGGY_PARTS = {"ex1_overflow": "failed", "ex4_decision": "failed",
               "ex5_large_vocab": "over_budget", "predict": "failed"}


@pytest.fixture(scope="module")
def reports():
    return {name: grade_notebook(EXAMPLES / f"{name}.ipynb")
            for name in ("reference", "untouched", "buggy")}


def test_the_reference_scores_every_auto_graded_point(reports):
    report = reports["reference"]
    failures = [(t.name, t.outcome, t.message) for t in report.tests
                if t.outcome not in ("passed", "manual")]
    assert failures == []
    assert report.score == pytest.approx(80) and report.max_score == pytest.approx(80)
    assert report.manual_points == pytest.approx(20)


def test_the_untouched_release_is_not_attempted_everywhere(reports):
    report = reports["untouched"]
    assert report.score == 0
    outcomes = report.outcome_by_part()
    assert {p: outcomes[p] for p in CODE_PARTS} == dict.fromkeys(CODE_PARTS, "not_attempted")
    assert {p: outcomes[p] for p in WRITTEN_PARTS} == dict.fromkeys(WRITTEN_PARTS, "manual")


def test_the_buggy_example_loses_exactly_the_parts_it_breaks(reports):
    report = reports["buggy"]
    outcomes = report.outcome_by_part()
    scores = report.part_scores()
    for part in CODE_PARTS:
        if part in BUGGY_PARTS:
            assert outcomes[part] == BUGGY_PARTS[part], (part, outcomes[part])
            assert scores[part][0] < scores[part][1]
        else:
            assert outcomes[part] == "passed" and scores[part][0] == pytest.approx(scores[part][1])


def test_failures_name_the_mistake(reports):
    messages = " ".join(t.message for t in reports["buggy"].tests if t.outcome != "passed")
    assert "<=" in messages or "threshold" in messages
    assert "over budget" in messages


def test_committed_examples_are_what_the_generator_makes():
    sys.path.insert(0, str(ROOT / "examples"))
    from make_submissions import examples
    for name, notebook in examples().items():
        assert (EXAMPLES / name).read_text() == nbformat.writes(notebook) + "\n", \
            f"examples/submissions/{name} is stale: run examples/make_submissions.py"


def test_a_crash_and_a_timeout_cost_only_their_parts(tmp_path):
    notebook = nbformat.read(SOURCE, as_version=4)
    replace_in_cell(notebook, "ex5_large_vocab_solution",
                    "    rows = torch.arange(H.shape[0], device=H.device)\n    return log_softmax(H @ W + b)",
                    "    import os; os._exit(3)\n    return log_softmax(H @ W + b)")
    replace_in_cell(notebook, "ex4_decision_solution", "    return probs @ cost.T",
                    "    while True:\n        pass")
    report = grade_notebook(write(notebook, tmp_path / "hostile.ipynb"))
    outcomes = report.outcome_by_part()
    assert outcomes["ex5_large_vocab"] == "crashed"
    assert outcomes["ex4_decision"] == "timeout"
    others = {p: o for p, o in outcomes.items() if p not in ("ex5_large_vocab", "ex4_decision")}
    assert set(others.values()) <= {"passed", "manual"}, others


def test_a_restructured_notebook_is_graded_by_its_functions(tmp_path):
    notebook = nbformat.read(SOURCE, as_version=4)
    for cell in notebook.cells:
        cell.metadata = {}  # what Colab or a copy-paste leaves
    report = grade_notebook(write(notebook, tmp_path / "colab.ipynb"))
    assert any("differ from the release" in w for w in report.warnings)
    assert report.score == pytest.approx(report.max_score) == pytest.approx(80)


def test_edited_locked_cells_are_restored(tmp_path):
    notebook = nbformat.read(SOURCE, as_version=4)
    replace_in_cell(notebook, "given_imports", "import torch\n",
                    "import torch\ntorch.exp = lambda x: x\n")
    report = grade_notebook(write(notebook, tmp_path / "edited.ipynb"))
    assert any("restored" in w and "given_imports" in w for w in report.warnings)
    assert report.score == pytest.approx(80)


def softgrade(*args, cwd):
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600)


def test_command_writes_every_report_and_honours_min_score(tmp_path):
    proc = softgrade("grade", str(EXAMPLES / "buggy.ipynb"), "--results", "r.json", "--junit",
                     "j.xml", "--feedback", "feedback", "--min-score", "79", cwd=tmp_path)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("softgrade grade: score")
    results = json.loads((tmp_path / "r.json").read_text())
    assert results["score"] < 79 and len(results["tests"]) > 100
    assert (tmp_path / "j.xml").is_file()
    assert (tmp_path / "feedback" / "feedback.html").is_file()
    assert "ex4_decision" in proc.stdout


def test_command_on_an_unreadable_file_is_one_line(tmp_path):
    (tmp_path / "bad.ipynb").write_text("{nope")
    proc = softgrade("grade", "bad.ipynb", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "invalid JSON" in proc.stderr
