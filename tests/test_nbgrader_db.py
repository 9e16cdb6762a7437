"""`softgrade grade --nbgrader-db`: scores land in an nbgrader gradebook, read back here
through nbgrader's own API, as formgrader reads them."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from nbgrader.api import Gradebook

from grader.grade import DEFAULT_SOURCE
from grader.nbgrader_db import GradebookError, gradebook_target, record_grades
from grader.notebook import find_parts, read_notebook
from grader.results import GradeReport, TestResult, written_answer

ROOT = Path(__file__).resolve().parents[1]
BUGGY = ROOT / "examples" / "submissions" / "buggy.ipynb"
ASSIGNMENT = NOTEBOOK = "softmax_regression"  # the source notebook's folder and file name
PARTS = find_parts(read_notebook(DEFAULT_SOURCE))


@pytest.fixture(autouse=True)
def alembic_on_path(monkeypatch):
    """nbgrader's Gradebook runs the `alembic` command to make a new gradebook, which these
    tests do directly too (monkeypatch restores PATH, whoever changed it)."""
    monkeypatch.setenv("PATH", os.pathsep.join([str(Path(sys.executable).parent),
                                                os.environ["PATH"]]))


def softgrade(*args, cwd):
    # PATH without the virtual environment's bin/, as when softgrade is run by its full
    # path: nbgrader needs its `alembic` command for a new gradebook all the same.
    return subprocess.run([sys.executable, "-m", "grader.cli", *args], capture_output=True,
                          text=True, cwd=cwd, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                               "HOME": str(Path.home())})


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    """A new gradebook after grading buggy.ipynb for alice, and the Gradescope results."""
    directory = tmp_path_factory.mktemp("course")
    proc = softgrade("grade", str(BUGGY), "--nbgrader-db", "gradebook.db", "--student", "alice",
                     "--results", "results.json", cwd=directory)
    assert proc.returncode == 0, proc.stderr
    assert "Warning" not in proc.stderr  # nbgrader's SQLAlchemy warnings stay out
    return directory / "gradebook.db", json.loads((directory / "results.json").read_text())


def part_scores(results):
    scores = {}
    for test in results["tests"]:
        scores[test["tags"][0]] = scores.get(test["tags"][0], 0) + test["score"]
    return scores


def test_every_auto_graded_part_has_softgrades_score(graded):
    db, results = graded
    scores = part_scores(results)
    with Gradebook(f"sqlite:///{db}") as gradebook:
        for part in PARTS:
            if part.written:
                continue
            grade = gradebook.find_grade(part.id, NOTEBOOK, ASSIGNMENT, "alice")
            assert grade.auto_score == pytest.approx(scores[part.id]), part.id
            assert grade.max_score == part.points and not grade.needs_manual_grade
        assert gradebook.find_submission(ASSIGNMENT, "alice").score == pytest.approx(results["score"])


def test_written_answers_are_left_for_manual_grading(graded):
    db, _ = graded
    with Gradebook(f"sqlite:///{db}") as gradebook:
        for part in PARTS:
            if part.written:
                grade = gradebook.find_grade(part.id, NOTEBOOK, ASSIGNMENT, "alice")
                assert grade.auto_score is None and grade.needs_manual_grade
                assert grade.cell_type == "markdown" and grade.max_score == part.points


def report_with(score_of):
    """A GradeReport giving each auto-graded part score_of(its points), in one test."""
    return GradeReport(submission="again.ipynb", tests=[
        written_answer(part.id, part.points) if part.written
        else TestResult(f"{part.id}: all", part.id, score_of(part.points), part.points, "passed")
        for part in PARTS])


def test_grading_again_updates_the_same_grades(graded, tmp_path):
    db = tmp_path / "gradebook.db"
    shutil.copy(graded[0], db)
    target = gradebook_target(db, "alice", None, DEFAULT_SOURCE)
    with Gradebook(target.url) as gradebook:
        gradebook.find_grade("softmax", NOTEBOOK, ASSIGNMENT, "alice").manual_score = 1.0
        gradebook.db.commit()
        grades_before = len(gradebook.find_submission(ASSIGNMENT, "alice").notebooks[0].grades)
    record_grades(report_with(lambda points: points / 2), target, read_notebook(DEFAULT_SOURCE))
    with Gradebook(target.url) as gradebook:
        submission = gradebook.find_submission(ASSIGNMENT, "alice")
        assert len(gradebook.assignment_submissions(ASSIGNMENT)) == 1
        assert len(submission.notebooks[0].grades) == grades_before
        net = gradebook.find_grade("net", NOTEBOOK, ASSIGNMENT, "alice")
        assert net.auto_score == pytest.approx(1.5) and not net.needs_manual_grade
        # A score a person gave stays, and asks for another look (as nbgrader does).
        softmax = gradebook.find_grade("softmax", NOTEBOOK, ASSIGNMENT, "alice")
        assert softmax.auto_score == pytest.approx(2.5)
        assert softmax.manual_score == 1.0 and softmax.needs_manual_grade


def test_a_gradebook_made_from_another_notebook_is_one_clear_error(tmp_path):
    target = gradebook_target(tmp_path / "gradebook.db", "bob", None, DEFAULT_SOURCE)
    with Gradebook(target.url) as gradebook:
        gradebook.add_assignment(ASSIGNMENT)
        gradebook.add_notebook(NOTEBOOK, ASSIGNMENT)
        gradebook.add_grade_cell("question_1", NOTEBOOK, ASSIGNMENT, max_score=10,
                                 cell_type="code")
    with pytest.raises(GradebookError, match="no grade cell for softmax, net, .*another source"):
        record_grades(report_with(float), target, read_notebook(DEFAULT_SOURCE))
    with Gradebook(target.url) as gradebook:
        assert gradebook.students == []  # nothing half-written


def test_the_gradebook_options_are_checked_before_grading(tmp_path):
    proc = softgrade("grade", str(BUGGY), "--nbgrader-db", "gradebook.db", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.count("\n") == 1 and "--student" in proc.stderr
    proc = softgrade("grade", str(BUGGY), "--nbgrader-db", "missing/gradebook.db", "--student",
                     "alice", cwd=tmp_path)
    assert proc.returncode == 2 and "no such directory" in proc.stderr and proc.stdout == ""
