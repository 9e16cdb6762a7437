"""The hidden tests: one module per part id of ASSIGNMENT.md, each with a list
`TESTS` of `HiddenTest`s. They live only here (never in the notebook or the
release), run in the grader's process, and reach the student's code only
through a `Student` (calls whose arguments and results are plain data).
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol


class StudentError(Exception):
    """The student's code raised; `ename` is the exception's class name, `message` its text."""

    def __init__(self, ename, message, frames=()):
        super().__init__(f"{ename}: {message}")
        self.ename, self.message = ename, message
        self.frames = [tuple(frame) for frame in frames]
        """[(qualified function name, source line), ...] of the notebook's code, innermost
        last, as the child reported them (the student's to forge: used only to explain)."""

    @property
    def raised_in(self):
        """The qualified name of the innermost notebook function the exception came from."""
        return self.frames[-1][0] if self.frames else None


class Student(Protocol):
    """What a hidden test may do with a submission."""

    def call(self, name: str, *args: Any) -> Any:
        """Call the submission's function `name` on plain arguments (tensors, numbers,
        strings, lists, tuples, dicts, None) and return its plain result.
        Raises StudentError when the student's code raises, and NotImplementedError
        (a StudentError with ename 'NotImplementedError') for a stub."""

    def has(self, name: str) -> bool:
        """Whether the submission defines `name` at all."""

    def set_global(self, name: str, value: Any) -> None:
        """Bind a plain value to a global of the submission (e.g. `W` and `b` for `net`);
        tensors arrive with requires_grad as sent."""

    def scenario(self, name: str, *args: Any) -> Any:
        """Run `grader/scenarios.py`'s function `name(namespace, *args)` inside the
        submission's process, where it can hand the student's functions live objects
        (callables, nn.Modules, iterators, tensors with gradients), and return its plain
        result. Raises StudentError like `call`."""

    @property
    def data_dir(self) -> str:
        """Directory, as the submission's process sees it, holding Fashion-MNIST's four raw
        idx files (train-images-idx3-ubyte, ...), for scenarios that train."""


@dataclass
class Verdict:
    """What one hidden test concluded."""

    passed: bool
    """Whether the student's code did what the test asked."""
    message: str = ""
    """For the student: what was tried (shapes, dtypes), the error against the
    tolerance and, when recognised, the name of the mistake."""
    details: dict = field(default_factory=dict)
    """Measured numbers for reports (max_abs_error, tolerance, shapes, mistake, ...)."""
    credit: float | None = None
    """The fraction of the test's points earned; None: all of them when passed, none
    otherwise. A failed test may earn part (right values in a near-miss shape)."""


@dataclass
class HiddenTest:
    """One hidden test of one part."""

    name: str
    """Short and unique within the part, e.g. 'float16 [64, 10] matches torch.softmax'."""
    part: str
    """The part id of ASSIGNMENT.md whose points this test carries."""
    weight: float
    """Share of the part's points, relative to the part's other tests."""
    run: Callable[[Student], Verdict]
    """The test itself; it may raise StudentError, which counts as an error outcome."""
    counts_alone: bool = True
    """False for a property that a function doing nothing useful also has (it leaves its
    input unchanged, it handles an empty batch): such a test scores only when a test of
    the same function that counts alone passes too."""
    fixed_answer: bool = False
    """True where the task has one right answer in every grading (a constant of a dtype,
    the label names, an input that breaks a formula): a copied answer is a right one, and
    the test counts alone anyway (checks.py, "Nothing for copied answers")."""
    function: str | None = None
    """The student's function whose credit the test carries; None: the part's only
    function, or the one its name starts with (manifest.function_of)."""
    end_to_end: bool = False
    """True for a test of the student's own functions working together (Fashion-MNIST):
    it runs before any book substitute is in the process, and `run(student, context)`
    also gets the judge's Context (the reference's run to compare with)."""
    inputs_unchanged: bool = False
    """True for the test that a function leaves its inputs unchanged: it fails too when any
    other plain call of the function modified a tensor argument in place."""
    uses: tuple[str, ...] = ()
    """For an end-to-end test: the student's functions it exercises, the suspects when it
    fails."""
