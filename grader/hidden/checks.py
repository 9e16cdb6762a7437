"""What the hidden tests share: seeded inputs, tolerances, result checks, and the
recognition of known mistakes.

Tolerances
----------
Every floating result is compared in float64 against an oracle that the grader
computes in float64 from the very inputs the student received (already rounded
to their dtype), so what is left is the student's own rounding. An entry passes
when

    |actual - expected| <= atol + rtol * |expected| + MAGNITUDE_ULPS * eps(dtype) * scale

    dtype      rtol    atol    unit roundoff  so rtol allows about
    float16    5e-3    1e-3    4.9e-4         10 roundings
    bfloat16   3e-2    1e-2    3.9e-3          8 roundings
    float32    1e-5    1e-6    6.0e-8        170 roundings (sums over 1000 terms)
    float64    1e-10   1e-12   1.1e-16       1e6 roundings

`scale` is 0 for probabilities. For results in the log domain (log-softmax,
losses, log-probabilities) it is the magnitude of the row's logits: o - logsumexp(o)
is backward stable, yet rounding the logsumexp near |o| = 1e4 costs half a unit
in the last place of 1e4 whatever the result's own size (torch.logsumexp-based
answers do exactly this). Two units in the last place of the logits' magnitude
accept that rounding and nothing coarser.

Inf and NaN in the oracle (-log 0 = inf) must come back exactly; inf or NaN in
the result where the oracle is finite always fails.

Inputs per submission
---------------------
Every hidden input is drawn from its test's seed mixed with the grading's salt
(`use_salt`; grade.py derives it from the course secret and the notebook's bytes):
the same notebook always gets the same inputs and grade, another notebook (a
resubmission) other ones, so values harvested from one grading say nothing about
the next. Inputs written out in a test (the extremes of ±1e4, probabilities at
a threshold) stay fixed: such a test counts only beside one with drawn inputs.

Nothing for copied answers
--------------------------
A test counts alone (HiddenTest.counts_alone) only when its right answer depends on
the salted inputs so much that an answer copied from another grading, or guessed,
matches with a chance below 2**-UNGUESSABLE_BITS: a count of n examples holds only
about log2(n) bits, so a test of counts asks for several (`every` over `draw_seeds`).
A test whose answer the shapes or written-out inputs fix (an empty batch, all right
then all wrong, a probability at the threshold, rows that sum to 1) adds credit only
beside one that counts alone. Where the task itself has one answer (the overflow
threshold of a dtype, the ten label names, an input that breaks the naive formula)
the test says so (HiddenTest.fixed_answer): a copied answer is a right one.
tests/test_hidden_integrity.py replays every test's answers under other salts.

No answers in messages
----------------------
A message says what was tried (the kind of input, shapes, dtypes), how far off the
result is (the worst error against its tolerance, how many entries or rows are
wrong and where) and the named mistake; it may show the student's own values, never
an expected one, nor the student's value beside its error (their sum is the answer).

Near-miss shapes
----------------
Right values whose shape differs from the asked one only by dimensions of size 1
([n, 1] or [1, n] where [n] is asked, a 0-d tensor where [1] is) earn
NEAR_MISS_CREDIT of the test's points: the work is done, yet the result breaks
the code that uses it ([n, 1] - [n] broadcasts to [n, n], and a mean over it hides
the mistake).

What cannot be checked through plain calls
-----------------------------------------
`Student.call` returns results only, detached and copied: whether a function
modified its input in place, and whether autograd gives the right gradient,
need scenarios that run inside the submission's process (gradients.py).
"""

import contextlib
import hashlib
import math

import torch

from . import Verdict

TOLERANCES = {
    torch.float16: (5e-3, 1e-3),
    torch.bfloat16: (3e-2, 1e-2),
    torch.float32: (1e-5, 1e-6),
    torch.float64: (1e-10, 1e-12),
}
MAGNITUDE_ULPS = 2
FLOAT_DTYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)
RESHAPED = "the right values in the wrong shape (a squeeze() or reshape that dropped or added a dimension)"
FLOAT32_MADE = ("torch.tensor(...) of Python numbers, torch.zeros/ones/empty/full/arange(...) "
                "without dtype=, and .float() all make float32 tensors")
FLOAT32_PRECISION = ("a result with float32's precision (about 7 digits) in a float64 test: part "
                     f"of the computation ran in float32 ({FLOAT32_MADE}; follow the input's "
                     "dtype, e.g. torch.zeros_like(X) or dtype=X.dtype)")
NEAR_MISS_CREDIT = 0.5


# Inputs: generated in float64 from a seed, then rounded to the dtype under test,
# so every dtype sees the same numbers as far as it can hold them.

_salt = b""


def use_salt(salt):
    """From now on every hidden input is drawn from its seed mixed with `salt` (bytes): each
    grading sets its own before its first test. Returns the salt it replaces."""
    global _salt
    previous, _salt = _salt, bytes(salt)
    return previous


@contextlib.contextmanager
def salted(salt):
    """`use_salt` for the block only."""
    previous = use_salt(salt)
    try:
        yield
    finally:
        use_salt(previous)


def seed_of(seed):
    """The generator seed of a test's `seed` under the current salt (63 bits)."""
    digest = hashlib.sha256(_salt + seed.to_bytes(8, "big", signed=True)).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def generator(seed):
    return torch.Generator().manual_seed(seed_of(seed))


def randn(shape, seed, scale=1.0, dtype=torch.float64):
    return (scale * torch.randn(shape, generator=generator(seed), dtype=torch.float64)).to(dtype)


def labels(n, q, seed):
    """Class labels [n], int64 in [0, q)."""
    return torch.randint(0, q, (n,), generator=generator(seed))


def row_magnitude(O, keepdim=True):
    """The largest finite |o| in each row of logits O [n, q] -> float64 [n, 1] ([n] without
    keepdim): the `scale` of log-domain results, [n, 1] for [n, q] results, [n] for losses."""
    O = O.double().abs()
    return torch.where(torch.isfinite(O), O, 0.0).amax(dim=1, keepdim=keepdim)


UNGUESSABLE_BITS = 20


def draw_seeds(seed, n, p=0.5):
    """The seeds of the draws a test of counts asks for: counts of n examples, each right
    with probability p, as many as together hold UNGUESSABLE_BITS (a binomial count holds
    log2(2 pi e n p (1 - p)) / 2)."""
    bits = max(math.log2(2 * math.pi * math.e * n * p * (1 - p)) / 2, 1.0)
    return [seed + 10_000 * k for k in range(math.ceil(UNGUESSABLE_BITS / bits))]


def every(verdicts):
    """The first failed Verdict of an iterable (drawn lazily: no call after a failure), else
    the last one."""
    verdict = None
    for verdict in verdicts:
        if not verdict.passed:
            return verdict
    return verdict


# Descriptions for messages.

def dtype_name(dtype):
    return str(dtype).removeprefix("torch.")


def shape_text(shape):
    return "[" + ", ".join(str(s) for s in shape) + "]"


def describe(t):
    """'float16 [64, 10]'."""
    return f"{dtype_name(t.dtype)} {shape_text(t.shape)}"


def type_name(x):
    """'numpy.ndarray', 'float', 'torch.Tensor'."""
    cls = type(x)
    if isinstance(x, torch.Tensor):
        return "torch.Tensor"
    return cls.__qualname__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def a_type(x):
    """'a numpy.ndarray', 'an int': the type of x with its article, for 'returned ...'."""
    name = type_name(x)
    return f"{'an' if name[0] in 'aeiou' else 'a'} {name}"


def short(x, limit=8):
    """A result for a message: its values when small, else its first few."""
    if isinstance(x, torch.Tensor):
        values = x.flatten()[:limit].tolist()
        return f"{values}{' ...' if x.numel() > limit else ''}"
    return repr(x)


# Checks of one result. Each *_problem returns what is wrong as text, or None.

def tensor_problem(actual, shape, dtype, dtype_text=None):
    """Is `actual` a tensor of this shape and dtype? `dtype_text` replaces 'for a <dtype> input'."""
    if not isinstance(actual, torch.Tensor):
        return f"returned {a_type(actual)}, expected a torch.Tensor"
    if tuple(actual.shape) != tuple(shape):
        return f"returned shape {shape_text(actual.shape)}, expected shape {shape_text(shape)}"
    if actual.dtype != dtype:
        wanted = dtype_text or f"for a {dtype_name(dtype)} input"
        float32_for_float64 = (actual.dtype, dtype) == (torch.float32, torch.float64)
        hint = f" ({FLOAT32_MADE})" if float32_for_float64 else ""
        return f"returned dtype {dtype_name(actual.dtype)} {wanted}{hint}"
    return None


def where(mask, limit=3):
    """'3 of 40 entries, e.g. at [0, 2], [5, 1]': how many entries `mask` marks, the first few."""
    found = [[int(i) for i in index] for index in torch.nonzero(mask)[:limit]]
    places = ", ".join(str(index) for index in found)
    return f"{int(mask.sum())} of {mask.numel()} entries, e.g. at {places}"


def value_problem(actual, expected, dtype, scale=0.0):
    """Compare a tensor with the float64 oracle of the same shape: (problem or None, numbers).

    The problem says where and how far the result is off, never the oracle's values nor the
    student's value at the worst entry (with its error, that gives the answer away)."""
    a, e = actual.detach().double(), expected.double()
    rtol, atol = TOLERANCES[dtype]
    special = ~torch.isfinite(e)
    magnitude = torch.as_tensor(scale, dtype=torch.float64)
    tol = atol + rtol * torch.where(special, 0.0, e.abs()) \
        + MAGNITUDE_ULPS * torch.finfo(dtype).eps * magnitude
    err = torch.where(special, 0.0, (a - e).abs()).nan_to_num(nan=math.inf)
    tol = torch.broadcast_to(tol, err.shape)  # a scale of the wrong shape is the grader's bug: raise
    if err.numel() == 0:
        return None, {"max_abs_error": 0.0, "tolerance": float(atol)}
    worst = int((err / tol).flatten().argmax())
    numbers = {"max_abs_error": float(err.flatten()[worst]), "tolerance": float(tol.flatten()[worst])}
    for bad, name in ((~special & torch.isnan(a), "NaN"), (~special & torch.isinf(a), "inf")):
        if bad.any():
            return f"{name} at {where(bad)}", numbers
    wrong_special = special & ~((a == e) | (torch.isnan(a) & torch.isnan(e)))
    if wrong_special.any():
        return (f"where the definition gives inf or NaN (e.g. -log 0 = inf) the result differs: "
                f"{where(wrong_special)}"), numbers
    if numbers["max_abs_error"] > numbers["tolerance"]:
        at = [int(i) for i in torch.unravel_index(torch.tensor(worst), err.shape)]
        return (f"max |error| {numbers['max_abs_error']:.1e} > tolerance {numbers['tolerance']:.1e} "
                f"at {at}; outside the tolerance: {where(err > tol)}"), numbers
    return None, numbers


def near_miss_shape(shape, wanted):
    """Whether `shape` differs from the asked `wanted` only by dimensions of size 1."""
    shape, wanted = tuple(shape), tuple(wanted)
    return shape != wanted and [s for s in shape if s != 1] == [s for s in wanted if s != 1]


def why_shape_matters(shape, wanted):
    """What a near-miss shape breaks in the code that uses the result."""
    got, asked = shape_text(shape), shape_text(wanted)
    try:
        broadcast = tuple(torch.broadcast_shapes(tuple(shape), tuple(wanted)))
    except RuntimeError:
        broadcast = None
    if broadcast is not None and math.prod(broadcast) > math.prod(wanted):
        table = shape_text(broadcast)
        return (f"{got} - {asked} broadcasts to {table}: arithmetic with a {asked} tensor (the "
                f"labels, another loss) silently makes a {table} table, and a mean or sum over it "
                "hides the mistake")
    if len(shape) < len(wanted):
        return ("a squeeze() or .item() dropped a dimension of size 1: len(), indexing and "
                "torch.cat over batches fail on it")
    pieces = [f"indexing picks a {shape_text(shape[1:])} slice, not an entry"]
    if not wanted or shape[0] != wanted[0]:
        pieces.insert(0, f"len() of it is {shape[0]}" + (f", not {wanted[0]}," if wanted else ""))
    return " and ".join(pieces)


def near_miss(what, shape, wanted, details):
    """The Verdict on right values in a near-miss shape: NEAR_MISS_CREDIT of the points."""
    name = f"the right values in shape {shape_text(shape)} instead of {shape_text(wanted)}"
    message = (f"{what}: returned shape {shape_text(shape)}, expected shape {shape_text(wanted)}; "
               f"the values are right, but {why_shape_matters(shape, wanted)} (half the points); "
               f"this looks like {name}")
    details = {**details, "returned_shape": list(shape), "mistake": name}
    return Verdict(False, message, details, credit=NEAR_MISS_CREDIT)


def near_miss_verdict(actual, shape, what, check):
    """When `actual` is a tensor in a near-miss shape of `shape` and `check` (a function of the
    reshaped result returning a Verdict) passes it, the half-credit Verdict; else None."""
    if not (isinstance(actual, torch.Tensor) and near_miss_shape(actual.shape, shape)):
        return None
    verdict = check(actual.reshape(shape))
    return near_miss(what, actual.shape, shape, verdict.details) if verdict.passed else None


def fit(scale, shape):
    """`scale` for a result of another shape (a mistake's mean [] or [n, n] matrix): the
    per-row scale where it broadcasts, else its largest value."""
    if not isinstance(scale, torch.Tensor):
        return scale
    try:
        if torch.broadcast_shapes(scale.shape, shape) == tuple(shape):
            return scale
    except RuntimeError:
        pass
    return float(scale.max()) if scale.numel() else 0.0


def same_result(actual, variant, dtype, scale=0.0):
    """Does the student's result equal a mistaken variant (within tolerance, NaN where it has NaN)?"""
    if isinstance(variant, torch.Tensor):
        if not isinstance(actual, torch.Tensor) or actual.shape != variant.shape \
                or actual.is_floating_point() != variant.is_floating_point():
            return False
        if not variant.is_floating_point():  # decisions, labels: exactly
            return torch.equal(actual.long(), variant.long())
        return value_problem(actual, variant, dtype, fit(scale, variant.shape))[0] is None
    if isinstance(actual, (int, float)) and not isinstance(actual, bool):
        return math.isclose(actual, variant, rel_tol=1e-6, abs_tol=1e-12)
    return False


def mistake(actual, mistakes, dtype=torch.float64, scale=0.0, expected=None):
    """The name of the first known mistake whose result the student's equals, else None.

    `mistakes` maps a name to a function of no arguments computing that mistake's
    result in the grader (so it is only computed when a test failed). A mistake
    that gives the `expected` result on these inputs explains nothing and is skipped.
    """
    for name, compute in (mistakes or {}).items():
        try:
            variant = compute()
        except (RuntimeError, IndexError):
            continue  # a mistake that cannot even run on these shapes did not produce this result
        if expected is not None and same_result(variant, expected, dtype, scale):
            continue
        if same_result(actual, variant, dtype, scale):
            return name
    return None


def failed(what, problem, details=None, actual=None, mistakes=None, dtype=torch.float64, scale=0.0,
           expected=None):
    """A failed Verdict: '<what>: <problem>; this looks like <mistake>'."""
    details = dict(details or {})
    name = mistake(actual, mistakes, dtype, scale, expected)
    message = f"{what}: {problem}"
    if name:
        details["mistake"] = name
        message += f"; this looks like {name}"
    return Verdict(False, message, details)


def compare(actual, expected, what, dtype, scale=0.0, mistakes=None):
    """Verdict on a floating tensor result against its float64 oracle `expected`.

    `what` says what was tried ('softmax on float16 [64, 10]'); `dtype` is the
    dtype the result must have; `scale` see the module docstring; `mistakes` see
    `mistake`. Right values in a near-miss shape earn part of the points (`near_miss`).
    """
    details = {"expected_shape": list(expected.shape), "dtype": dtype_name(dtype)}
    problem = tensor_problem(actual, expected.shape, dtype)
    if problem is None:
        problem, numbers = value_problem(actual, expected, dtype, scale)
        details.update(numbers)
    if problem is None:
        return passed(what, details)
    if isinstance(actual, torch.Tensor) and actual.dtype == dtype:
        partly = near_miss_verdict(actual, expected.shape, what,
                                   lambda reshaped: compare(reshaped, expected, what, dtype, scale))
        if partly is not None:
            return partly
    if isinstance(actual, torch.Tensor) and actual.shape != expected.shape:
        # checked first: e.g. a flatten() of a matrix of the right values
        mistakes = {RESHAPED: lambda: expected.reshape(actual.shape), **(mistakes or {})}
    verdict = failed(what, problem, details, actual, mistakes, dtype, scale, expected)
    if "mistake" not in verdict.details and float32_precision(actual, expected, dtype, scale):
        verdict.details["mistake"] = FLOAT32_PRECISION
        verdict.message += f"; this looks like {FLOAT32_PRECISION}"
    return verdict


def float32_precision(actual, expected, dtype, scale):
    """Whether a float64 result misses float64's tolerance yet meets float32's."""
    return (dtype == torch.float64 and isinstance(actual, torch.Tensor)
            and actual.dtype == torch.float64 and actual.shape == expected.shape
            and value_problem(actual, expected, torch.float32, scale)[0] is None)


def passed(what, details):
    """A passed Verdict with the measured error of `value_problem` in `details`."""
    return Verdict(True, f"{what}: max |error| {details['max_abs_error']:.1e} "
                         f"within tolerance {details['tolerance']:.1e}", details)


def compare_labels(actual, expected, what, mistakes=None):
    """Verdict on an int64 tensor of decisions [n] against the exact expected ones; the
    message names the rows that differ, never the decisions expected there."""
    details = {"expected_shape": list(expected.shape)}
    problem = tensor_problem(actual, expected.shape, torch.int64, "expected int64 (a LongTensor)")
    if problem is None and not torch.equal(actual, expected):
        wrong = torch.nonzero(actual != expected).flatten()
        details["wrong_rows"] = len(wrong)
        problem = (f"differs in {len(wrong)} of {len(expected)} rows, "
                   f"e.g. rows {[int(i) for i in wrong[:5]]}")
    if problem is None:
        return Verdict(True, f"{what}: {len(expected)} of {len(expected)} decisions right", details)
    partly = near_miss_verdict(actual, expected.shape, what,
                               lambda reshaped: compare_labels(reshaped, expected, what))
    if partly is not None:
        return partly
    return failed(what, problem, details, actual, mistakes, expected=expected)
