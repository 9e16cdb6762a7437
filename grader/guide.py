"""Where the book teaches each part of the assignment, and what to check first: the
pointers of the student's feedback.

The notebook follows chapter 3 of the classic edition of *Dive into Deep Learning*
(d2l 0.17, classic.d2l.ai): its API (`train_ch3`, `Accumulator`, `predict_ch3`) and
its five exercises, word for word, are that edition's section 3.6. The current
edition (d2l.ai) rewrote the chapter as chapter 4 around classes, with other
section numbers and exercises, so each part links the classic section first and,
where the current edition teaches the same thing, its section too.
"""

from dataclasses import dataclass

CLASSIC = "https://classic.d2l.ai/chapter_linear-networks/"
CURRENT = "https://d2l.ai/chapter_linear-classification/"


@dataclass(frozen=True)
class Section:
    """One section of the book."""

    number: str
    """As the book numbers it, e.g. '3.6.2'."""
    title: str
    """Its heading, e.g. 'Defining the Softmax Operation'."""
    url: str
    """The page with the section's anchor."""

    @property
    def site(self):
        """'classic.d2l.ai' or 'd2l.ai': which edition the link opens."""
        return self.url.split("/")[2]


@dataclass(frozen=True)
class Guide:
    """What the feedback tells a student who lost points on one part."""

    hint: str
    """What a correct answer does, in words (never the reference's code)."""
    read: tuple[Section, ...]
    """Where the book teaches it, the notebook's (classic) edition first."""


def _scratch(number, title, anchor):
    return Section(number, title, f"{CLASSIC}softmax-regression-scratch.html#{anchor}")


def _current(number, title, page, anchor):
    return Section(number, title, f"{CURRENT}{page}.html#{anchor}")


SOFTMAX = _scratch("3.6.2", "Defining the Softmax Operation", "defining-the-softmax-operation")
MODEL = _scratch("3.6.3", "Defining the Model", "defining-the-model")
LOSS = _scratch("3.6.4", "Defining the Loss Function", "defining-the-loss-function")
ACCURACY = _scratch("3.6.5", "Classification Accuracy", "classification-accuracy")
TRAINING = _scratch("3.6.6", "Training", "training")
PREDICTION = _scratch("3.6.7", "Prediction", "prediction")
SGD = Section("3.2.6", "Defining the Optimization Algorithm",
              f"{CLASSIC}linear-regression-scratch.html#defining-the-optimization-algorithm")
REVISITED = Section("3.7.2", "Softmax Implementation Revisited",
                    f"{CLASSIC}softmax-regression-concise.html#softmax-implementation-revisited")
PREDICTION_THEORY = Section("3.4.8", "Model Prediction and Evaluation",
                            f"{CLASSIC}softmax-regression.html#model-prediction-and-evaluation")
OUTPUT_COST = Section("3.4.3", "Parameterization Cost of Fully-Connected Layers",
                      f"{CLASSIC}softmax-regression.html"
                      "#parameterization-cost-of-fully-connected-layers")

NOW_SOFTMAX = _current("4.4.1", "The Softmax", "softmax-regression-scratch", "the-softmax")
NOW_MODEL = _current("4.4.2", "The Model", "softmax-regression-scratch", "the-model")
NOW_LOSS = _current("4.4.3", "The Cross-Entropy Loss", "softmax-regression-scratch",
                    "the-cross-entropy-loss")
NOW_ACCURACY = _current("4.3.2", "Accuracy", "classification", "accuracy")
NOW_TRAINING = _current("4.4.4", "Training", "softmax-regression-scratch", "training")
NOW_PREDICTION = _current("4.4.5", "Prediction", "softmax-regression-scratch", "prediction")
NOW_SGD = Section("3.4.3", "Defining the Optimization Algorithm",
                  "https://d2l.ai/chapter_linear-regression/linear-regression-scratch.html"
                  "#defining-the-optimization-algorithm")
NOW_REVISITED = _current("4.5.2", "Softmax Revisited", "softmax-regression-concise",
                         "softmax-revisited")


def exercise(k):
    """The classic section 3.6's exercise k (the notebook's exercise k)."""
    return _scratch("3.6.9", f"Exercises, exercise {k}", "exercises")


def current_exercise(k):
    """The current edition's section 4.4 exercise k."""
    return _current("4.4.7", f"Exercises, exercise {k}", "softmax-regression-scratch", "exercises")


# One row per auto-graded part id of ASSIGNMENT.md.
GUIDES = {
    "softmax": Guide(
        "Exponentiate every entry, sum each row (dim 1, keeping the dimension so that the "
        "sums broadcast over the columns) and divide; the result keeps X's dtype and device, "
        "and every row sums to 1.",
        (SOFTMAX, NOW_SOFTMAX)),
    "net": Guide(
        "Flatten each image into a row of W.shape[0] inputs, multiply by W, add b (broadcast "
        "over the rows) and apply your softmax to the scores.",
        (MODEL, NOW_MODEL)),
    "cross_entropy": Guide(
        "In each row pick the probability of the true class with a pair of index tensors "
        "(row numbers and y), then take minus its log; return one loss per example, shape "
        "[n], neither their mean nor their sum.",
        (LOSS, NOW_LOSS)),
    "accuracy": Guide(
        "Take the argmax over dim 1 when y_hat holds one row of scores per example, convert "
        "it to y's dtype before comparing, and return the NUMBER of matches as a Python float.",
        (ACCURACY, NOW_ACCURACY)),
    "evaluate_accuracy": Guide(
        "Switch an nn.Module to eval mode, evaluate under torch.no_grad(), add up correct "
        "predictions and examples over every batch, the last partial one included, and "
        "return their ratio.",
        (ACCURACY,)),
    "accumulator": Guide(
        "Keep n running sums as Python floats: add() adds its n arguments to them, reset() "
        "sets them back to 0, and indexing reads one of them.",
        (ACCURACY,)),
    "sgd": Guide(
        "Inside torch.no_grad(), change each parameter in place (an augmented assignment, "
        "not a new tensor), divide the step by batch_size, then zero that parameter's "
        "gradient.",
        (SGD, NOW_SGD)),
    "train_epoch": Guide(
        "With a torch.optim.Optimizer: zero the gradients, backward on the mean loss, step. "
        "With a callable updater: backward on the summed loss, then updater(batch size). "
        "Average the loss and the accuracy over every example of the epoch, the last partial "
        "batch included.",
        (TRAINING, NOW_TRAINING)),
    "train": Guide(
        "Each epoch: one train_epoch_ch3, then evaluate_accuracy on the test data after that "
        "epoch's training; collect (train_loss, train_acc, test_acc) for every epoch and "
        "return the whole list.",
        (TRAINING, NOW_TRAINING)),
    "predict": Guide(
        "The text labels follow the class numbers 0 to 9 in order; predict_ch3 labels the "
        "first batch of the iterator, true labels and argmax predictions, n of each.",
        (PREDICTION, NOW_PREDICTION)),
    "ex1_overflow": Guide(
        "Find the threshold with torch.exp in the dtype itself, searching among the values "
        "that dtype can hold: float16, bfloat16, float32 and float64 overflow at different "
        "points. A logits row whose exp overflows makes the naive softmax divide inf by inf.",
        (exercise(1), REVISITED, current_exercise(1), NOW_REVISITED)),
    "ex2_log_domain": Guide(
        "Compute log-softmax as o - logsumexp(o) after subtracting each row's maximum, so "
        "that it stays finite for any finite logits; the loss breaks where a valid "
        "probability of the true class is exactly 0.",
        (exercise(2), REVISITED, current_exercise(2), NOW_REVISITED)),
    "ex3_stable_loss": Guide(
        "Subtract each row's own maximum (not one global maximum) before exponentiating, and "
        "compute the loss straight from the logits, logsumexp minus the true class's logit, "
        "never through the log of a softmax.",
        (REVISITED, exercise(3), NOW_REVISITED)),
    "ex4_decision": Guide(
        "The expected cost of an action is the sum over classes of its cost times the class's "
        "probability (one matrix product for all rows); choose the cheapest action; refer "
        "(-1) only where the largest probability is strictly below the threshold.",
        (exercise(4), PREDICTION_THEORY, current_exercise(3))),
    "ex5_large_vocab": Guide(
        "Score only each example's own cluster: gather that cluster's word weights, so that "
        "the work is O(n·d·(C + m)) and no [n, V] scores are ever held.",
        (exercise(5), OUTPUT_COST, current_exercise(4))),
}


WRITTEN_HINT = ("Answer in a few sentences, with numbers from your experiments where they help; "
                "a person grades it.")


NO_GUIDE = Guide("", ())  # a part id this assignment does not have (another source notebook)


def guide(part):
    """The Guide of a part id; a written answer `exK_written` reads what exercise K's code does."""
    if part.endswith("_written"):
        exercise_code = next((p for p in GUIDES if p.startswith(part.removesuffix("written"))),
                             None)
        return Guide(WRITTEN_HINT, GUIDES[exercise_code].read) if exercise_code else NO_GUIDE
    return GUIDES.get(part, NO_GUIDE)
