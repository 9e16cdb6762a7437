"""Hidden tests of `train_epoch_ch3(net, train_iter, loss, updater)`: one epoch, returning
(mean train loss, train accuracy) over all examples.

The scenario (grader/scenarios.py, run_train_epoch) hands the student's loop a
linear net (a plain function or an nn.Module), the harness's own per-example
loss (F.cross_entropy on the scores) and either torch.optim.SGD or a function
updater(batch_size) that makes the book's sgd step: so these tests judge the
loop alone, not the student's sgd, softmax or cross_entropy. The oracle replays
the same epoch in the grader from the same initial parameters and batches, with
torch autograd (`replay_epoch`); the train tests reuse it.
"""

import math

import torch
from torch.nn import functional as F

from . import HiddenTest, Verdict
from .checks import compare, failed, generator, short

PART = "train_epoch"
BATCH = 32
N = 203  # 6 batches of 32, then a last partial batch of 11
LR = 0.5

SUM_WITH_OPTIMIZER = ("backward() on the summed loss with a torch.optim.Optimizer: its step is "
                      "batch_size times too large (an optimizer expects the mean loss)")
MEAN_WITH_CALLABLE = ("backward() on the mean loss with a function updater: the step is batch_size "
                      "times too small (updater(batch_size) divides by the batch size itself)")
NO_ZERO_GRAD = ("no updater.zero_grad() before backward(): gradients accumulate across "
                "minibatches")
DROPPED_LAST = "the last partial batch dropped"
NO_UPDATE = "no update at all: updater.step() / updater(batch_size) never took effect"
PER_BATCH_MEAN = ("means over batches instead of over examples: the last partial batch "
                  "counted as a full batch")
ROUNDED_UP = ("number of batches * batch_size examples counted: the last partial batch counted "
              "as a full batch")
ACCURACY_FRACTION = ("the accuracy as a fraction inside train_epoch: accuracy(y_hat, y) is already "
                     "a count, dividing it by the batch size and again by all examples makes it tiny")
ACCURACY_COUNT = "the number of correct predictions instead of the fraction"
MEAN_LOSS_SUMMED = "the batches' mean losses summed, then divided by all examples again"
NO_TRAIN_MODE = ("no net.train(): the module trained in eval mode, in which dropout and batch "
                 "norm behave as in evaluation")
LAST_SIZE_AS_FULL = ("the last partial batch counted as a full batch: pass each minibatch's own "
                     "size, X.shape[0]")


def linear_problem(seed, n, dtype=torch.float64):
    """Hidden data for a linear classifier of 12 features and 5 classes: images
    X [n, 1, 3, 4], labels y [n] of a noisy linear teacher, initial W [12, 5], b [5]."""
    g = generator(seed)
    X = torch.randn(n, 1, 3, 4, generator=g, dtype=torch.float64)
    teacher = torch.randn(12, 5, generator=g, dtype=torch.float64)
    y = (X.reshape(n, 12) @ teacher + torch.randn(n, 5, generator=g, dtype=torch.float64)).argmax(1)
    W = 0.3 * torch.randn(12, 5, generator=g, dtype=torch.float64)
    b = 0.1 * torch.randn(5, generator=g, dtype=torch.float64)
    return X.to(dtype), y, W.to(dtype), b.to(dtype)


def replay_epoch(W, b, X, y, batch_size, lr, mistake=None):
    """The contract's epoch, replayed on copies of W [d, q], b [q] over the batches
    X.split(batch_size): each batch's scores X @ W + b, its losses and correct predictions
    (recorded before its update), one SGD step of lr on the mean loss. `mistake` replays one
    of the step mistakes above instead. Returns ([W, b] afterwards, [(summed loss, correct,
    examples) per batch])."""
    W, b = W.clone().requires_grad_(True), b.clone().requires_grad_(True)
    batches = list(zip(X.split(batch_size), y.split(batch_size)))
    if mistake == DROPPED_LAST:
        batches = batches[:-1]
    records, accumulated = [], [torch.zeros_like(W), torch.zeros_like(b)]
    for Xb, yb in batches:
        scores = Xb.reshape(len(Xb), -1) @ W + b
        losses = F.cross_entropy(scores, yb, reduction="none")
        records.append((float(losses.detach().sum()), float((scores.argmax(1) == yb).sum()), len(yb)))
        grads = torch.autograd.grad(losses.mean(), [W, b])
        if mistake == NO_ZERO_GRAD:
            grads = accumulated = [a + g for a, g in zip(accumulated, grads)]
        scale = {SUM_WITH_OPTIMIZER: len(yb), MEAN_WITH_CALLABLE: 1 / len(yb),
                 NO_UPDATE: 0.0}.get(mistake, 1.0)
        with torch.no_grad():
            for p, g in zip((W, b), grads):
                p -= lr * scale * g
    return [W.detach(), b.detach()], records


def epoch_metrics(records):
    """(mean loss, accuracy) over all examples of the per-batch records."""
    loss, correct, n = map(sum, zip(*records))
    return loss / n, correct / n


def metric_mistakes(records, batch_size):
    """{mistake: (loss, accuracy) it reports}, for the metrics of known mistakes."""
    loss, correct, n = map(sum, zip(*records))
    fractions = [(l / k, c / k) for l, c, k in records]
    counted = len(records) * batch_size
    return {DROPPED_LAST: epoch_metrics(records[:-1]),
            PER_BATCH_MEAN: tuple(sum(f[i] for f in fractions) / len(records) for i in range(2)),
            ROUNDED_UP: (loss / counted, correct / counted),
            ACCURACY_FRACTION: (loss / n, sum(f[1] for f in fractions) / n),
            ACCURACY_COUNT: (loss / n, correct),
            MEAN_LOSS_SUMMED: (sum(f[0] for f in fractions) / n, correct / n)}


def not_a_pair(result, what):
    """None when `result` is (number, number), else a failed Verdict saying what came back."""
    if isinstance(result, list) and len(result) == 2 and all(type(v) is float for v in result):
        return None
    return Verdict(False, f"{what}: expected (mean train loss, train accuracy), two numbers; "
                          f"got {short(result)}")


def judge_metrics(result, records, what):
    """Verdict on the returned (loss, accuracy) against the replay's per-batch records."""
    verdict = not_a_pair(result, what)
    if verdict is not None:
        return verdict
    expected, variants = epoch_metrics(records), metric_mistakes(records, BATCH)
    details = {"returned": result}
    n = sum(r[2] for r in records)
    meanings = (f"the mean of the {n} examples' losses",
                f"the fraction of the {n} examples predicted right")
    for i, name in enumerate(("mean loss", "accuracy")):
        if not math.isclose(result[i], expected[i], rel_tol=1e-9, abs_tol=1e-12):
            mistakes = {m: lambda v=v, i=i: v[i] for m, v in variants.items()}
            return failed(what, f"{name} {result[i]:.6g} is not {meanings[i]}", details,
                          result[i], mistakes)
    return Verdict(True, f"{what}: loss {result[0]:.6g} and accuracy {result[1]:.6g} as expected",
                   details)


def run(student, net_kind, updater_kind, seed, lr, dtype=torch.float64, eval_scale=1.0):
    """(the scenario's report, the data it was given) for one epoch on hidden data."""
    X, y, W, b = linear_problem(seed, N, dtype)
    report = student.scenario("run_train_epoch", net_kind, updater_kind, W, b, X, y, BATCH, lr,
                              eval_scale)
    return report, (W, b, X, y)


def describe_run(net_kind, updater_kind):
    net = "an nn.Module" if net_kind == "module" else "a plain function net"
    updater = "torch.optim.SGD" if updater_kind == "optimizer" else "a function updater(batch_size)"
    return (f"train_epoch_ch3 with {net} and {updater}, {N} examples in batches of {BATCH} "
            f"(last {N % BATCH})")


def metrics_without_steps(student, net_kind, updater_kind, seed):
    """lr = 0: the parameters never move, so the metrics are those of the initial ones."""
    report, (W, b, X, y) = run(student, net_kind, updater_kind, seed, 0.0)
    _, records = replay_epoch(W, b, X, y, BATCH, 0.0)
    return judge_metrics(report["result"], records, f"{describe_run(net_kind, updater_kind)}, lr 0")


def metrics_while_training(student, seed):
    """lr > 0: each batch's loss and predictions are taken before its update."""
    report, (W, b, X, y) = run(student, "function", "callable", seed, LR)
    _, records = replay_epoch(W, b, X, y, BATCH, LR)
    return judge_metrics(report["result"], records, f"{describe_run('function', 'callable')}, lr {LR}")


def flat(params):
    """[W, b] (or any tensors) as one vector, to compare them at once."""
    return torch.cat([p.flatten() for p in params])


def parameters(student, net_kind, updater_kind, dtype, seed):
    """The parameters after one epoch equal the replay's; step mistakes are replayed to name them."""
    report, (W, b, X, y) = run(student, net_kind, updater_kind, seed, LR, dtype)
    expected, _ = replay_epoch(W, b, X, y, BATCH, LR)
    candidates = [NO_UPDATE, DROPPED_LAST] + (
        [SUM_WITH_OPTIMIZER, NO_ZERO_GRAD] if updater_kind == "optimizer" else [MEAN_WITH_CALLABLE])
    mistakes = {m: lambda m=m: flat(replay_epoch(W, b, X, y, BATCH, LR, m)[0]) for m in candidates}
    return compare(flat(report["params"]), flat(expected),
                   f"{describe_run(net_kind, updater_kind)}, lr {LR}: W and b after the epoch",
                   dtype, mistakes=mistakes)


def updater_batch_sizes(student, seed):
    report, _ = run(student, "function", "callable", seed, LR)
    sizes, expected = report["sizes"], [BATCH] * (N // BATCH) + [N % BATCH]
    what = f"updater(batch_size) over {N} examples in batches of {BATCH}"
    details = {"sizes": sizes}
    if sizes == expected:
        return Verdict(True, f"{what}: called with {expected}", details)
    if None in sizes:
        problem = "called while the parameters had no gradient: call backward() on the summed loss first"
    elif sizes == [BATCH] * len(expected):
        problem = details["mistake"] = LAST_SIZE_AS_FULL
    elif sizes == expected[:-1]:
        problem = details["mistake"] = DROPPED_LAST
    else:
        problem = f"called with {sizes}, not once per minibatch with its own size, X.shape[0]"
    return Verdict(False, f"{what}: {problem}", details)


def training_mode(student, seed):
    """A module arrives in eval mode (as evaluate_accuracy leaves it) and must train in
    training mode: in eval mode its scores are zero, so W and b would not learn (the call
    log only names what went wrong)."""
    report, (W, b, X, y) = run(student, "module", "optimizer", seed, LR, eval_scale=0.0)
    expected, _ = replay_epoch(W, b, X, y, BATCH, LR)
    what = "train_epoch_ch3 with an nn.Module handed over in eval mode"
    verdict = compare(flat(report["params"]), flat(expected), f"{what}: W and b after the epoch",
                      torch.float64)
    if verdict.passed:
        return Verdict(True, f"{what}: it trained in training mode")
    if not all(call[0] for call in report["calls"]):
        return Verdict(False, f"{what}: forward passes ran in eval mode; this looks like "
                              f"{NO_TRAIN_MODE}", {"mistake": NO_TRAIN_MODE})
    return verdict


TESTS = [
    HiddenTest("function updater: mean loss and accuracy over all examples", PART, 2.0,
               lambda s: metrics_without_steps(s, "function", "callable", 7101)),
    HiddenTest("torch.optim.SGD on an nn.Module: mean loss and accuracy over all examples", PART, 1.0,
               lambda s: metrics_without_steps(s, "module", "optimizer", 7102)),
    HiddenTest("metrics are taken before each update", PART, 1.0,
               lambda s: metrics_while_training(s, 7103)),
    HiddenTest("function updater: float64 parameters after one epoch", PART, 2.0,
               lambda s: parameters(s, "function", "callable", torch.float64, 7104)),
    HiddenTest("torch.optim.SGD on an nn.Module: float32 parameters after one epoch", PART, 2.0,
               lambda s: parameters(s, "module", "optimizer", torch.float32, 7105)),
    HiddenTest("torch.optim.SGD on a plain function's parameters", PART, 1.0,
               lambda s: parameters(s, "function", "optimizer", torch.float64, 7106)),
    HiddenTest("updater(batch_size) gets each minibatch's size", PART, 1.0,
               lambda s: updater_batch_sizes(s, 7107), counts_alone=False),
    HiddenTest("an nn.Module trains in training mode", PART, 0.5, lambda s: training_mode(s, 7108),
               counts_alone=False),
]
