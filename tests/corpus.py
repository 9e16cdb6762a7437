"""The corpus: real students' code, buggy, half-finished, hostile and malformed
submissions, each made from the reference notebook (the source) or the release by
readable edits (a replaced line, a function's body or its whole definition), with
the outcome and the points the grader must give each part.

    .venv/bin/python tests/corpus.py DIR    # write every entry into DIR, to look at them

An entry's `expected` names only the parts that do not end as the base's do: every
other auto-graded part ends `passed` (on the reference) or `not_attempted` (on the
release), every written part `manual`. Points follow from the outcome (passed: all
of them; not_attempted: none; anything else: fewer than all) unless `scores` pins
them down where the rules of credit fix them (ASSIGNMENT.md, "Rules of credit").
A hostile entry names its `base`, the same notebook without the attack (its
control), which it may never outscore, part by part.
"""

import ast
import inspect
import json
import sys
import textwrap
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
import torch

from grader.hidden.manifest import function_points
from grader.notebook import cell_with_grade_id, find_parts, read_notebook, replace_in_cell

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "assignments" / "softmax_regression" / "softmax_regression.ipynb"
RELEASE = ROOT / "release" / "softmax_regression" / "softmax_regression.ipynb"
STUB = "    # YOUR CODE HERE\n    raise NotImplementedError()"

POINTS = {part.id: part.points for part in find_parts(read_notebook(SOURCE)) if not part.written}
"""{auto-graded part id: its points}."""
ANY = "any"
"""An outcome that is not asserted (a trick the grader may stop in more than one way)."""
FULL = "full"
"""All of a part's points."""
# The rules of credit: the Fashion-MNIST test of train (weight 3 of the part's 7.5)
# carries 2 of its 5 points; the other tests give the student's train_ch3 the book's
# train_epoch_ch3 and evaluate_accuracy.
TRAIN_WITHOUT_FASHION_MNIST = 3.0


def share(part, *functions):
    """The points of these functions of a part, as the manifest splits the part."""
    points = function_points(part, POINTS[part])
    return sum(points[f] for f in functions)


@dataclass
class Entry:
    """One submission of the corpus."""

    name: str
    """The file's stem; also how tests name it."""
    kind: str
    """'base', 'student' (real students' code), 'mistake', 'hostile' or 'malformed'."""
    what: str
    """The edit, in a few words."""
    make: Callable[[], bytes]
    """The file's bytes."""
    expected: dict[str, str] = field(default_factory=dict)
    """{part id: outcome (or ANY)} for the parts that do not end as the base's do."""
    on: str = "reference"
    """'reference' or 'release': what the untouched parts end as (passed / not_attempted)."""
    base: str | None = None
    """Hostile entries: the entry without the attack, whose score this one may not exceed."""
    error: str | None = None
    """Malformed entries: words the one-line error must contain."""
    scores: dict[str, object] = field(default_factory=dict)
    """{part id: FULL, exact points, or (low, high) inclusive} where the outcome alone does
    not say how many points the part earns."""
    words: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """{part id, or 'part: start of a test name': words} that the messages of its tests
    that lost points must contain (case-insensitive)."""


def source():
    return nbformat.read(SOURCE, as_version=4)


def release():
    return nbformat.read(RELEASE, as_version=4)


def edited(make_base, *edits):
    """A maker of the base notebook with edits applied: (grade_id, old, new) replacements,
    or functions that edit the notebook in place (see body, definition, before)."""
    def make():
        notebook = make_base()
        for edit in edits:
            if callable(edit):
                edit(notebook)
            else:
                replace_in_cell(notebook, *edit)
        return nbformat.writes(notebook).encode()
    return make


def _definition_node(cell, name):
    """The ast node of the def or class `name` ('Class.method' for a method) in a cell."""
    nodes = ast.parse(cell.source).body
    for part in name.split("."):
        node = next((n for n in nodes if isinstance(n, (ast.FunctionDef, ast.ClassDef))
                     and n.name == part), None)
        if node is None:
            raise ValueError(f"{name} is not defined in cell {cell.metadata.nbgrader.grade_id}")
        nodes = node.body
    return node


def _replace_lines(cell, start, end, code, indent):
    """Lines [start, end) (0-based) of the cell become `code`, indented by `indent` spaces."""
    lines = cell.source.split("\n")
    new = textwrap.indent(textwrap.dedent(code).strip("\n"), " " * indent).split("\n")
    cell.source = "\n".join(lines[:start] + new + lines[end:])


def body(grade_id, name, code):
    """An edit: the body of function `name` after its docstring (the release's stub, or the
    source's solution) becomes `code`."""
    def edit(notebook):
        cell = cell_with_grade_id(notebook, grade_id)
        node = _definition_node(cell, name)
        first = node.body[0]
        docstring = isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) \
            and isinstance(first.value.value, str)
        start = first.end_lineno if docstring else node.lineno
        _replace_lines(cell, start, node.end_lineno, code, node.body[-1].col_offset)
    return edit


def definition(grade_id, name, code):
    """An edit: the whole definition of `name` (a def or a class) becomes `code`."""
    def edit(notebook):
        cell = cell_with_grade_id(notebook, grade_id)
        node = _definition_node(cell, name)
        lines = cell.source.split("\n")
        end = node.end_lineno
        while end < len(lines) and lines[end].strip().startswith("### END SOLUTION"):
            end += 1  # the source's marker of the last solution block goes with it
        _replace_lines(cell, node.lineno - 1, end, code, node.col_offset)
    return edit


def before(grade_id, name, code):
    """An edit: `code` (imports, helpers) goes into the cell just above the definition of `name`."""
    def edit(notebook):
        cell = cell_with_grade_id(notebook, grade_id)
        node = _definition_node(cell, name)
        _replace_lines(cell, node.lineno - 1, node.lineno - 1, code + "\n\n", 0)
    return edit


def every_stub(body_of):
    """An edit of the release: every stub's function gets the body `body_of(args)`, where args
    are its parameter names (without self)."""
    def edit(notebook):
        for cell in notebook.cells:
            if cell.cell_type != "code" or "raise NotImplementedError()" not in cell.source:
                continue
            tree = ast.parse(cell.source)
            functions = [node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef)]
            # last first: each edit leaves the lines above it where they were
            for node in sorted(functions, key=lambda n: n.lineno, reverse=True):
                args = [a.arg for a in node.args.args if a.arg != "self"]
                qualified = next((f"{c.name}.{node.name}" for c in tree.body
                                  if isinstance(c, ast.ClassDef) and node in c.body), node.name)
                body(cell.metadata.nbgrader.grade_id, qualified, body_of(args))(notebook)
    return edit


def with_stub_replaced(grade_id, code):
    """An edit of the release: the stub of `grade_id` becomes `code` (function body lines)."""
    return (grade_id, STUB, code)


WRONG_SOFTMAX = with_stub_replaced("softmax_solution", "    return X  # not a softmax")


def mistake(name, what, expected, *edits, scores=None, words=None):
    return Entry(name, "mistake", what, edited(source, *edits), expected,
                 scores=scores or {}, words=words or {})


def hostile(name, what, expected, *edits, base="reference", scores=None, words=None):
    on = "reference" if base == "reference" else "release"
    make_base = source if base == "reference" else release
    extra = (WRONG_SOFTMAX,) if base == "wrong_softmax" else ()
    return Entry(name, "hostile", what, edited(make_base, *extra, *edits), expected, on, base,
                 scores=scores or {}, words=words or {})


# A notebook that reaches into the grader (patches torch or the builtins, builds code at
# run time, reads the call stack or sys.modules: grader/integrity.py) is not graded.
REFUSED = {"scores": dict.fromkeys(POINTS, 0.0), "words": {"softmax": ("not graded",)}}


def malformed(name, what, error, make):
    return Entry(name, "malformed", what, make, error=error)


BASES = [
    Entry("reference", "base", "the source notebook: every part solved", edited(source)),
    Entry("untouched", "base", "the release as handed out", edited(release), on="release"),
    Entry("wrong_softmax", "base", "the release with softmax returning its input",
          edited(release, WRONG_SOFTMAX), {"softmax": "failed"}, on="release",
          scores={"softmax": 0.0}),
]

# A bug costs only its part: net gets the book's softmax, train's tests other than
# Fashion-MNIST the book's train_epoch_ch3 and evaluate_accuracy; only the Fashion-MNIST
# test, with the student's own functions together, loses train's points, and names the
# function at fault.
MISTAKES = [
    mistake("softmax_dim0", "softmax normalises over dim 0 (columns)",
            {"softmax": "failed", "train": "failed", "ex2_log_domain": "failed"},
            ("softmax_solution", "X_exp.sum(1, keepdim=True)", "X_exp.sum(0, keepdim=True)"),
            # naive_cross_entropy_breaks builds its example with the student's softmax
            scores={"softmax": 0.0, "train": TRAIN_WITHOUT_FASHION_MNIST,
                    "ex2_log_domain": share("ex2_log_domain", "log_softmax")},
            words={"train": ("softmax",)}),
    mistake("stable_softmax_global_max", "stable_softmax subtracts the global max, not each row's",
            {"ex3_stable_loss": "failed"},
            ("ex3_stable_loss_solution", "O_shifted = O - O.max(dim=1, keepdim=True).values\n"
             "    O_exp", "O_shifted = O - O.max()\n    O_exp"),
            scores={"ex3_stable_loss": (share("ex3_stable_loss", "softmax_cross_entropy"),
                                        POINTS["ex3_stable_loss"])}),
    mistake("cross_entropy_mean", "cross_entropy returns the batch mean",
            {"cross_entropy": "failed", "train": "failed"},
            ("cross_entropy_solution", "return -torch.log(y_hat[rows, y])",
             "return -torch.log(y_hat[rows, y]).mean()"),
            scores={"train": TRAIN_WITHOUT_FASHION_MNIST}, words={"train": ("cross_entropy",)}),
    mistake("cross_entropy_epsilon", "cross_entropy smooths: -log(p + 1e-8)",
            {"cross_entropy": "failed"},
            ("cross_entropy_solution", "return -torch.log(y_hat[rows, y])",
             "return -torch.log(y_hat[rows, y] + 1e-8)")),
    # error, not failed: on an empty batch the fraction divides by zero
    mistake("accuracy_fraction", "accuracy returns the fraction correct, not the count",
            {"accuracy": "error", "train": "failed"},
            ("accuracy_solution", "return float(cmp.type(y.dtype).sum())",
             "return float(cmp.type(y.dtype).sum()) / len(y)"),
            # on a single row the fraction is the count: that test passes
            scores={"train": TRAIN_WITHOUT_FASHION_MNIST}, words={"train": ("accuracy",)}),
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
            ("sgd_solution", "            param.grad.zero_()\n", ""),
            scores={"train": TRAIN_WITHOUT_FASHION_MNIST}, words={"train": ("sgd",)}),
    mistake("sgd_divides_twice", "sgd divides by batch_size twice",
            {"sgd": "failed", "train": "failed"},
            ("sgd_solution", "param -= lr * param.grad / batch_size",
             "param -= lr * param.grad / batch_size / batch_size"),
            scores={"train": TRAIN_WITHOUT_FASHION_MNIST}, words={"train": ("sgd",)}),
    # train passes: its Fashion-MNIST run uses the function updater, whose branch is right
    mistake("summed_loss_with_optimizer", "train_epoch_ch3 gives an optimizer the summed loss",
            {"train_epoch": "failed"},
            ("train_epoch_solution", "l.mean().backward()", "l.sum().backward()")),
    # train passes: the Fashion-MNIST test judges the test accuracy, which this does not touch
    mistake("last_batch_counted_full", "train_epoch_ch3 counts the last, partial batch as full",
            {"train_epoch": "failed"},
            ("train_epoch_solution", "    for X, y in train_iter:\n",
             "    full = None\n    for X, y in train_iter:\n"
             "        full = full or y.numel()  # the first batch's size\n"),
            ("train_epoch_solution", "accuracy(y_hat, y), y.numel())",
             "accuracy(y_hat, y), full)")),
    mistake("train_without_history", "train_ch3 does not return its history",
            {"train": "failed"},
            ("train_solution", "    return history\n", "")),
    # predict_ch3 names its labels with the student's get_fashion_mnist_labels: both wrong
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
            ("ex4_decision_solution", "confidence < threshold", "confidence <= threshold"),
            scores={"ex4_decision": (share("ex4_decision", "expected_cost", "bayes_decision"),
                                     POINTS["ex4_decision"])}),
    # every cluster's words scored, normalised with the student's own log_softmax (from scratch)
    mistake("two_level_whole_vocabulary", "two-level softmax scoring all V words (right values)",
            {"ex5_large_vocab": "over_budget"},
            ("ex5_large_vocab_solution",
             "    word_logits = (H.unsqueeze(1) @ Ww[cluster]).squeeze(1) + bw[cluster]  # [n, m]\n"
             "    log_p_word = log_softmax(word_logits)[rows, position]                   # [n]\n",
             "    all_words = torch.einsum(\"nd,cdm->ncm\", H, Ww) + bw  # [n, C, m]: all V words\n"
             "    log_p_all = log_softmax(all_words.reshape(-1, m)).reshape(all_words.shape)\n"
             "    log_p_word = log_p_all[rows, cluster, position]\n")),
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
    # bayes_decision calls the student's expected_cost: both fail, decide_with_reject scores
    mistake("numpy_instead_of_tensor", "expected_cost returns a numpy array",
            {"ex4_decision": "error"},
            ("ex4_decision_solution", "return probs @ cost.T", "return (probs @ cost.T).numpy()"),
            scores={"ex4_decision": share("ex4_decision", "decide_with_reject")}),
    mistake("softmax_modifies_input", "softmax exponentiates its input in place",
            {"softmax": "failed"},
            ("softmax_solution", "X_exp = torch.exp(X)", "X_exp = X.exp_()")),
]


# Real students' code: the published chapter in its editions and ports, pasted in as a
# student would, changed only where the notebook's contract forces it (a loss vector
# instead of its mean, the number correct instead of the fraction, the history returned,
# eval mode and no_grad in evaluate_accuracy, sgd zeroing the gradients, net.train()).
# Written in this project in those editions' idioms, not copied.

def student(name, what, edits, expected=None, scores=None, words=None, make_base=source):
    return Entry(name, "student", what, edited(make_base, *edits), expected or {},
                 scores=scores or {}, words=words or {})


# d2l-zh / d2l 0.17, PyTorch, section 3.6 (sgd from 3.2), idiom by idiom.
BOOK = [
    definition("softmax_solution", "softmax", '''
        def softmax(X):
            X_exp = torch.exp(X)
            partition = X_exp.sum(1, keepdim=True)
            return X_exp / partition  # 这里应用了广播机制
        '''),
    definition("net_solution", "net", '''
        def net(X):
            return softmax(torch.matmul(X.reshape((-1, W.shape[0])), W) + b)
        '''),
    definition("cross_entropy_solution", "cross_entropy", '''
        def cross_entropy(y_hat, y):
            return - torch.log(y_hat[range(len(y_hat)), y])
        '''),
    definition("accuracy_solution", "accuracy", '''
        def accuracy(y_hat, y):  #@save
            """计算预测正确的数量"""
            if len(y_hat.shape) > 1 and y_hat.shape[1] > 1:
                y_hat = y_hat.argmax(axis=1)
            cmp = y_hat.type(y.dtype) == y
            return float(cmp.type(y.dtype).sum())
        '''),
    definition("evaluate_accuracy_solution", "evaluate_accuracy", '''
        def evaluate_accuracy(net, data_iter):  #@save
            """计算在指定数据集上模型的精度"""
            if isinstance(net, torch.nn.Module):
                net.eval()  # 将模型设置为评估模式
            metric = Accumulator(2)  # 正确预测数、预测总数
            with torch.no_grad():
                for X, y in data_iter:
                    metric.add(accuracy(net(X), y), y.numel())
            return metric[0] / metric[1]
        '''),
    definition("accumulator_solution", "Accumulator", '''
        class Accumulator:  #@save
            """在n个变量上累加"""
            def __init__(self, n):
                self.data = [0.0] * n

            def add(self, *args):
                self.data = [a + float(b) for a, b in zip(self.data, args)]

            def reset(self):
                self.data = [0.0] * len(self.data)

            def __getitem__(self, idx):
                return self.data[idx]
        '''),
    definition("sgd_solution", "sgd", '''
        def sgd(params, lr, batch_size):  #@save
            """小批量随机梯度下降"""
            with torch.no_grad():
                for param in params:
                    param -= lr * param.grad / batch_size
                    param.grad.zero_()
        '''),
    definition("train_epoch_solution", "train_epoch_ch3", '''
        def train_epoch_ch3(net, train_iter, loss, updater):  #@save
            """训练模型一个迭代周期（定义见第3章）"""
            # 将模型设置为训练模式
            if isinstance(net, torch.nn.Module):
                net.train()
            # 训练损失总和、训练准确度总和、样本数
            metric = Accumulator(3)
            for X, y in train_iter:
                # 计算梯度并更新参数
                y_hat = net(X)
                l = loss(y_hat, y)
                if isinstance(updater, torch.optim.Optimizer):
                    # 使用PyTorch内置的优化器和损失函数
                    updater.zero_grad()
                    l.mean().backward()
                    updater.step()
                else:
                    # 使用定制的优化器和损失函数
                    l.sum().backward()
                    updater(X.shape[0])
                metric.add(float(l.sum()), accuracy(y_hat, y), y.numel())
            # 返回训练损失和训练精度
            return metric[0] / metric[2], metric[1] / metric[2]
        '''),
    definition("predict_solution", "get_fashion_mnist_labels", '''
        def get_fashion_mnist_labels(labels):  #@save
            """返回Fashion-MNIST数据集的文本标签"""
            text_labels = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat',
                           'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot']
            return [text_labels[int(i)] for i in labels]
        '''),
    definition("predict_solution", "predict_ch3", '''
        def predict_ch3(net, test_iter, n=6):  #@save
            """预测标签（定义见第3章）"""
            for X, y in test_iter:
                break
            trues = get_fashion_mnist_labels(y)
            preds = get_fashion_mnist_labels(net(X).argmax(axis=1))
            titles = [true +'\\n' + pred for true, pred in zip(trues, preds)]
            show_images(X[0:n].reshape((n, 28, 28)), 1, n, titles=titles[0:n])
            return trues[0:n], preds[0:n]  # the notebook asks for the labels
        '''),
]
BOOK_TRAIN = """
def train_ch3(net, train_iter, test_iter, loss, num_epochs, updater):  #@save
    \"\"\"训练模型（定义见第3章）\"\"\"
    animator = Animator(xlabel='epoch', xlim=[1, num_epochs], ylim=[0.3, 0.9],
                        legend=['train loss', 'train acc', 'test acc'])
    history = []  # the notebook asks for the history
    for epoch in range(num_epochs):
        train_metrics = train_epoch_ch3(net, train_iter, loss, updater)
        test_acc = evaluate_accuracy(net, test_iter)
        animator.add(epoch + 1, train_metrics + (test_acc,))
        history.append(train_metrics + (test_acc,))
"""
# The book's sanity checks hold after its 10 epochs, not after the grader's 3: the
# notebook tells students to remove them.
BOOK_ASSERTS = """
    train_loss, train_acc = train_metrics
    assert train_loss < 0.5, train_loss
    assert train_acc <= 1 and train_acc > 0.7, train_acc
    assert test_acc <= 1 and test_acc > 0.7, test_acc
"""
RETURN_HISTORY = "    return history\n"

# d2l-en, the current edition (1.0), whose classes the notebook's functions replace:
# keepdims, list(range(...)) indexing, the Classifier's float32 comparison, the SGD
# class's step() and zero_grad(), the Trainer's backward() under no_grad.
D2L_EN = [
    body("softmax_solution", "softmax", '''
        X_exp = torch.exp(X)
        partition = X_exp.sum(1, keepdims=True)
        return X_exp / partition  # The broadcasting mechanism is applied here
        '''),
    body("net_solution", "net", '''
        X = X.reshape((-1, W.shape[0]))
        return softmax(torch.matmul(X, W) + b)
        '''),
    body("cross_entropy_solution", "cross_entropy", '''
        return -torch.log(y_hat[list(range(len(y_hat))), y])  # the book's .mean() is the loop's
        '''),
    body("accuracy_solution", "accuracy", '''
        if y_hat.dim() > 1 and y_hat.shape[-1] > 1:
            y_hat = y_hat.reshape((-1, y_hat.shape[-1])).argmax(axis=1)
        preds = y_hat.type(y.dtype)
        compare = (preds == y.reshape(-1)).type(torch.float32)
        return float(compare.sum())  # the book's compare.mean() is a fraction
        '''),
    body("evaluate_accuracy_solution", "evaluate_accuracy", '''
        if isinstance(net, nn.Module):
            net.eval()
        correct, total = 0.0, 0
        with torch.no_grad():
            for X, y in data_iter:
                correct += accuracy(net(X), y)
                total += y.numel()
        return correct / total
        '''),
    body("accumulator_solution", "Accumulator.__init__", "self.data = [0.0] * n"),
    body("accumulator_solution", "Accumulator.add", '''
        for i, value in enumerate(args):
            self.data[i] += float(value)
        '''),
    body("accumulator_solution", "Accumulator.reset", "self.data = [0.0 for _ in self.data]"),
    body("accumulator_solution", "Accumulator.__getitem__", "return self.data[idx]"),
    body("sgd_solution", "sgd", '''
        with torch.no_grad():  # step()
            for param in params:
                param -= lr * param.grad / batch_size
        for param in params:  # zero_grad()
            if param.grad is not None:
                param.grad.zero_()
        '''),
    body("train_epoch_solution", "train_epoch_ch3", '''
        if isinstance(net, nn.Module):
            net.train()
        metric = Accumulator(3)
        for X, y in train_iter:
            y_hat = net(X)
            l = loss(y_hat, y)
            if isinstance(updater, torch.optim.Optimizer):
                loss_value = l.mean()
                updater.zero_grad()
                with torch.no_grad():
                    loss_value.backward()
                    updater.step()
            else:
                loss_value = l.sum()
                with torch.no_grad():
                    loss_value.backward()
                    updater(X.shape[0])
            metric.add(l.sum(), accuracy(y_hat, y), y.numel())
        return metric[0] / metric[2], metric[1] / metric[2]
        '''),
    definition("train_solution", "train_ch3", '''
        def train_ch3(net, train_iter, test_iter, loss, num_epochs, updater):
            history = []
            for epoch in range(num_epochs):
                train_loss, train_acc = train_epoch_ch3(net, train_iter, loss, updater)
                history.append((train_loss, train_acc, evaluate_accuracy(net, test_iter)))
            return history
        '''),
    body("predict_solution", "get_fashion_mnist_labels", '''
        labels_text = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat',
                       'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot']
        return [labels_text[int(i)] for i in labels]
        '''),
    body("predict_solution", "predict_ch3", '''
        X, y = next(iter(test_iter))
        preds = net(X).argmax(axis=1)
        return get_fashion_mnist_labels(y[:n]), get_fashion_mnist_labels(preds[:n])
        '''),
]

# Dive-into-DL-PyTorch (ShusenTang), the Chinese port: X.exp(), torch.mm and view, the
# gather loss of shape [n, 1], .float().sum().item(), param.data updates, the loop of its
# train_ch3 with l.item() sums.
DIVE_INTO_DL = [
    body("softmax_solution", "softmax", '''
        X_exp = X.exp()
        partition = X_exp.sum(dim=1, keepdim=True)
        return X_exp / partition  # 这里应用了广播机制
        '''),
    body("net_solution", "net", "return softmax(torch.mm(X.view((-1, num_inputs)), W) + b)"),
    body("cross_entropy_solution", "cross_entropy",
         "return - torch.log(y_hat.gather(1, y.view(-1, 1)))"),
    body("accuracy_solution", "accuracy", '''
        if y_hat.dim() > 1 and y_hat.shape[1] > 1:
            y_hat = y_hat.argmax(dim=1)
        return (y_hat.long() == y).float().sum().item()
        '''),
    body("evaluate_accuracy_solution", "evaluate_accuracy", '''
        acc_sum, n = 0.0, 0
        if isinstance(net, torch.nn.Module):
            net.eval()  # 评估模式, 这会关闭dropout
        with torch.no_grad():
            for X, y in data_iter:
                acc_sum += (net(X).argmax(dim=1) == y).float().sum().item()
                n += y.shape[0]
        return acc_sum / n
        '''),
    body("accumulator_solution", "Accumulator.__init__", "self.data = [0.0] * n"),
    body("accumulator_solution", "Accumulator.add", '''
        for i, x in enumerate(args):
            self.data[i] += float(x)
        '''),
    body("accumulator_solution", "Accumulator.reset", "self.data = [0.0] * len(self.data)"),
    body("accumulator_solution", "Accumulator.__getitem__", "return self.data[idx]"),
    body("sgd_solution", "sgd", '''
        for param in params:
            param.data -= lr * param.grad / batch_size  # 注意这里更改param时用的param.data
            param.grad.data.zero_()
        '''),
    body("train_epoch_solution", "train_epoch_ch3", '''
        if isinstance(net, torch.nn.Module):
            net.train()
        train_l_sum, train_acc_sum, n = 0.0, 0.0, 0
        for X, y in train_iter:
            y_hat = net(X)
            l = loss(y_hat, y).sum()
            if isinstance(updater, torch.optim.Optimizer):
                updater.zero_grad()
                (l / y.shape[0]).backward()
                updater.step()
            else:
                l.backward()
                updater(y.shape[0])
            train_l_sum += l.item()
            train_acc_sum += (y_hat.argmax(dim=1) == y).sum().item()
            n += y.shape[0]
        return train_l_sum / n, train_acc_sum / n
        '''),
    definition("train_solution", "train_ch3", '''
        def train_ch3(net, train_iter, test_iter, loss, num_epochs, updater):
            history = []
            for epoch in range(num_epochs):
                train_l, train_acc = train_epoch_ch3(net, train_iter, loss, updater)
                test_acc = evaluate_accuracy(net, test_iter)
                print('epoch %d, loss %.4f, train acc %.3f, test acc %.3f'
                      % (epoch + 1, train_l, train_acc, test_acc))
                history.append((train_l, train_acc, test_acc))
            return history
        '''),
    body("predict_solution", "get_fashion_mnist_labels", '''
        text_labels = ['t-shirt', 'trouser', 'pullover', 'dress', 'coat',
                       'sandal', 'shirt', 'sneaker', 'bag', 'ankle boot']
        return [text_labels[int(i)] for i in labels]
        '''),
    body("predict_solution", "predict_ch3", '''
        X, y = next(iter(test_iter))
        true_labels = get_fashion_mnist_labels(y.numpy())
        pred_labels = get_fashion_mnist_labels(net(X).argmax(dim=1).numpy())
        return true_labels[:n], pred_labels[:n]
        '''),
]

# dsgiitr/d2l-pytorch: torch.sum(..., dim=1, keepdim=True), torch.gather(...).log() of shape
# [n, 1], y.size()[0], param.data.sub_.
DSGIITR = [
    body("softmax_solution", "softmax", '''
        X_exp = torch.exp(X)
        partition = torch.sum(X_exp, dim=1, keepdim=True)
        return X_exp / partition  # The broadcast mechanism is applied here
        '''),
    body("net_solution", "net",
         "return softmax(torch.matmul(X.reshape((-1, num_inputs)), W) + b)"),
    body("cross_entropy_solution", "cross_entropy",
         "return -torch.gather(y_hat, 1, y.unsqueeze(dim=1)).log()"),
    body("accuracy_solution", "accuracy", '''
        if y_hat.dim() > 1 and y_hat.shape[1] > 1:
            y_hat = y_hat.argmax(dim=1)
        return (y_hat.type(y.dtype) == y).float().sum().item()
        '''),
    body("evaluate_accuracy_solution", "evaluate_accuracy", '''
        if isinstance(net, torch.nn.Module):
            net.eval()
        acc_sum, n = 0.0, 0
        with torch.no_grad():
            for X, y in data_iter:
                acc_sum += (net(X).argmax(dim=1) == y).sum().item()
                n += y.size()[0]  # y.size()[0] = batch_size
        return acc_sum / n
        '''),
    body("sgd_solution", "sgd", '''
        for param in params:
            param.data.sub_(lr * param.grad / batch_size)
            param.grad.data.zero_()
        '''),
    body("train_epoch_solution", "train_epoch_ch3", '''
        if isinstance(net, torch.nn.Module):
            net.train()
        train_l_sum, train_acc_sum, n = 0.0, 0.0, 0
        for X, y in train_iter:
            y_hat = net(X)
            l = loss(y_hat, y)
            if isinstance(updater, torch.optim.Optimizer):
                updater.zero_grad()
                l.mean().backward()
                updater.step()
            else:
                l.sum().backward()
                updater(y.size()[0])
            train_l_sum += l.sum().item()
            train_acc_sum += (y_hat.argmax(dim=1) == y).sum().item()
            n += y.size()[0]
        return train_l_sum / n, train_acc_sum / n
        '''),
    body("predict_solution", "predict_ch3", '''
        for X, y in test_iter:
            break
        true_labels = get_fashion_mnist_labels(y.numpy())
        predicted_labels = get_fashion_mnist_labels(net(X).argmax(dim=1).numpy())
        return true_labels[:n], predicted_labels[:n]
        '''),
]

# The exercises as a Chinese solutions manual solves them: X.max(dim=1, keepdim=True)[0],
# log-sum-exp written out, gather(...).squeeze(1), einsum.
SOLUTIONS_MANUAL = [
    body("ex1_overflow_solution", "overflow_threshold", '''
        x = torch.log(torch.tensor(torch.finfo(dtype).max, dtype=torch.float64)).to(dtype)
        while torch.isinf(torch.exp(x)):  # 从 log(max) 附近往下找到有限值
            x = torch.nextafter(x, torch.tensor(0.0, dtype=dtype))
        while not torch.isinf(torch.exp(x)):  # 再往上走到第一个 inf
            x = torch.nextafter(x, torch.tensor(float('inf'), dtype=dtype))
        return x.item()
        '''),
    body("ex1_overflow_solution", "naive_softmax_breaks",
         "return torch.tensor([[1000.0, 1.0]], dtype=dtype)  # exp(1000) 在所有类型里都溢出"),
    body("ex2_log_domain_solution", "log_softmax", '''
        c = O.max(dim=1, keepdim=True)[0]
        return O - c - torch.log(torch.exp(O - c).sum(dim=1, keepdim=True))
        '''),
    body("ex2_log_domain_solution", "naive_cross_entropy_breaks", '''
        y_hat = torch.tensor([[1.0, 0.0]])  # 真实类别的概率是 0, log(0) = -inf
        y = torch.tensor([1])
        return y_hat, y
        '''),
    body("ex3_stable_loss_solution", "stable_softmax", '''
        O_exp = torch.exp(O - O.max(dim=1, keepdim=True)[0])
        return O_exp / O_exp.sum(dim=1, keepdim=True)
        '''),
    body("ex3_stable_loss_solution", "softmax_cross_entropy", '''
        c = O.max(dim=1, keepdim=True)[0]
        log_sum_exp = c.squeeze(1) + torch.log(torch.exp(O - c).sum(dim=1))
        return log_sum_exp - O[torch.arange(O.shape[0]), y]
        '''),
    body("ex4_decision_solution", "expected_cost", "return torch.matmul(probs, cost.t())"),
    body("ex4_decision_solution", "bayes_decision",
         "return expected_cost(probs, cost).argmin(dim=1)"),
    body("ex4_decision_solution", "decide_with_reject", '''
        max_prob, pred = probs.max(dim=1)
        pred[max_prob < threshold] = -1  # 置信度不够: 转给专家
        return pred
        '''),
    body("ex5_large_vocab_solution", "full_log_prob",
         "return log_softmax(H @ W + b).gather(1, y.view(-1, 1)).squeeze(1)"),
    body("ex5_large_vocab_solution", "two_level_log_prob", '''
        m = Ww.shape[2]
        c, j = y // m, y % m
        log_pc = log_softmax(H @ Wc + bc).gather(1, c.view(-1, 1)).squeeze(1)
        word_logits = torch.einsum('nd,ndm->nm', H, Ww[c]) + bw[c]
        log_pw = log_softmax(word_logits).gather(1, j.view(-1, 1)).squeeze(1)
        return log_pc + log_pw
        '''),
]

# Right values in the shape [n, 1]: half the points of those tests (ASSIGNMENT.md), so at
# most half of cross_entropy's; at least the half of its heaviest value test.
GATHER_LOSS = {"scores": {"cross_entropy": (0.25, POINTS["cross_entropy"] / 2)},
               "words": {"cross_entropy": ("1] - [", "broadcast"),
                         "cross_entropy: gradient": ("shape",)}}

STUDENTS = [
    student("book_chapter", "the book's chapter 3.6, its asserts removed as the notebook says",
            BOOK + [definition("train_solution", "train_ch3", BOOK_TRAIN + RETURN_HISTORY)]),
    student("book_chapter_asserts_kept", "the book's chapter 3.6 with train_ch3's sanity asserts",
            BOOK + [definition("train_solution", "train_ch3",
                               BOOK_TRAIN + BOOK_ASSERTS + RETURN_HISTORY)],
            # The asserts hold only after ten epochs on Fashion-MNIST: every training test
            # of the grader (3 epochs, toy data with half the test labels wrong) trips them.
            # The task says to remove them; the feedback names them.
            {"train": "error"}, scores={"train": 0.0},
            words={"train": ("assert train_loss < 0.5", "ten epochs")}),
    student("d2l_en_edition", "the current d2l-en edition's idioms", D2L_EN),
    student("dive_into_dl_pytorch", "the Chinese port Dive-into-DL-PyTorch's idioms",
            DIVE_INTO_DL, {"cross_entropy": "failed"}, **GATHER_LOSS),
    student("dsgiitr_d2l_pytorch", "dsgiitr/d2l-pytorch's idioms", DSGIITR,
            {"cross_entropy": "failed"}, **GATHER_LOSS),
    student("solutions_manual", "the exercises as a Chinese solutions manual solves them",
            SOLUTIONS_MANUAL),
]


# Credit per function: a function whose own body still raises the stub's
# NotImplementedError costs only its tests; its written siblings earn theirs, and a
# function that returns before a leftover stub line is attempted.
# indented as the bodies below are written, so that they dedent together
LEFTOVER_STUB = """
        # YOUR CODE HERE
        raise NotImplementedError()
"""
BISECTION = '''
    lo, hi = 0.0, torch.finfo(dtype).max
    while True:
        mid = torch.tensor((lo + hi) / 2, dtype=dtype).item()
        if mid in (lo, hi):
            return hi
        if torch.isinf(torch.exp(torch.tensor(mid, dtype=dtype))):
            hi = mid
        else:
            lo = mid
    '''
OWN_LOG_SOFTMAX = '''
        def rowwise_log_softmax(O):
            shifted = O - O.max(dim=1, keepdim=True).values
            return shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
'''

# One function of each part of several written, the others still stubs.
FIRST_WRITTEN = [
    body("softmax_solution", "softmax", '''
        X_exp = torch.exp(X)
        return X_exp / X_exp.sum(1, keepdim=True)
        ''' + LEFTOVER_STUB),
    body("accuracy_solution", "accuracy", '''
        if y_hat.dim() > 1 and y_hat.shape[1] > 1:
            y_hat = y_hat.argmax(dim=1)
        return float((y_hat.type(y.dtype) == y).sum())
        ''' + LEFTOVER_STUB),
    body("predict_solution", "get_fashion_mnist_labels",
         "return [TEXT_LABELS[int(i)] for i in labels]"),
    body("ex1_overflow_solution", "overflow_threshold", BISECTION),
    body("ex2_log_domain_solution", "log_softmax", '''
        shifted = O - O.max(dim=1, keepdim=True).values
        return shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
        '''),
    body("ex3_stable_loss_solution", "stable_softmax", '''
        O_exp = torch.exp(O - O.max(dim=1, keepdim=True).values)
        return O_exp / O_exp.sum(dim=1, keepdim=True)
        '''),
    body("ex4_decision_solution", "expected_cost", "return probs @ cost.T"),
    body("ex5_large_vocab_solution", "full_log_prob", '''
        rows = torch.arange(H.shape[0], device=H.device)
        return log_softmax(H @ W + b)[rows, y]
        '''),
]
# The others written: bayes_decision calls the stub expected_cost (attempted, and it
# fails); the rest stand on their own.
OTHERS_WRITTEN = [
    body("predict_solution", "predict_ch3", '''
        X, y = next(iter(test_iter))
        predicted = net(X).argmax(dim=1)
        return [TEXT_LABELS[int(i)] for i in y[:n]], [TEXT_LABELS[int(i)] for i in predicted[:n]]
        '''),
    body("ex1_overflow_solution", "naive_softmax_breaks",
         "return torch.tensor([[1000.0, 0.0]], dtype=dtype)"),
    body("ex2_log_domain_solution", "naive_cross_entropy_breaks",
         "return torch.tensor([[1.0, 0.0]]), torch.tensor([1])"),
    body("ex3_stable_loss_solution", "softmax_cross_entropy", OWN_LOG_SOFTMAX + '''
        rows = torch.arange(O.shape[0], device=O.device)
        return -rowwise_log_softmax(O)[rows, y]
        '''),
    body("ex4_decision_solution", "bayes_decision",
         "return expected_cost(probs, cost).argmin(dim=1)"),
    body("ex4_decision_solution", "decide_with_reject", '''
        confidence, label = probs.max(dim=1)
        return torch.where(confidence < threshold, torch.full_like(label, -1), label)
        '''),
    body("ex5_large_vocab_solution", "two_level_log_prob", OWN_LOG_SOFTMAX + '''
        m = Ww.shape[2]
        cluster, position = y // m, y % m
        rows = torch.arange(H.shape[0], device=H.device)
        word_logits = (H.unsqueeze(1) @ Ww[cluster]).squeeze(1) + bw[cluster]
        return (rowwise_log_softmax(H @ Wc + bc)[rows, cluster]
                + rowwise_log_softmax(word_logits)[rows, position])
        '''),
]
EXERCISES = ["ex1_overflow", "ex2_log_domain", "ex3_stable_loss", "ex4_decision",
             "ex5_large_vocab"]


PARTLY_WRITTEN = [
    Entry("first_functions_written", "mistake",
          "the first function of each part written, the others stubs; softmax and accuracy "
          "return above a leftover stub line",
          edited(release, *FIRST_WRITTEN),
          {"softmax": "passed", "accuracy": "passed", "predict": "partial",
           **dict.fromkeys(EXERCISES, "partial")}, on="release",
          scores={"softmax": FULL, "accuracy": FULL,
                  "predict": share("predict", "get_fashion_mnist_labels"),
                  "ex1_overflow": share("ex1_overflow", "overflow_threshold"),
                  "ex2_log_domain": share("ex2_log_domain", "log_softmax"),
                  "ex3_stable_loss": share("ex3_stable_loss", "stable_softmax"),
                  "ex4_decision": share("ex4_decision", "expected_cost"),
                  "ex5_large_vocab": share("ex5_large_vocab", "full_log_prob")},
          words={"predict": ("predict_ch3",), "ex1_overflow": ("naive_softmax_breaks",),
                 "ex2_log_domain": ("naive_cross_entropy_breaks",),
                 "ex3_stable_loss": ("softmax_cross_entropy",),
                 "ex4_decision": ("bayes_decision", "decide_with_reject"),
                 "ex5_large_vocab": ("two_level_log_prob",)}),
    Entry("other_functions_written", "mistake",
          "the other functions of each part written, the first ones stubs",
          edited(release, *OTHERS_WRITTEN),
          {"predict": "partial", "ex4_decision": "error",
           **dict.fromkeys(["ex1_overflow", "ex2_log_domain", "ex3_stable_loss",
                            "ex5_large_vocab"], "partial")}, on="release",
          scores={"predict": share("predict", "predict_ch3"),
                  "ex1_overflow": share("ex1_overflow", "naive_softmax_breaks"),
                  "ex2_log_domain": share("ex2_log_domain", "naive_cross_entropy_breaks"),
                  "ex3_stable_loss": share("ex3_stable_loss", "softmax_cross_entropy"),
                  "ex4_decision": share("ex4_decision", "decide_with_reject"),
                  "ex5_large_vocab": share("ex5_large_vocab", "two_level_log_prob")},
          words={"predict": ("get_fashion_mnist_labels",), "ex1_overflow": ("overflow_threshold",),
                 "ex2_log_domain": ("log_softmax",), "ex3_stable_loss": ("stable_softmax",),
                 "ex4_decision": ("expected_cost",), "ex5_large_vocab": ("full_log_prob",)}),
]

# A bug costs only its part: a right train_ch3 beside a broken train_epoch_ch3 keeps
# train's own tests (they give it the book's train_epoch_ch3) and loses only the
# Fashion-MNIST run, whose message names train_epoch_ch3.
BROKEN_EPOCH = [
    # batch_size is defined only by the demonstration cell that loads the data
    mistake("train_epoch_demo_global", "train_epoch_ch3 calls updater(batch_size), a global "
            "only a demonstration cell defines",
            {"train_epoch": "error", "train": "error"},
            ("train_epoch_solution", "updater(X.shape[0])", "updater(batch_size)"),
            scores={"train": TRAIN_WITHOUT_FASHION_MNIST},
            words={"train_epoch": ("batch_size", "demonstration"),
                   "train": ("train_epoch_ch3",)}),
    mistake("train_epoch_mean_for_sgd", "train_epoch_ch3 backpropagates the mean loss for sgd",
            {"train_epoch": "failed", "train": "failed"},
            ("train_epoch_solution", "l.sum().backward()", "l.mean().backward()"),
            scores={"train": TRAIN_WITHOUT_FASHION_MNIST}, words={"train": ("train_epoch_ch3",)}),
]

# The feedback cases of issue 10: each message names the mistake.
FEEDBACK = [
    mistake("softmax_in_float32", "softmax computes in float32 whatever the input's dtype",
            {"softmax": "failed"},
            ("softmax_solution", "X_exp = torch.exp(X)", "X_exp = torch.exp(X.float())"),
            ("softmax_solution", "return X_exp / partition",
             "return (X_exp / partition).to(X.dtype)"),
            words={"softmax": ("float32", "precision")}),
    mistake("stable_softmax_whole_sum", "stable_softmax divides by the sum of the whole matrix",
            {"ex3_stable_loss": "failed"},
            ("ex3_stable_loss_solution", "return O_exp / O_exp.sum(dim=1, keepdim=True)",
             "return O_exp / O_exp.sum()"),
            scores={"ex3_stable_loss": (share("ex3_stable_loss", "softmax_cross_entropy"),
                                        POINTS["ex3_stable_loss"])},
            words={"ex3_stable_loss": ("whole matrix",)}),
]


# From scratch: softmax, cross_entropy, log_softmax, stable_softmax, softmax_cross_entropy
# and two_level_log_prob may not call the library's softmax, log-softmax, log-sum-exp,
# cross-entropy or NLL, in any spelling. A violating function earns nothing for its value
# tests, and its message names the call; its right siblings (naive_cross_entropy_breaks,
# full_log_prob) and the parts that use it (net, train) keep their points.
FROM_SCRATCH_FUNCTIONS = {
    "softmax": ("softmax_solution", "softmax"),
    "cross_entropy": ("cross_entropy_solution", "cross_entropy"),
    "log_softmax": ("ex2_log_domain_solution", "log_softmax"),
    "stable_softmax": ("ex3_stable_loss_solution", "stable_softmax"),
    "softmax_cross_entropy": ("ex3_stable_loss_solution", "softmax_cross_entropy"),
    "two_level_log_prob": ("ex5_large_vocab_solution", "two_level_log_prob"),
}
TWO_LEVEL = '''
        m = Ww.shape[2]
        cluster, position = y // m, y % m
        rows = torch.arange(H.shape[0], device=H.device)
        word_logits = (H.unsqueeze(1) @ Ww[cluster]).squeeze(1) + bw[cluster]
        return {cluster_level}[rows, cluster] + {word_level}[rows, position]
        '''


def library_calls(bodies, preludes=()):
    """Edits of the source: each from-scratch function's body from `bodies`; `preludes` are
    (grade_id, function, imports or aliases) placed above that function."""
    edits = [before(grade_id, name, code) for grade_id, name, code in preludes]
    return edits + [body(*FROM_SCRATCH_FUNCTIONS[function], code)
                    for function, code in bodies.items()]


def from_scratch_entry(name, what, edits, words):
    return mistake(name, what, dict.fromkeys(
        ["softmax", "cross_entropy", "ex2_log_domain", "ex3_stable_loss", "ex5_large_vocab"],
        "failed"), *edits,
        scores={"softmax": 0.0, "cross_entropy": 0.0, "ex3_stable_loss": 0.0,
                "ex2_log_domain": share("ex2_log_domain", "naive_cross_entropy_breaks"),
                "ex5_large_vocab": share("ex5_large_vocab", "full_log_prob")},
        words=words)


FROM_SCRATCH = [
    from_scratch_entry("library_calls_direct", "each from-scratch function calls the library",
                       library_calls({
                           "softmax": "return torch.softmax(X, dim=1)",
                           "cross_entropy":
                               'return F.nll_loss(torch.log(y_hat), y, reduction="none")',
                           "log_softmax": "return O - torch.logsumexp(O, dim=1, keepdim=True)",
                           "stable_softmax": "return F.softmax(O, dim=1)",
                           "softmax_cross_entropy":
                               "return nn.CrossEntropyLoss(reduction='none')(O, y)",
                           "two_level_log_prob": TWO_LEVEL.format(
                               cluster_level="torch.log_softmax(H @ Wc + bc, dim=1)",
                               word_level="word_logits.log_softmax(dim=1)")}),
                       {"softmax": ("softmax", "line"), "cross_entropy": ("nll_loss", "line"),
                        "ex2_log_domain": ("logsumexp", "line"),
                        "ex3_stable_loss": ("softmax", "cross", "line"),
                        "ex5_large_vocab": ("log_softmax", "line")}),
    from_scratch_entry("library_calls_aliased", "each from-scratch function calls the library "
                       "through an alias",
                       library_calls({
                           "softmax": "return fn.softmax(X, dim=1)",
                           "cross_entropy":
                               'return tf.cross_entropy(torch.log(y_hat), y, reduction="none")',
                           "log_softmax": "return O - logsumexp(O, 1, keepdim=True)",
                           "stable_softmax": 'return getattr(torch, "soft" + "max")(O, dim=1)',
                           "softmax_cross_entropy": '''
                               rows = torch.arange(O.shape[0], device=O.device)
                               return -tnf.log_softmax(O, 1)[rows, y]
                               ''',
                           "two_level_log_prob": TWO_LEVEL.format(
                               cluster_level="log_probabilities(H @ Wc + bc, 1)",
                               word_level="log_probabilities(word_logits, 1)")},
                           [("softmax_solution", "softmax",
                             "from torch.nn import functional as fn"),
                            ("cross_entropy_solution", "cross_entropy",
                             "import torch.nn.functional as tf"),
                            ("ex2_log_domain_solution", "log_softmax",
                             "logsumexp = torch.logsumexp"),
                            ("ex3_stable_loss_solution", "stable_softmax",
                             "import torch.nn.functional as tnf"),
                            ("ex5_large_vocab_solution", "full_log_prob",
                             "log_probabilities = torch.log_softmax")]),
                       {"softmax": ("softmax", "line"), "cross_entropy": ("cross_entropy", "line"),
                        "ex2_log_domain": ("logsumexp", "line"),
                        "ex3_stable_loss": ("getattr", "log_softmax", "line"),
                        "ex5_large_vocab": ("log_softmax", "line")}),
    from_scratch_entry("library_calls_aliased_again", "each from-scratch function calls the "
                       "library through another alias",
                       library_calls({
                           "softmax": 'return getattr(X, "soft" + "max")(1)',
                           "cross_entropy": "return per_example_nll(y_hat.log(), y)",
                           "log_softmax": "return fn.log_softmax(O, dim=1)",
                           "stable_softmax": "return tf.softmax(O, 1)",
                           "softmax_cross_entropy":
                               'return getattr(F, "cross_" + "entropy")(O, y, reduction="none")',
                           "two_level_log_prob": TWO_LEVEL.format(
                               cluster_level="(H @ Wc + bc - lse(H @ Wc + bc, 1, keepdim=True))",
                               word_level="(word_logits - lse(word_logits, 1, keepdim=True))")},
                           [("cross_entropy_solution", "cross_entropy",
                             'per_example_nll = nn.NLLLoss(reduction="none")'),
                            ("ex2_log_domain_solution", "log_softmax",
                             "from torch.nn import functional as fn"),
                            ("ex3_stable_loss_solution", "stable_softmax",
                             "import torch.nn.functional as tf"),
                            ("ex5_large_vocab_solution", "full_log_prob",
                             "from torch import logsumexp as lse")]),
                       {"softmax": ("getattr", "softmax", "line"),
                        "cross_entropy": ("NLLLoss", "line"),
                        "ex2_log_domain": ("log_softmax", "line"),
                        "ex3_stable_loss": ("softmax", "cross_entropy", "line"),
                        "ex5_large_vocab": ("logsumexp", "line")}),
]


# Attacks on the measurements (issue 11), each beside its control. The control
# `sloppy` is slow or wrong where the attacks cheat: Python loops over groups of rows in
# softmax, accuracy and log_softmax (right values, far past their time budgets),
# stable_softmax shifting its input in place, softmax_cross_entropy with a detached
# normaliser (right values, wrong gradient), evaluate_accuracy without no_grad,
# train_epoch_ch3 without net.train() and an sgd dividing by batch_size twice (so the
# Fashion-MNIST run fails). Each attack is sloppy plus one trick.
LOOPS = {
    "softmax": ("softmax_solution", "softmax", '''
        out = torch.empty_like(X)
        for start in range(0, X.shape[0], 32):  # 32 examples at a time
            rows = torch.exp(X[start:start + 32])
            out[start:start + 32] = rows / rows.sum(1, keepdim=True)
        return out
        '''),
    "accuracy": ("accuracy_solution", "accuracy", '''
        correct = 0.0
        for start in range(0, len(y), 32):
            scores, labels = y_hat[start:start + 32], y[start:start + 32]
            if scores.dim() > 1 and scores.shape[1] > 1:
                scores = scores.argmax(dim=1)
            correct += float((scores.type(labels.dtype) == labels).sum())
        return correct
        '''),
    "log_softmax": ("ex2_log_domain_solution", "log_softmax", '''
        out = torch.empty_like(O)
        for start in range(0, O.shape[0], 32):
            rows = O[start:start + 32]
            shifted = rows - rows.max(dim=1, keepdim=True).values
            out[start:start + 32] = shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
        return out
        '''),
}
VECTORISED = {
    "softmax": '''
        X_exp = torch.exp(X)
        return X_exp / X_exp.sum(1, keepdim=True)
        ''',
    "accuracy": '''
        if y_hat.dim() > 1 and y_hat.shape[1] > 1:
            y_hat = y_hat.argmax(dim=1)
        return float((y_hat.type(y.dtype) == y).sum())
        ''',
    "log_softmax": '''
        shifted = O - O.max(dim=1, keepdim=True).values
        return shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
        ''',
}
IN_PLACE_SHIFT = '''
        O -= O.max(dim=1, keepdim=True).values  # shifted in place: saves a copy
        O_exp = torch.exp(O)
        return O_exp / O_exp.sum(dim=1, keepdim=True)
        '''
SLOPPY = [
    *(body(*LOOPS[name]) for name in LOOPS),
    body("ex3_stable_loss_solution", "stable_softmax", IN_PLACE_SHIFT),
    body("ex3_stable_loss_solution", "softmax_cross_entropy", '''
        rows = torch.arange(O.shape[0], device=O.device)
        shift = O.max(dim=1, keepdim=True).values
        log_norm = (shift + torch.log(torch.exp(O - shift).sum(dim=1, keepdim=True))).detach()
        return log_norm.squeeze(1) - O[rows, y]
        '''),
    ("evaluate_accuracy_solution",
     "    with torch.no_grad():  # evaluation needs no graph: saves memory and time\n"
     "        for X, y in data_iter:\n"
     "            metric.add(accuracy(net(X), y), y.numel())",
     "    for X, y in data_iter:\n        metric.add(accuracy(net(X), y), y.numel())"),
    ("train_epoch_solution", "    if isinstance(net, nn.Module):\n        net.train()\n", ""),
    ("sgd_solution", "param -= lr * param.grad / batch_size",
     "param -= lr * param.grad / batch_size / batch_size"),
]
# The 32-row loops of softmax and log_softmax pass: 512 vectorised steps are no loop over
# examples, which is what budgets catch (accuracy's loop is per row).
SLOPPY_EXPECTED = {"accuracy": "over_budget", "ex3_stable_loss": "failed",
                   "evaluate_accuracy": "failed", "train_epoch": "failed", "sgd": "failed",
                   "train": "failed"}
CONTROL = Entry("sloppy", "base", "slow loops, in-place shift, detached normaliser, no no_grad, "
                "no net.train(), sgd dividing twice: the attacks' control",
                edited(source, *SLOPPY), SLOPPY_EXPECTED,
                scores={"train": TRAIN_WITHOUT_FASHION_MNIST}, words={"train": ("sgd",)})


def attack(name, what, *edits):
    """Sloppy plus a trick; scored against sloppy, part by part. Outcomes are not asserted:
    the grader may stop a trick where it acts or refuse the whole notebook for it."""
    return Entry(name, "hostile", what, edited(source, *SLOPPY, *edits),
                 dict.fromkeys(POINTS, ANY), base="sloppy")


FEWER_ROUNDS = '''
import sys


def one_call_per_round(read_message):
    """The harness's reader, except that a request to repeat a call asks for one call."""
    def read(*args, **kwargs):
        header, blobs = read_message(*args, **kwargs)
        if "repeat" in str(header.get("op")) or "time" in str(header.get("op")):
            items = header.get("args", {}).get("items", [])
            for i, item in enumerate(items):
                if type(item) is int and item > 1:
                    items[i] = 1
            if type(header.get("times")) is int:
                header["times"] = 1
        return header, blobs
    return read


for module in list(sys.modules.values()):
    if callable(getattr(module, "read_message", None)) and hasattr(module, "write_message"):
        module.read_message = one_call_per_round(module.read_message)
'''
REMEMBERED = '''
def remembered(function):
    """function, except that a call on the very objects of its last call answers from memory
    (the objects are kept alive, so their id()s stay theirs)."""
    last = {}

    def call(*args):
        if last.get("ids") != [id(a) for a in args]:
            last.update(ids=[id(a) for a in args], args=args, result=function(*args))
        return last["result"]
    return call
'''
WATCHED = '''
import sys


def watched_by(*words):
    """Whether a caller up the stack is a request of the grader's named by one of `words`
    (the name of its function, or the `op` it is serving)."""
    frame = sys._getframe(2)
    while frame is not None:
        names = (frame.f_code.co_name, str(frame.f_locals.get("op")))
        if any(word in name for word in words for name in names):
            return True
        frame = frame.f_back
    return False
'''
FORGE_CALL_LOG = '''
import sys


def forge_call_log(net, position, value):
    """Set entry[position] = value in the grader's log of net's calls, wherever it is kept
    (the module's attribute, the function's closure, a caller's local list)."""
    logs = [getattr(net, "calls", None)]
    logs += [cell.cell_contents for cell in getattr(net, "__closure__", None) or ()]
    frame = sys._getframe(1)
    while frame is not None:
        logs += list(frame.f_locals.values())
        frame = frame.f_back
    for log in logs:
        if isinstance(log, list):
            for entry in log:
                if isinstance(entry, list) and len(entry) == 3 \\
                        and isinstance(entry[position], bool):
                    entry[position] = value
'''
HONEST_LOOKING_HELPERS = '''
import sys


def untouched_inputs(honest):
    """The harness's input check, run on copies: the inputs always come back as sent."""
    def check(namespace, name, inputs, *rest):
        copies = [x.clone() if isinstance(x, torch.Tensor) else x for x in inputs]
        honest(namespace, name, copies, *rest)
        return list(inputs)
    return check


def library_gradient(honest):
    """The harness's gradient check, which differentiates F.cross_entropy instead of
    softmax_cross_entropy."""
    def check(namespace, name, *rest):
        if name == "softmax_cross_entropy":
            namespace = {**namespace, name: lambda O, y: F.cross_entropy(O, y, reduction="none")}
        return honest(namespace, name, *rest)
    return check


for module in list(sys.modules.values()):
    if callable(getattr(module, "inputs_after_call", None)):
        module.inputs_after_call = untouched_inputs(module.inputs_after_call)
    if callable(getattr(module, "loss_gradient", None)):
        module.loss_gradient = library_gradient(module.loss_gradient)
'''
OWN_TRAINING = '''
    if net is globals().get("net"):  # the notebook's own model: train its W and b my way
        loss = lambda y_hat, y: F.nll_loss(torch.log(y_hat), y, reduction="none")
        updater = torch.optim.SGD([W, b], lr=0.1)
'''


def watched_loop(name):
    """The loop of `name`, except that under the grader's timer it runs vectorised."""
    grade_id, function, loop = LOOPS[name]
    fast = textwrap.indent(textwrap.dedent(VECTORISED[name]).strip(), "    ")
    return body(grade_id, function, 'if watched_by("repeat", "timed", "budget"):\n'
                + fast + "\n" + textwrap.dedent(loop).strip())


ATTACKS = [
    attack("patch_read_message", "patches the harness's reader so that a timed round makes "
           "one call",
           before("softmax_solution", "softmax", FEWER_ROUNDS)),
    attack("cache_by_id", "the loops answer repeated calls on the same objects from memory",
           before("softmax_solution", "softmax", REMEMBERED),
           ("softmax_solution", "def softmax(X):", "@remembered\ndef softmax(X):"),
           ("accuracy_solution", "def accuracy(y_hat, y):", "@remembered\ndef accuracy(y_hat, y):"),
           ("ex2_log_domain_solution", "def log_softmax(O):", "@remembered\ndef log_softmax(O):")),
    attack("watched_frames", "reads its callers' frames: vectorised only under the timer, "
           "stable_softmax in place except under the input check",
           before("softmax_solution", "softmax", WATCHED),
           *(watched_loop(name) for name in LOOPS),
           body("ex3_stable_loss_solution", "stable_softmax",
                'if watched_by("inputs_after_call", "input"):\n    O = O.clone()\n'
                + textwrap.dedent(IN_PLACE_SHIFT))),
    attack("forged_evidence", "rewrites the call logs of evaluate_accuracy and train_epoch_ch3, "
           "replaces the input and gradient checks, and trains W, b itself in train_ch3",
           before("evaluate_accuracy_solution", "evaluate_accuracy", FORGE_CALL_LOG),
           ("evaluate_accuracy_solution", "    return metric[0] / metric[1]",
            "    forge_call_log(net, 1, False)  # 'no gradient was recorded'\n"
            "    return metric[0] / metric[1]"),
           ("train_epoch_solution", "    return metric[0] / metric[2]",
            "    forge_call_log(net, 0, True)  # 'the module was in training mode'\n"
            "    return metric[0] / metric[2]"),
           before("ex3_stable_loss_solution", "stable_softmax", HONEST_LOOKING_HELPERS),
           ("train_solution", "    history = []\n",
            OWN_TRAINING.lstrip("\n") + "    history = []\n")),
]


# Answers copied out of feedback, into a table keyed by the inputs' shapes: the hidden
# tests' calls as they are made today, each answered by the reference solution (more
# than any feedback shows). Inputs drawn per submission make every answer stale.
def signature_of(value):
    """A call argument as the table keys it: a tensor by dtype and shape, anything else by repr."""
    if isinstance(value, torch.Tensor):
        return f"{str(value.dtype).removeprefix('torch.')}{list(value.shape)}"
    return repr(value)


class Harvester:
    """A Student of grader.hidden that answers each plain call of a tensor with the
    reference solution's result and writes it down under the call's signature."""

    def __init__(self, reference):
        self.reference = reference
        self.table = {}

    def call(self, name, *args):
        result = getattr(self.reference, name)(*args)
        if any(isinstance(a, torch.Tensor) for a in args) and name != "net":
            self.table.setdefault("|".join([name, *map(signature_of, args)]), []).append(
                ["tensor", str(result.dtype).removeprefix("torch."), list(result.shape),
                 result.tolist()] if isinstance(result, torch.Tensor) else ["value", result])
        return result

    def has(self, name):
        return hasattr(self.reference, name)

    def set_global(self, name, value):
        raise LookupError("globals are not harvested")

    def scenario(self, name, *args):
        raise LookupError("scenarios are not harvested")


def harvest():
    """{signature: [answers in the order the hidden tests asked]} of today's hidden tests."""
    from types import SimpleNamespace

    from grader.judge import hidden_tests_by_part
    from solutions import exercises, softmax_regression

    reference = SimpleNamespace(**{**vars(softmax_regression), **vars(exercises)})
    harvester = Harvester(reference)
    for tests in hidden_tests_by_part().values():
        for test in tests:
            try:
                test.run(harvester)
            except Exception:  # a test that needs a scenario or a global: nothing to copy
                continue
    return harvester.table


ANSWER = '''
import json

HARVESTED = json.loads(r"""{table}""")
asked = {{}}


{signature_of}

def answer(name, *args):
    """What the feedback showed for the call of `name` on inputs of these shapes, in turn."""
    key = "|".join([name, *map(signature_of, args)])
    answers = HARVESTED.get(key) or [["value", 0.0]]
    asked[key] = asked.get(key, -1) + 1
    kind, *value = answers[asked[key] % len(answers)]
    if kind == "tensor":
        dtype, shape, values = value
        return torch.tensor(values, dtype=getattr(torch, dtype)).reshape(shape)
    return value[0]
'''
TABLE_ANSWERED = {
    "softmax_solution": ["softmax"], "cross_entropy_solution": ["cross_entropy"],
    "accuracy_solution": ["accuracy"], "ex2_log_domain_solution": ["log_softmax"],
    "ex3_stable_loss_solution": ["stable_softmax", "softmax_cross_entropy"],
    "ex4_decision_solution": ["expected_cost", "bayes_decision", "decide_with_reject"],
    "ex5_large_vocab_solution": ["full_log_prob", "two_level_log_prob"],
}


def answer_table():
    """The release answering from the harvested table."""
    notebook = release()
    table = json.dumps(harvest())
    before("softmax_solution", "softmax", ANSWER.format(
        table=table, signature_of=inspect.getsource(signature_of)))(notebook)
    for grade_id, functions in TABLE_ANSWERED.items():
        cell = cell_with_grade_id(notebook, grade_id)
        for function in functions:
            args = [a.arg for a in _definition_node(cell, function).args.args]
            body(grade_id, function, f"return answer({function!r}, {', '.join(args)})")(notebook)
    return nbformat.writes(notebook).encode()


# Nothing for nothing: every stub replaced by a body that does nothing useful scores 0.
TRIVIAL_BODIES = {
    "pass": lambda args: "pass",
    "return_zero": lambda args: "return 0.0",
    "return_first_argument": lambda args: f"return {args[0] if args else None}",
    "return_zeros_like": lambda args: f"return torch.zeros_like({args[0]})" if args
    else "return None",
    "return_none": lambda args: "return None",
}
NOTHING_FOR_NOTHING = [
    Entry(f"release_{name}", "hostile", f"every stub replaced by `{body_of(['X'])}`",
          edited(release, every_stub(body_of)), dict.fromkeys(POINTS, ANY), on="release",
          base="untouched", scores=dict.fromkeys(POINTS, 0.0))
    for name, body_of in TRIVIAL_BODIES.items()
] + [
    Entry("answer_table", "hostile", "answers copied from feedback, looked up by the inputs' "
          "shapes", answer_table, dict.fromkeys(POINTS, ANY), on="release", base="untouched",
          scores=dict.fromkeys(POINTS, 0.0)),
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
    hostile("monkeypatch_torch", "patches torch's comparisons and builtins to always agree",
            dict.fromkeys(POINTS, "failed"),
            ("softmax_solution", "def softmax(X):",
             "import builtins\n"
             "torch.allclose = lambda *args, **kwargs: True\n"
             "torch.equal = lambda *args, **kwargs: True\n"
             "torch.testing.assert_close = lambda *args, **kwargs: None\n"
             "builtins.isinstance = lambda *args: True\n\n\ndef softmax(X):"),
            base="wrong_softmax", **REFUSED),
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
            dict.fromkeys(POINTS, "failed"),
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
             "    return X"), base="wrong_softmax", **REFUSED),
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
    # train's own tests pass with the book's functions; its Fashion-MNIST run needs net
    Entry("delete_cells", "hostile", "the cell with net deleted",
          lambda: _without_cell("net_solution"), {"net": "error", "train": "error"},
          base="reference", scores={"net": 0.0, "train": TRAIN_WITHOUT_FASHION_MNIST},
          words={"train": ("net",)}),
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

ENTRIES = (BASES + [CONTROL] + STUDENTS + MISTAKES + PARTLY_WRITTEN + BROKEN_EPOCH + FEEDBACK
           + FROM_SCRATCH + HOSTILE + ATTACKS + NOTHING_FOR_NOTHING + MALFORMED)


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
    for path in write(sys.argv[1]).values():
        print(path)
