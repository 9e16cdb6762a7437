"""Faults: a `grade-batch` killed part-way and started again grades every submission
exactly once and loses nothing; the same submission graded twice gives the same
results apart from timings."""

import json
import os
import signal
import subprocess
import sys
import time

import corpus

from grader.budgets import BUDGETS
from grader.grade import grade_notebook
from grader.results import to_gradescope

QUICK = ["untouched", "wrong_softmax", "fake_results_line", "write_results_json",
         "edit_locked_cells", "edit_test_cells", "monkeypatch_torch", "lying_tensor"]


def start_batch(folder, temp):
    return subprocess.Popen(
        [sys.executable, "-m", "grader.cli", "grade-batch", str(folder / "submissions"),
         "--workers", "2", "--out", str(folder / "grades.csv")],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=corpus.ROOT,
        env={**os.environ, "TMPDIR": str(temp)}, start_new_session=True)


def reports_in(cache):
    return {path.name: (path.stat().st_mtime_ns, path.read_text()) for path in cache.glob("*.json")}


def test_a_killed_batch_resumes_grading_each_submission_exactly_once(tmp_path):
    corpus.write(tmp_path / "submissions", [e for e in corpus.ENTRIES if e.name in QUICK])
    temp = tmp_path / "tmp"
    temp.mkdir()
    cache = tmp_path / "grades.csv.cache"
    batch = start_batch(tmp_path, temp)
    deadline = time.monotonic() + 300
    while len(reports_in(cache)) < 2 and batch.poll() is None and time.monotonic() < deadline:
        time.sleep(0.2)
    os.killpg(batch.pid, signal.SIGKILL)  # the batch and its workers, mid-way
    batch.wait()
    before = reports_in(cache)
    assert 2 <= len(before) < len(QUICK)
    assert all(json.loads(text) for _, text in before.values())  # never half a report

    resumed = start_batch(tmp_path, temp)
    _, err = resumed.communicate(timeout=900)
    assert resumed.returncode == 0, err[-2000:]
    after = reports_in(cache)
    assert len(after) == len(QUICK)
    assert {name: after[name] for name in before} == before  # not graded a second time
    assert f"({len(QUICK) - len(before)} now, {len(before)} from the cache)" in err
    assert list(cache.glob(".tmp-*")) == []
    assert list(temp.iterdir()) == []  # the killed run's sandboxes are gone too
    rows = (tmp_path / "grades.csv").read_text().splitlines()[1:]
    assert len(rows) == len(QUICK)


def without_timings(report):
    """The Gradescope results of a report, less what depends on the machine's speed:
    the execution time, and the measurements of the performance budgets."""
    results = to_gradescope(report)
    del results["execution_time"]
    budgets = {f"{b.part}: {b.name}" for b in BUDGETS}
    for test in results["tests"]:
        if test["name"] in budgets:
            test.pop("output", None)
            test.pop("extra_data", None)
    return results


def test_grading_twice_gives_the_same_results_apart_from_timings(tmp_path):
    paths = corpus.write(tmp_path, [e for e in corpus.ENTRIES if e.name == "accuracy_fraction"])
    first, second = (grade_notebook(paths["accuracy_fraction"]) for _ in range(2))
    assert without_timings(first) == without_timings(second)
    assert first.score < first.max_score  # the comparison covers failures, not just passes
