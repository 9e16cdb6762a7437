"""`softgrade grade` against nbgrader's own autograde, on the same notebook, in one run.

softgrade runs every hidden test, every performance budget and the Fashion-MNIST
training check; nbgrader's autograde runs the notebook top to bottom with its
public tests (demonstrations included, as nbgrader has no notion of skipping
them). Both are timed as a user runs them, from the command line.

    .venv/bin/python benchmarks/grade_vs_nbgrader.py [--repeat 3]
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# nbgrader runs its database migrations with the `alembic` command of its environment
ENV = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
SOURCE = ROOT / "assignments" / "softmax_regression" / "softmax_regression.ipynb"
NAME = "softmax_regression"


def timed(argv, cwd):
    start = time.perf_counter()
    proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, env=ENV)
    seconds = time.perf_counter() - start
    if proc.returncode not in (0, 1):
        sys.exit(f"{' '.join(argv[:3])} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    return seconds


def nbgrader_course(root):
    """A course folder with the assignment released and one student's submission."""
    (root / "source" / NAME).mkdir(parents=True)
    shutil.copy(SOURCE, root / "source" / NAME / SOURCE.name)
    subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment", NAME, "--force"],
                   cwd=root, check=True, capture_output=True, env=ENV)
    (root / "submitted" / "student1" / NAME).mkdir(parents=True)
    shutil.copy(SOURCE, root / "submitted" / "student1" / NAME / SOURCE.name)  # complete


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    softgrade_times, nbgrader_times = [], []
    with tempfile.TemporaryDirectory() as tmp:
        course = Path(tmp) / "course"
        nbgrader_course(course)
        for _ in range(args.repeat):  # interleaved, so both see the same machine
            softgrade_times.append(timed([sys.executable, "-m", "grader.cli", "grade",
                                          str(SOURCE)], cwd=ROOT))
            nbgrader_times.append(timed([sys.executable, "-m", "nbgrader", "autograde", NAME,
                                         "--create", "--force"], cwd=course))
    soft, nb = statistics.median(softgrade_times), statistics.median(nbgrader_times)
    print(f"{'grader':<44} {'median s':>8}   runs")
    print(f"{'softgrade grade (hidden tests, budgets, training)':<44} {soft:>8.2f}   "
          + ", ".join(f"{t:.1f}" for t in softgrade_times))
    print(f"{'nbgrader autograde (public tests, whole notebook)':<44} {nb:>8.2f}   "
          + ", ".join(f"{t:.1f}" for t in nbgrader_times))
    print(f"softgrade / nbgrader: {soft / nb:.2f}")


if __name__ == "__main__":
    main()
