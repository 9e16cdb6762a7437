"""Budget stability: grade the reference notebook N times while another process keeps
a core busy and count budgets that fail (the reference must pass every time); grade a
submission whose softmax, cross_entropy and accuracy loop over the rows in Python as
often, and count the times those three budgets pass (a loop must fail every time).

    .venv/bin/python benchmarks/budget_stability.py [--runs 20]
"""

import argparse
import multiprocessing
import tempfile
from pathlib import Path

import nbformat

from grader.grade import grade_notebook
from grader.notebook import replace_in_cell

SOURCE = Path(__file__).resolve().parents[1] / "assignments" / "softmax_regression" / \
    "softmax_regression.ipynb"


LOOPS = [
    ("softmax_solution", """    X_exp = torch.exp(X)
    partition = X_exp.sum(1, keepdim=True)  # [n, 1]: broadcast over the q columns below
    return X_exp / partition""", """    out = torch.empty_like(X)
    for i in range(X.shape[0]):
        row = torch.exp(X[i])
        out[i] = row / row.sum()
    return out"""),
    ("cross_entropy_solution", """    rows = torch.arange(y_hat.shape[0], device=y_hat.device)
    return -torch.log(y_hat[rows, y])""", """    if len(y) == 0:
        return y_hat.new_zeros(0)
    return torch.stack([-torch.log(y_hat[i, y[i]]) for i in range(len(y))])"""),
    ("accuracy_solution", """    cmp = y_hat.type(y.dtype) == y
    return float(cmp.type(y.dtype).sum())""", """    correct = 0.0
    for predicted, label in zip(y_hat, y):
        correct += float(predicted.type(y.dtype) == label)
    return correct"""),
]
LOOPED_PARTS = ("softmax", "cross_entropy", "accuracy")


def loopy_notebook(folder):
    notebook = nbformat.read(SOURCE, as_version=4)
    for grade_id, old, new in LOOPS:
        replace_in_cell(notebook, grade_id, old, new)
    path = Path(folder) / "loops.ipynb"
    nbformat.write(notebook, path)
    return path


def spin():
    while True:
        pass


def is_loop_budget(test):
    return test.part in LOOPED_PARTS and "budget" in test.details


def ratio_of(test):
    return float(test.details["ratio"])  # "inf" when the call did not finish in time


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    load = multiprocessing.Process(target=spin, daemon=True)
    load.start()
    budget_failures, other_failures, ratios, loops_passed = 0, 0, {}, 0
    folder = tempfile.TemporaryDirectory()
    loops = loopy_notebook(folder.name)
    try:
        for run in range(args.runs):
            looped = grade_notebook(loops)
            loops_passed += sum(1 for t in looped.tests
                                if is_loop_budget(t) and t.outcome == "passed")
            for test in looped.tests:
                if is_loop_budget(test) and "ratio" in test.details:
                    ratios.setdefault("loop " + test.name, []).append(ratio_of(test))
            report = grade_notebook(SOURCE)
            for test in report.tests:
                if "ratio" in test.details:
                    ratios.setdefault(test.name, []).append(ratio_of(test))
                if test.outcome == "over_budget" or ("budget" in test.details
                                                     and test.outcome != "passed"):
                    budget_failures += 1
                elif test.outcome not in ("passed", "manual"):
                    other_failures += 1
            print(f"run {run + 1}/{args.runs}: score {report.score:g}/{report.max_score:g} "
                  f"in {report.execution_time:.1f} s", flush=True)
    finally:
        load.terminate()
        folder.cleanup()
    print(f"{args.runs} gradings of the reference with one core busy: {budget_failures} budget "
          f"failures, {other_failures} other failures; {args.runs} gradings of Python loops in "
          f"{', '.join(LOOPED_PARTS)}: {loops_passed} of {len(LOOPED_PARTS) * args.runs} "
          f"loop budgets passed")
    for name, values in ratios.items():
        print(f"  {name}: ratio min {min(values):.2f}, max {max(values):.2f}")


if __name__ == "__main__":
    main()
