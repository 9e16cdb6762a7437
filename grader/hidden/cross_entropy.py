"""Hidden tests of `cross_entropy(y_hat, y)`: the per-example loss -log(y_hat[i, y[i]]), shape [n].

The oracle is F.nll_loss on the log of the very probabilities sent (rounded to
their dtype), in float64; the naive definition is asked for, so -log 0 = inf.
"""

import torch
import torch.nn.functional as F

from . import HiddenTest
from .checks import compare, describe, labels, randn

PART = "cross_entropy"

MEAN = "the mean over the batch (one number) instead of one loss per example"
SUM = "the sum over the batch (one number) instead of one loss per example"
COLUMNS = "y_hat[:, y] ([n, n]: every row at every label) instead of y_hat[range(n), y]"
NO_MINUS = "log(p) without the minus sign"
# Smoothing constants students reach for; the mistake is named with the one that matches.
EPSILONS = (1e-4, 1e-5, 1e-6, 1e-7, 1e-8, 1e-9, 1e-10, 1e-12, 1e-15, 1e-20,
            torch.finfo(torch.float32).eps, torch.finfo(torch.float32).tiny, torch.finfo(torch.float64).eps)


def epsilon_smoothing(eps):
    return f"epsilon smoothing -log(p + {eps:.3g}) instead of -log(p)"


def clamping(eps):
    return f"clamping -log(max(p, {eps:.3g})) instead of -log(p)"


def probabilities(n, q, seed, dtype):
    """y_hat [n, q]: softmax of N(0, 2^2) logits in float64, rounded to dtype; y [n]."""
    y_hat = torch.softmax(randn((n, q), seed, scale=2.0), dim=1).to(dtype)
    return y_hat, labels(n, q, seed + 1)


def oracle(y_hat, y):
    return F.nll_loss(torch.log(y_hat.double()), y, reduction="none")


def known_mistakes(y_hat, y):
    """{mistake: its result}, in y_hat's dtype as the student's code would compute it; the
    smoothed ones in float64, where no eps is lost to rounding."""
    p = y_hat[torch.arange(len(y)), y]
    mistakes = {MEAN: lambda: -torch.log(p).mean(), SUM: lambda: -torch.log(p).sum(),
                COLUMNS: lambda: -torch.log(y_hat[:, y]), NO_MINUS: lambda: torch.log(p)}
    for eps in EPSILONS:
        mistakes[epsilon_smoothing(eps)] = lambda eps=eps: -torch.log(p.double() + eps)
        mistakes[clamping(eps)] = lambda eps=eps: -torch.log(p.double().clamp(min=eps))
    return mistakes


def check(student, y_hat, y, what):
    l = student.call("cross_entropy", y_hat, y)
    return compare(l, oracle(y_hat, y), f"{what} {describe(y_hat)}", y_hat.dtype,
                   mistakes=known_mistakes(y_hat, y))


def random_batch(student, n, q, dtype, seed):
    return check(student, *probabilities(n, q, seed, dtype), "cross_entropy on probabilities")


def boundary_labels(student):
    """Many classes, labels in the first and last columns among others."""
    y_hat, y = probabilities(8, 1000, 305, torch.float32)
    y[:3] = torch.tensor([0, 999, 0])
    return check(student, y_hat, y, "cross_entropy with labels 0 and 999 on")


def empty_batch(student):
    return check(student, torch.zeros(0, 10), torch.zeros(0, dtype=torch.int64), "cross_entropy on an empty batch")


def zero_and_tiny(student):
    """True-class probabilities 0, 1e-300, 1e-20, 1e-3, 0.5, 1: the definition gives inf, 690.8, ..., 0."""
    p = torch.tensor([0.0, 1e-300, 1e-20, 1e-3, 0.5, 1.0], dtype=torch.float64)
    y_hat = torch.stack([p, (1 - p) / 2, (1 - p) / 2], dim=1)  # valid rows: the rest split evenly
    y = torch.zeros(6, dtype=torch.int64)
    return check(student, y_hat, y, "cross_entropy of true-class probabilities 0, 1e-300, 1e-20, 1e-3, 0.5, 1 in")


TESTS = [
    HiddenTest("float32 [64, 10] matches -log y_hat[i, y[i]]", PART, 2.0,
               lambda s: random_batch(s, 64, 10, torch.float32, 301)),
    HiddenTest("float64 [100, 7]", PART, 1.0, lambda s: random_batch(s, 100, 7, torch.float64, 302)),
    HiddenTest("float16 [32, 10]", PART, 1.0, lambda s: random_batch(s, 32, 10, torch.float16, 303)),
    HiddenTest("bfloat16 [32, 10]", PART, 1.0, lambda s: random_batch(s, 32, 10, torch.bfloat16, 304)),
    HiddenTest("a single example [1, 5]", PART, 1.0, lambda s: random_batch(s, 1, 5, torch.float32, 306)),
    HiddenTest("1000 classes, labels 0 and 999", PART, 1.0, boundary_labels),
    HiddenTest("an empty batch [0, 10] gives [0]", PART, 0.5, empty_batch,
               counts_alone=False),
    HiddenTest("probability 0 gives inf, tiny probabilities their exact -log", PART, 1.0, zero_and_tiny,
               counts_alone=False),
]
