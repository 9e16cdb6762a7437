"""The hidden tests of the numerical parts, run against an in-process fake submission.

They must pass the reference, fail stubs with NotImplementedError, name every
known mistake in the part it belongs to and cost no other part, and not care
how a correct function is written (a loop over rows is slow, not wrong).
"""

import types
from pathlib import Path

import pytest
import torch

from grader.hidden import (
    HiddenTest,
    StudentError,
    Verdict,
    accuracy,
    checks,
    cross_entropy,
    ex1_overflow,
    ex2_log_domain,
    ex3_stable_loss,
    ex4_decision,
    ex5_large_vocab,
    net,
    softmax,
)

ROOT = Path(__file__).resolve().parents[1]
MODULES = [softmax, net, cross_entropy, accuracy, ex1_overflow, ex2_log_domain, ex3_stable_loss,
           ex4_decision, ex5_large_vocab]
PART_OF = {"softmax": "softmax", "net": "net", "cross_entropy": "cross_entropy", "accuracy": "accuracy",
           "overflow_threshold": "ex1_overflow", "naive_softmax_breaks": "ex1_overflow",
           "log_softmax": "ex2_log_domain", "naive_cross_entropy_breaks": "ex2_log_domain",
           "stable_softmax": "ex3_stable_loss", "softmax_cross_entropy": "ex3_stable_loss",
           "expected_cost": "ex4_decision", "bayes_decision": "ex4_decision",
           "decide_with_reject": "ex4_decision",
           "full_log_prob": "ex5_large_vocab", "two_level_log_prob": "ex5_large_vocab"}
# Parts whose reference code calls the function, as a notebook's would: a bug there may cost them too.
CALLED_BY = {"softmax": {"net", "ex2_log_domain"}, "log_softmax": {"ex3_stable_loss", "ex5_large_vocab"}}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Every tensor here is tiny: on a busy machine intra-op threads wait milliseconds for each other per op."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def plain(x, keep_grad=False):
    """What the transport delivers: plain CPU tensors, copied, no graph; containers rebuilt."""
    if isinstance(x, torch.Tensor):
        t = x.detach().cpu().clone().as_subclass(torch.Tensor)
        return t.requires_grad_(x.requires_grad) if keep_grad else t
    if isinstance(x, (list, tuple)):
        return type(x)(plain(v, keep_grad) for v in x)
    if isinstance(x, dict):
        return {k: plain(v, keep_grad) for k, v in x.items()}
    return x


class FakeStudent:
    """A submission in this process: its functions live in `namespace`, like a notebook's globals."""

    def __init__(self, namespace):
        self.namespace = namespace

    def has(self, name):
        return name in self.namespace

    def set_global(self, name, value):
        self.namespace[name] = plain(value, keep_grad=True)

    def call(self, name, *args):
        if name not in self.namespace:
            raise StudentError("NameError", f"name {name!r} is not defined")
        try:
            result = self.namespace[name](*plain(args, keep_grad=True))
        except Exception as e:
            raise StudentError(type(e).__name__, str(e)) from e
        return plain(result)


def reference_namespace():
    """The reference solutions executed into one dict of globals, as cells of a notebook are."""
    namespace = {"__name__": "submission"}
    for name in ("softmax_regression.py", "exercises.py"):
        source = (ROOT / "solutions" / name).read_text()
        # exercises.py imports softmax from its sibling; in a notebook it is simply a global
        source = source.replace("from .softmax_regression import softmax\n", "")
        exec(compile(source, name, "exec"), namespace)
    return namespace


def all_tests():
    return [test for module in MODULES for test in module.TESTS]


def run_all(namespace):
    """[(test, verdict)] for every hidden test; a StudentError is a failure here."""
    student, results = FakeStudent(namespace), []
    for test in all_tests():
        try:
            results.append((test, test.run(student)))
        except StudentError as e:
            results.append((test, Verdict(False, f"StudentError {e}")))
    return results


def test_every_module_declares_tests_of_its_own_part():
    for module in MODULES:
        assert module.TESTS and all(isinstance(t, HiddenTest) for t in module.TESTS)
        assert {t.part for t in module.TESTS} == {module.__name__.rsplit(".", 1)[1]}
        assert all(t.weight > 0 for t in module.TESTS)
        names = [t.name for t in module.TESTS]
        assert len(names) == len(set(names)), f"duplicate test names in {module.__name__}"


def test_reference_passes_every_hidden_test():
    failures = [f"{t.part} / {t.name}: {v.message}" for t, v in run_all(reference_namespace()) if not v.passed]
    assert not failures, "\n".join(failures)


def test_reference_verdicts_carry_the_measured_error():
    for test, verdict in run_all(reference_namespace()):
        if "max_abs_error" in verdict.details:
            assert verdict.details["max_abs_error"] <= verdict.details["tolerance"], test.name
            assert "within tolerance" in verdict.message


def test_stubs_raise_not_implemented_in_every_test():
    def stub(*args):
        raise NotImplementedError()

    student = FakeStudent({name: stub for name in PART_OF})
    for test in all_tests():
        with pytest.raises(StudentError) as raised:
            test.run(student)
        assert raised.value.ename == "NotImplementedError", test.name


# Known mistakes, each a short buggy version of one function.

def softmax_over_dim0(X):
    X_exp = torch.exp(X)
    return X_exp / X_exp.sum(0, keepdim=True)


def softmax_without_keepdim(X):
    X_exp = torch.exp(X)
    return X_exp / X_exp.sum(1)


def net_without_bias(X):
    W = globals()["W"]  # the notebook's global: this function runs with the namespace as its globals
    return torch.softmax(X.reshape(-1, W.shape[0]) @ W, dim=1)


def cross_entropy_mean(y_hat, y):
    return -torch.log(y_hat[torch.arange(len(y)), y]).mean()


def cross_entropy_smoothed(y_hat, y):
    return -torch.log(y_hat[torch.arange(len(y)), y] + 1e-8)


def cross_entropy_clamped(y_hat, y):
    return -torch.log(y_hat[torch.arange(len(y)), y].clamp(min=1e-12))


def cross_entropy_squeezed(y_hat, y):
    return -torch.log(y_hat.gather(1, y.unsqueeze(1))).squeeze()  # [1, 1] -> [] for a single example


def accuracy_fraction(y_hat, y):
    if y_hat.dim() > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(dim=1)
    return float((y_hat.type(y.dtype) == y).float().mean()) if len(y) else 0.0


def accuracy_dim0(y_hat, y):
    if y_hat.dim() > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(dim=0)
    return float((y_hat.type(y.dtype) == y).sum())


def accuracy_tensor(y_hat, y):
    if y_hat.dim() > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(dim=1)
    return (y_hat.type(y.dtype) == y).sum().float()


def accuracy_int(y_hat, y):
    if y_hat.dim() > 1 and y_hat.shape[1] > 1:
        y_hat = y_hat.argmax(dim=1)
    return (y_hat.type(y.dtype) == y).sum().item()


def threshold_of_float32(dtype):
    return 88.72283935546875


def threshold_from_log_max(dtype):
    return torch.tensor(torch.finfo(dtype).max, dtype=torch.float64).log().to(dtype).item()


def breaks_in_float32_only(dtype):
    return torch.tensor([[100.0, 0.0]])


def breaks_with_logits(*args):
    return torch.tensor([[0.0, -200.0]]), torch.tensor([1])


def log_of_softmax(O):
    return torch.log(torch.exp(O) / torch.exp(O).sum(dim=1, keepdim=True))


def stable_softmax_global_max(O):
    O_exp = torch.exp(O - O.max())
    return O_exp / O_exp.sum(dim=1, keepdim=True)


def loss_from_probabilities(O, y):
    P = torch.exp(O) / torch.exp(O).sum(dim=1, keepdim=True)
    return -torch.log(P[torch.arange(len(y)), y])


def loss_mean(O, y):
    return torch.nn.functional.cross_entropy(O, y)


def expected_cost_untransposed(probs, cost):
    return probs @ cost


def bayes_argmax(probs, cost):
    return (probs @ cost.T).argmax(dim=1)


def reject_at_or_below(probs, threshold):
    confidence, label = probs.max(dim=1)
    return torch.where(confidence <= threshold, torch.full_like(label, -1), label)


def full_log_prob_all_words(H, y, W, b):
    return torch.log_softmax(H @ W + b, dim=1)


def two_level_whole_vocabulary(H, y, Wc, bc, Ww, bw):
    C, m = bw.shape
    rows = torch.arange(len(y))
    log_cluster = torch.log_softmax(H @ Wc + bc, dim=1)[rows, y // m]
    word_logits = (torch.einsum("nd,cdm->ncm", H, Ww) + bw).flatten(1)  # all V words
    return log_cluster + torch.log_softmax(word_logits, dim=1)[rows, y]


def two_level_swapped(H, y, Wc, bc, Ww, bw):
    C, m = bw.shape
    cluster, position = y % C, y // C
    rows = torch.arange(len(y))
    word_logits = (H.unsqueeze(1) @ Ww[cluster]).squeeze(1) + bw[cluster]
    return (torch.log_softmax(H @ Wc + bc, dim=1)[rows, cluster]
            + torch.log_softmax(word_logits, dim=1)[rows, position])


# (function replaced, buggy version, text its part's failures must contain)
MISTAKES = [
    ("softmax", softmax_over_dim0, softmax.DIM0),
    ("softmax", softmax_without_keepdim, softmax.NO_KEEPDIM),
    ("net", net_without_bias, net.NO_BIAS),
    ("cross_entropy", cross_entropy_mean, cross_entropy.MEAN),
    ("cross_entropy", cross_entropy_smoothed, "epsilon smoothing -log(p + 1e-08)"),
    ("cross_entropy", cross_entropy_clamped, "clamping -log(max(p, 1e-12))"),
    ("cross_entropy", cross_entropy_squeezed, "the right values in shape [] instead of [1]"),
    ("accuracy", accuracy_fraction, accuracy.FRACTION),
    ("accuracy", accuracy_dim0, accuracy.DIM0),
    ("accuracy", accuracy_tensor, "returned a torch.Tensor (value"),
    ("accuracy", accuracy_int, "returned an int (value"),
    ("overflow_threshold", threshold_of_float32, ex1_overflow.FLOAT32_FOR_ALL),
    ("overflow_threshold", threshold_from_log_max, ex1_overflow.LOG_OF_MAX),
    ("naive_softmax_breaks", breaks_in_float32_only, "returned dtype float32 for torch.float16"),
    ("log_softmax", log_of_softmax, ex2_log_domain.LOG_OF_SOFTMAX),
    ("naive_cross_entropy_breaks", breaks_with_logits, "holds values outside [0, 1]"),
    ("stable_softmax", stable_softmax_global_max, ex3_stable_loss.GLOBAL_MAX),
    ("softmax_cross_entropy", loss_from_probabilities, ex3_stable_loss.LOG_OF_SOFTMAX),
    ("softmax_cross_entropy", loss_mean, ex3_stable_loss.MEAN),
    ("expected_cost", expected_cost_untransposed, ex4_decision.NO_TRANSPOSE),
    ("bayes_decision", bayes_argmax, ex4_decision.LARGEST_COST),
    ("decide_with_reject", reject_at_or_below, ex4_decision.LESS_EQUAL),
    ("full_log_prob", full_log_prob_all_words, ex5_large_vocab.ALL_WORDS),
    ("two_level_log_prob", two_level_whole_vocabulary, ex5_large_vocab.WHOLE_VOCABULARY),
    ("two_level_log_prob", two_level_swapped, ex5_large_vocab.SWAPPED),
]


@pytest.mark.parametrize("function, buggy, named", MISTAKES, ids=[m[1].__name__ for m in MISTAKES])
def test_a_known_mistake_is_named_and_costs_only_its_part(function, buggy, named):
    namespace = reference_namespace()
    namespace[function] = types.FunctionType(buggy.__code__, namespace, buggy.__name__)  # a notebook global
    results = run_all(namespace)
    part = PART_OF[function]
    messages = [v.message for t, v in results if t.part == part and not v.passed]
    assert any(named in m for m in messages), f"no failure of {part} says {named!r}:\n" + "\n".join(messages)
    spared = {t.part for t, _ in results} - {part} - CALLED_BY.get(function, set())
    hurt = [f"{t.part} / {t.name}: {v.message}" for t, v in results if t.part in spared and not v.passed]
    assert not hurt, "\n".join(hurt)


# Correct functions written differently from the reference: none may fail.

def softmax_row_by_row(X):
    out = torch.empty_like(X)
    for i in range(len(X)):  # slow, not wrong: the budgets are checked elsewhere
        row_exp = torch.exp(X[i])
        out[i] = row_exp / row_exp.sum()
    return out


def softmax_in_float32(X):
    X_exp = torch.exp(X.to(torch.promote_types(X.dtype, torch.float32)))  # half precision computed in float32
    return (X_exp / X_exp.sum(dim=1, keepdim=True)).to(X.dtype)


def net_with_matmul(X):
    return softmax(torch.matmul(X.reshape((-1, W.shape[0])), W) + b)  # noqa: F821 (the notebook's globals)


def cross_entropy_by_gather(y_hat, y):
    return -torch.log(y_hat.gather(1, y.unsqueeze(1))).squeeze(1)


def accuracy_by_item(y_hat, y):
    predicted = y_hat.argmax(dim=1) if y_hat.dim() == 2 and y_hat.shape[1] > 1 else y_hat.long()
    return float((predicted == y).sum().item())


def log_softmax_by_logsumexp(O):
    return O - torch.logsumexp(O, dim=1, keepdim=True)


def log_softmax_in_float32(O):
    O32 = O.to(torch.promote_types(O.dtype, torch.float32))  # half precision computed in float32
    shifted = O32 - O32.amax(dim=1, keepdim=True)
    return (shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))).to(O.dtype)


def stable_softmax_by_torch(O):
    return torch.softmax(O, dim=1)


def loss_by_logsumexp(O, y):
    return torch.logsumexp(O, dim=1) - O[torch.arange(len(y)), y]


def expected_cost_by_einsum(probs, cost):
    return torch.einsum("nk,ak->na", probs, cost)


def bayes_by_min(probs, cost):
    return torch.min(probs @ cost.T, dim=1).indices


def reject_by_at_least(probs, threshold):
    confidence, label = probs.max(dim=1)
    return torch.where(confidence >= threshold, label, -1)


def full_log_prob_by_cross_entropy(H, y, W, b):
    return -torch.nn.functional.cross_entropy(H @ W + b, y, reduction="none")


def two_level_by_einsum(H, y, Wc, bc, Ww, bw):
    m = Ww.shape[2]
    cluster, position, rows = y // m, y % m, torch.arange(len(y))
    word_logits = torch.einsum("nd,ndm->nm", H, Ww[cluster]) + bw[cluster]
    return (torch.log_softmax(H @ Wc + bc, dim=1)[rows, cluster]
            + torch.log_softmax(word_logits, dim=1)[rows, position])


ALTERNATIVES = [("softmax", softmax_row_by_row), ("softmax", softmax_in_float32), ("net", net_with_matmul),
                ("cross_entropy", cross_entropy_by_gather), ("accuracy", accuracy_by_item),
                ("log_softmax", log_softmax_by_logsumexp), ("log_softmax", log_softmax_in_float32),
                ("stable_softmax", stable_softmax_by_torch), ("softmax_cross_entropy", loss_by_logsumexp),
                ("expected_cost", expected_cost_by_einsum), ("bayes_decision", bayes_by_min),
                ("decide_with_reject", reject_by_at_least), ("full_log_prob", full_log_prob_by_cross_entropy),
                ("two_level_log_prob", two_level_by_einsum)]


@pytest.mark.parametrize("function, correct", ALTERNATIVES, ids=[a[1].__name__ for a in ALTERNATIVES])
def test_a_correct_function_written_differently_passes(function, correct):
    namespace = reference_namespace()
    namespace[function] = types.FunctionType(correct.__code__, namespace, correct.__name__)
    failures = [f"{t.part} / {t.name}: {v.message}" for t, v in run_all(namespace) if not v.passed]
    assert not failures, "\n".join(failures)


# The messages of checks.py.

def test_compare_reports_error_tolerance_and_what_was_tried():
    expected = torch.full((4, 3), 0.5, dtype=torch.float64)
    verdict = checks.compare(torch.full((4, 3), 0.53, dtype=torch.float16), expected, "softmax on float16 [4, 3]",
                             torch.float16)
    assert not verdict.passed
    assert verdict.message.startswith("softmax on float16 [4, 3]: max |error| 3.0e-02 > tolerance 3.5e-03")
    assert verdict.details["tolerance"] == pytest.approx(1e-3 + 5e-3 * 0.5)


@pytest.mark.parametrize("actual, problem", [
    (torch.zeros(4, 3).numpy(), "returned a numpy.ndarray, expected a torch.Tensor"),
    (torch.zeros(3), "returned shape [3], expected shape [4, 3]"),
    (torch.zeros(4, 3, dtype=torch.float32), "returned dtype float32 for a float64 input "
                                              f"({checks.FLOAT32_MADE})"),
    (torch.full((4, 3), float("nan"), dtype=torch.float64),
     "NaN at 12 of 12 entries, e.g. at [0, 0], [0, 1], [0, 2]"),
])
def test_compare_says_what_is_wrong(actual, problem):
    verdict = checks.compare(actual, torch.zeros(4, 3, dtype=torch.float64), "f on float64 [4, 3]", torch.float64)
    assert not verdict.passed and verdict.message == f"f on float64 [4, 3]: {problem}"


def test_oracle_inf_must_come_back_exactly():
    expected = torch.tensor([float("inf"), 1.0], dtype=torch.float64)
    assert checks.compare(expected.clone(), expected, "l", torch.float64).passed
    verdict = checks.compare(torch.tensor([18.42, 1.0], dtype=torch.float64), expected, "l", torch.float64)
    assert not verdict.passed and "gives inf or NaN" in verdict.message
    assert "1 of 2 entries, e.g. at [0]" in verdict.message


def test_log_domain_scale_accepts_rounding_of_the_logits_magnitude():
    O = torch.tensor([[1e4, 1e4]])
    exact = torch.log_softmax(O.double(), dim=1)
    via_logsumexp = O - torch.logsumexp(O, dim=1, keepdim=True)  # rounds 1e4 + log 2 to float32
    assert checks.compare(via_logsumexp, exact, "l", torch.float32, checks.row_magnitude(O)).passed
    assert not checks.compare(via_logsumexp + 0.01, exact, "l", torch.float32, checks.row_magnitude(O)).passed
