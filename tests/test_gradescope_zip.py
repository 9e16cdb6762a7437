"""`softgrade gradescope-zip` and the autograder it builds, run as Gradescope runs it:
the zip unpacked into <root>/source, run_autograder copied to <root>/run_autograder,
the student's upload in <root>/submission, and <root>/results/results.json read back.
setup.sh's installs are skipped: run_autograder is pointed at this test's Python."""

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from grader.grade import DEFAULT_SOURCE
from grader.gradescope_zip import EXECUTABLES, package_files
from grader.notebook import find_parts, read_notebook
from solutions.data_files import find_fashion_mnist

ROOT = Path(__file__).resolve().parents[1]
BUGGY = ROOT / "examples" / "submissions" / "buggy.ipynb"
# The parts examples/make_submissions.py breaks in buggy.ipynb (tests/test_grade.py too).
BUGGY_PARTS = {"predict", "ex1_overflow", "ex4_decision", "ex5_large_vocab"}


def build(tmp_path, name="autograder.zip"):
    out = tmp_path / name
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "gradescope-zip", "--out", str(out)],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return out


@pytest.fixture(scope="module")
def autograder_zip(tmp_path_factory):
    return build(tmp_path_factory.mktemp("zip"))


def unpack_like_gradescope(zip_path, root):
    """<root>/source from the zip (with its file modes), <root>/run_autograder beside it."""
    source = root / "source"
    with zipfile.ZipFile(zip_path) as archive:
        for info in archive.infolist():
            path = Path(archive.extract(info, source))
            path.chmod(info.external_attr >> 16 & 0o777)
    shutil.copy2(source / "run_autograder", root / "run_autograder")
    (root / "submission").mkdir()
    (root / "results").mkdir()
    return root


def run_autograder(root, **env):
    environment = {**os.environ, "SOFTGRADE_AUTOGRADER_ROOT": str(root),
                   "SOFTGRADE_PYTHON": sys.executable,
                   "SOFTGRADE_DATA": str(find_fashion_mnist(download=False)), **env}
    environment.pop("PYTHONPATH", None)  # the zip's own source must be enough
    proc = subprocess.run([str(root / "run_autograder")], capture_output=True, text=True,
                          cwd=root, env=environment, timeout=600)
    results = json.loads((root / "results" / "results.json").read_text())
    return proc, results


@pytest.fixture
def autograder(autograder_zip, tmp_path):
    return unpack_like_gradescope(autograder_zip, tmp_path / "autograder")


def test_the_zip_carries_the_scripts_and_the_source_they_install(autograder_zip):
    with zipfile.ZipFile(autograder_zip) as archive:
        infos = {info.filename: info for info in archive.infolist()}
        for name in EXECUTABLES:
            assert infos[name].external_attr >> 16 & 0o111, f"{name} is not executable"
        for name, path in package_files().items():
            assert archive.read(name) == path.read_bytes(), name
        source_name = DEFAULT_SOURCE.relative_to(ROOT).as_posix()
        assert archive.read(source_name) == DEFAULT_SOURCE.read_bytes()
    assert {"pyproject.toml", "constraints.txt", "grader/cli.py", "grader/gradescope_run.py",
            "solutions/softmax_regression.py"} <= set(infos)
    assert not [name for name in infos if "__pycache__" in name]


def test_the_zip_is_the_same_bytes_when_rebuilt(autograder_zip, tmp_path):
    assert build(tmp_path, "again.zip").read_bytes() == autograder_zip.read_bytes()


def test_the_scripts_are_valid_bash(autograder):
    for name in EXECUTABLES:
        proc = subprocess.run(["bash", "-n", str(autograder / "source" / name)],
                              capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


def test_setup_fetches_the_data_with_softgraders_own_lookup(autograder):
    (code,) = re.findall(r"-c '([^']*find_fashion_mnist[^']*)'",
                         (autograder / "source" / "setup.sh").read_text())
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "SOFTGRADE_DATA": str(find_fashion_mnist(download=False))})
    assert proc.returncode == 0, proc.stderr


def expected_test_count():
    """How many tests `softgrade grade` reports: every hidden test and budget of every
    auto-graded part, one per written answer."""
    from grader.judge import budgets_of, hidden_tests_by_part
    tests = hidden_tests_by_part()
    return sum(1 if part.written else len(tests.get(part.id, [])) + len(budgets_of(part.id))
               for part in find_parts(read_notebook(DEFAULT_SOURCE)))


def test_run_autograder_grades_the_submitted_notebook(autograder):
    shutil.copy(BUGGY, autograder / "submission" / "my_work.ipynb")
    proc, results = run_autograder(autograder)
    assert proc.returncode == 0, proc.stderr
    tests = results["tests"]
    assert len(tests) == expected_test_count()
    assert all(len(test["tags"]) == 1 for test in tests)
    parts = {part.id: part for part in find_parts(read_notebook(DEFAULT_SOURCE))}
    assert {test["tags"][0] for test in tests} == set(parts)
    lost = {test["tags"][0] for test in tests if test["score"] < test["max_score"]}
    assert lost == BUGGY_PARTS
    assert results["score"] == pytest.approx(sum(test["score"] for test in tests))
    assert 0 < results["score"] < results["max_score"] == pytest.approx(80)
    written = [test for test in tests if parts[test["tags"][0]].written]
    assert written and all(test["max_score"] == 0 and "manual" in test["output"]
                           for test in written)


@pytest.mark.parametrize("upload, reason", [
    ({"notes.txt": "my answers are in my head"}, "no notebook (.ipynb) in the submission"),
    ({"a.ipynb": BUGGY, "copy/b.ipynb": BUGGY}, "2 notebooks in the submission"),
    ({"bad.ipynb": "{nope"}, "invalid JSON"),
])
def test_a_submission_that_cannot_be_graded_scores_zero_with_the_reason(autograder, upload,
                                                                           reason):
    for name, content in upload.items():
        path = autograder / "submission" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            shutil.copy(content, path)
        else:
            path.write_text(content)
    _, results = run_autograder(autograder)
    assert results["score"] == 0 and results["tests"] == []
    assert reason in results["output"]
    assert "could not be graded" in results["output"]


def test_a_grader_that_dies_still_leaves_results(autograder):
    shutil.copy(BUGGY, autograder / "submission" / "my_work.ipynb")
    (autograder / "source" / "grader" / "cli.py").write_text(
        "import sys\nsys.exit('simulated grader crash')\n")
    _, results = run_autograder(autograder)
    assert results["score"] == 0
    assert "the grader failed" in results["output"] and "simulated grader crash" in results["output"]


def test_without_the_installed_python_results_say_so(autograder):
    proc, results = run_autograder(autograder, SOFTGRADE_PYTHON=str(autograder / "no-python"))
    assert proc.returncode == 1
    assert results["score"] == 0 and "not installed" in results["output"]
