"""Hidden tests of `evaluate_accuracy(net, data_iter)`: the fraction correct over all
examples, in eval mode for an nn.Module, without gradient tracking.

The scenario (run_evaluate_accuracy) hands it a linear net, a plain function or an
nn.Module with dropout 0.5 handed over in training mode, and DataLoader-like
batches whose last one is partial; it reports what came back and how the net was
called (mode, grad enabled). The oracle: argmax of X @ W + b in the grader, in
float64, on data without near-ties.
"""

import math

import torch

from . import HiddenTest, Verdict
from .checks import draw_seeds, every, failed, generator, short, type_name
from .train_epoch import linear_problem

PART = "evaluate_accuracy"

PER_BATCH_MEAN = ("the mean of the batches' accuracies: the last partial batch weighs as much as "
                  "a full one")
DROPPED_LAST = "the last partial batch dropped"
COUNT = "the number of correct predictions instead of the fraction"
ROUNDED_UP = ("number of batches * batch_size examples counted: the last partial batch counted "
              "as a full batch")
NO_EVAL = "no net.eval(): the module was evaluated in training mode (dropout on)"
NO_NO_GRAD = "no torch.no_grad(): autograd recorded the evaluation"


def batch_records(W, b, X, y, batch_size):
    """[(correct, examples)] per batch of the linear net X @ W + b."""
    hits = (X.reshape(len(X), -1).double() @ W.double() + b.double()).argmax(1) == y
    return [(float(h.sum()), len(h)) for h in hits.split(batch_size)]


def accuracy_mistakes(records, batch_size):
    correct, n = map(sum, zip(*records))
    mistakes = {PER_BATCH_MEAN: lambda: sum(c / k for c, k in records) / len(records),
                COUNT: lambda: correct,
                ROUNDED_UP: lambda: correct / (len(records) * batch_size)}
    if len(records) > 1:  # dropping the only batch leaves no fraction at all
        mistakes[DROPPED_LAST] = lambda: (correct - records[-1][0]) / (n - records[-1][1])
    return mistakes


def describe_run(kind, n, batch_size):
    net = "an nn.Module with dropout" if kind == "module" else "a plain function net"
    return (f"evaluate_accuracy of {net} on {n} examples in batches of {batch_size}"
            + (f" (last {n % batch_size})" if n % batch_size else ""))


def evaluate(student, kind, W, b, X, y, batch_size, grad_flips=False):
    """(the scenario's report, Verdict on the returned accuracy)."""
    report = student.scenario("run_evaluate_accuracy", kind, W, b, X, y, batch_size, grad_flips)
    records = batch_records(W, b, X, y, batch_size)
    correct, n = map(sum, zip(*records))
    what = describe_run(kind, n, batch_size)
    accuracy, details = report["accuracy"], {"returned": report["accuracy"]}
    if type(accuracy) is not float:
        return report, failed(what, f"returned a {type_name(accuracy)} ({short(accuracy)}), "
                                    "expected a number", details)
    if not math.isclose(accuracy, correct / n, rel_tol=1e-12, abs_tol=1e-12):
        return report, failed(what, f"returned {accuracy:.6g}, which is not the fraction of "
                                    f"the {n} examples that the net predicts right",
                              details, accuracy, accuracy_mistakes(records, batch_size))
    return report, Verdict(True, f"{what}: {accuracy:.6g} as expected", details)


# A fraction of 203 examples holds a few bits: each test evaluates on several draws.
EXAMPLES = 203
RIGHT_FOR_A_RANDOM_NET = 0.2  # of 5 classes: the draws are counted pessimistically


def all_examples(student, seed):
    def run(seed):
        X, y, W, b = linear_problem(seed, EXAMPLES)
        return evaluate(student, "function", W, b, X, y, 32)[1]
    return every(run(s) for s in draw_seeds(seed, EXAMPLES, RIGHT_FOR_A_RANDOM_NET))


def eval_mode(student, seed):
    """Dropout 0.5 on the scores: only eval mode gives the linear net's accuracy."""
    def run(seed):
        X, y, W, b = linear_problem(seed, EXAMPLES)
        report, verdict = evaluate(student, "module", W, b, X, y, 32)
        in_training = sum(bool(call[0]) for call in report["calls"])
        if in_training:
            return Verdict(False, f"{describe_run('module', len(y), 32)}: {in_training} of "
                                  f"{len(report['calls'])} forward passes ran in training mode; "
                                  f"this looks like {NO_EVAL}", {"mistake": NO_EVAL})
        return verdict
    return every(run(s) for s in draw_seeds(seed, EXAMPLES, RIGHT_FOR_A_RANDOM_NET))


def no_grad(student, seed):
    """A net whose scores are negated while gradients are tracked: only an evaluation under
    torch.no_grad() returns its accuracy (the call log only names what went wrong)."""
    X, y, W, b = linear_problem(seed, 100)
    report, verdict = evaluate(student, "function", W, b, X, y, 32, grad_flips=True)
    what = "evaluate_accuracy of a net whose parameters require grad"
    if verdict.passed:
        return Verdict(True, f"{what}: its accuracy, as under torch.no_grad()")
    if any(call[1] for call in report["calls"]):
        return Verdict(False, f"{what}: the forward passes ran with gradient tracking; this "
                              f"looks like {NO_NO_GRAD}", {"mistake": NO_NO_GRAD})
    return verdict


def images(seed, n=1000):
    """float32 images [m, 1, 28, 28] in [0, 1], W [784, 10], b [10], labels right for about half
    the images; images whose two best scores lie within 1e-3 are left out (no near-ties)."""
    g = generator(seed)
    X = torch.rand(n, 1, 28, 28, generator=g)
    W, b = 0.05 * torch.randn(784, 10, generator=g), 0.1 * torch.randn(10, generator=g)
    top = (X.reshape(n, 784).double() @ W.double() + b.double()).topk(2)
    y = torch.where(torch.rand(n, generator=g) < 0.5, top.indices[:, 0],
                    torch.randint(0, 10, (n,), generator=g))
    keep = top.values[:, 0] - top.values[:, 1] > 1e-3
    return X[keep], y[keep], W, b


def fashion_sized(student, seed, n=1000):
    def run(seed):
        X, y, W, b = images(seed, n)
        return evaluate(student, "function", W, b, X, y, 256)[1]
    return every(run(s) for s in draw_seeds(seed, n, RIGHT_FOR_A_RANDOM_NET))


def single_example(student, seed):
    """Predicted right (1.0), then wrong (0.0): no constant passes both."""
    X, _, W, b = linear_problem(seed, 1)
    predicted = (X.reshape(1, -1) @ W + b).argmax(1)
    verdict = evaluate(student, "function", W, b, X, predicted, 32)[1]
    if not verdict.passed:
        return verdict
    return evaluate(student, "function", W, b, X, (predicted + 1) % 5, 32)[1]


TESTS = [
    HiddenTest("fraction correct over all examples, last batch partial", PART, 2.0,
               lambda s: all_examples(s, 7401)),
    HiddenTest("an nn.Module with dropout is evaluated in eval mode", PART, 1.0,
               lambda s: eval_mode(s, 7402)),
    HiddenTest("no gradient tracking", PART, 1.0, lambda s: no_grad(s, 7403), counts_alone=False),
    HiddenTest("float32 images [n, 1, 28, 28] in batches of 256", PART, 1.0,
               lambda s: fashion_sized(s, 7404)),
    HiddenTest("a single example, predicted right and wrong", PART, 0.5,
               lambda s: single_example(s, 7405), counts_alone=False),
]
