"""Hidden tests of `train_ch3(net, train_iter, test_iter, loss, num_epochs, updater)`: the
history [(train_loss, train_acc, test_acc), ...], one entry per epoch.

With the harness's net, loss and updaters (scenario run_train, six positional
arguments, no on_epoch) the history and the parameters are compared with the
grader's replay of the epochs (train_epoch.replay_epoch, then the test accuracy
of the parameters after each epoch). The test labels are half wrong on purpose,
so that train and test accuracy cannot be mixed up unnoticed.

The Fashion-MNIST test (scenario train_fashion_mnist) trains with the student's
own net, cross_entropy, sgd and train_ch3 for 3 epochs at lr 0.1 on minibatches
of 256, as the book does, and asks for a test accuracy of at least 0.78, as the
grader recomputes it from the returned W and b on the test set it loads itself;
the history must report that same accuracy. All randomness (W's initialisation,
the shuffles) is the harness's and seeded, so a correct submission retraces the
reference, which reaches 0.8213 (other correct ways to write softmax,
cross_entropy or sgd gave the same). The seed matters: with seed 6 the
reference's third epoch ends at 0.7727, SGD's noise, while 7 other seeds gave
0.809 to 0.815.
"""

import functools

import torch

from solutions.data_files import find_fashion_mnist, raw_dir

from ..scenarios import FASHION_MNIST_FILES, read_idx
from . import HiddenTest, Verdict
from .checks import compare, short
from .train_epoch import flat, linear_problem, replay_epoch

PART = "train"
BATCH = 32
LR = 0.5

NONE_RETURNED = "no history returned (None): train_ch3 must return the list of epochs' metrics"
LAST_ONLY = "only the last epoch's metrics returned instead of the list of every epoch's"
TEST_BEFORE = "the test accuracy measured before the epoch's training instead of after it"
TRAIN_AS_TEST = "the training accuracy reported as the test accuracy"

FASHION_EPOCHS, FASHION_LR, FASHION_BATCH, FASHION_SEED = 3, 0.1, 256, 7301
FASHION_THRESHOLD = 0.78
AGREEMENT = 1e-3  # 10 of the 10,000 test images: argmax near-ties may round apart
PARAMETER_GAP = 1e-3  # correct variants of the functions end within 1e-5 of the reference
# What the Fashion-MNIST run exercises, in the order the diagnosis suspects them.
END_TO_END_FUNCTIONS = ("train_ch3", "train_epoch_ch3", "cross_entropy", "sgd", "net", "softmax",
                        "accuracy", "Accumulator", "evaluate_accuracy")


def problem_data(seed):
    """Train (X [150, 1, 3, 4], y) and test (X [50, ...], y with every second label wrong),
    initial W [12, 5], b [5]."""
    X, y, W, b = linear_problem(seed, 200)
    test_y = y[150:].clone()
    test_y[::2] = (test_y[::2] + 1) % 5
    return (X[:150], y[:150]), (X[150:], test_y), W, b


def accuracy_of(params, X, y):
    W, b = params
    return float(((X.reshape(len(X), -1) @ W + b).argmax(1) == y).double().mean())


def replay_history(W, b, train, test, epochs):
    """([W, b] after `epochs` epochs, {None: the history, mistake: the history it reports})."""
    params, history, before = [W, b], [], []
    for _ in range(epochs):
        before.append(accuracy_of(params, *test))
        params, records = replay_epoch(*params, *train, BATCH, LR)
        loss, correct, n = map(sum, zip(*records))
        history.append([loss / n, correct / n, accuracy_of(params, *test)])
    variants = {None: history,
                TEST_BEFORE: [[h[0], h[1], a] for h, a in zip(history, before)],
                TRAIN_AS_TEST: [[h[0], h[1], h[1]] for h in history]}
    return params, variants


def history_problem(history, epochs):
    """None when `history` is a list of `epochs` triples of numbers, else what is wrong (text)."""
    if history is None:
        return NONE_RETURNED
    if isinstance(history, list) and len(history) == epochs and all(
            isinstance(h, list) and len(h) == 3 and all(type(v) is float for v in h) for h in history):
        return None
    if isinstance(history, list) and len(history) == 3 and all(type(v) is float for v in history):
        return LAST_ONLY
    return (f"expected a list of {epochs} (train_loss, train_acc, test_acc) tuples, "
            f"got {short(history)}")


def run(student, net_kind, updater_kind, seed, epochs):
    """(the scenario's report, its expected [W, b] and history variants, 'what')."""
    train, test, W, b = problem_data(seed)
    report = student.scenario("run_train", net_kind, updater_kind, W, b, train, test, BATCH, LR, epochs)
    updater = "torch.optim.SGD" if updater_kind == "optimizer" else "a function updater"
    net = "an nn.Module" if net_kind == "module" else "a plain function net"
    what = f"train_ch3 for {epochs} epochs with {net} and {updater}"
    return report, replay_history(W, b, train, test, epochs), what


def structure(student, seed):
    report, _, what = run(student, "function", "callable", seed, 3)
    problem = history_problem(report["history"], 3)
    if problem:
        mistake = {"mistake": problem} if problem in (NONE_RETURNED, LAST_ONLY) else {}
        return Verdict(False, f"{what}: {problem}", mistake)
    return Verdict(True, f"{what}: a list of 3 (train_loss, train_acc, test_acc) entries")


def history_values(student, net_kind, updater_kind, seed, epochs):
    report, (_, variants), what = run(student, net_kind, updater_kind, seed, epochs)
    problem = history_problem(report["history"], epochs)
    if problem:
        return Verdict(False, f"{what}: {problem}")
    mistakes = {m: lambda h=h: torch.tensor(h, dtype=torch.float64)
                for m, h in variants.items() if m}
    return compare(torch.tensor(report["history"], dtype=torch.float64),
                   torch.tensor(variants[None], dtype=torch.float64),
                   f"{what}: the history [epoch, (train_loss, train_acc, test_acc)]",
                   torch.float64, mistakes=mistakes)


def parameters(student, seed):
    """The parameters after 3 epochs; 2 or 4 epochs' worth are named."""
    report, (expected, _), what = run(student, "function", "callable", seed, 3)
    train, test, W, b = problem_data(seed)
    mistakes = {f"training for {k} epochs instead of num_epochs = 3":
                lambda k=k: flat(replay_history(W, b, train, test, k)[0]) for k in (2, 4)}
    return compare(flat(report["params"]), flat(expected), f"{what}: W and b afterwards",
                   torch.float64, mistakes=mistakes)


def zero_epochs(student, seed):
    report, (initial, _), what = run(student, "function", "callable", seed, 0)
    if report["history"] != []:
        return Verdict(False, f"{what}: expected an empty history [], got {short(report['history'])}")
    if not all(torch.equal(p, q) for p, q in zip(report["params"], initial)):
        return Verdict(False, f"{what}: the parameters changed")
    return Verdict(True, f"{what}: an empty history and unchanged parameters")


@functools.cache
def fashion_mnist_test_set():
    """The 10,000 test images [10000, 784] in [0, 1] and labels, loaded by the grader itself.

    Read with the harness's idx reader (tests check it against torchvision's dataset):
    importing torchvision would add a second and a half to every grading."""
    files = raw_dir(find_fashion_mnist(download=False))
    images, labels = (read_idx(files / name) for name in FASHION_MNIST_FILES[2:])
    return images.reshape(len(images), -1).float() / 255, labels.long()


def run_fashion_mnist(student):
    """The Fashion-MNIST run (scenario train_fashion_mnist) of a submission or of the
    reference: {'history': what train_ch3 returned, 'W': ..., 'b': ...}."""
    return student.scenario("train_fashion_mnist", student.data_dir, FASHION_EPOCHS, FASHION_LR,
                            FASHION_BATCH, FASHION_SEED)


def parameter_gap(run, reference_run):
    """||(W, b) - the reference's|| / ||the reference's||, both after the same run."""
    mine, theirs = flat([run["W"], run["b"]]).double(), flat([reference_run["W"],
                                                             reference_run["b"]]).double()
    return float((mine - theirs).norm() / theirs.norm())


def test_accuracy(run):
    X, y = fashion_mnist_test_set()
    return float(((X @ run["W"] + run["b"]).argmax(1) == y).double().mean())


def fashion_mnist(student, context):
    """The student's net, cross_entropy, sgd and train_ch3 together, judged by what the
    grader recomputes: the test accuracy of the W and b they leave, the history they report
    against that accuracy, and W and b against the reference's run of the same scenario
    (same start, same batches), so a train_ch3 that trains in its own way is seen."""
    run = run_fashion_mnist(student)
    what = (f"train_ch3 with your net, cross_entropy and sgd on Fashion-MNIST, {FASHION_EPOCHS} "
            f"epochs, lr {FASHION_LR}, batch size {FASHION_BATCH}")
    problem = history_problem(run["history"], FASHION_EPOCHS)
    if problem:
        return Verdict(False, f"{what}: {problem}")
    accuracy, reported = test_accuracy(run), run["history"][-1][2]
    details = {"test_accuracy": accuracy, "reported_test_accuracy": reported,
               "threshold": FASHION_THRESHOLD, "history": run["history"]}
    if not abs(reported - accuracy) <= AGREEMENT:
        return Verdict(False, f"{what}: the history's last test accuracy {reported:.4f} is not the "
                              f"accuracy of the trained W and b, {accuracy:.4f}", details)
    if accuracy < FASHION_THRESHOLD:
        return Verdict(False, f"{what}: test accuracy {accuracy:.4f} < {FASHION_THRESHOLD} "
                              "(the reference reaches 0.82 on these batches)", details)
    reference_run = context.reference_run()
    if not isinstance(reference_run, dict):  # the grader's problem: judged without it
        details["unchecked"] = reference_run
        return Verdict(True, f"{what}: test accuracy {accuracy:.4f} >= {FASHION_THRESHOLD}",
                       details)
    gap = details["parameter_gap"] = parameter_gap(run, reference_run)
    if not gap <= PARAMETER_GAP:
        return Verdict(False, f"{what}: test accuracy {accuracy:.4f}, but W and b end "
                              f"{gap:.1%} away from where the reference's run of the same "
                              "batches from the same start ends: train_ch3 must train with the "
                              "loss and updater it is given", details)
    return Verdict(True, f"{what}: test accuracy {accuracy:.4f} >= {FASHION_THRESHOLD}, W and b "
                         "where the reference's run ends", details)


TESTS = [
    HiddenTest("returns a list of (train_loss, train_acc, test_acc), one per epoch", PART, 1.0,
               lambda s: structure(s, 7501), counts_alone=False),
    HiddenTest("function updater, 3 epochs: the history", PART, 1.0,
               lambda s: history_values(s, "function", "callable", 7502, 3)),
    HiddenTest("torch.optim.SGD on an nn.Module, 2 epochs: the history", PART, 1.0,
               lambda s: history_values(s, "module", "optimizer", 7503, 2)),
    HiddenTest("trains num_epochs epochs", PART, 1.0, lambda s: parameters(s, 7504)),
    HiddenTest("num_epochs = 0: empty history", PART, 0.5, lambda s: zero_epochs(s, 7505),
               counts_alone=False),
    HiddenTest(f"Fashion-MNIST: test accuracy >= {FASHION_THRESHOLD} after {FASHION_EPOCHS} epochs",
               PART, 3.0, fashion_mnist, end_to_end=True, uses=END_TO_END_FUNCTIONS),
]
