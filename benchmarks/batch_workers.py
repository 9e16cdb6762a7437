"""`softgrade grade-batch` with 1 and with 2 workers on the same class, in one run.

The class is the three bundled examples, copied to N distinct submissions (each
gets a Markdown cell with a student's name, so no two share a content hash and
the cache cannot help); each run starts with an empty cache.

    .venv/bin/python benchmarks/batch_workers.py [--submissions 40]
"""

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "submissions"


def make_class(folder, count):
    names = sorted(EXAMPLES.glob("*.ipynb"))
    for i in range(count):
        notebook = nbformat.read(names[i % len(names)], as_version=4)
        notebook.cells.insert(0, nbformat.v4.new_markdown_cell(f"Student {i:03d}"))
        nbformat.write(notebook, folder / f"student{i:03d}.ipynb")


def batch_seconds(folder, workers, out):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "grader.cli", "grade-batch", str(folder), "--workers",
                    str(workers), "--out", str(out)], cwd=ROOT, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--submissions", type=int, default=40)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "class"
        folder.mkdir()
        make_class(folder, args.submissions)
        one = batch_seconds(folder, 1, Path(tmp) / "one.csv")
        two = batch_seconds(folder, 2, Path(tmp) / "two.csv")
        rows_one = (Path(tmp) / "one.csv").read_text().splitlines()
        rows_two = (Path(tmp) / "two.csv").read_text().splitlines()
    print(f"{args.submissions} submissions: --workers 1 {one:.1f} s ({one / args.submissions:.2f} "
          f"s each), --workers 2 {two:.1f} s; speed-up {one / two:.2f}x; "
          f"same grades: {sorted(rows_one) == sorted(rows_two)}")


if __name__ == "__main__":
    main()
