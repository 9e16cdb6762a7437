"""Where budgets are measured: a part's speed (or peak memory) as a ratio to the reference
solution's, both measured by the grader from outside, on the same machine, in the same run.

The reference runs in its own sandboxed process, built from the source notebook's
solution cells exactly as a submission is, so both sides pay the same transport and
interpreter costs. A round is one request carrying the inputs of many calls, every
call's inputs drawn afresh from a seed the child never sees (new values, new objects:
a cache keyed by identity or bytes never hits, and no work can be done before the
request arrives); its cost is the CPU time the child's processes spent on it, read from
the kernel (cpu_clock.py). Every call's result comes back and is compared with an
oracle the grader computes with torch's own functions: a result that differs is "not
timed", a failure, never a pass. Student and reference rounds run at the same time on
the same inputs and each side's cheapest round counts. A first round each decides a clear pass
(3x within the budget), two rounds a clear failure (3x past it); the others get five.
"""

import math
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import torch
from torch.nn import functional as F

from .hidden import Verdict
from .sandbox import ChildTimeout

TARGET_SECONDS = 0.005  # the reference's CPU time in one round: far above the clock's unit
MIN_UNITS = 20  # a round lasts at least this many units of the clock (10 ms ticks in /proc)
MAX_CALLS = 200  # calls in one round, whatever the clock
ROUNDS = 5
STALL_SECONDS = 10.0  # slack for a round that other processes stall (the warm-up caught loops)
CLEAR_FACTOR = 3.0  # a ratio this far past (or within) the budget decides early
RTOL = 1e-4  # a timed result agrees with the oracle's within this (the value tests are strict)


@dataclass
class Budget:
    """One performance budget."""

    part: str
    """Part id whose points it carries."""
    name: str
    """What is measured, for the report."""
    function: str
    """The student's function (or scenario) that is timed."""
    make_args: Callable[[torch.Generator], list]
    """Fresh inputs for one call, drawn from the generator; large enough to expose a
    Python loop over examples."""
    oracle: Callable[..., Any]
    """The right result of one call on those inputs, by torch's own functions; for a
    scenario, a dict of the result's keys that must agree."""
    max_ratio: float
    """Student cost / reference cost must not exceed this."""
    weight: float = 1.0
    """Share of the part's points, next to the part's hidden tests' weights."""
    kind: str = "call"
    """'call' for a function of the submission, 'scenario' for a grader scenario."""
    reference_function: str | None = None
    """Time this reference function instead of the same one (e.g. the full softmax
    against the student's two-level one); max_ratio below 1 is then a required speed-up."""
    reference_args: Callable[[list], list] | None = None
    """The reference function's inputs, made from the student's (same data, its layout)."""
    hint: str = "look for a Python loop over examples (a torch call per example)"
    """What usually makes a submission miss this budget."""
    resource: str = "time"
    """'time', or 'memory': the peak resident memory one call adds beyond its inputs."""


def agrees(got, expected):
    """Whether a timed call's result matches the oracle's (a dict: on the oracle's keys)."""
    if isinstance(expected, dict):
        return isinstance(got, dict) and all(k in got and agrees(got[k], v)
                                             for k, v in expected.items())
    if isinstance(expected, (list, tuple)):
        return isinstance(got, (list, tuple)) and len(got) == len(expected) and \
            all(agrees(g, e) for g, e in zip(got, expected))
    if isinstance(expected, torch.Tensor):
        if not isinstance(got, torch.Tensor) or got.shape != expected.shape:
            return False
        expected = expected.detach().double()
        scale = float(expected.abs().max()) if expected.numel() else 0.0
        return torch.allclose(got.detach().double(), expected, rtol=RTOL,
                              atol=RTOL * (1 + scale), equal_nan=True)
    if isinstance(got, torch.Tensor) and got.numel() == 1:
        got = got.item()
    return type(got) in (int, float) and math.isclose(got, expected, rel_tol=RTOL, abs_tol=RTOL)


class Inputs:
    """Fresh inputs for a budget's calls, from a seed drawn for this measurement only
    (a seed derived from the notebook would let one grading's inputs be cached for the next)."""

    def __init__(self, budget):
        self.budget = budget
        self.generator = torch.Generator().manual_seed(secrets.randbits(63))

    def batch(self, count):
        return Batch(self.budget, [self.budget.make_args(self.generator) for _ in range(count)])


class Batch:
    """The inputs of one round's calls, and the oracle's result of each (computed once)."""

    def __init__(self, budget, calls):
        self.budget, self.calls = budget, calls
        self._expected = []

    def for_reference(self, count):
        adapt = self.budget.reference_args
        return [adapt(call) for call in self.calls[:count]] if adapt else self.calls[:count]

    def agrees(self, results, count):
        """Whether `results` are the right ones of the first `count` calls."""
        while len(self._expected) < count:
            self._expected.append(self.budget.oracle(*self.calls[len(self._expected)]))
        return len(results) == count and all(
            agrees(result, expected) for result, expected in zip(results, self._expected))


def student_round(budget, student, batch, count, timeout):
    """(the student's Round on the batch's first `count` calls, whether every result
    agrees with the oracle's)."""
    round_ = student.timed_round(budget.kind, budget.function, batch.calls[:count],
                                 timeout=timeout)
    return round_, batch.agrees(round_.results, count)


def reference_round(budget, reference, batch, count):
    """The reference's Round on the batch's first `count` calls, in its own layout."""
    return reference.timed_round(budget.kind, budget.reference_function or budget.function,
                                 batch.for_reference(count))


def check_reference(budget, batch, results):
    """Where the reference runs the student's function its results must be the oracle's:
    a difference is the grader's fault, never the student's."""
    if budget.reference_function is None and not batch.agrees(results, len(results)):
        raise RuntimeError(f"the reference's result differs from the oracle's in "
                           f"{budget.name!r}: a grader bug")


def both_rounds(budget, student, reference, batch, counts, timeout):
    """(student's Round, whether its results agree, reference's Round) on one batch, with
    `counts` (student's, reference's) calls, the two processes working at the same time:
    each is charged only its own CPU time, and the round takes half the wall time."""
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(reference_round, budget, reference, batch, counts[1])
        student_side, right = student_round(budget, student, batch, counts[0], timeout)
        reference_side = pending.result()
    check_reference(budget, batch, reference_side.results)
    return student_side, right, reference_side


def measure(budget, student, reference):
    """Verdict of one budget; StudentError / ChildTimeout / ChildCrashed propagate."""
    inputs = Inputs(budget)
    if budget.resource == "memory":
        return measure_memory(budget, student, reference, inputs)
    # One call each first: a warm-up (lazy initialisation, buffers) that also sizes the
    # rounds; the student's stops an endless call early.
    batch = inputs.batch(1)
    once = reference_round(budget, reference, batch, 1)
    check_reference(budget, batch, once.results)
    limit = max(2.0, 50 * budget.max_ratio * once.wall)
    try:
        warm, right = student_round(budget, student, batch, 1, timeout=limit)
    except ChildTimeout:
        return over_budget(budget, math.inf, f"stopped after {limit:.1f} s")
    if not right:
        return differs(budget)
    # Rounds on fresh inputs, each side's holding as many calls as fill the target (a
    # loop's take one); costs compare per call, and each side's cheapest round counts. A
    # first round decides a clear pass, two rounds a clear failure; the rest get ROUNDS.
    target = max(TARGET_SECONDS, MIN_UNITS * once.resolution)
    counts = [max(1, min(MAX_CALLS, math.ceil(target / max(r.seconds, 1e-6))))
              for r in (warm, once)]
    student_costs, reference_costs = [], []
    for done in range(1, ROUNDS + 1):
        timeout = STALL_SECONDS + limit * counts[0]
        try:
            student_side, right, reference_side = both_rounds(
                budget, student, reference, inputs.batch(max(counts)), counts, timeout)
        except ChildTimeout:
            return over_budget(budget, math.inf, f"a round stopped after {timeout:.0f} s")
        if not right:
            return differs(budget)
        student_costs.append(student_side.seconds / counts[0])
        reference_costs.append(reference_side.seconds / counts[1])
        ratio = min(student_costs) / max(min(reference_costs), 1e-9)
        if done == 1 and ratio < budget.max_ratio / CLEAR_FACTOR:
            return passed(budget, ratio, "one round")
        if done == 2 and ratio > CLEAR_FACTOR * budget.max_ratio:
            return over_budget(budget, ratio, "cheapest of two rounds")
    if ratio > budget.max_ratio:
        return over_budget(budget, ratio, f"cheapest of {ROUNDS} rounds")
    return passed(budget, ratio, f"cheapest of {ROUNDS} rounds")


def differs(budget):
    return Verdict(False, "not timed: the result differs from the right one on the timing "
                          "inputs (see the value tests)", {"budget": budget.max_ratio})


def passed(budget, ratio, how):
    return Verdict(True, f"{describe(ratio, budget)} ({how})",
                   {"ratio": round(ratio, 3), "budget": budget.max_ratio})


MEMORY_FLOOR = 4 << 20  # below this, a call's peak is allocator noise, not its arrays


def measure_memory(budget, student, reference, inputs):
    """Peak memory one call adds beyond its inputs, student against reference, each
    measured twice on fresh inputs (the lower counts)."""
    reference_peaks, student_peaks = [], []
    for process, peaks, timeout in ((reference, reference_peaks, None),
                                    (student, student_peaks, 60)):
        for _ in range(2):
            batch = inputs.batch(1)
            args = batch.calls[0]
            peak, result = process.peak_memory(budget.kind, budget.function, args, timeout)
            if process is reference:
                check_reference(budget, batch, [result])
            elif not batch.agrees([result], 1):
                return differs(budget)
            peaks.append(None if peak is None else max(0, peak - _input_bytes(args)))
    if None in reference_peaks + student_peaks:
        return Verdict(True, "not measured: this machine does not let the grader reset a "
                             "process's peak memory", {"budget": budget.max_ratio})
    ratio = max(min(student_peaks), MEMORY_FLOOR) / max(min(reference_peaks), MEMORY_FLOOR)
    mib = min(student_peaks) / (1 << 20)
    details = {"ratio": round(ratio, 3), "budget": budget.max_ratio, "peak_mib": round(mib, 1)}
    if ratio > budget.max_ratio:
        return Verdict(False, f"over budget: {mib:.0f} MiB at its peak, {ratio:.1f}x the "
                              f"reference's (budget {budget.max_ratio:g}x); {budget.hint}",
                       {**details, "over_budget": True})
    return Verdict(True, f"{mib:.0f} MiB at its peak, {ratio:.2f}x the reference's "
                         f"(budget {budget.max_ratio:g}x)", details)


def _input_bytes(args):
    """Bytes of the tensors among a call's arguments: resident in the child before the
    call runs, on both sides alike."""
    return sum(a.numel() * a.element_size() for a in args if isinstance(a, torch.Tensor))


def describe(ratio, budget):
    if budget.reference_function is None:
        return f"{ratio:.2f}x the reference's CPU time (budget {budget.max_ratio:g}x)"
    return (f"{1 / ratio:.1f}x faster than the reference's {budget.reference_function} "
            f"(required: {1 / budget.max_ratio:g}x)")


def over_budget(budget, ratio, how):
    shown = "no answer in time" if math.isinf(ratio) else describe(ratio, budget)
    details = {"ratio": round(ratio, 3) if math.isfinite(ratio) else "inf",
               "budget": budget.max_ratio, "over_budget": True}
    return Verdict(False, f"over budget: {shown} ({how}); {budget.hint}", details)


# Inputs and oracles. Rows are many and short ([16384, 10]): a Python loop over them
# costs a hundred times the vectorised version, far past any budget.

N, Q = 16384, 10


def _logits(g, scale=3.0):
    return torch.randn(N, Q, generator=g) * scale


def _labels(g):
    return torch.randint(0, Q, (N,), generator=g)


def _train_epoch_inputs(g):
    """A linear model on 16,384 examples of 20 features in 16 batches of 1,024: the
    batches are cheap, so a Python loop over the examples inside the epoch dominates."""
    return ["function", "callable", torch.randn(20, Q, generator=g) * 0.1,
            torch.randn(Q, generator=g) * 0.1, torch.randn(N, 20, generator=g),
            _labels(g), 1024, 0.1]


def _train_epoch_oracle(net_kind, updater_kind, W, b, X, y, batch_size, lr):
    """The parameters after one epoch of minibatch SGD on the summed cross-entropy,
    divided by the batch size (what scenarios.run_train_epoch's updater does)."""
    W, b = W.clone(), b.clone()
    for X_batch, y_batch in zip(X.split(batch_size), y.split(batch_size)):
        W.requires_grad_(True), b.requires_grad_(True)
        loss = F.cross_entropy(X_batch @ W + b, y_batch, reduction="sum")
        grad_W, grad_b = torch.autograd.grad(loss, [W, b])
        W = (W - lr * grad_W / len(y_batch)).detach()
        b = (b - lr * grad_b / len(y_batch)).detach()
    return {"params": [W, b]}


def _two_level_inputs(n):
    def make(g):
        d, clusters, m = 16, 256, 256  # V = 65,536 words
        return [torch.randn(n, d, generator=g), torch.randint(0, clusters * m, (n,), generator=g),
                torch.randn(d, clusters, generator=g) * 0.1, torch.randn(clusters, generator=g),
                torch.randn(clusters, d, m, generator=g) * 0.1,
                torch.randn(clusters, m, generator=g)]
    return make


def _two_level_oracle(H, y, Wc, bc, Ww, bw):
    m = Ww.shape[2]
    cluster, position = y // m, y % m
    log_p_cluster = torch.log_softmax(H @ Wc + bc, dim=1).gather(1, cluster[:, None])[:, 0]
    word_logits = torch.einsum("nd,ndm->nm", H, Ww[cluster]) + bw[cluster]
    return log_p_cluster + torch.log_softmax(word_logits, dim=1).gather(1, position[:, None])[:, 0]


def _full_inputs_of(two_level_args):
    H, y, Wc, bc, Ww, bw = two_level_args
    return [H, y, Ww.permute(1, 0, 2).reshape(H.shape[1], -1), bw.reshape(-1)]


def _probabilities(g):
    return [torch.softmax(_logits(g), 1), _labels(g)]


BUDGETS = [
    Budget("softmax", f"softmax of [{N}, {Q}]", "softmax", lambda g: [_logits(g)],
           lambda X: torch.softmax(X, 1), max_ratio=5,
           hint="look for a Python loop over rows (a torch call per row)"),
    # The reference only gathers n numbers, so per-example Python costs stand out more
    # here than anywhere: the book's `y_hat[range(len(y_hat)), y]` builds its index from
    # n Python ints (~0.2 us each), about 5x the reference's round (about 50x the bare
    # call), while a torch call per example (~5 us each) is over 100x. 25x sits between,
    # a factor of about 5 from each (docs/grading.md, "Budgets").
    Budget("cross_entropy", f"cross_entropy of [{N}, {Q}]", "cross_entropy", _probabilities,
           lambda y_hat, y: F.nll_loss(torch.log(y_hat), y, reduction="none"), max_ratio=25),
    Budget("accuracy", f"accuracy of [{N}, {Q}]", "accuracy", lambda g: [_logits(g), _labels(g)],
           lambda y_hat, y: float((y_hat.argmax(1) == y).sum()), max_ratio=5),
    Budget("train_epoch", "train_epoch_ch3 over 16,384 examples in batches of 1,024",
           "run_train_epoch", _train_epoch_inputs, _train_epoch_oracle, max_ratio=5,
           kind="scenario",
           hint="look for a Python loop over the examples of a batch (a torch call per example)"),
    Budget("ex2_log_domain", f"log_softmax of [{N}, {Q}]", "log_softmax", lambda g: [_logits(g)],
           lambda O: torch.log_softmax(O, 1), max_ratio=5,
           hint="look for a Python loop over rows (a torch call per row)"),
    Budget("ex3_stable_loss", f"softmax_cross_entropy of [{N}, {Q}]", "softmax_cross_entropy",
           lambda g: [_logits(g, scale=300.0), _labels(g)],
           lambda O, y: F.cross_entropy(O, y, reduction="none"), max_ratio=5),
    # Every call gets weights of its own, 4 MiB at d = 16, which both processes must
    # receive: 128 examples make the full softmax (about 100 ms a call, most of it the
    # [n, V] scores) dwarf that transport, so the reference's two-level one is about 20x
    # faster, a clear pass. Holding [n, V] scores (32 MiB) stands far above the
    # reference's own peak of gathering [n, d, m] weights (2 MiB).
    Budget("ex5_large_vocab", "two_level_log_prob at V = 65,536 against the full softmax",
           "two_level_log_prob", _two_level_inputs(128), _two_level_oracle, max_ratio=1 / 3,
           reference_function="full_log_prob", reference_args=_full_inputs_of,
           hint="score only each example's own cluster, never all V words"),
    Budget("ex5_large_vocab", "two_level_log_prob's peak memory at V = 65,536",
           "two_level_log_prob", _two_level_inputs(128), _two_level_oracle, max_ratio=3,
           resource="memory",
           hint="never hold scores for all V words: [n, V] floats are what a two-level "
                "softmax avoids"),
]
