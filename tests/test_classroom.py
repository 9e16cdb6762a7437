"""GitHub Classroom: the result format (`softgrade grade --classroom`, results.to_classroom)
and the example workflow of examples/github-actions/, whose grading step runs here as
GitHub Actions runs it (bash, $GITHUB_OUTPUT), with `softgrade` on PATH."""

import base64
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
import yaml

from grader.cli import build_parser
from grader.grade import DEFAULT_SOURCE
from grader.notebook import find_parts, read_notebook
from grader.results import GradeReport, TestResult, to_classroom, written_answer

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "github-actions"
WORKFLOW = EXAMPLE / ".github" / "workflows" / "grade.yml"
BUGGY = ROOT / "examples" / "submissions" / "buggy.ipynb"
BUGGY_PARTS = {"predict", "ex1_overflow", "ex4_decision", "ex5_large_vocab"}
REPORTER = "classroom-resources/autograding-grading-reporter@v1"

# What GitHub Classroom's graders (autograding-command-grader, -io-grader) output and
# autograding-grading-reporter reads: it sums the tests' `score` out of `max_score`,
# prints each test's `name`, and a failed test's `message`; status "fail" or "error"
# at the top fails the job.
CLASSROOM_SCHEMA = {
    "type": "object",
    "required": ["version", "status", "max_score", "tests"],
    "properties": {
        "version": {"const": 1},
        "status": {"enum": ["pass", "fail", "error"]},
        "max_score": {"type": "number", "minimum": 0},
        "message": {"type": "string"},
        "tests": {"type": "array", "minItems": 1, "items": {
            "type": "object",
            "required": ["name", "status", "score", "message"],
            "properties": {
                "name": {"type": "string", "minLength": 1},
                "status": {"enum": ["pass", "fail", "error"]},
                "score": {"type": "number", "minimum": 0},
                "max_score": {"type": "number", "minimum": 0},
                "message": {"type": "string"},
            },
        }},
    },
}


@pytest.fixture(scope="module")
def workflow():
    return yaml.safe_load(WORKFLOW.read_text())


@pytest.fixture(scope="module")
def job(workflow):
    (job,) = workflow["jobs"].values()
    return job


def grading_step(job):
    """The step whose `result` output the reporter reads."""
    reporter = next(step for step in job["steps"] if step.get("uses") == REPORTER)
    (runner,) = reporter["with"]["runners"].split(",")
    return next(step for step in job["steps"] if step.get("id") == runner)


def test_the_reporter_reads_the_grading_steps_result(job):
    reporter = next(step for step in job["steps"] if step.get("uses") == REPORTER)
    runner = reporter["with"]["runners"]
    # The reporter looks for the environment variable <RUNNER ID IN CAPITALS>_RESULTS.
    assert reporter["env"] == {f"{runner.upper()}_RESULTS": f"${{{{ steps.{runner}.outputs.result }}}}"}
    assert "result=" in grading_step(job)["run"]


def test_the_workflow_is_laid_out_as_classrooms_own(workflow, job):
    assert workflow["name"] == "Autograding Tests"
    assert set(workflow["on"]) >= {"push", "repository_dispatch"}
    assert workflow["permissions"]["checks"] == "write"
    assert job["if"] == "github.actor != 'github-classroom[bot]'"


def test_the_install_step_uses_files_softgrade_has(job):
    install = next(step for step in job["steps"] if step.get("name") == "Install softgrade")
    used = re.findall(r'\$RUNNER_TEMP/softgrade/([\w./-]+)', install["run"])
    assert "scripts/install.sh" in used and ".venv/bin" in used
    assert (ROOT / "scripts" / "install.sh").is_file()
    assert ".venv" in (ROOT / "scripts" / "install.sh").read_text()
    (code,) = re.findall(r"-c '([^']+)'", install["run"])  # the data, fetched once
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.returncode == 0, proc.stderr


def test_every_softgrade_command_in_the_workflow_exists(workflow, job):
    commands = [line.strip() for step in job["steps"] for line in step.get("run", "").splitlines()
                if line.strip().startswith("softgrade ")]
    assert commands
    for command in commands:
        words = shlex.split(command.split("||")[0].replace("$NOTEBOOK", workflow["env"]["NOTEBOOK"]))
        build_parser(words[1:]).parse_args(words[1:])  # SystemExit on an unknown option


def run_grading_step(job, workflow, notebook, tmp_path):
    """Run the grading step's script in a student checkout holding `notebook`; returns
    (the decoded result, the checkout)."""
    checkout = tmp_path / "student-repo"
    checkout.mkdir()
    shutil.copy(notebook, checkout / workflow["env"]["NOTEBOOK"])
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "softgrade"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m grader.cli "$@"\n')
    shim.chmod(0o755)
    output = tmp_path / "github_output"
    env = {**os.environ, **workflow["env"], "GITHUB_OUTPUT": str(output), "PYTHONPATH": str(ROOT),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    # GitHub Actions runs a `run:` script as `bash --noprofile --norc -eo pipefail`.
    proc = subprocess.run(["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c",
                           grading_step(job)["run"]], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr
    (line,) = output.read_text().splitlines()
    name, encoded = line.split("=", 1)
    assert name == "result"
    return json.loads(base64.b64decode(encoded, validate=True)), checkout


def test_the_grading_step_reports_a_submission_in_classrooms_format(job, workflow, tmp_path):
    result, checkout = run_grading_step(job, workflow, BUGGY, tmp_path)
    jsonschema.validate(result, CLASSROOM_SCHEMA)
    parts = find_parts(read_notebook(DEFAULT_SOURCE))
    assert [test["name"] for test in result["tests"]] == [part.id for part in parts]
    assert result["max_score"] == pytest.approx(sum(p.points for p in parts if not p.written))
    points = {part.id: 0 if part.written else part.points for part in parts}
    for test in result["tests"]:
        assert test["max_score"] == pytest.approx(points[test["name"]])
        assert 0 <= test["score"] <= test["max_score"] + 1e-9
    failed = {test["name"] for test in result["tests"] if test["status"] == "fail"}
    assert failed == BUGGY_PARTS and result["status"] == "fail"
    predict = next(test for test in result["tests"] if test["name"] == "predict")
    assert "class order" in predict["message"]
    assert 60 < sum(test["score"] for test in result["tests"]) < result["max_score"]
    assert (checkout / "feedback" / "feedback.md").is_file()


def test_a_notebook_that_cannot_be_graded_reports_an_error_out_of_every_point(job, workflow,
                                                                              tmp_path):
    broken = tmp_path / "broken.ipynb"
    broken.write_text("{nope")
    result, _ = run_grading_step(job, workflow, broken, tmp_path)
    jsonschema.validate(result, CLASSROOM_SCHEMA)
    assert result["status"] == "error" and result["max_score"] == pytest.approx(80)
    (test,) = result["tests"]
    assert test["status"] == "error" and test["score"] == 0 and "invalid JSON" in test["message"]


def test_one_classroom_test_per_part_hides_what_gradescope_would_hide():
    report = GradeReport(submission="s.ipynb", tests=[
        TestResult("softmax: rows sum to 1", "softmax", 2, 2, "passed"),
        TestResult("softmax: float16 extremes", "softmax", 0, 3, "failed", "NaN in row 0"),
        TestResult("softmax: secret input", "softmax", 0, 1, "error", "IndexError: secret",
                   visibility="hidden"),
        TestResult("net: shape", "net", 3, 3, "passed"),
        written_answer("ex1_written", 4),
    ])
    result = to_classroom(report)
    jsonschema.validate(result, CLASSROOM_SCHEMA)
    softmax, net, written = result["tests"]
    assert (softmax["status"], softmax["score"], softmax["max_score"]) == ("fail", 2, 6)
    assert "NaN in row 0" in softmax["message"] and "secret" not in softmax["message"]
    assert "1 more failed test" in softmax["message"]
    assert (net["status"], net["message"]) == ("pass", "every test passed (1)")
    assert written["max_score"] == 0 and "manual" in written["message"]
    assert result["max_score"] == 9 and result["status"] == "fail"
