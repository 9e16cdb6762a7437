"""The hidden tests as an adversary meets them, in this process (the FakeStudent of
test_hidden_scenarios, which sends every value through the protocol's wire format):

* inputs per submission: each salt draws other inputs, and no salt fails a correct
  submission (the reference, and the other correct implementations of both test files);
* no answers in feedback: a submission that returns slightly wrong results reads no
  expected value in any message or detail;
* near-miss shapes earn half the points, with a message naming the shape;
* the feedback cases of issue 10 (float32 precision, a whole-matrix sum, gradient shapes);
* nothing for nothing: a trivial body passes no test that counts alone.

The Fashion-MNIST check (train.fashion_mnist) is left out: it trains for seconds and has
a seed of its own.
"""

import math
import re
import types

import pytest
import test_hidden_scenarios as scenario_tests
import test_hidden_tests as numeric_tests
import torch
from test_hidden_scenarios import FakeStudent, passed, reference_namespace, variant, with_mistake

from grader.hidden import StudentError, checks, ex3_stable_loss, gradients, manifest, train
from grader.secret import DEFAULT_SECRET, submission_salt

TESTS = [test for test in numeric_tests.all_tests() + scenario_tests.ALL_TESTS
         if test.run is not train.fashion_mnist]
SALTS = [submission_salt(DEFAULT_SECRET, f"notebook {i}".encode()) for i in range(20)]


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def failures(namespace, tests=TESTS):
    return [(t, r) for t, r in scenario_tests.outcomes(namespace, tests) if not passed(r)]


# Inputs per submission.

def test_the_salt_decides_the_inputs():
    def drawn():
        return checks.randn((3, 4), 101), checks.labels(50, 10, 7)

    with checks.salted(SALTS[0]):
        first, again = drawn(), drawn()
    with checks.salted(SALTS[1]):
        other = drawn()
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not any(torch.equal(a, b) for a, b in zip(first, other))
    assert checks.use_salt(b"") == b""  # the blocks put the unsalted state back


def test_the_salt_depends_on_secret_and_notebook():
    salt = submission_salt(b"course", b"notebook")
    assert salt == submission_salt(b"course", b"notebook")
    assert salt not in {submission_salt(b"other course", b"notebook"),
                        submission_salt(b"course", b"notebook "),
                        submission_salt(b"cours", b"enotebook")}


@pytest.mark.parametrize("index", range(len(SALTS)))
def test_no_salt_fails_the_reference(index):
    with checks.salted(SALTS[index]):
        failing = failures(reference_namespace())
    assert not failing, scenario_tests.describe(failing)


def alternative_namespaces():
    """The reference with the other correct implementations of the tests: those of
    test_hidden_tests (the first of each function's in one namespace, the second ones in
    another) and, in the first, test_hidden_scenarios' mistaken functions set to make none."""
    correct = "no mistake"
    groups = [{"evaluate_accuracy": variant(scenario_tests.evaluate_with_mistake, correct),
               "Accumulator": scenario_tests.accumulator_with(correct),
               "sgd": variant(scenario_tests.sgd_with_mistake, correct),
               "train_epoch_ch3": variant(scenario_tests.epoch_with_mistake, correct),
               "train_ch3": variant(scenario_tests.train_with_mistake, correct),
               "predict_ch3": variant(scenario_tests.predict_with_mistake, correct)}, {}]
    for function, implementation in numeric_tests.ALTERNATIVES:
        group = groups[0] if function not in groups[0] else groups[1]
        group[function] = implementation
    return [with_mistake(**group) for group in groups]


@pytest.mark.parametrize("index", range(len(SALTS)))
def test_no_salt_fails_another_correct_implementation(index):
    with checks.salted(SALTS[index]):
        failing = [f for namespace in alternative_namespaces() for f in failures(namespace)]
    assert not failing, scenario_tests.describe(failing)


# No answers in feedback.

NUMBER = re.compile(r"-?(?:\d+\.\d*|\.\d+|\d+)(?:e[-+]?\d+)?", re.IGNORECASE)
LOGS = {"calls", "in_list", "same_storage", "leaf", "requires_grad"}  # flags: left as they are


def slightly_wrong(value):
    """A result a little off: floats up by 5% and 0.01, counts by one, labels rotated."""
    if isinstance(value, torch.Tensor):
        if value.dtype == torch.bool:
            return value
        if value.is_floating_point():
            up = value + 0.05 * value.abs() + 0.01
            return torch.where(torch.isfinite(value), up, value).to(value.dtype)
        return value.flatten().roll(1).reshape(value.shape) if value.numel() > 1 else value + 1
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        return value + 1.0 if value.is_integer() else value + 0.05 * abs(value) + 0.01
    if isinstance(value, int):
        return value + 1
    if isinstance(value, (list, tuple)):
        if len(value) > 1 and all(isinstance(v, str) for v in value):
            return type(value)(value[1:] + value[:1])
        return type(value)(slightly_wrong(v) for v in value)
    if isinstance(value, dict):
        return {k: v if k in LOGS else slightly_wrong(v) for k, v in value.items()}
    return value


def in_float64(value):
    """Arguments with every floating tensor in float64: the reference then computes the oracle."""
    if isinstance(value, torch.Tensor) and value.is_floating_point():
        return value.double()
    if isinstance(value, (list, tuple)):
        return type(value)(in_float64(v) for v in value)
    return value


def flat_numbers(value):
    """Every finite number in a value (tensors, lists, dicts), as floats."""
    if isinstance(value, torch.Tensor):
        values = value.detach().double().flatten()
        return values[torch.isfinite(values)].tolist()
    if isinstance(value, bool) or value is None:
        return []
    if isinstance(value, (int, float)):
        return [float(value)] if math.isfinite(value) else []
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in flat_numbers(v)]
    if isinstance(value, dict):
        return [x for v in value.values() for x in flat_numbers(v)]
    return []


def string_lists(value):
    """The lists of strings (label lists) inside a value."""
    if isinstance(value, (list, tuple)):
        if len(value) > 1 and all(isinstance(v, str) for v in value):
            return [list(value)]
        return [s for v in value for s in string_lists(v)]
    return []


def input_numbers(value):
    """What a message may repeat about the inputs: their dimensions and plain numbers."""
    if isinstance(value, torch.Tensor):
        return [float(s) for s in value.shape]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (list, tuple)):
        return [x for v in value for x in input_numbers(v)]
    return flat_numbers(value)


class SlightlyWrongStudent:
    """The reference, with every result it hands back slightly wrong (slightly_wrong); it keeps
    what the reference returned (on the inputs as sent and in float64), what it handed back,
    and the inputs' numbers."""

    def __init__(self, namespace):
        self.right = FakeStudent(namespace)
        self.expected, self.returned, self.inputs = [], [], []

    def _answer(self, run, args):
        result = run(*args)
        self.expected.append(result)
        try:
            self.expected.append(run(*in_float64(args)))
        except StudentError:  # e.g. float64 images against float32 globals W and b
            pass
        self.inputs += input_numbers(list(args))
        wrong = slightly_wrong(result)
        self.returned.append(wrong)
        return wrong

    def call(self, name, *args):
        return self._answer(lambda *a: self.right.call(name, *a), args)

    def scenario(self, name, *args):
        return self._answer(lambda *a: self.right.scenario(name, *a), args)

    def has(self, name):
        return self.right.has(name)

    def set_global(self, name, value):
        self.right.set_global(name, value)

    @property
    def data_dir(self):
        return self.right.data_dir


def decimals(token):
    """(significant digits, exponent of the last digit) of a number as written."""
    mantissa, _, exponent = token.lower().lstrip("-").partition("e")
    whole, _, fraction = mantissa.partition(".")
    digits = (whole + fraction).lstrip("0") or "0"
    return len(digits), int(exponent or 0) - len(fraction)


def rounds(token, values):
    """Whether the written number `token` is one of `values` rounded to its digits."""
    if not len(values):
        return False
    _, last = decimals(token)
    return bool(((values - float(token)).abs() <= 0.5000001 * 10.0 ** last).any())


def leaks(text, expected, returned=(), inputs=(), label_lists=()):
    """The expected values that `text` gives away: numbers of 3 or more significant digits (2 for
    whole numbers) that round an expected value and neither a returned one nor an input's
    number; 'expected <a value>'; an expected list of labels."""
    expected = torch.tensor(expected, dtype=torch.float64)
    excused = torch.tensor([*returned, *inputs], dtype=torch.float64)
    found = []
    for match in NUMBER.finditer(text):
        token = match.group()
        digits, last = decimals(token)
        if digits >= (2 if last >= 0 else 3) and rounds(token, expected) \
                and not rounds(token, excused):
            found.append(token)
    found += re.findall(r"expected (?:-?\d|\[-?\d|\['|inf|-inf|nan)[^;,)]*", text)
    found += [str(labels) for labels in label_lists if str(labels)[1:-1] in text]
    return found


@pytest.mark.parametrize("text, expected, returned", [
    ("accuracy on scores: returned 48, expected 47 correct of 100", [47.0], [48.0]),
    (("softmax on float64 [4, 3]: max |error| 1.0e-02 > tolerance 1.0e-10 (at [0, 1]: "
      "got 0.5103, expected 0.4999161)"), [0.49991613], [0.51]),
    ("decide_with_reject: differs in 1 of 5 rows, e.g. row 2: got 2, expected 0", [0.0], [2.0]),
    ("evaluate_accuracy: returned 0.5, expected 0.487685 (97 of 199 right)", [0.4876847], [0.5]),
])
def test_the_leak_finder_finds_the_old_messages_leaks(text, expected, returned):
    assert leaks(text, expected, returned, inputs=[100.0, 4.0, 3.0])
    assert not leaks(text.partition(", expected")[0], expected, returned, inputs=[100.0, 4, 3])


def test_the_leak_finder_finds_a_list_of_labels():
    labels = ["bag", "coat", "dress"]
    assert leaks(f"predict_ch3: expected {labels}, got ...", [], label_lists=[labels])


def test_no_message_gives_an_expected_value_away():
    found = {}
    for test in TESTS:
        student = SlightlyWrongStudent(reference_namespace())
        try:
            verdict = test.run(student)
        except StudentError as err:
            text = err.message
        else:
            text = f"{verdict.message} {verdict.details!r}"
        expected = [x for e in student.expected for x in flat_numbers(e)]
        returned = [x for r in student.returned for x in flat_numbers(r)]
        label_lists = [s for e in student.expected for s in string_lists(e)]
        inputs = student.inputs + [float(x) for x in re.findall(r"\d+(?:\.\d+)?", test.name)]
        leaked = leaks(text, expected, returned, inputs, label_lists)
        if leaked:
            found[f"{test.part} / {test.name}"] = (leaked, text)
    assert not found, "\n".join(f"{name}: {leaked} in {text}" for name, (leaked, text) in
                                found.items())


def test_slightly_wrong_results_fail_most_value_tests():
    """The leak search only means something where the slightly wrong submission fails."""
    student_failed = []
    for test in TESTS:
        try:
            student_failed.append(not test.run(SlightlyWrongStudent(reference_namespace())).passed)
        except StudentError:
            student_failed.append(True)
    assert sum(student_failed) >= 0.8 * len(TESTS)


# Near-miss shapes: the right values with an extra or missing dimension of size 1.

def cross_entropy_by_gather(y_hat, y):
    return -torch.log(y_hat.gather(1, y.view(-1, 1)))  # [n, 1]


def cross_entropy_as_row(y_hat, y):
    return -torch.log(y_hat[torch.arange(len(y)), y]).unsqueeze(0)  # [1, n]


def cross_entropy_squeezed(y_hat, y):
    return -torch.log(y_hat[torch.arange(len(y)), y]).squeeze()  # [] for a single example


def verdicts_of(namespace, part):
    return [(t, r) for t, r in scenario_tests.outcomes(namespace, TESTS) if t.part == part]


@pytest.mark.parametrize("loss, shape", [(cross_entropy_by_gather, "[64, 1] instead of [64]"),
                                         (cross_entropy_as_row, "[1, 64] instead of [64]")])
def test_right_values_in_a_near_miss_shape_earn_half(loss, shape):
    results = verdicts_of(with_mistake(cross_entropy=loss), "cross_entropy")
    assert all(isinstance(r, checks.Verdict) for _, r in results), scenario_tests.describe(results)
    halves = [r for _, r in results if r.credit == checks.NEAR_MISS_CREDIT]
    assert all(r.passed is False and r.details["mistake"].startswith("the right values in shape")
               for r in halves)
    # every value test and both gradient tests; the empty batch [0] stays [0, 1] or [1, 0]
    assert len(halves) >= 8, scenario_tests.describe(results)
    assert any(shape in r.message and "half the points" in r.message for r in halves)
    assert not [r for _, r in results if not r.passed and r.credit is None
                and "empty" not in r.message]


def test_a_column_near_miss_says_how_it_broadcasts():
    results = verdicts_of(with_mistake(cross_entropy=cross_entropy_by_gather), "cross_entropy")
    assert any("[64, 1] - [64] broadcasts to [64, 64]" in r.message for _, r in results)


def test_a_dropped_dimension_of_one_earns_half():
    [(_, verdict)] = [(t, r) for t, r in verdicts_of(with_mistake(
        cross_entropy=cross_entropy_squeezed), "cross_entropy") if "single" in t.name]
    assert verdict.credit == checks.NEAR_MISS_CREDIT
    assert "shape [] instead of [1]" in verdict.message
    assert "squeeze()" in verdict.message


def test_a_near_miss_shape_with_wrong_values_earns_nothing():
    def wrong_in_a_column(y_hat, y):
        return -torch.log(y_hat.gather(1, y.view(-1, 1)) + 0.1)

    results = verdicts_of(with_mistake(cross_entropy=wrong_in_a_column), "cross_entropy")
    value_tests = [r for t, r in results if t.name.startswith(("float", "bfloat"))]
    assert value_tests and all(not r.passed and r.credit is None for r in value_tests)


def test_decisions_in_a_column_earn_half():
    def reject_in_a_column(probs, threshold):
        confidence, label = probs.max(dim=1)
        return torch.where(confidence < threshold, -1, label).unsqueeze(1)

    results = verdicts_of(with_mistake(decide_with_reject=reject_in_a_column), "ex4_decision")
    rejects = [r for t, r in results if t.name.startswith("decide_with_reject")]
    assert rejects and all(r.credit == checks.NEAR_MISS_CREDIT for r in rejects)


# The feedback cases of issue 10 that live in the hidden tests.

def log_softmax_via_float32(O):
    shifted = (O - O.max(dim=1, keepdim=True).values).float()
    return (shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))).to(O.dtype)


def expected_cost_in_float32(probs, cost):
    return torch.tensor((probs @ cost.T).tolist())  # float32, whatever the inputs


def test_float32_inside_a_float64_test_is_named():
    results = verdicts_of(with_mistake(log_softmax=log_softmax_via_float32), "ex2_log_domain")
    named = [r for t, r in results if "float64" in t.name and not r.passed]
    assert named and all(checks.FLOAT32_PRECISION in r.message for r in named), \
        scenario_tests.describe(results)
    assert all(r.details["mistake"] == checks.FLOAT32_PRECISION for r in named)


def test_a_float32_result_of_a_float64_test_names_where_float32_comes_from():
    results = verdicts_of(with_mistake(expected_cost=expected_cost_in_float32), "ex4_decision")
    [verdict] = [r for t, r in results if t.name.startswith("expected_cost: float64")]
    assert "returned dtype float32 for a float64 input" in verdict.message
    assert "torch.tensor(...)" in verdict.message and ".float()" in verdict.message


def stable_softmax_whole_sum(O):
    E = torch.exp(O - O.max(dim=1, keepdim=True).values)
    return E / E.sum()


def test_a_stable_softmax_over_the_whole_matrix_is_named():
    results = verdicts_of(with_mistake(stable_softmax=stable_softmax_whole_sum),
                          "ex3_stable_loss")
    assert any(ex3_stable_loss.WHOLE_SUM in r.message for t, r in results
               if t.name.startswith("stable_softmax") and not r.passed), \
        scenario_tests.describe(results)


def cross_entropy_columns(y_hat, y):
    return -torch.log(y_hat[:, y])  # [n, n]


def test_a_gradient_test_of_the_wrong_shape_prints_shapes_not_values():
    results = [(t, r) for t, r in verdicts_of(with_mistake(cross_entropy=cross_entropy_columns),
                                              "cross_entropy") if "gradient" in t.name]
    assert len(results) == 2
    for _, verdict in results:
        assert "returned float64 [6, 6], expected shape [6]" in verdict.message, verdict.message
        assert not re.search(r"\d\.\d{3}", verdict.message), verdict.message  # no values


def test_a_detached_loss_is_still_named():
    results = [(t, r) for t, r in verdicts_of(with_mistake(
        cross_entropy=scenario_tests.cross_entropy_detached), "cross_entropy")
        if "gradient" in t.name]
    assert results and all(gradients.DETACHED in r.message for _, r in results)


# Nothing for nothing: trivial bodies.

def returns_none(*args):
    pass


def returns_zero(*args):
    return 0.0


def returns_first(*args):
    return args[0]


def returns_zeros_like_first(*args):
    return torch.zeros_like(args[0])


class TrivialAccumulator:
    def __init__(self, n):
        pass

    def add(self, *args):
        pass

    def reset(self):
        pass

    def __getitem__(self, idx):
        return 0.0


TRIVIAL = [returns_none, returns_zero, returns_first, returns_zeros_like_first]
FUNCTIONS = [(part, function) for part, spec in manifest.PARTS.items()
             for function in spec.functions]


@pytest.mark.parametrize("part, function", FUNCTIONS, ids=[f for _, f in FUNCTIONS])
def test_a_trivial_body_passes_no_test_that_counts_alone(part, function):
    tests = [t for t in TESTS if t.part == part and manifest.function_of(t) == function]
    assert any(t.counts_alone for t in tests), f"{function} has no test that counts alone"
    bodies = [TrivialAccumulator] if function == "Accumulator" else TRIVIAL
    for body in bodies:
        namespace = reference_namespace()
        namespace[function] = body if isinstance(body, type) else \
            types.FunctionType(body.__code__, namespace, function)
        scoring = [t.name for t, r in scenario_tests.outcomes(namespace, tests)
                   if passed(r) and t.counts_alone]
        assert not scoring, f"{function} as {body.__name__} passes {scoring}"


# Nothing for nothing: answers replayed from another grading.

class Recorder(FakeStudent):
    """The reference, writing down every answer it gives: [(request, name, result)]."""

    def __init__(self, namespace):
        super().__init__(namespace)
        self.answers = []

    def call(self, name, *args):
        result = super().call(name, *args)
        self.answers.append(("call", name, result))
        return result

    def scenario(self, name, *args):
        result = super().scenario(name, *args)
        self.answers.append(("scenario", name, result))
        return result


class Replayer(FakeStudent):
    """A submission that computes nothing: it answers each call and scenario with what the
    reference answered to the same request, in the same order, in another grading."""

    def __init__(self, answers):
        super().__init__({})
        self.answers = list(answers)

    def _next(self, request, name):
        for index, (kind, asked, result) in enumerate(self.answers):
            if (kind, asked) == (request, name):
                del self.answers[index]
                return result
        raise StudentError("LookupError", f"no answer recorded for {name}")

    def call(self, name, *args):
        return self._next("call", name)

    def scenario(self, name, *args):
        return self._next("scenario", name)

    def has(self, name):
        return True

    def set_global(self, name, value):
        pass


REPLAYED_SALTS = SALTS[:4]


@pytest.mark.parametrize("test", [t for t in TESTS if t.counts_alone and not t.fixed_answer],
                         ids=lambda t: f"{t.part}: {t.name}")
def test_no_test_that_counts_alone_passes_answers_replayed_from_another_grading(test):
    """A test whose answers do not depend on the salted inputs (a count fixed by the shape,
    a decision at a written-out threshold) would pay for a table of answers copied from
    feedback: such a test must not count alone."""
    with checks.salted(b"the grading the answers come from"):
        recorder = Recorder(reference_namespace())
        assert passed(test.run(recorder))
    passes = []
    for salt in REPLAYED_SALTS:
        with checks.salted(salt):
            try:
                passes.append(passed(test.run(Replayer(recorder.answers))))
            except StudentError:
                passes.append(False)
    assert not any(passes), f"replayed answers pass {passes.count(True)} of {len(passes)} salts"
