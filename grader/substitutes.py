"""The book's code that stands in for a student's function while the tests of what calls
it run: a bug in `softmax` costs the `softmax` part, not `net` too.

The sources are the reference solution's core functions (solutions/softmax_regression.py:
the book's chapter 3.6 code, nothing of the exercises), sent to the submission's process
by name. Whatever is put there the student's code can find and call, so the judge installs
a substitute only after every test of the part it belongs to has run (judge.phases).
"""

import ast
import functools
import inspect

from solutions import softmax_regression as book

CORE = ("softmax", "net", "cross_entropy", "accuracy", "Accumulator", "evaluate_accuracy",
        "sgd", "train_epoch_ch3", "train_ch3", "get_fashion_mnist_labels", "predict_ch3")


@functools.cache
def book_source(name):
    """The source of the book's `name` (a function or class of CORE)."""
    return inspect.getsource(getattr(book, name))


@functools.cache
def calls_of(name):
    """The CORE names the book's `name` refers to, besides itself."""
    tree = ast.parse(book_source(name))
    bound = {node.arg for node in ast.walk(tree) if isinstance(node, ast.arg)}
    return {node.id for node in ast.walk(tree)
            if isinstance(node, ast.Name) and node.id in CORE and node.id not in bound | {name}}


def closure(names):
    """`names` and every CORE name their book versions call, transitively, sorted."""
    found, todo = set(), list(names)
    while todo:
        name = todo.pop()
        if name not in found:
            found.add(name)
            todo += calls_of(name)
    return tuple(sorted(found))


def sources(names):
    """{name: the book's source} for `names` and what their book versions call; a
    substitute must not call the student's code it stands beside."""
    return {name: book_source(name) for name in closure(names)}
