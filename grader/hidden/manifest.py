"""What each part asks for: its functions, the notebook functions they call (which the
part's tests replace by the book's code, so that a bug costs only its own part), and
the library calls they may not make (the from-scratch rule).

A part's points are split over its functions by the weights of their tests and
budgets; `function_of` says which function a test's credit belongs to.
"""

from dataclasses import dataclass, field

# Library families (grader/from_scratch.py knows every spelling of each).
SOFTMAX_FAMILY = ("softmax", "log_softmax")
LOSS_FAMILY = ("cross_entropy", "nll_loss")
ALL_FAMILIES = ("softmax", "log_softmax", "logsumexp", "cross_entropy", "nll_loss")


@dataclass(frozen=True)
class PartSpec:
    """One auto-graded part of the assignment."""

    functions: tuple[str, ...]
    """The notebook functions (or classes) the student writes for this part, in order."""
    uses: tuple[str, ...] = ()
    """Core functions of other parts that these call; their tests get the book's versions."""
    forbidden: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """{function: library families it may not call}: the from-scratch rule."""
    shares: dict[str, float] = field(default_factory=dict)
    """{function: relative share of the part's points}, for parts of several functions
    (equal shares where empty); the notebook's task states the resulting points."""


PARTS = {
    "softmax": PartSpec(("softmax",), forbidden={"softmax": SOFTMAX_FAMILY}),
    "net": PartSpec(("net",), uses=("softmax",)),
    "cross_entropy": PartSpec(("cross_entropy",),
                              forbidden={"cross_entropy": SOFTMAX_FAMILY + LOSS_FAMILY}),
    "accuracy": PartSpec(("accuracy",)),
    "evaluate_accuracy": PartSpec(("evaluate_accuracy",), uses=("accuracy", "Accumulator")),
    "accumulator": PartSpec(("Accumulator",)),
    "sgd": PartSpec(("sgd",)),
    "train_epoch": PartSpec(("train_epoch_ch3",), uses=("accuracy", "Accumulator")),
    "train": PartSpec(("train_ch3",), uses=("train_epoch_ch3", "evaluate_accuracy", "accuracy",
                                            "Accumulator")),
    "predict": PartSpec(("get_fashion_mnist_labels", "predict_ch3")),
    "ex1_overflow": PartSpec(("overflow_threshold", "naive_softmax_breaks"),
                             shares={"overflow_threshold": 2, "naive_softmax_breaks": 1}),
    "ex2_log_domain": PartSpec(("log_softmax", "naive_cross_entropy_breaks"),
                               forbidden={"log_softmax": ALL_FAMILIES},
                               shares={"log_softmax": 2, "naive_cross_entropy_breaks": 1}),
    "ex3_stable_loss": PartSpec(("stable_softmax", "softmax_cross_entropy"),
                                forbidden={"stable_softmax": ALL_FAMILIES,
                                           "softmax_cross_entropy": ALL_FAMILIES}),
    "ex4_decision": PartSpec(("expected_cost", "bayes_decision", "decide_with_reject")),
    "ex5_large_vocab": PartSpec(("full_log_prob", "two_level_log_prob"),
                                forbidden={"two_level_log_prob": ALL_FAMILIES},
                                shares={"full_log_prob": 1, "two_level_log_prob": 3}),
}


def function_of(test):
    """The student's function whose credit a HiddenTest or Budget carries."""
    functions = PARTS[test.part].functions
    explicit = getattr(test, "function", None)
    if explicit in functions:
        return explicit
    if len(functions) == 1:
        return functions[0]
    first = test.name.replace(":", " ").replace("(", " ").split()[0]
    if first in functions:
        return first
    raise LookupError(f"hidden test {test.part}: {test.name!r} names none of {functions}")


def function_points(part_id, points):
    """{function: its points} of a part worth `points`."""
    spec = PARTS[part_id]
    shares = {f: spec.shares.get(f, 1.0) for f in spec.functions}
    total = sum(shares.values())
    return {f: points * share / total for f, share in shares.items()}
