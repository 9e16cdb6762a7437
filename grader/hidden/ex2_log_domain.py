"""Hidden tests of exercise 2: `log_softmax(O)` and `naive_cross_entropy_breaks()`.

log_softmax is compared with torch.log_softmax in float64 on the logits sent,
with the log-domain tolerance of checks.py (scale = the row's largest |logit|).
The pair of naive_cross_entropy_breaks is judged with the reference's
cross_entropy, never the student's.
"""

import torch

from solutions.softmax_regression import cross_entropy as naive_cross_entropy

from . import HiddenTest, Verdict
from .checks import FLOAT_DTYPES, TOLERANCES, a_type, compare, describe, failed, randn, row_magnitude, short, type_name

PART = "ex2_log_domain"

LOG_OF_SOFTMAX = "the log of a softmax: -inf or NaN where a probability underflows or exp overflows"
NO_SHIFT = "log-sum-exp without subtracting the row max first: exp overflows"
GLOBAL_MAX = "the max of the whole batch instead of each row's own max"
DIM0 = "a log-softmax over dim 0 (columns) instead of dim 1 (rows)"

# Rows of -1e4 ... 1e4, rows far apart, rows of equal logits; every value is a
# float16 value too (multiples of 8 near 1e4), so all dtypes get the same logits.
EXTREME = [[1e4, 0.0, -1e4, 5.0],
           [1e4, 1e4 - 8, 1e4 - 16, 1e4],
           [-1e4, -1e4 + 8, -1e4 + 16, -1e4 + 24],
           [0.0, -200.0, 200.0, 100.0],
           [-5e3, -5e3, -5e3, -5e3],
           [3e3, -3e3, 0.0, 2.5]]


def known_mistakes(O):
    """{mistake: its result}, computed in O's dtype as the student's code would."""
    def shifted_by(M):
        return (O - M) - torch.log(torch.exp(O - M).sum(dim=1, keepdim=True))

    def log_of_softmax(M):
        E = torch.exp(O - M)
        return torch.log(E / E.sum(dim=1, keepdim=True))

    row_max = O.max(dim=1, keepdim=True).values
    return {LOG_OF_SOFTMAX: lambda: log_of_softmax(0.0),
            LOG_OF_SOFTMAX + " (even with the max subtracted)": lambda: log_of_softmax(row_max),
            NO_SHIFT: lambda: shifted_by(0.0),
            GLOBAL_MAX: lambda: shifted_by(O.max()),
            DIM0: lambda: torch.log_softmax(O.double(), dim=0)}


def check(student, O, what):
    L = student.call("log_softmax", O)
    return compare(L, torch.log_softmax(O.double(), dim=1), f"log_softmax on {what} {describe(O)}", O.dtype,
                   row_magnitude(O), known_mistakes(O))


def random_logits(student, shape, scale, dtype, seed):
    return check(student, randn(shape, seed, scale).to(dtype), f"N(0, {scale:g}^2) logits")


def extreme_logits(student, dtype):
    return check(student, torch.tensor(EXTREME, dtype=dtype), "logits of -1e4 to 1e4")


def breaks_naive_cross_entropy(student):
    """A valid pair (probabilities, labels) on which the reference cross_entropy is inf or NaN."""
    pair = student.call("naive_cross_entropy_breaks")
    what = "naive_cross_entropy_breaks()"
    if not isinstance(pair, (tuple, list)) or len(pair) != 2:
        return failed(what, f"returned {a_type(pair)}, expected a pair (y_hat, y)")
    y_hat, y = pair
    problem = pair_problem(y_hat, y)
    if problem is not None:
        return failed(what, problem)
    loss = naive_cross_entropy(y_hat, y)
    if torch.isfinite(loss).all():
        return failed(what, f"cross_entropy gives the finite losses {short(loss)} on y_hat = {short(y_hat)}, "
                            f"y = {short(y)}: the true class needs a probability of exactly 0")
    return Verdict(True, f"{what}: cross_entropy gives {short(loss)} on valid probabilities {short(y_hat)}",
                   {"shape": list(y_hat.shape)})


def pair_problem(y_hat, y):
    """What makes (y_hat, y) no valid probabilities [n, q] and labels [n], else None."""
    if not isinstance(y_hat, torch.Tensor) or not isinstance(y, torch.Tensor):
        return f"returned ({type_name(y_hat)}, {type_name(y)}), expected two torch.Tensors"
    if y_hat.dim() != 2 or 0 in y_hat.shape or y_hat.dtype not in FLOAT_DTYPES:
        return f"y_hat is {describe(y_hat)}, expected probabilities [n, q] (n, q >= 1) of float16 ... float64"
    n, q = y_hat.shape
    if y.dtype != torch.int64 or tuple(y.shape) != (n,):
        return f"y is {describe(y)}, expected int64 labels [{n}]"
    if ((y < 0) | (y >= q)).any():
        return f"the labels {short(y)} are not all in [0, {q})"
    if torch.isnan(y_hat).any() or (y_hat < 0).any() or (y_hat > 1).any():
        return f"y_hat = {short(y_hat)} holds values outside [0, 1] (or NaN): not probabilities"
    # Rounding to the dtype may move a sum by q units of roundoff, and no more.
    slack = TOLERANCES[y_hat.dtype][0] + q * torch.finfo(y_hat.dtype).eps
    sums = y_hat.double().sum(dim=1)
    if ((sums - 1).abs() > slack).any():
        return f"the rows of y_hat sum to {short(sums)}, not 1 (within {slack:.1e})"
    return None


TESTS = [
    HiddenTest("log_softmax: float32 [64, 10] matches torch.log_softmax", PART, 2.0,
               lambda s: random_logits(s, (64, 10), 3.0, torch.float32, 501)),
    HiddenTest("log_softmax: float64 [50, 20]", PART, 1.0,
               lambda s: random_logits(s, (50, 20), 5.0, torch.float64, 502)),
    HiddenTest("log_softmax: float16 [32, 10]", PART, 1.0,
               lambda s: random_logits(s, (32, 10), 3.0, torch.float16, 503)),
    HiddenTest("log_softmax: bfloat16 [32, 10]", PART, 1.0,
               lambda s: random_logits(s, (32, 10), 3.0, torch.bfloat16, 504)),
    HiddenTest("log_softmax: a single row [1, 1000] of N(0, 50^2) logits", PART, 1.0,
               lambda s: random_logits(s, (1, 1000), 50.0, torch.float32, 505)),
    HiddenTest("log_softmax: logits of -1e4 to 1e4 in float32: finite and right", PART, 1.0,
               lambda s: extreme_logits(s, torch.float32), counts_alone=False),
    HiddenTest("log_softmax: logits of -1e4 to 1e4 in float64", PART, 1.0, lambda s: extreme_logits(s, torch.float64),
               counts_alone=False),
    HiddenTest("log_softmax: logits of -1e4 to 1e4 in float16", PART, 1.0, lambda s: extreme_logits(s, torch.float16),
               counts_alone=False),
    HiddenTest("naive_cross_entropy_breaks gives valid probabilities on which cross_entropy is inf or NaN",
               PART, 2.0, breaks_naive_cross_entropy, fixed_answer=True),
]
