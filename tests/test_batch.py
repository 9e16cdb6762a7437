"""`softgrade grade-batch`: one row per submission, error rows, a cache that makes
reruns grade only what changed, and a dead worker that costs only its own row."""

import csv
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import nbformat
import psutil
import pytest
from test_source_notebook import CODE_PARTS

from grader.notebook import replace_in_cell

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "submissions"
SOURCE = ROOT / "assignments" / "softmax_regression" / "softmax_regression.ipynb"


def batch(folder, out, *options, while_running=None):
    process = subprocess.Popen([sys.executable, "-m", "grader.cli", "grade-batch", str(folder),
                                "--workers", "2", "--out", str(out), *options],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=folder.parent)
    if while_running:
        threading.Thread(target=while_running, args=(process.pid,), daemon=True).start()
    stdout, stderr = process.communicate(timeout=900)
    proc = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
    assert proc.returncode == 0, proc.stderr
    with open(out, newline="") as file:
        return proc, {Path(row["submission"]).name: row for row in csv.DictReader(file)}


def a_class(folder, **extra):
    """alice (the reference), bob (the untouched release) and `extra` {name: notebook}."""
    folder.mkdir()
    shutil.copy(EXAMPLES / "reference.ipynb", folder / "alice.ipynb")
    shutil.copy(EXAMPLES / "untouched.ipynb", folder / "bob.ipynb")
    for name, notebook in extra.items():
        nbformat.write(notebook, folder / f"{name}.ipynb")
    return folder


def reference_with(code):
    """The reference notebook with `code` run first in the softmax cell."""
    notebook = nbformat.read(SOURCE, as_version=4)
    replace_in_cell(notebook, "softmax_solution", "def softmax(X):", f"{code}\n\ndef softmax(X):")
    return notebook


def assert_innocents_graded_right(rows):
    assert float(rows["alice.ipynb"]["score"]) == pytest.approx(80)
    assert float(rows["bob.ipynb"]["score"]) == 0 and not rows["bob.ipynb"]["error"]


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


def sandboxes_of_this_tree():
    """Sandboxed processes started with this checkout's interpreter (other checkouts on
    the machine may be grading meanwhile)."""
    return [p.pid for p in psutil.process_iter(["cmdline"])
            if any(part.endswith("sandbox_child.py") for part in p.info["cmdline"] or [])
            and sys.executable in (p.info["cmdline"] or [])]


def test_no_sandbox_is_left_behind(graded):
    assert sandboxes_of_this_tree() == []


def test_the_rows_say_how_the_code_was_isolated(graded):
    _, _, _, rows = graded
    assert rows["alice.ipynb"]["isolation"] == "bubblewrap namespaces"
    assert rows["carol.ipynb"]["isolation"] == ""  # refused before any of its code ran


def test_a_submission_that_kills_its_worker_costs_only_its_own_row(tmp_path):
    """Without isolation a cell can kill the worker grading it: that submission gets an
    error row (graded once more first, in case the death was not its doing) which the
    next run retries; the others, in flight or not, are graded right."""
    kill = "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"
    folder = a_class(tmp_path / "class", mallory=reference_with(kill))
    out = tmp_path / "grades.csv"
    proc, rows = batch(folder, out, "--unsafe-no-sandbox")
    assert sorted(rows) == ["alice.ipynb", "bob.ipynb", "mallory.ipynb"]
    assert_innocents_graded_right(rows)
    assert "worker died twice" in rows["mallory.ipynb"]["error"]
    assert "SIGKILL" in rows["mallory.ipynb"]["error"]
    assert all(rows[name]["isolation"] == "not isolated" for name in ("alice.ipynb", "bob.ipynb"))
    assert "not isolated" in proc.stdout and proc.stderr.rstrip().endswith("not isolated")
    again, _ = batch(folder, out, "--unsafe-no-sandbox")
    assert "(1 now, 2 from the cache)" in again.stderr
    assert sandboxes_of_this_tree() == []


def test_a_worker_killed_from_outside_is_replaced_and_its_submission_regraded(tmp_path):
    """The OOM killer or an operator's signal kills a worker in the middle of a grading:
    its submission is graded again in a fresh worker, no other row moves."""
    slow = "import time\nprint('victim loading', flush=True)\ntime.sleep(8)"
    folder = a_class(tmp_path / "class", victim=reference_with(slow))
    killed = []

    def kill_the_victims_worker(batch_pid):
        deadline = time.monotonic() + 600
        while not killed and time.monotonic() < deadline:
            for output in Path("/tmp").glob(f"softgrade-batch-{batch_pid}-*/*/output.txt"):
                if "victim loading" in output.read_text(errors="replace"):
                    worker = grading_worker_of(output.parent, batch_pid)
                    if worker is not None:
                        os.kill(worker, signal.SIGKILL)
                        killed.append(worker)
                        return
            time.sleep(0.2)

    proc, rows = batch(folder, tmp_path / "grades.csv", while_running=kill_the_victims_worker)
    assert killed, "the victim's worker was never found"
    assert sorted(rows) == ["alice.ipynb", "bob.ipynb", "victim.ipynb"]
    assert_innocents_graded_right(rows)
    assert float(rows["victim.ipynb"]["score"]) == pytest.approx(80)
    assert "0 errors" in proc.stderr


def grading_worker_of(workdir, batch_pid):
    """The batch's worker process whose sandbox lives in `workdir`."""
    for process in psutil.Process(batch_pid).children():
        for child in process.children(recursive=True):
            try:
                if any(str(workdir) in part for part in child.cmdline()):
                    return process.pid
            except psutil.Error:
                continue
    return None
