"""Budget stability: grade the reference notebook N times while another process keeps
a core busy, and count budgets that fail (the reference must pass every time).

    .venv/bin/python benchmarks/budget_stability.py [--runs 20]
"""

import argparse
import multiprocessing
from pathlib import Path

from grader.grade import grade_notebook

SOURCE = Path(__file__).resolve().parents[1] / "assignments" / "softmax_regression" / \
    "softmax_regression.ipynb"


def spin():
    while True:
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    load = multiprocessing.Process(target=spin, daemon=True)
    load.start()
    budget_failures, other_failures, ratios = 0, 0, {}
    try:
        for run in range(args.runs):
            report = grade_notebook(SOURCE)
            for test in report.tests:
                if "ratio" in test.details:
                    ratios.setdefault(test.name, []).append(float(test.details["ratio"]))
                if test.outcome == "over_budget" or ("budget" in test.details
                                                     and test.outcome != "passed"):
                    budget_failures += 1
                elif test.outcome not in ("passed", "manual"):
                    other_failures += 1
            print(f"run {run + 1}/{args.runs}: score {report.score:g}/{report.max_score:g} "
                  f"in {report.execution_time:.1f} s", flush=True)
    finally:
        load.terminate()
    print(f"{args.runs} gradings of the reference with one core busy: {budget_failures} budget "
          f"failures, {other_failures} other failures")
    for name, values in ratios.items():
        print(f"  {name}: ratio min {min(values):.2f}, max {max(values):.2f}")


if __name__ == "__main__":
    main()
