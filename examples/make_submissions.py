"""Writes the bundled example submissions from the source notebook and the release,
each by small, readable edits (never by hand-editing notebook JSON):

  reference.ipynb   the source notebook itself: every solution filled in
  untouched.ipynb   the release as a student receives it
  buggy.ipynb       the reference with four typical mistakes, each in a part that
                    nothing else depends on, so each costs exactly its own part:
                    ex1_overflow (a threshold right only for float32), ex4_decision
                    (`<=` instead of `<` in the reject rule), ex5_large_vocab (scores
                    the whole vocabulary: right values, over budget) and predict
                    (two labels swapped)

    .venv/bin/python examples/make_submissions.py    # after editing the source notebook
"""

from pathlib import Path

import nbformat

from grader.notebook import replace_in_cell

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "assignments" / "softmax_regression" / "softmax_regression.ipynb"
RELEASE = ROOT / "release" / "softmax_regression" / "softmax_regression.ipynb"
OUT = ROOT / "examples" / "submissions"

BUGS = [
    ("ex1_overflow_solution", "    lo, hi = 0.0, torch.finfo(dtype).max\n",
     "    return 88.72283935546875  # measured once, in float32\n"
     "    lo, hi = 0.0, torch.finfo(dtype).max\n"),
    ("ex4_decision_solution", "confidence < threshold", "confidence <= threshold"),
    ("ex5_large_vocab_solution",
     "    word_logits = (H.unsqueeze(1) @ Ww[cluster]).squeeze(1) + bw[cluster]  # [n, m]\n"
     "    log_p_word = log_softmax(word_logits)[rows, position]                   # [n]\n",
     "    all_words = torch.einsum(\"nd,cdm->ncm\", H, Ww) + bw  # [n, C, m]: all V words\n"
     "    log_p_all = log_softmax(all_words.reshape(-1, all_words.shape[2]))  # [n C, m]\n"
     "    log_p_word = log_p_all.reshape(all_words.shape)[rows, cluster, position]\n"),
    ("predict_solution", '"pullover", "dress", "coat"', '"coat", "dress", "pullover"'),
]


def buggy(source):
    notebook = nbformat.from_dict(source)
    for grade_id, old, new in BUGS:
        replace_in_cell(notebook, grade_id, old, new)
    return notebook


def examples():
    """{file name: notebook} of the example submissions."""
    source = nbformat.read(SOURCE, as_version=4)
    return {"reference.ipynb": source,
            "untouched.ipynb": nbformat.read(RELEASE, as_version=4),
            "buggy.ipynb": buggy(source)}


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    for name, notebook in examples().items():
        nbformat.write(notebook, OUT / name)
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
