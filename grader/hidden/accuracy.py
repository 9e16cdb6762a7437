"""Hidden tests of `accuracy(y_hat, y)`: the NUMBER of correct predictions, as a Python float.

Scores are permutations of 0..q-1 per row (exact in every dtype, a unique
maximum per row), so the prediction is never a matter of ties or rounding. The
oracle counts the rows whose true label holds the row's maximum, without argmax.
"""

import math

import torch

from . import HiddenTest, Verdict
from .checks import a_type, describe, draw_seeds, every, failed, generator, labels

PART = "accuracy"

FRACTION = "the fraction correct instead of the NUMBER correct (the d2l convention: divide by len(y) later)"
DIM0 = "argmax over dim 0 (per column) instead of dim 1 (per row)"


def scores(n, q, seed, dtype):
    """Scores [n, q]: a random permutation of 0..q-1 in each row."""
    return torch.rand((n, q), generator=generator(seed)).argsort(dim=1).to(dtype)


def half_right(y_hat, seed):
    """Labels [n]: the row's best class for about half of the rows, another class otherwise;
    the first row right and the last wrong, so that no constant count is ever right."""
    n, q = y_hat.shape
    best = y_hat.argmax(dim=1)
    right = torch.rand(n, generator=generator(seed)) < 0.5
    right[0] = True
    if n > 1:
        right[-1] = False
    other = (best + 1 + labels(n, q - 1, seed + 1)) % q
    return torch.where(right, best, other)


def count_correct(y_hat, y):
    """The oracle: rows where y's entry is the row's maximum (2-D scores) or equals y (labels)."""
    if y_hat.dim() == 2 and y_hat.shape[1] > 1:
        return float((y_hat == y_hat.amax(dim=1, keepdim=True))[torch.arange(len(y)), y].sum())
    return float(sum(int(p) == int(t) for p, t in zip(y_hat.tolist(), y.tolist())))


def known_mistakes(y_hat, y):
    n = max(len(y), 1)
    mistakes = {FRACTION: lambda: count_correct(y_hat, y) / n}
    if y_hat.dim() == 2:
        mistakes[DIM0] = lambda: float((y_hat.argmax(dim=0) == y).sum())
    return mistakes


def check(student, y_hat, y, what):
    a = student.call("accuracy", y_hat, y)
    expected = count_correct(y_hat, y)
    what = f"accuracy on {what}"
    if not isinstance(a, float):
        value = f" ({short_value(a)})" if short_value(a) else ""
        return failed(what, f"returned {a_type(a)}{value}, expected a Python float "
                            "(float(...) of the count)")
    details = {"returned": a}
    if a != expected:
        # neither the count nor how far off it is: the student's value and either give the answer
        return failed(what, f"returned {a:g} for {len(y)} examples, which is not the number of "
                            f"correct predictions", details, a, known_mistakes(y_hat, y))
    return Verdict(True, f"{what}: {a:g} correct of {len(y)}", details)


def short_value(a):
    """The value of a number-like result for a message ('' when it is none)."""
    if isinstance(a, torch.Tensor) and a.numel() == 1:
        return f"value {a.item():g}"
    if isinstance(a, (int, float)) and math.isfinite(a):
        return f"value {a:g}"
    return ""


def random_scores(student, n, q, dtype, seed):
    """Counts on several batches: one count of n examples is too easy to guess."""
    def batch(seed):
        y_hat = scores(n, q, seed, dtype)
        return check(student, y_hat, half_right(y_hat, seed + 1), f"scores {describe(y_hat)}")
    return every(batch(s) for s in draw_seeds(seed, n))


def predicted_labels(student, dtype, n=40, seed=411):
    """1-D predictions: compared as labels after conversion to y's dtype (no argmax)."""
    def batch(seed):
        y = labels(n, 10, seed)
        wrong = torch.rand(n, generator=generator(seed + 1)) < 0.5
        y_hat = torch.where(wrong, (y + 1) % 10, y).to(dtype)
        return check(student, y_hat, y, f"predicted labels {describe(y_hat)}")
    return every(batch(s) for s in draw_seeds(seed, n))


def all_and_none(student, n=25, seed=413):
    """Every prediction right, then every one wrong: no constant passes both."""
    y_hat = scores(n, 10, seed, torch.float32)
    best = y_hat.argmax(dim=1)
    verdict = check(student, y_hat, best, f"scores {describe(y_hat)} with every prediction right")
    if not verdict.passed:
        return verdict
    return check(student, y_hat, (best + 1) % 10, f"scores {describe(y_hat)} with every prediction wrong")


def empty_batch(student):
    return check(student, torch.zeros(0, 10), torch.zeros(0, dtype=torch.int64), "an empty batch float32 [0, 10]")


TESTS = [
    HiddenTest("float32 scores [100, 10]", PART, 2.0, lambda s: random_scores(s, 100, 10, torch.float32, 401)),
    HiddenTest("float64 scores [57, 4]", PART, 1.0, lambda s: random_scores(s, 57, 4, torch.float64, 403)),
    HiddenTest("float16 scores [64, 10]", PART, 0.5, lambda s: random_scores(s, 64, 10, torch.float16, 405)),
    HiddenTest("bfloat16 scores [64, 10]", PART, 0.5, lambda s: random_scores(s, 64, 10, torch.bfloat16, 407)),
    HiddenTest("a square batch [10, 10] takes the argmax of rows", PART, 1.0,
               lambda s: random_scores(s, 10, 10, torch.float32, 409)),
    HiddenTest("two classes [30, 2]", PART, 0.5, lambda s: random_scores(s, 30, 2, torch.float32, 415)),
    HiddenTest("a single row [1, 10], right and wrong", PART, 0.5,
               lambda s: all_and_none(s, 1, 417), counts_alone=False),
    HiddenTest("predicted labels int64 [40]", PART, 1.0, lambda s: predicted_labels(s, torch.int64)),
    HiddenTest("predicted labels float32 [40]", PART, 0.5, lambda s: predicted_labels(s, torch.float32)),
    HiddenTest("all right gives n, all wrong gives 0", PART, 1.0, all_and_none, counts_alone=False),
    HiddenTest("an empty batch [0, 10] gives 0.0", PART, 0.5, empty_batch,
               counts_alone=False),
]
