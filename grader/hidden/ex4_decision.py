"""Hidden tests of exercise 4: `expected_cost`, `bayes_decision` and `decide_with_reject`.

Oracles: einsum for the expected costs; for the decisions, the float64 expected
costs of the actions chosen (any action within rounding of the least cost is
right, so near-ties cannot fail a correct answer); torch.max for the reject
option, with thresholds that are exact in every dtype (0.375, 0.5, 0.625, 1).
"""

import torch

from . import HiddenTest, Verdict
from .checks import (
    TOLERANCES,
    compare,
    compare_labels,
    describe,
    failed,
    generator,
    near_miss_verdict,
    randn,
    tensor_problem,
)

PART = "ex4_decision"

NO_TRANSPOSE = "probs @ cost, reading the cost matrix as cost[true_class, action] instead of cost[action, true_class]"
LARGEST_COST = "the action of LARGEST expected cost (argmax instead of argmin)"
MOST_LIKELY = "the most likely class, ignoring the costs"
LESS_EQUAL = ("refers (-1) where the largest probability is <= threshold: "
              "a probability equal to the threshold is not below it")
REVERSED = "refers the confident examples and keeps the unsure ones (the comparison reversed)"


def probabilities(n, k, seed, dtype=torch.float32, scale=1.5):
    """Rows of a softmax of N(0, scale^2) logits, rounded to dtype: [n, k]."""
    return torch.softmax(randn((n, k), seed, scale), dim=1).to(dtype)


def costs(a, k, seed, dtype=torch.float32):
    """A cost matrix [a, k] of uniform costs in [0, 100): asymmetric, like a diagnosis's."""
    return (100 * torch.rand((a, k), generator=generator(seed), dtype=torch.float64)).to(dtype)


def oracle_cost(probs, cost):
    return torch.einsum("nk,ak->na", probs.double(), cost.double())


def cost_mistakes(probs, cost):
    return {NO_TRANSPOSE: lambda: probs.double() @ cost.double()}


def expected_cost_check(student, n, k, a, dtype, seed):
    probs, cost = probabilities(n, k, seed, dtype), costs(a, k, seed + 1, dtype)
    E = student.call("expected_cost", probs, cost)
    return compare(E, oracle_cost(probs, cost), f"expected_cost on probs {describe(probs)}, cost {describe(cost)}",
                   dtype, mistakes=cost_mistakes(probs, cost))


def decision_mistakes(probs, cost):
    E = oracle_cost(probs, cost)
    mistakes = {LARGEST_COST: lambda: E.argmax(dim=1), MOST_LIKELY: lambda: probs.argmax(dim=1)}
    if cost.shape[0] == cost.shape[1]:
        mistakes[NO_TRANSPOSE] = lambda: (probs.double() @ cost.double()).argmin(dim=1)
    return mistakes


def bayes_check(student, probs, cost, what):
    """Each decision must be an action whose expected cost is the least, up to the dtype's rounding."""
    decision = student.call("bayes_decision", probs, cost)
    what = f"bayes_decision on {what} probs {describe(probs)}, cost {describe(cost)}"
    verdict = least_cost_verdict(decision, probs, cost, what)
    if verdict.passed:
        return verdict
    partly = near_miss_verdict(decision, (len(probs),), what,
                               lambda reshaped: least_cost_verdict(reshaped, probs, cost, what))
    return partly or verdict


def least_cost_verdict(decision, probs, cost, what):
    n, a = len(probs), len(cost)
    mistakes = decision_mistakes(probs, cost)
    problem = tensor_problem(decision, (n,), torch.int64, "expected int64 (a LongTensor)")
    if problem is None and ((decision < 0) | (decision >= a)).any():
        problem = f"returned actions {decision.tolist()} outside [0, {a})"
    if problem is not None:
        return failed(what, problem, actual=decision, mistakes=mistakes)
    E = oracle_cost(probs, cost)
    best = E.min(dim=1).values
    rtol, atol = TOLERANCES[probs.dtype]
    chosen = E[torch.arange(n), decision]
    worse = chosen > best + atol + rtol * E.abs().amax(dim=1)
    if worse.any():
        rows = [int(i) for i in torch.nonzero(worse).flatten()[:5]]
        return failed(what, f"{int(worse.sum())} of {n} decisions do not have the least "
                            f"expected cost, e.g. rows {rows}", {"wrong_rows": int(worse.sum())},
                      decision, mistakes)
    return Verdict(True, f"{what}: all {n} decisions have the least expected cost")


def bayes_random(student, n, k, a, dtype, seed):
    return bayes_check(student, probabilities(n, k, seed, dtype), costs(a, k, seed + 1, dtype), "random")


def bayes_zero_one(student):
    """With the 0-1 cost every mistake costs 1: the decision is the most likely class."""
    probs = probabilities(40, 10, 711)
    return bayes_check(student, probs, 1 - torch.eye(10), "0-1 cost,")


def reject_oracle(probs, threshold):
    confidence, label = probs.double().max(dim=1)
    return torch.where(confidence < threshold, -1, label)


def reject_mistakes(probs, threshold):
    confidence, label = probs.double().max(dim=1)
    return {LESS_EQUAL: lambda: torch.where(confidence <= threshold, -1, label),
            REVERSED: lambda: torch.where(confidence >= threshold, -1, label)}


def reject_check(student, probs, threshold, what):
    decision = student.call("decide_with_reject", probs, threshold)
    return compare_labels(decision, reject_oracle(probs, threshold),
                          f"decide_with_reject on {what} {describe(probs)}, threshold {threshold}",
                          reject_mistakes(probs, threshold))


def reject_random(student, dtype, threshold, seed):
    return reject_check(student, probabilities(40, 5, seed, dtype), threshold, "random probs")


def at_threshold(student, dtype):
    """A largest probability exactly equal to the threshold is not below it: keep the argmax."""
    probs = torch.tensor([[0.5, 0.25, 0.25], [0.25, 0.5, 0.25], [0.125, 0.375, 0.5],
                          [0.375, 0.3125, 0.3125], [0.75, 0.125, 0.125]], dtype=dtype)  # all exact in float16
    return reject_check(student, probs, 0.5, "probabilities exactly at the threshold,")


def extreme_thresholds(student):
    """Threshold 1 refers all but the certain rows; threshold 0 refers none; a single row."""
    probs = probabilities(6, 4, 721)
    probs[2] = torch.tensor([0.0, 1.0, 0.0, 0.0])
    for threshold in (1.0, 0.0):
        verdict = reject_check(student, probs, threshold, "probs with a certain row,")
        if not verdict.passed:
            return verdict
    return reject_check(student, probs[:1], 0.625, "a single row")


TESTS = [
    HiddenTest("expected_cost: float32 probs [20, 4], cost [3, 4]", PART, 1.0,
               lambda s: expected_cost_check(s, 20, 4, 3, torch.float32, 701)),
    HiddenTest("expected_cost: float64 probs [15, 5], square asymmetric cost [5, 5]", PART, 1.0,
               lambda s: expected_cost_check(s, 15, 5, 5, torch.float64, 703)),
    HiddenTest("expected_cost: a single row [1, 6], cost [8, 6]", PART, 0.5,
               lambda s: expected_cost_check(s, 1, 6, 8, torch.float32, 705)),
    HiddenTest("expected_cost: an empty batch [0, 4] gives [0, 3]", PART, 0.5,
               lambda s: expected_cost_check(s, 0, 4, 3, torch.float32, 707),
               counts_alone=False),
    HiddenTest("bayes_decision: float32 probs [50, 4], 6 actions", PART, 1.0,
               lambda s: bayes_random(s, 50, 4, 6, torch.float32, 713)),
    HiddenTest("bayes_decision: float64 probs [30, 5], square asymmetric cost", PART, 1.0,
               lambda s: bayes_random(s, 30, 5, 5, torch.float64, 715)),
    HiddenTest("bayes_decision: the 0-1 cost gives the most likely class", PART, 0.5, bayes_zero_one),
    HiddenTest("decide_with_reject: float32 [40, 5], threshold 0.375", PART, 1.0,
               lambda s: reject_random(s, torch.float32, 0.375, 723)),
    HiddenTest("decide_with_reject: float64 [40, 5], threshold 0.625", PART, 1.0,
               lambda s: reject_random(s, torch.float64, 0.625, 725)),
    HiddenTest("decide_with_reject: a probability equal to the threshold is kept (float32)", PART, 1.0,
               lambda s: at_threshold(s, torch.float32), counts_alone=False),
    HiddenTest("decide_with_reject: a probability equal to the threshold is kept (float16)", PART, 0.5,
               lambda s: at_threshold(s, torch.float16), counts_alone=False),
    HiddenTest("decide_with_reject: thresholds 1 and 0, a single row", PART, 0.5, extreme_thresholds),
]
