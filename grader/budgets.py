"""Where budgets are measured: a part's speed as a ratio to the reference solution's,
both timed by the grader's clock, on the same machine, in the same run.

The reference runs in its own sandboxed process, built from the source notebook's
solution cells exactly as a submission is, so both sides pay the same transport
and interpreter costs. Inputs are staged in both processes first; then the grader
times repeated calls, interleaving student and reference rounds, and compares
each side's fastest round, so other processes, which only ever add time, do not
decide. A first round each decides a clear pass (3x within the budget), two rounds
a clear failure (3x past it); the others get five rounds. A timed call must return
the same result as the reference's (a digest of it), so skipping the work cannot pass.
"""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch

from .hidden import Verdict
from .sandbox import ChildTimeout

TARGET_SECONDS = 0.02  # one timed repeat of the reference lasts about this long
ROUNDS = 5
STALL_SECONDS = 10.0  # slack for a round that other processes stall (the warm-up caught loops)
CLEAR_FACTOR = 3.0  # a ratio this far past (or within) the budget decides early


@dataclass
class Budget:
    """One performance budget."""

    part: str
    """Part id whose points it carries."""
    name: str
    """What is measured, for the report."""
    function: str
    """The student's function (or scenario) that is timed."""
    make_args: Callable[[], list]
    """The (seeded) inputs, large enough to expose a Python loop over examples."""
    max_ratio: float
    """Student time / reference time must not exceed this."""
    weight: float = 1.0
    """Share of the part's points, next to the part's hidden tests' weights."""
    kind: str = "call"
    """'call' for a function of the submission, 'scenario' for a grader scenario."""
    reference_function: str | None = None
    """Time this reference function instead of the same one (e.g. the full softmax
    against the student's two-level one); max_ratio below 1 is then a required speed-up."""
    reference_args: Callable[[list], list] | None = None
    """The reference function's inputs, made from the student's (same data, its layout)."""
    hint: str = "look for a Python loop over examples"
    """What usually makes a submission miss this budget."""
    resource: str = "time"
    """'time', or 'memory': the peak resident memory one call adds, against the reference's."""


def _digests_agree(a, b, rel=1e-3):
    """Whether two result fingerprints (see sandbox_child.digest) agree within `rel`."""
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_digests_agree(a[k], b[k], rel) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_digests_agree(x, y, rel) for x, y in zip(a, b))
    if isinstance(a, float) and isinstance(b, float):
        return math.isclose(a, b, rel_tol=rel, abs_tol=rel) or (math.isnan(a) and math.isnan(b))
    return a == b


def measure(budget, student, reference):
    """Verdict of one budget; StudentError / ChildTimeout / ChildCrashed propagate."""
    args = budget.make_args()
    key = budget.name
    reference_function = budget.reference_function or budget.function
    student.stage(key, args)
    reference.stage(key, budget.reference_args(args) if budget.reference_args else args)
    if budget.resource == "memory":
        return measure_memory(budget, student, reference, key, reference_function)
    reference.timed_repeat(budget.kind, reference_function, key, 1)  # warm-up
    once, reference_digest = reference.timed_repeat(budget.kind, reference_function, key, 1)
    times = max(1, min(1000, math.ceil(TARGET_SECONDS / max(once, 1e-6))))

    # The student's first call is a warm-up, and stops an endless one early.
    limit = max(2.0, 50 * budget.max_ratio * once)
    try:
        _, student_digest = student.timed_repeat(budget.kind, budget.function, key, 1,
                                                 timeout=limit)
    except ChildTimeout:
        return over_budget(budget, math.inf, f"stopped after {limit:.1f} s")
    if budget.reference_function is None and not _digests_agree(student_digest, reference_digest):
        return Verdict(False, "not timed: the result differs from the reference's (see the "
                              "value tests)", {"budget": budget.max_ratio})
    # Rounds of many calls each (a lone call of a millisecond can meet a scheduler
    # hiccup), student and reference taking turns; each side's fastest round counts,
    # because interference from other processes only ever adds time. A first round
    # decides a clear pass, two rounds a clear failure (one round can meet a stall of
    # a whole second when other graders share the cores); the rest get ROUNDS.
    student_times, reference_times = [], []
    for done in range(1, ROUNDS + 1):
        try:
            student_times.append(student.timed_repeat(budget.kind, budget.function, key, times,
                                                      timeout=STALL_SECONDS + limit * times)[0])
        except ChildTimeout:
            return over_budget(budget, math.inf, f"a round stopped after "
                                                 f"{STALL_SECONDS + limit * times:.0f} s")
        reference_times.append(reference.timed_repeat(budget.kind, reference_function, key,
                                                      times)[0])
        ratio = min(student_times) / min(reference_times)
        if done == 1 and ratio < budget.max_ratio / CLEAR_FACTOR:
            return passed(budget, ratio, "one round")
        if done == 2 and ratio > CLEAR_FACTOR * budget.max_ratio:
            return over_budget(budget, ratio, "best of two rounds")
    if ratio > budget.max_ratio:
        return over_budget(budget, ratio, f"best of {ROUNDS} interleaved rounds")
    return passed(budget, ratio, f"best of {ROUNDS} interleaved rounds")


def passed(budget, ratio, how):
    return Verdict(True, f"{describe(ratio, budget)} ({how})",
                   {"ratio": round(ratio, 3), "budget": budget.max_ratio})


MEMORY_FLOOR = 4 << 20  # below this, a call's peak is allocator noise, not its arrays


def measure_memory(budget, student, reference, key, reference_function):
    """Peak memory of one call, student against reference, each measured twice (min)."""
    reference.timed_repeat(budget.kind, reference_function, key, 1)  # warm-up
    student.timed_repeat(budget.kind, budget.function, key, 1, timeout=60)
    reference_peaks = [reference.peak_memory(budget.kind, reference_function, key)
                       for _ in range(2)]
    student_peaks = [student.peak_memory(budget.kind, budget.function, key, timeout=60)
                     for _ in range(2)]
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


def describe(ratio, budget):
    if budget.reference_function is None:
        return f"{ratio:.2f}x the reference's time (budget {budget.max_ratio:g}x)"
    return (f"{1 / ratio:.1f}x faster than the reference's {budget.reference_function} "
            f"(required: {1 / budget.max_ratio:g}x)")


def over_budget(budget, ratio, how):
    shown = "no answer in time" if math.isinf(ratio) else describe(ratio, budget)
    details = {"ratio": round(ratio, 3) if math.isfinite(ratio) else "inf",
               "budget": budget.max_ratio, "over_budget": True}
    return Verdict(False, f"over budget: {shown} ({how}); {budget.hint}", details)


def _logits(n, q, seed):
    return torch.randn(n, q, generator=torch.Generator().manual_seed(seed)) * 3


def _labels(n, q, seed):
    return torch.randint(0, q, (n,), generator=torch.Generator().manual_seed(seed))


def _train_epoch_inputs():
    """A linear model on 16,384 examples of 20 features in 16 batches of 1,024: the
    batches are cheap, so a Python loop over the examples inside the epoch dominates."""
    g = torch.Generator().manual_seed(19)
    X = torch.randn(16384, 20, generator=g)
    return ["function", "callable", torch.zeros(20, 10), torch.zeros(10), X,
            torch.randint(0, 10, (16384,), generator=g), 1024, 0.1]


def _two_level_inputs(n):
    g = torch.Generator().manual_seed(55)
    d, clusters, m = 64, 256, 256  # V = 65,536 words
    return [torch.randn(n, d, generator=g), torch.randint(0, clusters * m, (n,), generator=g),
            torch.randn(d, clusters, generator=g) * 0.1, torch.zeros(clusters),
            torch.randn(clusters, d, m, generator=g) * 0.1, torch.zeros(clusters, m)]


def _full_inputs_of(two_level_args):
    H, y, Wc, bc, Ww, bw = two_level_args
    return [H, y, Ww.permute(1, 0, 2).reshape(H.shape[1], -1), bw.reshape(-1)]


# Rows are many and short ([16384, 10]): a Python loop over them costs a hundred
# times the vectorised version, far past any budget, while noise moves an honest
# implementation's ratio by well under 2x.
N, Q = 16384, 10
BUDGETS = [
    Budget("softmax", f"softmax of [{N}, {Q}]", "softmax",
           lambda: [_logits(N, Q, 11)], max_ratio=5),
    Budget("cross_entropy", f"cross_entropy of [{N}, {Q}]", "cross_entropy",
           lambda: [torch.softmax(_logits(N, Q, 12), 1), _labels(N, Q, 13)], max_ratio=5),
    Budget("accuracy", f"accuracy of [{N}, {Q}]", "accuracy",
           lambda: [_logits(N, Q, 14), _labels(N, Q, 15)], max_ratio=5),
    Budget("train_epoch", "train_epoch_ch3 over 16,384 examples in batches of 1,024",
           "run_train_epoch", _train_epoch_inputs, max_ratio=5, kind="scenario"),
    Budget("ex2_log_domain", f"log_softmax of [{N}, {Q}]", "log_softmax",
           lambda: [_logits(N, Q, 16)], max_ratio=5),
    Budget("ex3_stable_loss", f"softmax_cross_entropy of [{N}, {Q}]", "softmax_cross_entropy",
           lambda: [_logits(N, Q, 17) * 100, _labels(N, Q, 18)], max_ratio=5),
    # 32 examples are enough to time (the reference's full softmax takes tens of ms a
    # call, 36x its two-level one); the memory budget needs 128, so that holding [n, V]
    # scores stands far above the reference's own peak of gathering [n, d, m] weights.
    Budget("ex5_large_vocab", "two_level_log_prob at V = 65,536 against the full softmax",
           "two_level_log_prob", lambda: _two_level_inputs(32), max_ratio=1 / 3,
           reference_function="full_log_prob", reference_args=_full_inputs_of,
           hint="score only each example's own cluster, never all V words"),
    Budget("ex5_large_vocab", "two_level_log_prob's peak memory at V = 65,536",
           "two_level_log_prob", lambda: _two_level_inputs(128), max_ratio=3, resource="memory",
           hint="never hold scores for all V words: [n, V] floats are what a two-level "
                "softmax avoids"),
]
