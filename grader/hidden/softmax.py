"""Hidden tests of `softmax(X)`: the naive row-wise softmax by the definition.

Inputs stay moderate (|x| <= 6, so exp cannot overflow even in float16): the
naive definition is what is asked here; overflow is exercise 1's business.
"""

import torch

from . import HiddenTest
from .checks import compare, describe, failed, near_miss_verdict, passed, randn, tensor_problem, value_problem

PART = "softmax"

DIM0 = "a softmax over dim 0 (each column sums to 1) instead of dim 1 (each row)"
NO_KEEPDIM = ("row sums without keepdim=True: the [n] vector of sums broadcasts as a row, "
              "so column j is divided by the sum of row j")
WHOLE_SUM = "division by the sum of the whole matrix instead of each row's own sum"


def logits(shape, seed, dtype):
    """Moderate logits: N(0, 2^2) clamped to [-6, 6] (exp(6) * 1000 columns stays below float16's max)."""
    return randn(shape, seed, scale=2.0).clamp(-6, 6).to(dtype)


def oracle(X):
    return torch.softmax(X.double(), dim=1)


def known_mistakes(X):
    """X [n, q] -> {mistake: its result}, computed in X's dtype as the student's code would."""
    E = torch.exp(X)
    return {DIM0: lambda: E / E.sum(0, keepdim=True),
            NO_KEEPDIM: lambda: E / E.sum(1),
            WHOLE_SUM: lambda: E / E.sum()}


def matches_torch(student, shape, dtype, seed):
    """softmax(X) against torch.softmax(X, dim=1) on moderate logits of this shape and dtype."""
    X = logits(shape, seed, dtype)
    P = student.call("softmax", X)
    return compare(P, oracle(X), f"softmax on {describe(X)}", dtype, mistakes=known_mistakes(X))


def one_column(student):
    """A single column [7, 1]: every row holds one class, probability 1 (no keepdim gives [7, 7])."""
    X = logits((7, 1), 105, torch.float32)
    P = student.call("softmax", X)
    return compare(P, torch.ones(7, 1, dtype=torch.float64), f"softmax on a single column {describe(X)}",
                   torch.float32, mistakes=known_mistakes(X))


def empty_batch(student):
    """No rows [0, 10] -> an empty [0, 10] result (a last batch can be empty after filtering)."""
    X = torch.zeros(0, 10)
    P = student.call("softmax", X)
    return compare(P, torch.zeros(0, 10, dtype=torch.float64), "softmax on an empty batch float32 [0, 10]",
                   torch.float32)


def rows_sum_to_one(student):
    """The property itself, reported as row sums: each row is a distribution."""
    X = logits((256, 10), 107, torch.float32)
    P = student.call("softmax", X)
    what = f"row sums of softmax on {describe(X)}"
    verdict = row_sums(P, X, what)
    if verdict.passed:
        return verdict
    partly = near_miss_verdict(P, X.shape, what, lambda reshaped: row_sums(reshaped, X, what))
    return partly or verdict


def row_sums(P, X, what):
    """Verdict on the row sums of a softmax result P of the logits X."""
    problem = tensor_problem(P, X.shape, X.dtype)
    if problem is None:
        problem, numbers = value_problem(P.double().sum(dim=1), torch.ones(256, dtype=torch.float64), X.dtype)
        if problem is None:
            return passed(what, numbers)
    return failed(what, problem, actual=P, mistakes=known_mistakes(X), dtype=X.dtype)


TESTS = [
    HiddenTest("float32 [64, 10] matches torch.softmax", PART, 2.0,
               lambda s: matches_torch(s, (64, 10), torch.float32, 101)),
    HiddenTest("float64 [37, 13] matches torch.softmax", PART, 1.0,
               lambda s: matches_torch(s, (37, 13), torch.float64, 102)),
    HiddenTest("float16 [64, 10] matches torch.softmax", PART, 1.0,
               lambda s: matches_torch(s, (64, 10), torch.float16, 103)),
    HiddenTest("bfloat16 [64, 10] matches torch.softmax", PART, 1.0,
               lambda s: matches_torch(s, (64, 10), torch.bfloat16, 104)),
    HiddenTest("a single row [1, 10]", PART, 1.0,
               lambda s: matches_torch(s, (1, 10), torch.float32, 108)),
    HiddenTest("a square batch [10, 10] normalises rows, not columns", PART, 1.0,
               lambda s: matches_torch(s, (10, 10), torch.float32, 109)),
    HiddenTest("long rows [8, 1000]", PART, 1.0,
               lambda s: matches_torch(s, (8, 1000), torch.float32, 110)),
    HiddenTest("a single column [7, 1] gives probability 1", PART, 0.5, one_column,
               counts_alone=False),
    HiddenTest("an empty batch [0, 10] gives [0, 10]", PART, 0.5, empty_batch,
               counts_alone=False),
    HiddenTest("rows of [256, 10] sum to 1", PART, 1.0, rows_sum_to_one, counts_alone=False),
]
