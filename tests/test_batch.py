"""`softgrade grade-batch`: one row per submission, error rows, and a cache that makes
reruns grade only what changed."""

import csv
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from test_source_notebook import CODE_PARTS

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "submissions"


def batch(folder, out):
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "grade-batch", str(folder),
                           "--workers", "2", "--out", str(out)], capture_output=True, text=True,
                          cwd=folder.parent, timeout=900)
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="") as file:
        return proc, {Path(row["submission"]).name: row for row in csv.DictReader(file)}


@pytest.fixture(scope="module")
def graded(tmp_path_factory):
    folder = tmp_path_factory.mktemp("batch") / "class"
    folder.mkdir()
    shutil.copy(EXAMPLES / "reference.ipynb", folder / "alice.ipynb")
    shutil.copy(EXAMPLES / "untouched.ipynb", folder / "bob.ipynb")
    (folder / "carol.ipynb").write_text("{not a notebook")
    out = folder.parent / "grades.csv"
    proc, rows = batch(folder, out)
    return folder, out, proc, rows


def test_one_row_per_submission_with_a_column_per_part(graded):
    _, _, proc, rows = graded
    assert sorted(rows) == ["alice.ipynb", "bob.ipynb", "carol.ipynb"]
    assert float(rows["alice.ipynb"]["score"]) == pytest.approx(80)
    assert float(rows["bob.ipynb"]["score"]) == 0
    assert all(part in rows["alice.ipynb"] for part in CODE_PARTS)
    assert float(rows["alice.ipynb"]["train_epoch"]) == pytest.approx(10)
    assert "invalid JSON" in rows["carol.ipynb"]["error"] and rows["carol.ipynb"]["score"] == ""
    assert "graded 3 submissions (3 now, 0 from the cache), 1 errors" in proc.stderr


def test_a_rerun_grades_only_what_changed(graded):
    folder, out, _, rows = graded
    proc, again = batch(folder, out)
    assert "(0 now, 3 from the cache)" in proc.stderr and again == rows
    notebook = nbformat.read(folder / "bob.ipynb", as_version=4)
    notebook.cells.insert(0, nbformat.v4.new_markdown_cell("resubmitted"))
    nbformat.write(notebook, folder / "bob.ipynb")
    proc, after = batch(folder, out)
    assert "(1 now, 2 from the cache)" in proc.stderr
    assert after["alice.ipynb"] == rows["alice.ipynb"]


def test_no_sandbox_is_left_behind(graded):
    leftovers = subprocess.run(["pgrep", "-f", "sandbox_child.py"], capture_output=True, text=True)
    assert leftovers.stdout.strip() == ""
