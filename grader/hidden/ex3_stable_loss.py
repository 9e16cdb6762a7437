"""Hidden tests of exercise 3: `stable_softmax(O)` and `softmax_cross_entropy(O, y)`.

Oracles: torch.softmax and F.cross_entropy(reduction="none") in float64 on the
logits sent. The losses use the log-domain tolerance of checks.py. Their
gradient (float64 gradcheck) needs autograd inside the submission's process and
is not checked here.
"""

import torch
import torch.nn.functional as F

from . import HiddenTest
from .checks import compare, describe, labels, randn, row_magnitude

PART = "ex3_stable_loss"

GLOBAL_MAX = ("the max of the whole batch (O.max()) instead of each row's own max: "
              "rows far below it underflow to 0 / 0 = NaN")
COLUMN_MAX = "the max of each column (dim 0) instead of each row's"
NO_SHIFT = "no max subtraction at all: exp overflows to inf / inf = NaN"
MEAN = "the mean over the batch (one number) instead of one loss per example"
LOG_OF_SOFTMAX = "-log of the softmax probability: inf where it underflows to 0, NaN where exp overflows"
COLUMNS = "picks [:, y] ([n, n]) instead of [range(n), y]"
WHOLE_SUM = ("division by the sum of the whole matrix (E.sum()) instead of each row's own sum "
             "(E.sum(dim=1, keepdim=True))")

# Rows with ±1e4, far apart, with -inf entries (probability 0), one of them a
# single finite entry; every value is a float16 value too.
EXTREME = [[1e4, 0.0, -1e4, 5.0],
           [1e4, 1e4 - 8, 1e4 - 16, 1e4],
           [-1e4, -1e4 + 8, -1e4 + 16, -1e4 + 24],
           [0.0, float("-inf"), 0.0, 1.0],
           [float("-inf"), -3e3, float("-inf"), float("-inf")],
           [-5e3, 5e3, float("-inf"), 2.0]]
ROW_OFFSETS = [-1e4, -3e3, -500.0, 0.0, 70.0, 800.0, 5e3, 1e4]


def shifted_softmax(O, M):
    E = torch.exp(O - M)
    return E / E.sum(dim=1, keepdim=True)


def softmax_mistakes(O):
    """{mistake: its result}, computed in O's dtype as the student's code would."""
    def whole_sum(M):
        E = torch.exp(O - M)
        return E / E.sum()

    return {GLOBAL_MAX: lambda: shifted_softmax(O, O.max()),
            COLUMN_MAX: lambda: shifted_softmax(O, O.max(dim=0, keepdim=True).values),
            NO_SHIFT: lambda: shifted_softmax(O, 0.0),
            WHOLE_SUM: lambda: whole_sum(O.max(dim=1, keepdim=True).values),
            f"{WHOLE_SUM}, after subtracting the max of the whole batch":
                lambda: whole_sum(O.max())}


def softmax_check(student, O, what, expected=None):
    P = student.call("stable_softmax", O)
    expected = torch.softmax(O.double(), dim=1) if expected is None else expected
    return compare(P, expected, f"stable_softmax on {what} {describe(O)}", O.dtype, mistakes=softmax_mistakes(O))


def softmax_random(student, dtype, seed):
    return softmax_check(student, randn((64, 10), seed, 3.0).to(dtype), "N(0, 3^2) logits")


def softmax_extreme(student, dtype):
    return softmax_check(student, torch.tensor(EXTREME, dtype=dtype), "logits of ±1e4 and -inf")


def rows_far_apart(student, dtype):
    """Shift invariance per row: rows offset by -1e4 ... 1e4 keep the softmax of the unshifted rows.

    The base logits are multiples of 1/64 in [-4, 4], so adding an offset is exact
    in float32 and float64 and the unshifted softmax is the exact expectation.
    """
    base = (randn((len(ROW_OFFSETS), 10), 601) * 64).round().clamp(-256, 256) / 64
    O = (base + torch.tensor(ROW_OFFSETS, dtype=torch.float64).unsqueeze(1)).to(dtype)
    return softmax_check(student, O, "rows offset by -1e4 ... 1e4", expected=torch.softmax(base, dim=1))


def single_row(student):
    O = torch.tensor([[3e4, 3e4 - 1, 3e4 - 2.5, -3e4]])
    return softmax_check(student, O, "a single row of ±3e4")


def loss_mistakes(O, y):
    """{mistake: its result}, computed in O's dtype as the student's code would."""
    rows = torch.arange(len(y))
    return {MEAN: lambda: F.cross_entropy(O.double(), y),
            COLUMNS: lambda: -torch.log_softmax(O.double(), dim=1)[:, y],
            LOG_OF_SOFTMAX: lambda: -torch.log(shifted_softmax(O, 0.0)[rows, y]),
            LOG_OF_SOFTMAX + " (even with the max subtracted)":
                lambda: -torch.log(shifted_softmax(O, O.max(dim=1, keepdim=True).values)[rows, y]),
            GLOBAL_MAX: lambda: torch.log(torch.exp(O - O.max()).sum(dim=1)) - (O - O.max())[rows, y]}


def loss_check(student, O, y, what):
    l = student.call("softmax_cross_entropy", O, y)
    return compare(l, F.cross_entropy(O.double(), y, reduction="none"),
                   f"softmax_cross_entropy on {what} {describe(O)}", O.dtype,
                   row_magnitude(O, keepdim=False), loss_mistakes(O, y))


def loss_random(student, shape, scale, dtype, seed):
    O = randn(shape, seed, scale).to(dtype)
    return loss_check(student, O, labels(shape[0], shape[1], seed + 1), f"N(0, {scale:g}^2) logits")


def loss_extreme(student, dtype):
    """Finite logits of ±1e4; labels at each row's largest, smallest and a middle logit."""
    O = torch.tensor([row for row in EXTREME if float("-inf") not in row] * 3, dtype=dtype)
    n = len(O) // 3
    y = torch.cat([O[:n].argmax(dim=1), O[:n].argmin(dim=1), torch.full((n,), 3)])
    return loss_check(student, O, y, "logits of ±1e4")


def loss_boundary_labels(student):
    O = randn((6, 1000), 611, 10.0).float()
    y = torch.tensor([0, 999, 0, 999, 500, 1])
    return loss_check(student, O, y, "labels 0 and 999 of 1000 classes,")


def loss_single(student):
    O = randn((1, 7), 613, 20.0).float()
    return loss_check(student, O, labels(1, 7, 614), "a single example")


TESTS = [
    HiddenTest("stable_softmax: float32 [64, 10] matches torch.softmax", PART, 1.0,
               lambda s: softmax_random(s, torch.float32, 621)),
    HiddenTest("stable_softmax: ±1e4 and -inf in float32", PART, 1.0, lambda s: softmax_extreme(s, torch.float32),
               counts_alone=False),
    HiddenTest("stable_softmax: ±1e4 and -inf in float64", PART, 1.0, lambda s: softmax_extreme(s, torch.float64),
               counts_alone=False),
    HiddenTest("stable_softmax: ±1e4 and -inf in float16", PART, 1.0, lambda s: softmax_extreme(s, torch.float16),
               counts_alone=False),
    HiddenTest("stable_softmax: ±1e4 and -inf in bfloat16", PART, 0.5,
               lambda s: softmax_extreme(s, torch.bfloat16), counts_alone=False),
    HiddenTest("stable_softmax: rows offset by -1e4 ... 1e4 in float32 (each row's own max)", PART, 1.5,
               lambda s: rows_far_apart(s, torch.float32)),
    HiddenTest("stable_softmax: rows offset by -1e4 ... 1e4 in float64", PART, 1.0,
               lambda s: rows_far_apart(s, torch.float64)),
    HiddenTest("stable_softmax: a single row of ±3e4", PART, 0.5, single_row, counts_alone=False),
    HiddenTest("softmax_cross_entropy: float64 [64, 10] matches F.cross_entropy", PART, 1.5,
               lambda s: loss_random(s, (64, 10), 5.0, torch.float64, 631)),
    HiddenTest("softmax_cross_entropy: float32 [128, 10]", PART, 1.0,
               lambda s: loss_random(s, (128, 10), 5.0, torch.float32, 633)),
    HiddenTest("softmax_cross_entropy: float16 [32, 10]", PART, 1.0,
               lambda s: loss_random(s, (32, 10), 3.0, torch.float16, 635)),
    HiddenTest("softmax_cross_entropy: logits of ±1e4 in float32 stay finite", PART, 1.5,
               lambda s: loss_extreme(s, torch.float32), counts_alone=False),
    HiddenTest("softmax_cross_entropy: logits of ±1e4 in float64", PART, 1.0,
               lambda s: loss_extreme(s, torch.float64), counts_alone=False),
    HiddenTest("softmax_cross_entropy: labels 0 and 999 of 1000 classes", PART, 0.5, loss_boundary_labels),
    HiddenTest("softmax_cross_entropy: a single example", PART, 0.5, loss_single),
]
