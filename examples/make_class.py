"""Writes a small class of submissions into a folder, for `softgrade report`'s tests and
the README's picture of a class report: the three bundled examples, variants of the
reference made by small edits of the source notebook (as make_submissions.py makes
buggy.ipynb), and one file that is not a notebook.

  mean_loss.ipynb         cross_entropy returns the batch's mean loss (named mistake);
                          the Fashion-MNIST check then trains far too slowly
  mean_loss_reject.ipynb  the same, and `<=` in decide_with_reject as in buggy.ipynb,
                          so that two submissions share each of these named mistakes
  loop_softmax.ipynb      softmax loops over the rows in Python: right values, far
                          over its time budget
  broken.ipynb            not a notebook: an error row

    .venv/bin/python examples/make_class.py DIR
"""

import shutil
import sys
from pathlib import Path

import nbformat

from grader.notebook import replace_in_cell

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "assignments" / "softmax_regression" / "softmax_regression.ipynb"
EXAMPLES = ROOT / "examples" / "submissions"

MEAN_LOSS = ("cross_entropy_solution", "    return -torch.log(y_hat[rows, y])\n",
             "    return -torch.log(y_hat[rows, y]).mean()\n")
REJECT_AT_THRESHOLD = ("ex4_decision_solution", "confidence < threshold",
                       "confidence <= threshold")
LOOP_SOFTMAX = ("softmax_solution",
                "    X_exp = torch.exp(X)\n"
                "    partition = X_exp.sum(1, keepdim=True)"
                "  # [n, 1]: broadcast over the q columns below\n"
                "    return X_exp / partition\n",
                "    out = torch.empty_like(X)\n"
                "    for i in range(X.shape[0]):\n"
                "        row = torch.exp(X[i])\n"
                "        out[i] = row / row.sum()\n"
                "    return out\n")
VARIANTS = {"mean_loss.ipynb": [MEAN_LOSS],
            "mean_loss_reject.ipynb": [MEAN_LOSS, REJECT_AT_THRESHOLD],
            "loop_softmax.ipynb": [LOOP_SOFTMAX]}
NOT_A_NOTEBOOK = "{not a notebook"


def variant(edits):
    """The source notebook with `edits` [(grade_id, old, new), ...] applied."""
    notebook = nbformat.read(SOURCE, as_version=4)
    for grade_id, old, new in edits:
        replace_in_cell(notebook, grade_id, old, new)
    return notebook


def write_class(folder):
    """Write the class into `folder` (created); returns its notebooks' paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for example in sorted(EXAMPLES.glob("*.ipynb")):
        shutil.copy(example, folder / example.name)
    for name, edits in VARIANTS.items():
        nbformat.write(variant(edits), folder / name)
    (folder / "broken.ipynb").write_text(NOT_A_NOTEBOOK)
    return sorted(folder.glob("*.ipynb"))


if __name__ == "__main__":
    for path in write_class(sys.argv[1]):
        print(f"wrote {path}")
