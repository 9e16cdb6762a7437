"""Hidden tests of `sgd(params, lr, batch_size)`: in place p -= lr * p.grad / batch_size,
then zero the gradients, under torch.no_grad().

The scenario (run_sgd) makes leaf tensors with the given values and .grad, calls
the student's sgd, and reports each tensor object afterwards: values, .grad,
whether it is still the tensor of the list and on its storage, still a leaf
that requires grad. The oracle is the formula, in float64.
"""

import functools

import torch

from . import HiddenTest, StudentError, Verdict
from .checks import compare, describe, randn
from .train_epoch import flat

PART = "sgd"

NO_DIVISION = "no division by batch_size"
TWICE = "division by batch_size twice"
ASCENT = "a step up the gradient (+) instead of down (-)"
NOT_IN_PLACE = ("no update of the parameters themselves (param = param - ... or params[i] = ... "
                "make new tensors): update them in place, param -= ...")
NO_ZEROING = "the gradients were not zeroed after the step: the next minibatch would add to them"
NO_NO_GRAD = ("the update was not under torch.no_grad(): autograd refuses an in-place change of "
              "a leaf that requires grad")


def names_no_grad_mistake(test):
    """The error autograd raises for an update outside torch.no_grad() is a known mistake: say so."""
    @functools.wraps(test)
    def run(student, *args):
        try:
            return test(student, *args)
        except StudentError as err:
            if "leaf Variable that requires grad" not in err.message:
                raise
            return Verdict(False, f"sgd raised {err.ename}: {err.message}; this looks like "
                                  f"{NO_NO_GRAD}", {"mistake": NO_NO_GRAD})
    return run


def step(student, shapes, dtype, lr, batch_size, seed):
    """(values, grads sent, the scenario's report, 'what' for messages)."""
    values = [randn(shape, seed + i, dtype=dtype) for i, shape in enumerate(shapes)]
    grads = [randn(shape, seed + 100 + i, scale=5.0, dtype=dtype) for i, shape in enumerate(shapes)]
    report = student.scenario("run_sgd", values, grads, lr, batch_size)
    what = f"sgd(lr={lr}, batch_size={batch_size}) on {', '.join(describe(v) for v in values)}"
    return values, grads, report, what


@names_no_grad_mistake
def values(student, shapes, dtype, lr, batch_size, seed):
    before, grads, report, what = step(student, shapes, dtype, lr, batch_size, seed)

    def moved(size):
        return lambda: flat([p.double() - size * g.double() for p, g in zip(before, grads)])

    mistakes = {NOT_IN_PLACE: moved(0.0), NO_DIVISION: moved(lr), TWICE: moved(lr / batch_size**2),
                ASCENT: moved(-lr / batch_size)}
    return compare(flat(report["values"]), moved(lr / batch_size)(), f"{what}: the parameters after",
                   dtype, mistakes=mistakes)


@names_no_grad_mistake
def in_place(student, shapes, dtype, seed):
    _, _, report, what = step(student, shapes, dtype, 0.1, 8, seed)
    problems = {"in_list": "the list handed over holds other tensors afterwards (params[i] = ...): "
                           "update the tensors themselves",
                "same_storage": "a parameter's storage was replaced (p.data = ...): update it in place",
                "leaf": "a parameter is no longer a leaf tensor: the update was recorded by autograd",
                "requires_grad": "a parameter no longer requires grad"}
    found = [text for key, text in problems.items() if not all(report[key])]
    if found:
        return Verdict(False, f"{what}: {'; '.join(found)}", {"mistake": found[0]})
    return Verdict(True, f"{what}: the same leaf tensors, updated in place")


@names_no_grad_mistake
def zeroed(student, shapes, dtype, seed):
    _, _, report, what = step(student, shapes, dtype, 0.1, 8, seed)
    left = [g for g in report["grads"] if g is not None and bool(g.any())]
    if left:
        return Verdict(False, f"{what}: {len(left)} of {len(report['grads'])} gradients are not zero "
                              f"afterwards; this looks like {NO_ZEROING}", {"mistake": NO_ZEROING})
    return Verdict(True, f"{what}: the gradients are zero (or None) afterwards")


MODEL = [(784, 10), (10,)]
ODD = [(), (3, 4, 5), (7,)]

TESTS = [
    HiddenTest("float32 W [784, 10] and b [10], lr 0.1, batch 256", PART, 2.0,
               lambda s: values(s, MODEL, torch.float32, 0.1, 256, 7201)),
    HiddenTest("float64 tensors of shapes [], [3, 4, 5], [7], lr 0.03, batch 7", PART, 1.0,
               lambda s: values(s, ODD, torch.float64, 0.03, 7, 7202)),
    HiddenTest("batch_size 1, lr 2.5", PART, 0.5,
               lambda s: values(s, [(5, 3)], torch.float64, 2.5, 1, 7203)),
    HiddenTest("updates the tensors themselves, in place", PART, 1.0,
               lambda s: in_place(s, MODEL, torch.float32, 7204), counts_alone=False),
    HiddenTest("zeroes the gradients", PART, 1.0, lambda s: zeroed(s, ODD, torch.float64, 7205),
               counts_alone=False),
]
