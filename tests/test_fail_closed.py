"""Fail closed: a submission's code runs only where its isolation is proven here.
Without bubblewrap and without the unprivileged fallback `grade` refuses (exit 2, one
line, the fix); --unsafe-no-sandbox grades and every report says "not isolated"; a
notebook that steals the reference through the grader's package scores only where
nothing isolates it; and the fallback, where only it works, grades as bubblewrap does."""

import csv
import json
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from machines import (
    WITHOUT_LANDLOCK,
    fallback_machine,
    fallback_machine_available,
    readable_data_copy,
    without_bubblewrap,
)

from grader.isolation import NotIsolated, choose_isolation
from grader.notebook import replace_in_cell

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "submissions"
RELEASE = ROOT / "release" / "softmax_regression" / "softmax_regression.ipynb"
STUB = "    # YOUR CODE HERE\n    raise NotImplementedError()"
CLI = [sys.executable, "-m", "grader.cli"]

# Finds the answers through the grader's package: the source notebook beside it, whose
# solution cells it saves as a module of its own and imports, and the reference module;
# nothing that the integrity check refuses (no exec, no import by name).
STEAL = '''

def _save_the_answers():
    import json, pathlib
    try:
        import grader
        source = (pathlib.Path(grader.__file__).parents[1] / "assignments"
                  / "softmax_regression" / "softmax_regression.ipynb")
        cells = ["".join(cell["source"]) for cell in json.loads(source.read_text())["cells"]
                 if cell["cell_type"] == "code" and cell.get("metadata", {}).get(
                     "nbgrader", {}).get("grade_id", "").endswith("_solution")]
        pathlib.Path("stolen_answers.py").write_text("import torch\\n" + "\\n\\n".join(cells))
    except Exception:
        pass


_save_the_answers()
try:
    from solutions.softmax_regression import *
    from solutions.exercises import *
except Exception:
    pass
try:
    from stolen_answers import *
except Exception:
    pass
'''


def release_with(stub_body, tail=""):
    """The release with every stub's body replaced by `stub_body` and `tail` run at the end
    of the last solution cell."""
    notebook = nbformat.read(RELEASE, as_version=4)
    ids = [cell.metadata["nbgrader"]["grade_id"] for cell in notebook.cells
           if cell.metadata.get("nbgrader", {}).get("grade_id", "").endswith("_solution")]
    for grade_id in ids:
        cell = next(c for c in notebook.cells if c.metadata["nbgrader"].get("grade_id") == grade_id)
        indent = next(line[:len(line) - len(line.lstrip())] for line in cell.source.splitlines()
                      if "raise NotImplementedError()" in line)
        replace_in_cell(notebook, grade_id, f"{indent}# YOUR CODE HERE\n{indent}raise "
                        "NotImplementedError()", f"{indent}{stub_body}")
    last = notebook.cells.index(next(c for c in notebook.cells
                                     if c.metadata.get("nbgrader", {}).get("grade_id") == ids[-1]))
    notebook.cells[last].source += tail
    return notebook


def softgrade(*args, env=None, command_prefix=(), timeout=900):
    return subprocess.run([*command_prefix, *CLI, *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)


def nowhere_isolated(*args, **kwargs):
    """softgrade on a machine with neither bubblewrap nor Landlock."""
    return softgrade(*args, env=without_bubblewrap(), command_prefix=WITHOUT_LANDLOCK, **kwargs)


def score(results_path):
    return json.loads(Path(results_path).read_text())["score"]


@pytest.fixture(scope="module")
def notebooks(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fail-closed")
    paths = {"base": folder / "base.ipynb", "stealer": folder / "stealer.ipynb"}
    nbformat.write(release_with("pass"), paths["base"])
    nbformat.write(release_with("pass", STEAL), paths["stealer"])
    return paths


def test_without_any_isolation_grade_refuses_in_one_line(tmp_path):
    results = tmp_path / "results.json"
    proc = nowhere_isolated("grade", str(EXAMPLES / "reference.ipynb"), "--results", str(results))
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("softgrade grade: error: cannot isolate submissions")
    assert "bubblewrap (bwrap) is not on PATH (fix: apt-get install bubblewrap)" in lines[0]
    assert "unprivileged fallback: this kernel offers no Landlock" in lines[0]
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not results.exists()  # no code of the submission ran, nothing was graded


def test_no_namespaces_is_no_way_around_failing_closed():
    proc = softgrade("grade", "--no-namespaces", str(EXAMPLES / "reference.ipynb"),
                     command_prefix=WITHOUT_LANDLOCK)
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert "--no-namespaces leaves bubblewrap out" in proc.stderr


def test_grade_batch_refuses_before_grading_anything(tmp_path):
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(EXAMPLES / "reference.ipynb", folder / "alice.ipynb")
    proc = nowhere_isolated("grade-batch", str(folder), "--out", str(tmp_path / "grades.csv"))
    assert proc.returncode == 2 and len(proc.stderr.splitlines()) == 1
    assert proc.stderr.startswith("softgrade grade-batch: error: cannot isolate submissions")
    assert not (tmp_path / "grades.csv").exists()


def test_unsafe_grading_marks_every_report_not_isolated(tmp_path):
    out = {"results": tmp_path / "results.json", "classroom": tmp_path / "classroom.json",
           "junit": tmp_path / "junit.xml", "feedback": tmp_path / "feedback",
           "nbgrader-db": tmp_path / "gradebook.db"}
    proc = nowhere_isolated("grade", str(EXAMPLES / "untouched.ipynb"), "--unsafe-no-sandbox",
                            "--student", "mallory",
                            *[arg for name, path in out.items() for arg in (f"--{name}", str(path))])
    assert proc.returncode == 0, proc.stderr
    results = json.loads(out["results"].read_text())
    assert results["extra_data"] == {"isolation": "not isolated"}
    assert "not isolated" in results["output"]
    assert "not isolated" in json.loads(out["classroom"].read_text())["message"]
    assert "not isolated" in out["junit"].read_text()
    for name in ("feedback.md", "feedback.html"):
        assert "not isolated" in (out["feedback"] / name).read_text()
    assert "warning: not isolated" in proc.stdout
    with sqlite3.connect(out["nbgrader-db"]) as db:
        assert db.execute("select flagged from submitted_notebook").fetchall() == [(1,)]
        comments = {row[0] for row in db.execute("select auto_comment from comment")}
    assert comments and all(comment.startswith("not isolated") for comment in comments)


def test_isolated_reports_say_how(tmp_path):
    proc = softgrade("grade", str(EXAMPLES / "untouched.ipynb"), "--results",
                     str(tmp_path / "results.json"))
    assert proc.returncode == 0, proc.stderr
    results = json.loads((tmp_path / "results.json").read_text())
    assert results["extra_data"]["isolation"] in ("bubblewrap namespaces",
                                                  "unprivileged uid with Landlock and seccomp")
    assert "not isolated" not in results["output"] + proc.stdout


def test_stealing_the_reference_through_the_grader_never_scores(notebooks, tmp_path):
    """The same notebook without the theft is the control: isolated, the thief gets what
    it does (nothing); without isolation the theft works, so the test can fail."""
    graded = {}
    for name in ("base", "stealer"):
        graded[name] = tmp_path / f"{name}.json"
        proc = softgrade("grade", str(notebooks[name]), "--results", str(graded[name]))
        assert proc.returncode == 0, proc.stderr
    assert score(graded["stealer"]) <= score(graded["base"])
    unsafe = tmp_path / "unsafe.json"
    proc = nowhere_isolated("grade", str(notebooks["stealer"]), "--unsafe-no-sandbox",
                            "--results", str(unsafe))
    assert proc.returncode == 0, proc.stderr
    assert score(unsafe) > score(graded["base"]) + 40


def test_choose_isolation_refuses_or_proves_a_mode():
    try:
        isolation = choose_isolation(use_namespaces=False)
    except NotIsolated as refusal:
        assert "--no-namespaces leaves bubblewrap out" in str(refusal)
    else:
        assert isolation.mode == "unprivileged" and isolation.isolated


# ---------------------------------------------------------------- where only the fallback works


@pytest.fixture(scope="module")
def fallback(tmp_path_factory):
    """Runs softgrade as on a machine where bubblewrap cannot work but the fallback can."""
    reason = fallback_machine_available()
    if reason:
        pytest.skip(f"the unprivileged fallback cannot be simulated: {reason}")
    data = readable_data_copy()
    yield lambda *args: subprocess.run(fallback_machine([*CLI, *args], data), cwd=ROOT,
                                       capture_output=True, text=True, timeout=900)
    shutil.rmtree(data, ignore_errors=True)


HOSTILE = '''
import os, signal, socket
for attempt in (lambda: os.kill(os.getppid(), signal.SIGKILL),
                lambda: socket.create_connection(("1.1.1.1", 53), timeout=2),
                lambda: open("/tmp/softgrade-fallback-was-here", "w"),
                lambda: open(os.path.expanduser("~root/.bashrc")).read()):
    try:
        attempt()
    except Exception:
        pass
'''


def test_the_fallback_passes_every_check_of_doctor(fallback):
    proc = fallback("doctor")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    assert lines[0].startswith("--    bubblewrap namespaces: bubblewrap (bwrap) is not on PATH")
    assert any(line.startswith("ok    unprivileged fallback: Landlock ABI") for line in lines)
    assert "FAIL" not in proc.stdout
    assert "isolated by unprivileged uid with Landlock and seccomp" in lines[-1]


def test_the_fallback_grades_right_and_holds_the_thief_and_the_vandal(fallback, notebooks,
                                                                        tmp_path):
    hostile = release_with("pass", HOSTILE)
    nbformat.write(hostile, tmp_path / "hostile.ipynb")
    folder = tmp_path / "class"
    folder.mkdir()
    shutil.copy(EXAMPLES / "reference.ipynb", folder / "alice.ipynb")
    for name in ("base", "stealer"):
        shutil.copy(notebooks[name], folder / f"{name}.ipynb")
    shutil.copy(tmp_path / "hostile.ipynb", folder / "hostile.ipynb")
    proc = fallback("grade-batch", str(folder), "--workers", "2", "--out",
                    str(tmp_path / "grades.csv"))
    assert proc.returncode == 0, proc.stderr
    with open(tmp_path / "grades.csv", newline="") as file:
        rows = {Path(row["submission"]).stem: row for row in csv.DictReader(file)}
    assert {row["isolation"] for row in rows.values()} == {
        "unprivileged uid with Landlock and seccomp"}
    assert float(rows["alice"]["score"]) == pytest.approx(80)
    assert float(rows["stealer"]["score"]) <= float(rows["base"]["score"])
    assert float(rows["hostile"]["score"]) <= float(rows["base"]["score"])
    assert not rows["hostile"]["error"]  # the grader (the cell's parent) lived on
    assert not Path("/tmp/softgrade-fallback-was-here").exists()
