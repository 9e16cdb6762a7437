"""What Gradescope runs for each submission (the zip's run_autograder calls
`python -m grader.gradescope_run ROOT`): find the one notebook the student uploaded,
grade it with `softgrade grade --results`, and make sure that results.json exists
afterwards, whatever happened, with the reason in its `output`.

Gradescope's layout under ROOT (/autograder there): source/ (the unpacked zip, with the
course secret where the zip carries one), submission/ (what the student uploaded),
results/results.json (what Gradescope reads).

`softgrade grade` runs in a child process, so that even a grader that dies (out of
memory, a bug) leaves this process alive to write the results.
"""

import subprocess
import sys
from pathlib import Path

from .results import GradeReport, write_gradescope
from .secret import ZIP_NAME

CHECKPOINTS = ".ipynb_checkpoints"  # Jupyter's autosaves, uploaded along by accident


class SubmissionError(Exception):
    """The submission holds no notebook, or more than one; the message tells the student."""


def find_notebook(submission_dir):
    """The one .ipynb file under `submission_dir` (uploads from GitHub keep folders)."""
    notebooks = sorted(path for path in Path(submission_dir).rglob("*.ipynb")
                       if CHECKPOINTS not in path.parts)
    if len(notebooks) == 1:
        return notebooks[0]
    if not notebooks:
        found = sorted(p.name for p in Path(submission_dir).rglob("*") if p.is_file())
        listing = f"found: {', '.join(found)}" if found else "the submission is empty"
        raise SubmissionError(f"no notebook (.ipynb) in the submission ({listing}): "
                              "upload your notebook")
    names = ", ".join(str(path.relative_to(submission_dir)) for path in notebooks)
    raise SubmissionError(f"{len(notebooks)} notebooks in the submission ({names}): "
                          "upload exactly one .ipynb file")


def grade(notebook, results_path, secret_file=None):
    """Run `softgrade grade NOTEBOOK --results PATH [--secret-file FILE]`; returns its
    CompletedProcess. Its table goes to our stdout, which Gradescope keeps for the instructor."""
    secret = ["--secret-file", str(secret_file)] if secret_file else []
    return subprocess.run([sys.executable, "-m", "grader.cli", "grade", str(notebook),
                           "--results", str(results_path), *secret],
                          stderr=subprocess.PIPE, text=True, check=False)


def failure_reason(process):
    """One line on why `softgrade grade` left no results: its last word on stderr."""
    lines = process.stderr.strip().splitlines()
    return lines[-1] if lines else f"softgrade grade exited with code {process.returncode}"


def run_autograder(root):
    """Grade the submission under `root`; results.json is written in every case."""
    root = Path(root)
    results = root / "results" / "results.json"
    results.unlink(missing_ok=True)  # a stale file must not pass for this grading's
    try:
        notebook = find_notebook(root / "submission")
    except SubmissionError as err:
        write_gradescope(GradeReport(submission=str(root / "submission"), error=str(err)),
                         results)
        return
    secret_file = root / "source" / ZIP_NAME
    process = grade(notebook, results, secret_file if secret_file.is_file() else None)
    sys.stderr.write(process.stderr)
    if not results.is_file():
        error = f"the grader failed, please tell your instructor: {failure_reason(process)}"
        write_gradescope(GradeReport(submission=str(notebook), error=error), results)


if __name__ == "__main__":
    run_autograder(sys.argv[1])
