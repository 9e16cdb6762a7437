"""The hidden tests of evaluate_accuracy, accumulator, sgd, train_epoch, train and predict,
and the scenario-backed extras of grader/hidden/gradients.py, run in this process
against the reference solution, the release notebook's stubs and known mistakes.

A FakeStudent stands in for the sandbox: a namespace dict of functions built by
exec (so that `net` reads the namespace's W and b, as a notebook's globals), every
argument and result sent through the wire format of grader.protocol, exceptions
mapped to StudentError as the sandbox child does.
"""

import functools
import json
import types
from pathlib import Path

import pytest
import torch

import grader.scenarios
import solutions
from grader.hidden import StudentError, accumulator, evaluate_accuracy, gradients, predict, sgd, train, train_epoch
from grader.judge import Context
from grader.protocol import decode_value, encode_value
from solutions.data_files import find_fashion_mnist, raw_dir

ROOT = Path(__file__).resolve().parents[1]
RELEASE = ROOT / "release" / "softmax_regression" / "softmax_regression.ipynb"
MODULES = (evaluate_accuracy, accumulator, sgd, train_epoch, train, predict, gradients)
ALL_TESTS = [test for module in MODULES for test in module.TESTS]
FASHION = [test for test in ALL_TESTS if test.run is train.fashion_mnist]
FAST = [test for test in ALL_TESTS if test.run is not train.fashion_mnist]


def round_trip(value):
    """`value` as the other process receives it: encoded, through JSON, decoded."""
    blobs = []
    return decode_value(json.loads(json.dumps(encode_value(value, blobs))), blobs)


class FakeStudent:
    """A Student whose submission is a namespace dict in this process."""

    def __init__(self, namespace):
        self.namespace = namespace

    def _run(self, function, args):
        try:
            result = function(*round_trip(list(args)))
        except Exception as err:  # the child reports the student's exception by name and text
            raise StudentError(type(err).__name__, str(err)) from err
        return round_trip(result)

    def _named(self, name):
        if name not in self.namespace:
            raise NameError(f"name {name!r} is not defined")
        return self.namespace[name]

    def call(self, name, *args):
        return self._run(lambda *a: self._named(name)(*a), args)

    def has(self, name):
        return name in self.namespace

    def set_global(self, name, value):
        self.namespace[name] = round_trip(value)

    def scenario(self, name, *args):
        return self._run(lambda *a: getattr(grader.scenarios, name)(self.namespace, *a), args)

    @property
    def data_dir(self):
        return str(raw_dir(find_fashion_mnist(download=False)))


def reference_namespace():
    """The reference's core and exercises, exec'd into one dict, as a notebook's cells would be."""
    namespace = {}
    package = Path(solutions.__file__).parent
    exec((package / "softmax_regression.py").read_text(), namespace)
    exercises = (package / "exercises.py").read_text()
    assert "from .softmax_regression import softmax\n" in exercises
    exec(exercises.replace("from .softmax_regression import softmax\n", ""), namespace)
    return namespace


def stub_namespace():
    """The release notebook's imports and unfilled stubs."""
    namespace = {}
    for cell in json.loads(RELEASE.read_text())["cells"]:
        grade_id = cell["metadata"].get("nbgrader", {}).get("grade_id", "")
        if grade_id == "given_imports" or grade_id.endswith("_solution"):
            exec("".join(cell["source"]), namespace)
    return namespace


def with_mistake(**replacements):
    """The reference with some names replaced. Functions are rebound to the namespace as their
    globals, so they call the namespace's Accumulator, accuracy, ... as a notebook's would."""
    namespace = reference_namespace()
    for name, value in replacements.items():
        if isinstance(value, types.FunctionType):
            kwdefaults = value.__kwdefaults__
            value = types.FunctionType(value.__code__, namespace, name, value.__defaults__)
            value.__kwdefaults__ = kwdefaults
        namespace[name] = value
    return namespace


def variant(function, mistake):
    """`function`, which knows several mistakes, set to make `mistake`."""
    copy = types.FunctionType(function.__code__, function.__globals__, function.__name__,
                              function.__defaults__)
    copy.__kwdefaults__ = {"mistake": mistake}
    return copy


@functools.cache
def reference_fashion_mnist_run():
    """The reference's run of the end-to-end scenario, as the judge's Context gives it."""
    return train.run_fashion_mnist(FakeStudent(reference_namespace()))


def outcomes(namespace, tests):
    """[(test, its Verdict or StudentError)] of each test against the namespace."""
    student, results = FakeStudent(namespace), []
    context = Context({}, set(), reference_run=reference_fashion_mnist_run)
    for test in tests:
        try:
            verdict = test.run(student, context) if test.end_to_end else test.run(student)
            results.append((test, verdict))
        except StudentError as err:
            results.append((test, err))
    return results


def passed(result):
    return getattr(result, "passed", False) is True


def describe(results):
    return "\n".join(f"{test.part} / {test.name}: {getattr(r, 'message', r)}" for test, r in results)


def test_the_reference_passes_every_test():
    failing = [(t, r) for t, r in outcomes(reference_namespace(), ALL_TESTS) if not passed(r)]
    assert not failing, describe(failing)


def test_stubs_raise_not_implemented_in_every_test():
    other = [(t, r) for t, r in outcomes(stub_namespace(), ALL_TESTS)
             if not (isinstance(r, StudentError) and r.ename == "NotImplementedError")]
    assert not other, describe(other)


# Known mistakes. Names such as nn, Accumulator and accuracy in these functions are the
# namespace's: with_mistake makes it their globals.

def evaluate_with_mistake(net, data_iter, *, mistake):
    """'no eval' (never net.eval()), 'no no_grad' (autograd records), 'per batch' (the mean of
    the batches' accuracies), 'drop last' (the last partial batch), 'count' (not divided)."""
    if isinstance(net, nn.Module) and mistake != "no eval":
        net.eval()
    metric, fractions, first_size = Accumulator(2), [], None
    with torch.enable_grad() if mistake == "no no_grad" else torch.no_grad():
        for X, y in data_iter:
            first_size = first_size or y.numel()
            if mistake == "drop last" and y.numel() < first_size:
                break
            correct = accuracy(net(X), y)
            fractions.append(correct / y.numel())
            metric.add(correct, y.numel())
    if mistake == "per batch":
        return sum(fractions) / len(fractions)
    return metric[0] if mistake == "count" else metric[0] / metric[1]


def accumulator_with(mistake):
    """An Accumulator class whose reset() does nothing ('reset ignored') or whose add() replaces
    the sums ('add replaces')."""
    class Accumulator:
        def __init__(self, n):
            self.data = [0.0] * n

        def add(self, *args):
            kept = [0.0] * len(self.data) if mistake == "add replaces" else self.data
            self.data = [a + float(b) for a, b in zip(kept, args)]

        def reset(self):
            if mistake != "reset ignored":
                self.data = [0.0] * len(self.data)

        def __getitem__(self, idx):
            return self.data[idx]

    return Accumulator


def sgd_with_mistake(params, lr, batch_size, *, mistake):
    """'outside no_grad', 'no division', 'twice' (divided by batch_size twice), 'rebinding'
    (params[i] = param - ...: new tensors), 'no zeroing', 'ascent' (+ instead of -)."""
    divisors = {"no division": 1, "twice": batch_size ** 2, "ascent": -batch_size}
    divisor = divisors.get(mistake, batch_size)
    with torch.enable_grad() if mistake == "outside no_grad" else torch.no_grad():
        for i, param in enumerate(params):
            if mistake == "rebinding":
                params[i] = param - lr * param.grad / divisor
            else:
                param -= lr * param.grad / divisor
            if mistake != "no zeroing":
                param.grad.zero_()


def epoch_with_mistake(net, train_iter, loss, updater, *, mistake):
    """'no train mode', 'no zero_grad', 'summed loss' (with an optimizer), 'mean loss' (with a
    function updater), 'drop last' (the last partial batch), 'full batches' (every batch counted
    as large as the first), 'fraction' (accuracy divided by the batch size), 'batch means' (the
    mean over batches of the batches' means), 'means summed' (the batches' mean losses summed),
    'count' (the number correct returned)."""
    if isinstance(net, nn.Module) and mistake != "no train mode":
        net.train()
    metric, first_size = Accumulator(3), None
    for X, y in train_iter:
        first_size = first_size or X.shape[0]
        if mistake == "drop last" and X.shape[0] < first_size:
            break
        size = first_size if mistake == "full batches" else X.shape[0]
        y_hat = net(X)
        l = loss(y_hat, y)
        if isinstance(updater, torch.optim.Optimizer):
            if mistake != "no zero_grad":
                updater.zero_grad()
            (l.sum() if mistake == "summed loss" else l.mean()).backward()
            updater.step()
        else:
            (l.mean() if mistake == "mean loss" else l.sum()).backward()
            updater(size)
        means = mistake in ("batch means", "means summed")
        correct = accuracy(y_hat, y) / (size if mistake in ("fraction", "batch means") else 1)
        metric.add(float(l.detach().mean() if means else l.detach().sum()), correct,
                   1 if mistake == "batch means" else size)
    return metric[0] / metric[2], metric[1] if mistake == "count" else metric[1] / metric[2]


def train_with_mistake(net, train_iter, test_iter, loss, num_epochs, updater, *, mistake):
    """'none' (no history returned), 'last only' (the last epoch's metrics), 'test first' (the test
    accuracy measured before the epoch's training), 'train as test' (the training accuracy
    reported as the test accuracy), 'one more' (num_epochs + 1 epochs)."""
    history = []
    for _ in range(num_epochs + (mistake == "one more")):
        test_acc = evaluate_accuracy(net, test_iter) if mistake == "test first" else None
        train_loss, train_acc = train_epoch_ch3(net, train_iter, loss, updater)
        if mistake == "train as test":
            test_acc = train_acc
        if test_acc is None:
            test_acc = evaluate_accuracy(net, test_iter)
        history.append((train_loss, train_acc, test_acc))
    return {"none": None, "last only": history[-1] if history else ()}.get(mistake, history)


def labels_alphabetical(labels):
    text = sorted(TEXT_LABELS)
    return [text[int(i)] for i in labels]


def predict_with_mistake(net, test_iter, n=6, *, mistake):
    """'ignores n' (always 6), 'swapped' ((predicted, true))."""
    X, y = next(iter(test_iter))
    k = 6 if mistake == "ignores n" else n
    true = get_fashion_mnist_labels(y[:k])
    predicted = get_fashion_mnist_labels(net(X).argmax(1)[:k])
    return (predicted, true) if mistake == "swapped" else (true, predicted)


def log_softmax_detached_normaliser(O):
    return O - torch.logsumexp(O, dim=1, keepdim=True).detach()


def softmax_cross_entropy_rebuilt(O, y):
    return torch.tensor([(torch.logsumexp(o, 0) - o[c]).item() for o, c in zip(O.detach(), y)],
                        dtype=O.dtype)


def cross_entropy_detached(y_hat, y):
    return -torch.log(y_hat.detach()[torch.arange(len(y)), y])


def softmax_in_place(X):
    X.exp_()
    return X / X.sum(1, keepdim=True)


def stable_softmax_in_place(O):
    O -= O.max(dim=1, keepdim=True).values
    return softmax(O)


def log_softmax_in_place(O):
    O -= O.max(dim=1, keepdim=True).values
    return O - torch.log(torch.exp(O).sum(1, keepdim=True))


def cross_entropy_in_place(y_hat, y):
    return -y_hat.log_()[torch.arange(len(y)), y]


EPOCH, TRAIN, EX3 = "train_epoch", "train", "ex3_stable_loss"
# (what the failing test's message must name, the mistake's part, other parts allowed to fail
# because they call the mistaken function, the replacements)
MISTAKES = [
    (evaluate_accuracy.PER_BATCH_MEAN, "evaluate_accuracy", {TRAIN},
     dict(evaluate_accuracy=variant(evaluate_with_mistake, "per batch"))),
    (evaluate_accuracy.DROPPED_LAST, "evaluate_accuracy", {TRAIN},
     dict(evaluate_accuracy=variant(evaluate_with_mistake, "drop last"))),
    (evaluate_accuracy.COUNT, "evaluate_accuracy", {TRAIN},
     dict(evaluate_accuracy=variant(evaluate_with_mistake, "count"))),
    (evaluate_accuracy.NO_EVAL, "evaluate_accuracy", set(),
     dict(evaluate_accuracy=variant(evaluate_with_mistake, "no eval"))),
    (evaluate_accuracy.NO_NO_GRAD, "evaluate_accuracy", set(),
     dict(evaluate_accuracy=variant(evaluate_with_mistake, "no no_grad"))),
    (accumulator.RESET_IGNORED, "accumulator", set(),
     dict(Accumulator=accumulator_with("reset ignored"))),
    (accumulator.ADD_REPLACES, "accumulator", {"evaluate_accuracy", EPOCH, TRAIN},
     dict(Accumulator=accumulator_with("add replaces"))),
    (sgd.NO_NO_GRAD, "sgd", set(), dict(sgd=variant(sgd_with_mistake, "outside no_grad"))),
    (sgd.NO_DIVISION, "sgd", set(), dict(sgd=variant(sgd_with_mistake, "no division"))),
    (sgd.TWICE, "sgd", set(), dict(sgd=variant(sgd_with_mistake, "twice"))),
    (sgd.NOT_IN_PLACE, "sgd", set(), dict(sgd=variant(sgd_with_mistake, "rebinding"))),
    (sgd.NO_ZEROING, "sgd", set(), dict(sgd=variant(sgd_with_mistake, "no zeroing"))),
    (sgd.ASCENT, "sgd", set(), dict(sgd=variant(sgd_with_mistake, "ascent"))),
    (train_epoch.NO_TRAIN_MODE, EPOCH, set(),
     dict(train_epoch_ch3=variant(epoch_with_mistake, "no train mode"))),
    (train_epoch.NO_ZERO_GRAD, EPOCH, {TRAIN},
     dict(train_epoch_ch3=variant(epoch_with_mistake, "no zero_grad"))),
    (train_epoch.SUM_WITH_OPTIMIZER, EPOCH, {TRAIN},
     dict(train_epoch_ch3=variant(epoch_with_mistake, "summed loss"))),
    (train_epoch.MEAN_WITH_CALLABLE, EPOCH, {TRAIN},
     dict(train_epoch_ch3=variant(epoch_with_mistake, "mean loss"))),
    (train_epoch.DROPPED_LAST, EPOCH, {TRAIN},
     dict(train_epoch_ch3=variant(epoch_with_mistake, "drop last"))),
    (train_epoch.ROUNDED_UP, EPOCH, {TRAIN},
     dict(train_epoch_ch3=variant(epoch_with_mistake, "full batches"))),
    (train_epoch.LAST_SIZE_AS_FULL, EPOCH, {TRAIN},
     dict(train_epoch_ch3=variant(epoch_with_mistake, "full batches"))),
    (train_epoch.ACCURACY_FRACTION, EPOCH, {TRAIN},
     dict(train_epoch_ch3=variant(epoch_with_mistake, "fraction"))),
    (train_epoch.PER_BATCH_MEAN, EPOCH, {TRAIN},
     dict(train_epoch_ch3=variant(epoch_with_mistake, "batch means"))),
    (train_epoch.MEAN_LOSS_SUMMED, EPOCH, {TRAIN},
     dict(train_epoch_ch3=variant(epoch_with_mistake, "means summed"))),
    (train_epoch.ACCURACY_COUNT, EPOCH, {TRAIN},
     dict(train_epoch_ch3=variant(epoch_with_mistake, "count"))),
    (train.NONE_RETURNED, TRAIN, set(), dict(train_ch3=variant(train_with_mistake, "none"))),
    (train.LAST_ONLY, TRAIN, set(), dict(train_ch3=variant(train_with_mistake, "last only"))),
    (train.TEST_BEFORE, TRAIN, set(), dict(train_ch3=variant(train_with_mistake, "test first"))),
    (train.TRAIN_AS_TEST, TRAIN, set(), dict(train_ch3=variant(train_with_mistake, "train as test"))),
    ("training for 4 epochs", TRAIN, set(), dict(train_ch3=variant(train_with_mistake, "one more"))),
    (predict.WRONG_ORDER, "predict", set(), dict(get_fashion_mnist_labels=labels_alphabetical)),
    (predict.IGNORES_N, "predict", set(),
     dict(predict_ch3=variant(predict_with_mistake, "ignores n"))),
    (predict.SWAPPED, "predict", set(), dict(predict_ch3=variant(predict_with_mistake, "swapped"))),
    (gradients.DETACHED_NORMALISER, "ex2_log_domain", {EX3},
     dict(log_softmax=log_softmax_detached_normaliser)),
    (gradients.DETACHED, EX3, set(),
     dict(softmax_cross_entropy=softmax_cross_entropy_rebuilt)),
    (gradients.DETACHED, "cross_entropy", set(), dict(cross_entropy=cross_entropy_detached)),
    (gradients.IN_PLACE, "softmax", set(), dict(softmax=softmax_in_place)),
    (gradients.IN_PLACE, EX3, set(), dict(stable_softmax=stable_softmax_in_place)),
    (gradients.IN_PLACE, "ex2_log_domain", {EX3}, dict(log_softmax=log_softmax_in_place)),
    (gradients.IN_PLACE, "cross_entropy", set(), dict(cross_entropy=cross_entropy_in_place)),
]


@pytest.mark.parametrize("named, part, also, replacements", MISTAKES,
                         ids=[f"{part}: {' '.join(named.split()[:6])}"
                              for named, part, *_ in MISTAKES])
def test_a_known_mistake_fails_its_part_by_name_and_no_other(named, part, also, replacements):
    results = outcomes(with_mistake(**replacements), FAST)
    assert any(t.part == part and r.passed is False and named in r.message
               for t, r in results if not isinstance(r, StudentError)), \
        f"no failed {part} test names {named!r}:\n{describe(results)}"
    elsewhere = [(t, r) for t, r in results if t.part not in {part} | also and not passed(r)]
    assert not elsewhere, describe(elsewhere)


def test_fashion_mnist_fails_with_a_step_batch_size_times_too_small():
    [(_, result)] = outcomes(with_mistake(sgd=variant(sgd_with_mistake, "twice")), FASHION)
    assert result.passed is False and "< 0.78" in result.message, result.message
