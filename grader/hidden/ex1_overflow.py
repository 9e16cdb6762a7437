"""Hidden tests of exercise 1: `overflow_threshold(dtype)` and `naive_softmax_breaks(dtype)`.

The threshold's oracle is the definition itself, found by stepping through the
dtype's representable numbers one at a time (not by bisection, as the reference
does), with the grader's own torch.exp. The logits of naive_softmax_breaks are
judged with the reference's naive softmax, never the student's.
"""

import math

import torch

from solutions.softmax_regression import softmax as naive_softmax

from . import HiddenTest, Verdict
from .checks import FLOAT_DTYPES, a_type, dtype_name, failed, shape_text, short

PART = "ex1_overflow"

FLOAT32_FOR_ALL = "float32's threshold (88.72...) for another dtype"
LOG_OF_MAX = "log(finfo.max) rounded to the dtype, instead of measuring where torch.exp overflows"
ONE_STEP_BELOW = "the largest x whose exp is still finite, one representable step below the threshold"

BITS = {2: torch.int16, 4: torch.int32, 8: torch.int64}


def step(x, steps):
    """The value `steps` representable numbers above the positive 0-d tensor x (below if negative).

    For positive floats the bit patterns, read as integers, are in the same order
    as the values (torch.nextafter has no CPU kernel for float16 and bfloat16).
    """
    bits = x.view(BITS[x.element_size()])
    return (bits + steps).view(x.dtype)


def overflows(x):
    return bool(torch.isinf(torch.exp(x)))


def smallest_overflowing(dtype):
    """The smallest value x of `dtype` with exp(x) = inf, by the definition."""
    x = torch.tensor(math.log(torch.finfo(dtype).max), dtype=dtype)  # a few steps from the answer
    while overflows(x):
        x = step(x, -1)
    while not overflows(x):
        x = step(x, 1)
    return x.item()


def as_number(value):
    """The result as a float when it is a real number or a 0-d tensor, else None."""
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.is_floating_point():
        return value.item()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:  # an int beyond float64's range
            return None
    return None


def known_mistakes(dtype):
    """{mistake: its threshold} for `dtype`."""
    mistakes = {LOG_OF_MAX: lambda: torch.tensor(math.log(torch.finfo(dtype).max), dtype=dtype).item(),
                ONE_STEP_BELOW: lambda: step(torch.tensor(smallest_overflowing(dtype), dtype=dtype), -1).item()}
    if dtype != torch.float32:
        mistakes[FLOAT32_FOR_ALL] = lambda: smallest_overflowing(torch.float32)
    return mistakes


def threshold(student, dtype):
    """The definition, checked on the student's x: a value of dtype, exp(x) = inf, and not one step below."""
    value = student.call("overflow_threshold", dtype)
    name = dtype_name(dtype)
    what = f"overflow_threshold(torch.{name})"
    x = as_number(value)
    if x is None:
        return failed(what, f"returned {a_type(value)} ({short(value)}), expected a number")
    t = torch.tensor(x, dtype=dtype)
    details, mistakes = {"returned": x}, known_mistakes(dtype)
    if not math.isfinite(x) or t.item() != x:
        return failed(what, f"returned {x!r}, which is not a {name} value (it rounds to {t.item()!r})",
                      details, x, mistakes)
    if not overflows(t):
        return failed(what, f"returned {x!r}, but exp({x!r}) in {name} is {torch.exp(t).item()!r}, not inf",
                      details, x, mistakes)
    below = step(t, -1)  # x > 0 here, since exp(x) overflowed
    if overflows(below):
        return failed(what, f"returned {x!r}, not the SMALLEST x with exp(x) = inf: exp({below.item()!r}), "
                            "one step below, is inf too", details, x, mistakes)
    return Verdict(True, f"{what}: {x!r}; exp overflows there and not one step below", details)


def breaks_naive_softmax(student, dtype):
    """Logits [1, k] of dtype on which the reference's naive softmax gives NaN and torch.softmax does not."""
    Z = student.call("naive_softmax_breaks", dtype)
    name = dtype_name(dtype)
    what = f"naive_softmax_breaks(torch.{name})"
    if not isinstance(Z, torch.Tensor):
        return failed(what, f"returned {a_type(Z)}, expected a torch.Tensor of logits [1, k]")
    if Z.dim() != 2 or Z.shape[0] != 1 or Z.shape[1] == 0:
        return failed(what, f"returned shape {shape_text(Z.shape)}, expected logits of shape [1, k]")
    if Z.dtype != dtype:
        return failed(what, f"returned dtype {dtype_name(Z.dtype)} for torch.{name}")
    if torch.isnan(torch.softmax(Z.double(), dim=1)).any():
        return failed(what, f"torch.softmax gives NaN on {short(Z)} too: logits must be finite numbers")
    P = naive_softmax(Z)
    if not torch.isnan(P).any():
        return failed(what, f"the naive softmax of {short(Z)} gives {short(P)}, no NaN: "
                            f"choose logits whose exp overflows in {name}")
    return Verdict(True, f"{what}: the naive softmax of {short(Z)} gives NaN, torch.softmax does not",
                   {"k": Z.shape[1]})


TESTS = (
    [HiddenTest(f"overflow_threshold({dtype_name(d)}) is the smallest x with exp(x) = inf", PART, 1.0,
                lambda s, d=d: threshold(s, d), fixed_answer=True) for d in FLOAT_DTYPES]
    + [HiddenTest(f"naive_softmax_breaks({dtype_name(d)}) gives the naive softmax a NaN", PART, 0.5,
                  lambda s, d=d: breaks_naive_softmax(s, d), fixed_answer=True) for d in FLOAT_DTYPES]
)
