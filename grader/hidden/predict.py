"""Hidden tests of `get_fashion_mnist_labels(labels)` and `predict_ch3(net, test_iter, n=6)`.

get_fashion_mnist_labels is called directly; predict_ch3 through the scenario
run_predict, with a linear net on 28x28 images (so that a student's optional
show_images works) and DataLoader-like batches, of which only the first may be
used. The oracle: the contract's labels (written out below) of y[:n] and of the
argmax of X @ W + b.
"""

import torch

from . import HiddenTest, Verdict
from .checks import generator, short

PART = "predict"

# The contract's text labels, in class order (ASSIGNMENT.md).
TEXT_LABELS = ["t-shirt", "trouser", "pullover", "dress", "coat",
               "sandal", "shirt", "sneaker", "bag", "ankle boot"]

WRONG_ORDER = "the right labels in the wrong order: they must follow the class numbers 0 to 9"
IGNORES_N = "n ignored: predict_ch3 must return n labels each"
SWAPPED = "(predicted, true) returned instead of (true, predicted)"


def names(labels):
    return [TEXT_LABELS[int(i)] for i in labels]


def wrong_places(got, expected):
    """'3 of 10 labels differ, at positions [0, 4, 7]' (or what is not a list of labels):
    where a returned list of labels is wrong, without the labels expected there."""
    if not (isinstance(got, (list, tuple)) and all(isinstance(g, str) for g in got)):
        return f"returned {short(got)}, expected a list of {len(expected)} strings"
    if len(got) != len(expected):
        return f"returned {len(got)} labels, expected {len(expected)}"
    wrong = [i for i, (g, e) in enumerate(zip(got, expected)) if g != e]
    return f"{len(wrong)} of {len(expected)} labels differ, at positions {wrong[:10]}"


def label_names(student, labels, what):
    got = student.call("get_fashion_mnist_labels", labels)
    expected = names(labels)
    what = f"get_fashion_mnist_labels of {what}"
    if isinstance(got, (list, tuple)) and list(got) == expected:
        return Verdict(True, f"{what}: right")
    details = {"returned": short(got)}
    message = f"{what}: {wrong_places(got, expected)}"
    if isinstance(got, (list, tuple)) and len(got) == 10 and sorted(map(str, got)) == sorted(TEXT_LABELS):
        details["mistake"] = WRONG_ORDER
        message += f"; this looks like {WRONG_ORDER}"
    return Verdict(False, message, details)


def distinct_best(X, W, b):
    """Whether every image's best score leads its second by 1e-3 at least: a float32 net cannot
    then argmax a near-tie the other way."""
    top = (X.reshape(len(X), -1).double() @ W.double() + b.double()).topk(2).values
    return bool((top[:, 0] - top[:, 1] > 1e-3).all())


def prediction_problem(seed):
    """X [32, 1, 28, 28], y [32], W [784, 10], b [10], drawn until the first batch has no
    near-ties."""
    g = generator(seed)
    while True:
        X = torch.rand(32, 1, 28, 28, generator=g)
        y = torch.randint(0, 10, (32,), generator=g)
        W, b = torch.randn(784, 10, generator=g), torch.randn(10, generator=g)
        if distinct_best(X[:16], W, b):
            return X, y, W, b


def predictions(student, n, seed):
    """predict_ch3 on two batches of 16 images; n None means the default, 6."""
    X, y, W, b = prediction_problem(seed)
    got = student.scenario("run_predict", W, b, X, y, 16, n)
    k = 6 if n is None else n
    expected = [names(y[:k]), names((X[:16].reshape(16, 784) @ W + b).argmax(1)[:k])]
    what = f"predict_ch3(net, test_iter{'' if n is None else f', n={n}'}) on batches of 16 images"
    if got == expected:
        return Verdict(True, f"{what}: the first {k} true and predicted labels of the first batch")
    details = {"returned": short(got)}
    if isinstance(got, list) and len(got) == 2:
        message = (f"{what}: the true labels: {wrong_places(got[0], expected[0])}; the predicted "
                   f"labels: {wrong_places(got[1], expected[1])}")
    else:
        message = f"{what}: returned {short(got)}, expected a pair (true labels, predicted labels)"
    mistake = None
    if got == expected[::-1]:
        mistake = SWAPPED
    elif k != 6 and isinstance(got, list) and [len(p) for p in got if isinstance(p, list)] == [6, 6]:
        mistake = IGNORES_N
    if mistake:
        details["mistake"] = mistake
        message += f"; this looks like {mistake}"
    return Verdict(False, message, details)


TESTS = [
    HiddenTest("labels 0 to 9 in class order", PART, 1.0,
               lambda s: label_names(s, list(range(10)), "[0, 1, ..., 9]"),
               function="get_fashion_mnist_labels", fixed_answer=True),
    HiddenTest("a tensor of 25 labels", PART, 1.0,
               lambda s: label_names(s, torch.randint(0, 10, (25,), generator=generator(7601)),
                                     "an int64 tensor of 25 labels"),
               function="get_fashion_mnist_labels"),
    HiddenTest("predict_ch3 with the default n", PART, 1.0, lambda s: predictions(s, None, 7602)),
    HiddenTest("predict_ch3 with n = 11", PART, 1.0, lambda s: predictions(s, 11, 7603)),
]
