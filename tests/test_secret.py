"""The course secret (grader/secret.py): where it comes from, where it travels (the
Gradescope zip, run_autograder's grade command, grade-batch's cache keys), that it and
the notebook decide a grading's hidden inputs, and that no report holds it."""

import argparse
import json
import stat
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest
from notebook_edits import write

from grader import gradescope_run
from grader.batch import grading_fingerprint
from grader.feedback import write_feedback
from grader.grade import DEFAULT_SOURCE, grade_notebook, reference_submission
from grader.gradescope_zip import build_zip
from grader.notebook import replace_in_cell
from grader.results import write_gradescope, write_junit
from grader.secret import DEFAULT_SECRET, ENVIRONMENT_VARIABLE, ZIP_NAME, SecretError, course_secret

ROOT = Path(__file__).resolve().parents[1]
SECRET = "course-secret-7f3a9c51d2"


def arguments(secret_file=None):
    return argparse.Namespace(secret_file=secret_file)


def test_the_file_comes_first_then_the_environment_then_the_default(tmp_path, monkeypatch):
    path = tmp_path / "secret"
    path.write_text(f"  {SECRET}\n")
    monkeypatch.setenv(ENVIRONMENT_VARIABLE, "from the environment")
    assert course_secret(arguments(path)) == (SECRET.encode(), True)
    assert course_secret(arguments()) == (b"from the environment", True)
    monkeypatch.delenv(ENVIRONMENT_VARIABLE)
    assert course_secret(arguments()) == (DEFAULT_SECRET, False)


@pytest.mark.parametrize("content, says", [(None, "No such file"), ("\n", "the file is empty")])
def test_a_secret_file_that_cannot_serve_is_one_line_and_exit_2(tmp_path, content, says):
    path = tmp_path / "secret"
    if content is not None:
        path.write_text(content)
    with pytest.raises(SecretError, match=says):
        course_secret(arguments(path))
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "grade", "missing.ipynb",
                           "--secret-file", str(path)], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120, check=False)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1, proc.stderr
    assert proc.stderr.startswith("softgrade grade: error: --secret-file") and says in proc.stderr


def test_the_zip_carries_the_secret_for_its_owner_only(tmp_path):
    names = build_zip(tmp_path / "with.zip", DEFAULT_SOURCE, SECRET.encode())
    with zipfile.ZipFile(tmp_path / "with.zip") as archive:
        assert archive.read(ZIP_NAME) == SECRET.encode()
        assert stat.S_IMODE(archive.getinfo(ZIP_NAME).external_attr >> 16) == 0o600
    assert ZIP_NAME in names
    assert ZIP_NAME not in build_zip(tmp_path / "without.zip", DEFAULT_SOURCE)


def test_gradescope_zip_says_when_it_has_no_course_secret(tmp_path):
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)}
    plain = subprocess.run([sys.executable, "-m", "grader.cli", "gradescope-zip", "--out",
                            str(tmp_path / "a.zip")], capture_output=True, text=True,
                           env=environment, timeout=120, check=False)
    assert plain.returncode == 0 and "no course secret" in plain.stderr
    secret = subprocess.run([sys.executable, "-m", "grader.cli", "gradescope-zip", "--out",
                             str(tmp_path / "b.zip")], capture_output=True, text=True,
                            env={**environment, ENVIRONMENT_VARIABLE: SECRET}, timeout=120,
                            check=False)
    assert secret.returncode == 0 and "no course secret" not in secret.stderr
    assert SECRET not in plain.stderr + secret.stderr + plain.stdout + secret.stdout
    with zipfile.ZipFile(tmp_path / "b.zip") as archive:
        assert archive.read(ZIP_NAME) == SECRET.encode()


def test_run_autograder_grades_with_the_secret_of_the_zip(tmp_path, monkeypatch):
    commands = []
    monkeypatch.setattr(gradescope_run.subprocess, "run",
                        lambda argv, **kwargs: commands.append(argv) or
                        subprocess.CompletedProcess(argv, 2, stderr="no results"))
    (tmp_path / "submission").mkdir()
    (tmp_path / "submission" / "notebook.ipynb").write_text("{}")
    gradescope_run.run_autograder(tmp_path)
    (tmp_path / "source").mkdir()
    (tmp_path / "source" / ZIP_NAME).write_text(SECRET)
    gradescope_run.run_autograder(tmp_path)
    without, with_secret = commands
    assert "--secret-file" not in without
    assert with_secret[-2:] == ["--secret-file", str(tmp_path / "source" / ZIP_NAME)]


def test_a_new_secret_is_a_new_cache_key():
    assert grading_fingerprint(DEFAULT_SOURCE, b"a") != grading_fingerprint(DEFAULT_SOURCE, b"b")
    assert grading_fingerprint(DEFAULT_SOURCE) == grading_fingerprint(DEFAULT_SOURCE,
                                                                       DEFAULT_SECRET)


def softmax_off_above_one(tmp_path):
    """The reference, with a softmax that is off exactly where a logit exceeds 1: where its
    errors lie depends on the inputs drawn."""
    notebook = nbformat.read(DEFAULT_SOURCE, as_version=4)
    replace_in_cell(notebook, "softmax_solution", "    X_exp = torch.exp(X)\n",
                    "    X_exp = torch.exp(X) * (1 + 1e-3 * (X > 1))\n")
    return write(notebook, tmp_path / "submission.ipynb")


def messages(report, part="softmax"):
    return [t.message for t in report.tests if t.part == part and t.outcome != "passed"]


def test_the_secret_and_the_notebook_decide_the_inputs_and_no_report_holds_the_secret(tmp_path):
    path = softmax_off_above_one(tmp_path)
    reference = reference_submission()
    try:
        first, again, other = (grade_notebook(path, reference=reference, secret=secret)
                               for secret in (SECRET.encode(), SECRET.encode(), b"another course"))
    finally:
        reference.close()
    assert messages(first) and messages(first) == messages(again)
    assert first.score == again.score
    assert messages(first) != messages(other)  # the errors lie elsewhere
    write_gradescope(first, tmp_path / "results.json")
    write_junit(first, tmp_path / "junit.xml")
    written = [tmp_path / "results.json", tmp_path / "junit.xml",
               *write_feedback(first, tmp_path / "feedback")]
    assert not [p.name for p in written if SECRET in Path(p).read_text()]
    assert SECRET not in json.dumps(first.warnings)
