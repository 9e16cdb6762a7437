"""The README's two pictures, made from real runs (make screenshots):

  docs/images/feedback.png      `softgrade grade examples/submissions/buggy.ipynb --feedback`
                                as a student sees feedback.html
  docs/images/class-report.png  `softgrade report` of the small class of
                                examples/make_class.py, graded by `softgrade grade-batch`

Both pages are rendered by headless Chromium (scripts/headless_chromium.py); the
pictures show the top of each page, at the width of a laptop's browser window.
"""

import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
from headless_chromium import screenshot  # noqa: E402
from make_class import write_class  # noqa: E402

IMAGES = ROOT / "docs" / "images"
BUGGY = ROOT / "examples" / "submissions" / "buggy.ipynb"
FEEDBACK_WINDOW = (1100, 1750)  # the score, the part table, the curves, the first lost part
REPORT_WINDOW = (1250, 1400)    # the overview, the histogram, the parts, the named mistakes


def softgrade(*args, cwd):
    """Run a softgrade command with this interpreter; stop on failure."""
    subprocess.run([sys.executable, "-m", "grader.cli", *args], cwd=cwd, check=True)


def main():
    with tempfile.TemporaryDirectory(prefix="softgrade-screenshots-") as temp:
        temp = Path(temp)
        softgrade("grade", str(BUGGY), "--feedback", str(temp / "feedback"), cwd=temp)
        print(screenshot(temp / "feedback" / "feedback.html", IMAGES / "feedback.png",
                         *FEEDBACK_WINDOW))
        write_class(temp / "class")
        softgrade("grade-batch", "class", "--workers", "2", "--out", "grades.csv", cwd=temp)
        softgrade("report", "grades.csv", cwd=temp)
        print(screenshot(temp / "grades-report" / "report.html", IMAGES / "class-report.png",
                         *REPORT_WINDOW))


if __name__ == "__main__":
    main()
