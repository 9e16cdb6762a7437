"""The corpus: buggy, hostile and malformed submissions, each made from the reference
notebook (the source) or the release by one small, readable edit, with the outcome
the grader must give each part.

    .venv/bin/python tests/corpus.py DIR    # write every entry into DIR, to look at them

An entry's `expected` names only the parts that do not end as the base's do: every
other auto-graded part ends `passed` (on the reference) or `not_attempted` (on the
release), every written part `manual`. A hostile entry names its `base`, the same
notebook without the attack, which it may never outscore.
"""

import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import nbformat

from grader.notebook import cell_with_grade_id, replace_in_cell

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "assignments" / "softmax_regression" / "softmax_regression.ipynb"
RELEASE = ROOT / "release" / "softmax_regression" / "softmax_regression.ipynb"
STUB = "    # YOUR CODE HERE\n    raise NotImplementedError()"


@dataclass
class Entry:
    """One submission of the corpus."""

    name: str
    """The file's stem; also how tests name it."""
    kind: str
    """'base', 'mistake', 'hostile' or 'malformed'."""
    what: str
    """The edit, in a few words."""
    make: Callable[[], bytes]
    """The file's bytes."""
    expected: dict[str, str] = field(default_factory=dict)
    """{part id: outcome} for the parts that do not end as the base's do."""
    on: str = "reference"
    """'reference' or 'release': what the untouched parts end as (passed / not_attempted)."""
    base: str | None = None
    """Hostile entries: the entry without the attack, whose score this one may not exceed."""
    error: str | None = None
    """Malformed entries: words the one-line error must contain."""


def source():
    return nbformat.read(SOURCE, as_version=4)


def release():
    return nbformat.read(RELEASE, as_version=4)


def edited(make_base, *edits):
    """A maker of the base notebook with (grade_id, old, new) replacements applied."""
    def make():
        notebook = make_base()
        for grade_id, old, new in edits:
            replace_in_cell(notebook, grade_id, old, new)
        return nbformat.writes(notebook).encode()
    return make


def with_stub_replaced(grade_id, code):
    """An edit of the release: the stub of `grade_id` becomes `code` (function body lines)."""
    return (grade_id, STUB, code)


WRONG_SOFTMAX = with_stub_replaced("softmax_solution", "    return X  # not a softmax")


def mistake(name, what, expected, *edits):
    return Entry(name, "mistake", what, edited(source, *edits), expected)


def hostile(name, what, expected, *edits, base="reference"):
    on = "reference" if base == "reference" else "release"
    make_base = source if base == "reference" else release
    extra = (WRONG_SOFTMAX,) if base == "wrong_softmax" else ()
    return Entry(name, "hostile", what, edited(make_base, *extra, *edits), expected, on, base)


def malformed(name, what, error, make):
    return Entry(name, "malformed", what, make, error=error)


BASES = [
    Entry("reference", "base", "the source notebook: every part solved", edited(source)),
    Entry("untouched", "base", "the release as handed out", edited(release), on="release"),
    Entry("wrong_softmax", "base", "the release with softmax returning its input",
          edited(release, WRONG_SOFTMAX), {"softmax": "failed"}, on="release"),
]

MISTAKES = [
    mistake("softmax_dim0", "softmax normalises over dim 0 (columns)",
            {"softmax": "failed", "net": "failed", "train": "failed", "ex2_log_domain": "failed"},
            ("softmax_solution", "X_exp.sum(1, keepdim=True)", "X_exp.sum(0, keepdim=True)")),
    mistake("stable_softmax_global_max", "stable_softmax subtracts the global max, not each row's",
            {"ex3_stable_loss": "failed"},
            ("ex3_stable_loss_solution", "O_shifted = O - O.max(dim=1, keepdim=True).values\n"
             "    O_exp", "O_shifted = O - O.max()\n    O_exp")),
    mistake("cross_entropy_mean", "cross_entropy returns the batch mean",
            {"cross_entropy": "failed", "train": "failed"},
            ("cross_entropy_solution", "return -torch.log(y_hat[rows, y])",
             "return -torch.log(y_hat[rows, y]).mean()")),
    mistake("cross_entropy_epsilon", "cross_entropy smooths: -log(p + 1e-8)",
            {"cross_entropy": "failed"},
            ("cross_entropy_solution", "return -torch.log(y_hat[rows, y])",
             "return -torch.log(y_hat[rows, y] + 1e-8)")),
    # error, not failed: on an empty batch the fraction divides by zero
    mistake("accuracy_fraction", "accuracy returns the fraction correct, not the count",
            {"accuracy": "error", "evaluate_accuracy": "failed", "train_epoch": "failed",
             "train": "failed"},
            ("accuracy_solution", "return float(cmp.type(y.dtype).sum())",
             "return float(cmp.type(y.dtype).sum()) / len(y)")),
    mistake("accuracy_tensor", "accuracy returns the count as a tensor, not a Python float",
            {"accuracy": "failed"},
            ("accuracy_solution", "return float(cmp.type(y.dtype).sum())",
             "return cmp.type(y.dtype).sum()")),
    mistake("evaluate_without_no_grad", "evaluate_accuracy records the graph (no torch.no_grad)",
            {"evaluate_accuracy": "failed"},
            ("evaluate_accuracy_solution",
             "    with torch.no_grad():  # evaluation needs no graph: saves memory and time\n"
             "        for X, y in data_iter:\n"
             "            metric.add(accuracy(net(X), y), y.numel())",
             "    for X, y in data_iter:\n        metric.add(accuracy(net(X), y), y.numel())")),
    mistake("evaluate_without_eval", "evaluate_accuracy leaves a module in training mode",
            {"evaluate_accuracy": "failed"},
            ("evaluate_accuracy_solution",
             "    if isinstance(net, nn.Module):\n        net.eval()  # e.g. dropout off\n", "")),
    mistake("sgd_without_zeroing", "sgd never zeroes the gradients",
            {"sgd": "failed", "train": "failed"},
            ("sgd_solution", "            param.grad.zero_()\n", "")),
    mistake("sgd_divides_twice", "sgd divides by batch_size twice",
            {"sgd": "failed", "train": "failed"},
            ("sgd_solution", "param -= lr * param.grad / batch_size",
             "param -= lr * param.grad / batch_size / batch_size")),
    # train too: train_ch3 runs the student's own epochs
    mistake("summed_loss_with_optimizer", "train_epoch_ch3 gives an optimizer the summed loss",
            {"train_epoch": "failed", "train": "failed"},
            ("train_epoch_solution", "l.mean().backward()", "l.sum().backward()")),
    mistake("last_batch_counted_full", "train_epoch_ch3 counts the last, partial batch as full",
            {"train_epoch": "failed", "train": "failed"},
            ("train_epoch_solution", "    for X, y in train_iter:\n",
             "    full = None\n    for X, y in train_iter:\n"
             "        full = full or y.numel()  # the first batch's size\n"),
            ("train_epoch_solution", "accuracy(y_hat, y), y.numel())",
             "accuracy(y_hat, y), full)")),
    mistake("train_without_history", "train_ch3 does not return its history",
            {"train": "failed"},
            ("train_solution", "    return history\n", "")),
    mistake("labels_wrong_order", "two text labels swapped",
            {"predict": "failed"},
            ("predict_solution", '"pullover", "dress", "coat"', '"coat", "dress", "pullover"')),
    mistake("overflow_threshold_float32_only", "overflow_threshold right only for float32",
            {"ex1_overflow": "failed"},
            ("ex1_overflow_solution", "    lo, hi = 0.0, torch.finfo(dtype).max\n",
             "    return 88.72283935546875  # measured once, in float32\n"
             "    lo, hi = 0.0, torch.finfo(dtype).max\n")),
    mistake("reject_rule_le", "<= instead of < in the reject rule",
            {"ex4_decision": "failed"},
            ("ex4_decision_solution", "confidence < threshold", "confidence <= threshold")),
    mistake("two_level_whole_vocabulary", "two-level softmax scoring all V words (right values)",
            {"ex5_large_vocab": "over_budget"},
            ("ex5_large_vocab_solution",
             "    word_logits = (H.unsqueeze(1) @ Ww[cluster]).squeeze(1) + bw[cluster]  # [n, m]\n"
             "    log_p_word = log_softmax(word_logits)[rows, position]                   # [n]\n",
             "    all_words = torch.einsum(\"nd,cdm->ncm\", H, Ww) + bw  # [n, C, m]: all V words\n"
             "    log_p_word = torch.log_softmax(all_words, dim=2)[rows, cluster, position]\n")),
    mistake("softmax_python_loop", "softmax loops over the rows in Python (right values)",
            {"softmax": "over_budget"},
            ("softmax_solution",
             "    X_exp = torch.exp(X)\n"
             "    partition = X_exp.sum(1, keepdim=True)  # [n, 1]: broadcast over the q columns below\n"
             "    return X_exp / partition\n",
             "    out = torch.empty_like(X)\n"
             "    for i in range(X.shape[0]):\n"
             "        out[i] = torch.exp(X[i]) / torch.exp(X[i]).sum()\n"
             "    return out\n")),
    mistake("numpy_instead_of_tensor", "expected_cost returns a numpy array",
            {"ex4_decision": "error"},
            ("ex4_decision_solution", "return probs @ cost.T", "return (probs @ cost.T).numpy()")),
    mistake("softmax_modifies_input", "softmax exponentiates its input in place",
            {"softmax": "failed"},
            ("softmax_solution", "X_exp = torch.exp(X)", "X_exp = X.exp_()")),
]

HOSTILE = [
    hostile("loop_at_import", "an endless loop when the cells run",
            dict.fromkeys(["softmax", "net", "cross_entropy", "accuracy", "evaluate_accuracy",
                           "accumulator", "sgd", "train_epoch", "train", "predict",
                           "ex1_overflow", "ex2_log_domain", "ex3_stable_loss", "ex4_decision",
                           "ex5_large_vocab"], "timeout"),
            ("softmax_solution", "def softmax(X):", "while True:\n    pass\n\n\ndef softmax(X):")),
    hostile("loop_in_function", "an endless loop inside decide_with_reject",
            {"ex4_decision": "timeout"},
            ("ex4_decision_solution", "    confidence, label = probs.max(dim=1)\n",
             "    while True:\n        pass\n")),
    hostile("sleep_past_deadline", "get_fashion_mnist_labels sleeps an hour",
            {"predict": "timeout"},
            ("predict_solution", "    return [TEXT_LABELS[int(i)] for i in labels]",
             "    time.sleep(3600)\n    return [TEXT_LABELS[int(i)] for i in labels]")),
    hostile("memory_bomb", "two_level_log_prob reserves 1 GiB at a time until it fails",
            {"ex5_large_vocab": "error"},
            ("ex5_large_vocab_solution", "    m = Ww.shape[2]\n",
             "    hoard = [torch.empty(1 << 28) for _ in range(1 << 20)]  # 1 GiB each\n"
             "    m = Ww.shape[2]\n")),
    hostile("fork_bomb", "stable_softmax forks up to 1,000 sleeping children",
            {"ex3_stable_loss": "error"},
            ("ex3_stable_loss_solution", "    O_shifted = O - O.max(dim=1, keepdim=True).values\n"
             "    O_exp",
             "    for _ in range(1000):\n"
             "        if os.fork() == 0:\n"
             "            time.sleep(120)\n"
             "            os._exit(0)\n"
             "    O_shifted = O - O.max(dim=1, keepdim=True).values\n    O_exp")),
    hostile("disk_bomb", "expected_cost writes 60 MB files until the disk is full",
            {"ex4_decision": "error"},
            ("ex4_decision_solution", "    return probs @ cost.T",
             "    for i in range(1000):\n"
             "        Path(f\"fill{i}\").write_bytes(bytes(60 << 20))\n"
             "    return probs @ cost.T")),
    hostile("sys_exit", "naive_softmax_breaks calls sys.exit",
            {"ex1_overflow": "error"},
            ("ex1_overflow_solution", "    return torch.tensor([[overflow_threshold(dtype), 0.0]], dtype=dtype)",
             "    raise SystemExit(0)")),
    hostile("os_exit", "naive_cross_entropy_breaks ends its process with os._exit",
            {"ex2_log_domain": "crashed"},
            ("ex2_log_domain_solution", "    y_hat = softmax(torch.tensor([[0.0, -200.0]]))",
             "    os._exit(0)")),
    hostile("kill_itself", "bayes_decision sends itself SIGKILL",
            {"ex4_decision": "crashed"},
            ("ex4_decision_solution", "    return expected_cost(probs, cost).argmin(dim=1)",
             "    import signal\n    os.kill(os.getpid(), signal.SIGKILL)")),
    # no effect: the parent is the pid namespace's init, which ignores the signal
    hostile("kill_parent", "predict_ch3 sends its parent process SIGKILL",
            {},
            ("predict_solution", "    X, y = next(iter(test_iter))",
             "    import signal\n    os.kill(os.getppid(), signal.SIGKILL)\n"
             "    X, y = next(iter(test_iter))")),
    hostile("fake_results_line", "prints a perfect Gradescope results line when loaded",
            {}, ("softmax_solution", "def softmax(X):",
                 "print('{\"score\": 100, \"tests\": []}')\nprint('score 80 / 80')\n\n\n"
                 "def softmax(X):"), base="untouched"),
    hostile("write_results_json", "writes results.json wherever it can",
            {}, ("softmax_solution", "def softmax(X):",
                 "for target in ['results.json', '../results.json', '/tmp/results.json',\n"
                 "               '/autograder/results/results.json']:\n"
                 "    try:\n"
                 "        Path(target).write_text('{\"score\": 100}')\n"
                 "    except OSError:\n"
                 "        pass\n\n\ndef softmax(X):"), base="untouched"),
    # crashed: the patched isinstance breaks the harness's own replies in the child
    hostile("monkeypatch_torch", "patches torch's comparisons and builtins to always agree",
            {"softmax": "crashed"},
            ("softmax_solution", "def softmax(X):",
             "import builtins\n"
             "torch.allclose = lambda *args, **kwargs: True\n"
             "torch.equal = lambda *args, **kwargs: True\n"
             "torch.testing.assert_close = lambda *args, **kwargs: None\n"
             "builtins.isinstance = lambda *args: True\n\n\ndef softmax(X):"),
            base="wrong_softmax"),
    hostile("lying_tensor", "softmax returns a tensor subclass whose == and ops lie",
            {"softmax": "failed"},
            ("softmax_solution", "    return X  # not a softmax",
             "    class Liar(torch.Tensor):\n"
             "        def __eq__(self, other):\n"
             "            return True\n\n"
             "        @classmethod\n"
             "        def __torch_function__(cls, func, types, args=(), kwargs=None):\n"
             "            return True\n\n"
             "    return X.as_subclass(Liar)"), base="wrong_softmax"),
    hostile("nan_and_inf", "cross_entropy returns NaN and softmax inf",
            {"softmax": "failed", "cross_entropy": "failed"},
            ("softmax_solution", "    return X  # not a softmax", "    return X * float('inf')"),
            with_stub_replaced("cross_entropy_solution",
                               "    return torch.full((len(y),), float('nan'))"),
            base="wrong_softmax"),
    hostile("wrong_shape_and_dtype", "softmax transposed, in float64",
            {"softmax": "failed"},
            ("softmax_solution", "    return X  # not a softmax",
             "    return torch.softmax(X, dim=1).T.double()"), base="wrong_softmax"),
    hostile("import_grader", "imports the reference solution and the hidden tests",
            {"softmax": "error"},
            ("softmax_solution", "def softmax(X):",
             "from solutions.softmax_regression import softmax as reference  # steal it\n"
             "import grader.hidden.softmax\n\n\ndef softmax(X):"), base="wrong_softmax"),
    hostile("read_grader_files", "searches the file system for the reference and runs it",
            {"softmax": "failed"},
            ("softmax_solution", "def softmax(X):",
             "import glob\n"
             "import sys\n"
             "stolen = [path for root in ['/work', '/root', '/home', '/opt', '/srv', *sys.path]\n"
             "          for path in glob.glob(root + '/**/solutions/softmax_regression.py',\n"
             "                                recursive=True)]\n\n\ndef softmax(X):"),
            ("softmax_solution", "    return X  # not a softmax",
             "    if stolen:\n"
             "        namespace = {}\n"
             "        exec(Path(stolen[0]).read_text(), namespace)\n"
             "        return namespace['softmax'](X)\n"
             "    return X"), base="wrong_softmax"),
    hostile("read_environment", "reports the environment it sees in an error",
            {"softmax": "error"},
            ("softmax_solution", "    return X  # not a softmax",
             "    raise RuntimeError('ENVIRONMENT ' + ' '.join(sorted(os.environ)))"),
            base="wrong_softmax"),
    hostile("open_socket", "connects to the network to fetch answers",
            {"softmax": "failed"},
            ("softmax_solution", "    return X  # not a softmax",
             "    import socket\n"
             "    try:\n"
             "        socket.create_connection(('1.1.1.1', 53), timeout=2).close()\n"
             "        return torch.softmax(X, dim=1)  # the network answered\n"
             "    except OSError:\n"
             "        return X"), base="wrong_softmax"),
    hostile("detached_child", "leaves a process behind in a session of its own",
            {}, ("softmax_solution", "def softmax(X):",
                 "import subprocess\n"
                 "subprocess.Popen(['sleep', '313'], start_new_session=True)\n\n\n"
                 "def softmax(X):"), base="untouched"),
    hostile("edit_locked_cells", "defines softmax in a locked instructor cell",
            {}, ("given_sum_example", "X.sum(0, keepdim=True), X.sum(1, keepdim=True)",
                 "def softmax(X):\n    return torch.softmax(X, dim=1)"), base="untouched"),
    hostile("edit_test_cells", "rewrites the public test cell of softmax to define it",
            {}, ("softmax", "P = softmax(X)",
                 "softmax = lambda X: torch.softmax(X, dim=1)\nP = softmax(X)"),
            base="untouched"),
    Entry("delete_cells", "hostile", "the cell with net deleted",
          lambda: _without_cell("net_solution"), {"net": "error", "train": "error"},
          base="reference"),
]


def _without_cell(grade_id):
    notebook = source()
    notebook.cells.remove(cell_with_grade_id(notebook, grade_id))
    return nbformat.writes(notebook).encode()


def _nbformat3():
    cells = [{"cell_type": "code", "input": "print(1)", "language": "python", "outputs": [],
              "metadata": {}}]
    return json.dumps({"nbformat": 3, "nbformat_minor": 0, "metadata": {},
                       "worksheets": [{"cells": cells, "metadata": {}}]}).encode()


def _missing_cells():
    notebook = json.loads(nbformat.writes(source()))
    del notebook["cells"]
    return json.dumps(notebook).encode()


def _huge_outputs():
    """The reference with 50 MB of printed output in one cell."""
    notebook = source()
    cell = cell_with_grade_id(notebook, "softmax_solution")
    cell.outputs = [nbformat.v4.new_output("stream", name="stdout", text="x" * (50 << 20))]
    return nbformat.writes(notebook).encode()


def _markdown_only():
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# My answers")])
    return nbformat.writes(notebook).encode()


def _r_kernel():
    notebook = source()
    notebook.metadata["kernelspec"] = {"name": "ir", "display_name": "R", "language": "R"}
    notebook.metadata["language_info"] = {"name": "R"}
    return nbformat.writes(notebook).encode()


def _duplicate_grade_id():
    notebook = source()
    copy = nbformat.from_dict(cell_with_grade_id(notebook, "softmax_solution"))
    copy.id = "pasted-copy"  # Jupyter gives a pasted cell a new id, and keeps its metadata
    notebook.cells.append(copy)
    return nbformat.writes(notebook).encode()


MALFORMED = [
    malformed("invalid_json", "a notebook cut off half-way", "invalid JSON",
              lambda: nbformat.writes(source()).encode()[:5000]),
    malformed("nbformat3", "an nbformat 3 notebook", "nbformat 3", _nbformat3),
    malformed("missing_cells", "no 'cells' key", "cells", _missing_cells),
    malformed("empty", "an empty file", "empty", lambda: b""),
    malformed("binary", "a PNG named .ipynb", "not UTF-8",
              lambda: b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
    malformed("huge_outputs", "50 MB of outputs", "MB", _huge_outputs),
    malformed("no_code_cells", "only Markdown cells", "no code cells", _markdown_only),
    malformed("python_file", "a Python file renamed .ipynb", "invalid JSON",
              lambda: b"import torch\n\ndef softmax(X):\n    return torch.softmax(X, 1)\n"),
    malformed("r_kernel", "a notebook whose kernel is R", "kernel runs R", _r_kernel),
    malformed("duplicate_grade_id", "the softmax cell pasted twice", "more than once",
              _duplicate_grade_id),
]

ENTRIES = BASES + MISTAKES + HOSTILE + MALFORMED


def write(directory, entries=ENTRIES):
    """Write entries as DIR/<name>.ipynb; {name: path}."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    paths = {}
    for entry in entries:
        paths[entry.name] = directory / f"{entry.name}.ipynb"
        paths[entry.name].write_bytes(entry.make())
    return paths


if __name__ == "__main__":
    for name, path in write(sys.argv[1]).items():
        print(path)
