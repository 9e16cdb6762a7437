"""Hidden tests that need the submission's process for parts whose values are tested
elsewhere (softmax.py, cross_entropy.py, ex2_log_domain.py, ex3_stable_loss.py):

* gradients: the whole float64 Jacobian that the student's own autograd graph gives
  (scenario loss_gradient: one vector-Jacobian product per output entry, the
  analytic half of gradcheck), against torch.autograd of torch's own ops on the
  same input, with float64's tolerance;
* inputs left unchanged: the scenario inputs_after_call returns the inputs as they
  are after the call, and the grader compares them with what it sent.

cross_entropy's gradient is taken with torch.softmax in front (and with respect to
the probabilities), so that it does not depend on the student's softmax.
"""

import math

import torch
from torch.nn import functional as F

from . import HiddenTest, Verdict
from .checks import a_type, compare, describe, labels, near_miss, near_miss_shape, randn, shape_text

DETACHED = ("no gradient reaches the input: the result was cut from autograd's graph "
            "(.detach(), .item(), .numpy(), torch.tensor(...) or a torch.no_grad() block)")
DETACHED_NORMALISER = ("the normaliser (the log-sum-exp) detached from autograd: its gradient is "
                       "missing")
IN_PLACE = ("the input modified in place (e.g. X.exp_() or O -= ...): the caller's tensor must "
            "stay as it was")

# Logits of ±1e3 (exp overflows even in float64), rows far apart, ties.
EXTREME = [[1e3, 0.0, -1e3], [0.0, -800.0, 1.0], [-1e3, 1e3, 0.0], [500.0, 500.0, -500.0]]
EXTREME_LABELS = [2, 1, 0, 2]


def losses_of_logits(O, y):
    return F.cross_entropy(O, y, reduction="none")


def losses_of_probabilities(P, y):
    return -torch.log(P[torch.arange(len(y)), y])


def jacobian(student, name, reference, inputs, what, through_softmax=False, mistakes=None):
    """Verdict on the Jacobian [k, *x.shape] of name(x, *rest) (k = entries of the output), with
    inputs = [x, *rest], against that of reference(x, *rest) by torch.autograd."""
    x, rest = inputs[0], inputs[1:]
    expected = torch.autograd.functional.jacobian(lambda x: reference(x, *rest), x)
    out_shape = tuple(expected.shape[:expected.dim() - x.dim()])
    k = math.prod(out_shape)
    expected = expected.reshape(k, *x.shape)
    what = f"{what}: the float64 Jacobian"

    def gradients(shape):
        cotangents = torch.eye(k, dtype=torch.float64).reshape(k, *shape)
        return student.scenario("loss_gradient", name, inputs, cotangents, through_softmax)

    report = gradients(out_shape)
    out = report["output"]
    if report["grads"] is not None:
        return compare(report["grads"], expected, what, torch.float64, mistakes=mistakes)
    if not isinstance(out, torch.Tensor):
        return Verdict(False, f"{what}: returned {a_type(out)}, expected a tensor of shape "
                              f"{shape_text(out_shape)}")
    if tuple(out.shape) == out_shape:
        return Verdict(False, f"{what}: {DETACHED}", {"mistake": DETACHED})
    shape_problem = (f"{what}: returned {describe(out)}, expected shape {shape_text(out_shape)}, "
                     "so no gradient of each entry could be taken")
    if near_miss_shape(out.shape, out_shape):
        # the same Jacobian, taken through the student's own shape
        report = gradients(tuple(out.shape))
        if report["grads"] is not None:
            verdict = compare(report["grads"], expected, what, torch.float64, mistakes=mistakes)
            if verdict.passed:
                return near_miss(what, out.shape, out_shape, verdict.details)
    return Verdict(False, shape_problem, {"returned_shape": list(out.shape)})


def loss_mistakes(O, y):
    """Jacobian of -(O[i, y[i]] - a detached normaliser): -onehot(y) in the loss's own row."""
    def detached():
        J = torch.zeros(len(y), *O.shape, dtype=torch.float64)
        J[torch.arange(len(y)), torch.arange(len(y)), y] = -1.0
        return J
    return {DETACHED_NORMALISER: detached}


def softmax_cross_entropy_gradient(student, O, y, what):
    return jacobian(student, "softmax_cross_entropy", losses_of_logits, [O, y],
                    f"softmax_cross_entropy on {what} {describe(O)}", mistakes=loss_mistakes(O, y))


def log_softmax_gradient(student, O, what):
    """With a detached normaliser, log_softmax's Jacobian is the identity."""
    identity = torch.eye(O.numel(), dtype=torch.float64).reshape(-1, *O.shape)
    mistakes = {DETACHED_NORMALISER: lambda: identity}
    return jacobian(student, "log_softmax", lambda O: torch.log_softmax(O, dim=1), [O],
                    f"log_softmax on {what} {describe(O)}", mistakes=mistakes)


def cross_entropy_through_softmax(student, seed):
    O, y = randn((6, 5), seed, scale=2.0), labels(6, 5, seed + 1)
    return jacobian(student, "cross_entropy", losses_of_logits, [O, y],
                    f"cross_entropy(torch.softmax(O), y) with respect to the logits {describe(O)}",
                    through_softmax=True)


def cross_entropy_probabilities(student, seed):
    P, y = torch.softmax(randn((6, 5), seed), dim=1), labels(6, 5, seed + 1)
    return jacobian(student, "cross_entropy", losses_of_probabilities, [P, y],
                    f"cross_entropy with respect to the probabilities {describe(P)}")


def unchanged(student, name, inputs, what):
    """The inputs, as the student's function left them, equal what was sent."""
    after = student.scenario("inputs_after_call", name, inputs)
    what = f"{name} on {what}"
    for i, (a, x) in enumerate(zip(after, inputs)):
        if not (isinstance(a, torch.Tensor) and a.shape == x.shape and torch.equal(a, x)):
            return Verdict(False, f"{what}: argument {i + 1} changed during the call; this looks "
                                  f"like {IN_PLACE}", {"mistake": IN_PLACE})
    return Verdict(True, f"{what}: the inputs are unchanged")


def logits32(seed):
    return randn((8, 5), seed, scale=2.0, dtype=torch.float32)


EXTREME32 = torch.tensor([[1e4, 0.0, -1e4, 5.0], [0.0, float("-inf"), 0.0, 1.0],
                          [-1e4, -1e4 + 8, -1e4 + 16, -1e4 + 24]])
EXTREME64 = torch.tensor(EXTREME, dtype=torch.float64)
EX2, EX3 = "ex2_log_domain", "ex3_stable_loss"

TESTS = [
    HiddenTest("softmax_cross_entropy: gradient (float64 Jacobian) of N(0, 4^2) logits", EX3, 1.0,
               lambda s: softmax_cross_entropy_gradient(s, randn((6, 5), 7701, scale=4.0),
                                                        labels(6, 5, 7702), "N(0, 4^2) logits")),
    HiddenTest("softmax_cross_entropy: gradient at logits of ±1e3", EX3, 1.0,
               lambda s: softmax_cross_entropy_gradient(s, EXTREME64, torch.tensor(EXTREME_LABELS),
                                                        "logits of ±1e3"),
               counts_alone=False),
    HiddenTest("log_softmax: gradient (float64 Jacobian) of N(0, 4^2) logits", EX2, 1.0,
               lambda s: log_softmax_gradient(s, randn((4, 5), 7703, scale=4.0), "N(0, 4^2) logits")),
    HiddenTest("log_softmax: gradient at logits of ±1e3", EX2, 1.0,
               lambda s: log_softmax_gradient(s, EXTREME64, "logits of ±1e3"), counts_alone=False),
    HiddenTest("gradient through torch.softmax with respect to the logits", "cross_entropy", 1.0,
               lambda s: cross_entropy_through_softmax(s, 7704)),
    HiddenTest("gradient with respect to y_hat", "cross_entropy", 1.0,
               lambda s: cross_entropy_probabilities(s, 7706)),
    HiddenTest("softmax leaves its input unchanged", "softmax", 1.0,
               lambda s: unchanged(s, "softmax", [logits32(7708)], "float32 [8, 5]"),
               counts_alone=False, inputs_unchanged=True),
    HiddenTest("stable_softmax leaves its input unchanged", EX3, 0.5,
               lambda s: unchanged(s, "stable_softmax", [EXTREME32], "logits of ±1e4 and -inf"),
               counts_alone=False, inputs_unchanged=True),
    HiddenTest("softmax_cross_entropy leaves its inputs unchanged", EX3, 0.5,
               lambda s: unchanged(s, "softmax_cross_entropy", [logits32(7709), labels(8, 5, 7710)],
                                   "float32 [8, 5]"),
               counts_alone=False, inputs_unchanged=True),
    HiddenTest("log_softmax leaves its input unchanged", EX2, 0.5,
               lambda s: unchanged(s, "log_softmax", [logits32(7711)], "float32 [8, 5]"),
               counts_alone=False, inputs_unchanged=True),
    HiddenTest("cross_entropy leaves y_hat and y unchanged", "cross_entropy", 1.0,
               lambda s: unchanged(s, "cross_entropy",
                                   [torch.softmax(logits32(7712), dim=1), labels(8, 5, 7713)],
                                   "float32 [8, 5]"),
               counts_alone=False, inputs_unchanged=True),
]
