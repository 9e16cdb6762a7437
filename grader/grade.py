"""`softgrade grade`: full grading of one submission.

For each part of the source notebook, in order: its hidden tests (grader/hidden/)
and its performance budgets (budgets.py) run against the submission's process
(sandbox.py); the verdicts are decided here, in the grader's process. A crash or a
timeout costs only the part that caused it: the process is started afresh for the
next part. Reports are written by results.py.
"""

import importlib
import pkgutil
import sys
import threading
import time
from pathlib import Path

import torch

from . import hidden
from .budgets import BUDGETS, measure
from .hidden import HiddenTest, StudentError
from .hidden.train import fashion_mnist_test_set
from .notebook import NotebookError, find_parts, read_notebook
from .results import (GradeReport, TestResult, write_feedback, write_gradescope, write_junit,
                      written_answer)
from .sandbox import ChildCrashed, ChildTimeout, LimitTooLow, Limits, SubmissionProcess
from .submission import submission_code

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT / "assignments" / "softmax_regression" / "softmax_regression.ipynb"
SCENARIO_SECONDS = 60.0  # scenarios may train for a few epochs

USER_ERRORS = (NotebookError, LimitTooLow, OSError)  # DataNotFoundError is a FileNotFoundError

DESCRIPTION = """\
Grade one submitted notebook: its code runs in a sandboxed process, the hidden
tests and performance budgets judge each part, and a score table is printed.

Exit code: 0 when grading completed (and the score reached --min-score, if
given), 1 when the score is below --min-score, 2 when the notebook could not be
graded at all; the reason is one line on stderr."""


def add_arguments(parser):
    parser.add_argument("notebook", metavar="NOTEBOOK", help="the submitted notebook (.ipynb)")
    parser.add_argument("--results", metavar="PATH",
                        help="write the Gradescope results JSON here")
    parser.add_argument("--junit", metavar="PATH", help="write JUnit XML here")
    parser.add_argument("--feedback", metavar="DIR",
                        help="write feedback.md and feedback.html into DIR")
    parser.add_argument("--min-score", type=float, metavar="X",
                        help="exit 1 unless the score is at least X")
    parser.add_argument("--source", default=str(DEFAULT_SOURCE), metavar="NOTEBOOK",
                        help="the instructor's source notebook (default: the bundled assignment)")
    parser.add_argument("--no-namespaces", action="store_true",
                        help="do not use bubblewrap even where it works (for debugging)")


def hidden_tests_by_part():
    """{part id: [HiddenTest, ...]} from every module of grader/hidden."""
    tests = {}
    for module_info in pkgutil.iter_modules(hidden.__path__):
        module = importlib.import_module(f"{hidden.__name__}.{module_info.name}")
        for test in getattr(module, "TESTS", []):
            tests.setdefault(test.part, []).append(test)
    return tests


def fashion_mnist_raw_dir():
    from solutions.data import find_fashion_mnist, raw_dir
    return raw_dir(find_fashion_mnist(download=False))


class RestartingSubmission:
    """The Student of grader.hidden for a live submission: a sandboxed process that is
    started on first use and again after a crash or a timeout killed it."""

    def __init__(self, cells, **process_options):
        self.cells = cells
        self.process_options = process_options
        self.process = None

    def launch(self):
        """Start a fresh process without waiting for it to run the cells."""
        if self.process is not None:
            self.process.close()
        self.process = SubmissionProcess(self.cells, **self.process_options)
        self.process.launch()

    def running(self):
        if self.process is None or self.process.process is None:
            self.launch()
        if not self.process.loaded:
            self.process.load()
        return self.process

    @property
    def data_dir(self):
        return self.running().data_dir

    def call(self, name, *args):
        return self.running().call(name, *args)

    def has(self, name):
        return self.running().has(name)

    def set_global(self, name, value):
        self.running().set_global(name, value)

    def scenario(self, name, *args):
        return self.running().scenario(name, *args, timeout=SCENARIO_SECONDS)

    def stage(self, key, args):
        self.running().stage(key, args)

    def timed_repeat(self, kind, name, key, times, timeout=None):
        return self.running().timed_repeat(kind, name, key, times, timeout=timeout)

    def peak_memory(self, kind, name, key, timeout=None):
        return self.running().peak_memory(kind, name, key, timeout=timeout)

    def close(self):
        if self.process is not None:
            self.process.close()


def run_one(test, student, reference, stubbed):
    """(outcome, message, details) of one hidden test or budget."""
    try:
        if isinstance(test, HiddenTest):
            verdict = test.run(student)
        else:
            verdict = measure(test, student, reference)
    except StudentError as err:
        if err.ename == "NotImplementedError":
            if stubbed:
                return "not_attempted", "not attempted: the stub still raises NotImplementedError", {}
            return "error", "it uses a function that is still a stub (NotImplementedError)", {}
        return "error", f"your code raised {err.ename}: {err.message}"[:500], {"ename": err.ename}
    except ChildTimeout as err:
        return "timeout", f"no answer in time ({err}); the process was restarted", {}
    except ChildCrashed as err:
        return "crashed", f"{err}; the process was restarted", {}
    except Exception as err:  # a result the test could not digest (or a grader bug): never a pass
        return "failed", f"the result could not be checked ({type(err).__name__}: {err})"[:500], \
            {"grader_exception": type(err).__name__}
    if verdict.passed:
        return "passed", verdict.message, verdict.details
    if verdict.details.get("over_budget"):
        return "over_budget", verdict.message, verdict.details
    return "failed", verdict.message, verdict.details


def grade_part(part, tests, budgets, student, reference, stubbed):
    """[TestResult] of one auto-graded part."""
    weights = [t.weight for t in tests + budgets]
    share = part.points / sum(weights) if weights else 0.0
    results, values_ok, stopped = [], True, None
    for test in tests + budgets:
        name = f"{part.id}: {test.name}"
        max_score = share * test.weight
        if stubbed:  # nothing to run: the release's stub is still there
            outcome, message, details = "not_attempted", "not attempted: the stub still " \
                "raises NotImplementedError", {}
        elif stopped:
            outcome, message, details = stopped, "not run: an earlier test of this part " \
                f"ended with {stopped}", {}
        elif not isinstance(test, HiddenTest) and not values_ok:
            outcome, message, details = "failed", "not timed: the value tests of this part " \
                "fail, fix them first", {}
        else:
            outcome, message, details = run_one(test, student, reference, stubbed)
        if isinstance(test, HiddenTest) and outcome != "passed":
            values_ok = False
        if outcome in ("timeout", "crashed"):
            stopped = outcome
        results.append(TestResult(name=name, part=part.id,
                                  score=max_score if outcome == "passed" else 0.0,
                                  max_score=max_score, outcome=outcome, message=message,
                                  details=details))
    return results


def process_options(use_namespaces=True, limits=None, temp_root=None):
    """How submission (and reference) processes are started."""
    return {"use_namespaces": use_namespaces, "limits": limits or Limits(call_seconds=10),
            "data_dir": fashion_mnist_raw_dir(), "temp_root": temp_root}


def reference_submission(source_path=DEFAULT_SOURCE, use_namespaces=True, temp_root=None):
    """A started RestartingSubmission of the source notebook's solutions (for batches)."""
    source = read_notebook(source_path)
    reference = RestartingSubmission(submission_code(source, source).cells,
                                     **process_options(use_namespaces, temp_root=temp_root))
    reference.running()
    return reference


def start_reference(cells, options):
    """The reference's process, loading its cells in a thread while the submission's
    starts. It is launched from this (the main) thread, which outlives it."""
    reference = RestartingSubmission(cells, **options)
    reference.launch()
    thread = threading.Thread(target=reference.process.load, daemon=True)
    thread.start()
    return reference, thread


def grade_notebook(path, source_path=DEFAULT_SOURCE, use_namespaces=True, limits=None,
                   reference=None, temp_root=None):
    """GradeReport of one submission; an unreadable notebook gives a report with `error`.

    `reference` is a RestartingSubmission of the reference solution to reuse (a batch
    grades many submissions against one); without it one is started and closed here.
    """
    start = time.perf_counter()
    # The grader's own oracles work on small tensors: one thread is as fast, and does
    # not slow down when the submission's process keeps the other core busy.
    torch.set_num_threads(1)
    source = read_notebook(source_path)
    report = GradeReport(submission=str(path), tests=[], execution_time=0.0, warnings=[])
    try:
        code = submission_code(path, source)
    except NotebookError as err:
        report.error = str(err)
        return report
    report.warnings += code.warnings
    options = process_options(use_namespaces, limits, temp_root)
    tests = hidden_tests_by_part()
    own_reference = reference is None
    reference_thread = None
    if own_reference:
        reference, reference_thread = start_reference(submission_code(source, source).cells,
                                                      options)
    student = RestartingSubmission(code.cells, **options)
    student.launch()  # both processes start at once, on both cores
    # The grader's own copy of the test set (for the training check) loads meanwhile.
    prefetch = threading.Thread(target=fashion_mnist_test_set, daemon=True)
    prefetch.start()
    try:
        prefetch.join()
        for part in find_parts(source):
            if part.written:
                report.tests.append(written_answer(part.id, part.points))
                continue
            part_budgets = [b for b in BUDGETS if b.part == part.id]
            if part_budgets and reference_thread is not None:
                reference_thread.join()
            report.tests += grade_part(part, tests.get(part.id, []), part_budgets, student,
                                       reference,
                                       stubbed=part.id in code.stub_parts)
            if student.process is not None and student.process.process is None:
                student.process = None  # killed by a timeout or crash: fresh for the next part
        if student.process is not None:
            report.warnings += student.process.isolation.warnings
    finally:
        student.close()
        if own_reference:
            reference_thread.join()
            reference.close()
    report.execution_time = time.perf_counter() - start
    return report


def print_report(report, file=sys.stdout):
    if report.error:
        return
    outcomes = report.outcome_by_part()
    rows = [(part, f"{score:g}/{max_score:g}", outcomes[part])
            for part, (score, max_score) in report.part_scores().items()]
    width = max(len(r[0]) for r in rows)
    print(f"{'part':<{width}}  {'score':>9}  outcome", file=file)
    for part, score, outcome in rows:
        print(f"{part:<{width}}  {score:>9}  {outcome}", file=file)
    for test in report.tests:
        if test.outcome not in ("passed", "manual"):
            print(f"  - {test.name}: {test.message}", file=file)
    print(f"score {report.score:g} / {report.max_score:g} (written answers are graded by hand) "
          f"in {report.execution_time:.1f} s", file=file)
    for warning in report.warnings:
        print(f"warning: {warning}", file=file)


def run(args):
    report = grade_notebook(args.notebook, args.source, use_namespaces=not args.no_namespaces)
    if report.error:
        raise NotebookError(report.error)
    print_report(report)
    if args.results:
        write_gradescope(report, args.results)
    if args.junit:
        write_junit(report, args.junit)
    if args.feedback:
        write_feedback(report, args.feedback)
    if args.min_score is not None and report.score < args.min_score:
        print(f"softgrade grade: score {report.score:g} is below --min-score {args.min_score:g}",
              file=sys.stderr)
        return 1
    return 0
