"""`softgrade grade`: full grading of one submission.

The submission's process and the reference's (sandbox.py) are started first; then,
for each part of the source notebook, in order, its hidden tests and budgets judge
the submission (judge.py). A crash or a timeout costs only the part that caused
it: the process is started afresh for the next part. Reports are written by
results.py.

This module imports no torch at the top: the two processes are launched before
the grader pays for its own `import torch`, and import theirs meanwhile.
"""

import math
import sys
import threading
import time
from pathlib import Path

from .feedback import write_feedback
from .hidden import StudentError
from .nbgrader_db import GradebookError, gradebook_target, record_grades
from .notebook import NotebookError, find_parts, read_notebook
from .results import GradeReport, write_classroom, write_gradescope, write_junit, written_answer
from .sandbox import ChildCrashed, ChildTimeout, LimitTooLow, Limits, SubmissionProcess
from .submission import submission_code

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT / "assignments" / "softmax_regression" / "softmax_regression.ipynb"
SCENARIO_SECONDS = 60.0  # scenarios may train for a few epochs

# OSError covers DataNotFoundError (no Fashion-MNIST), a FileNotFoundError.
USER_ERRORS = (NotebookError, GradebookError, LimitTooLow, OSError)

DESCRIPTION = """\
Grade one submitted notebook: its code runs in a sandboxed process, the hidden
tests and performance budgets judge each part, and a score table is printed.

Exit code: 0 when grading completed (and the score reached --min-score, if
given), 1 when the score is below --min-score, 2 when the notebook could not be
graded at all; the reason is one line on stderr. A notebook that could not be
graded still gets the reports asked for (score 0, the reason in them), so CI and
platforms always find a result; the nbgrader gradebook is then left as it was."""


def add_arguments(parser):
    parser.add_argument("notebook", metavar="NOTEBOOK", help="the submitted notebook (.ipynb)")
    parser.add_argument("--results", metavar="PATH",
                        help="write the Gradescope results JSON here")
    parser.add_argument("--junit", metavar="PATH", help="write JUnit XML here")
    parser.add_argument("--feedback", metavar="DIR",
                        help="write feedback.md and feedback.html into DIR")
    parser.add_argument("--classroom", metavar="PATH",
                        help="write GitHub Classroom's autograding result JSON here "
                             "(base64-encode it into the step's `result` output)")
    parser.add_argument("--nbgrader-db", metavar="PATH",
                        help="record the auto-graded scores in this nbgrader gradebook "
                             "(sqlite, e.g. the course's gradebook.db); needs --student")
    parser.add_argument("--student", metavar="ID", help="the student's id in the gradebook")
    parser.add_argument("--assignment", metavar="NAME",
                        help="the assignment's name in the gradebook (default: the name of "
                             "the source notebook's folder)")
    parser.add_argument("--min-score", type=float, metavar="X",
                        help="exit 1 unless the score is at least X")
    parser.add_argument("--source", default=str(DEFAULT_SOURCE), metavar="NOTEBOOK",
                        help="the instructor's source notebook (default: the bundled assignment)")
    parser.add_argument("--no-namespaces", action="store_true",
                        help="do not use bubblewrap even where it works (for debugging)")


def fashion_mnist_raw_dir():
    from solutions.data_files import find_fashion_mnist, raw_dir
    return raw_dir(find_fashion_mnist(download=False))


class RestartingSubmission:
    """The Student of grader.hidden for a live submission: a sandboxed process that is
    started on first use and again after a crash or a timeout killed it."""

    def __init__(self, cells, **process_options):
        self.cells = cells
        self.process_options = process_options
        self.process = None
        self.load_failure = None

    def launch(self):
        """Start a fresh process without waiting for it to run the cells."""
        if self.process is not None:
            self.process.close()
        self.process = SubmissionProcess(self.cells, **self.process_options)
        self.process.launch()

    def running(self):
        if self.load_failure is not None:
            raise self.load_failure  # the same cells would fail the same way: pay once
        if self.process is None or self.process.process is None:
            self.launch()
        if not self.process.loaded:
            try:
                self.process.load()
            except (ChildTimeout, ChildCrashed) as failure:
                self.load_failure = failure
                raise
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

    def timed_round(self, kind, name, calls, timeout=None):
        return self.running().timed_round(kind, name, calls, timeout=timeout)

    def peak_memory(self, kind, name, args, timeout=None):
        return self.running().peak_memory(kind, name, args, timeout=timeout)

    def close(self):
        if self.process is not None:
            self.process.close()


def process_options(use_namespaces=True, limits=None, temp_root=None):
    """How submission (and reference) processes are started."""
    # 30 s for the cells: a correct notebook's take a few seconds, even with every core busy.
    limits = limits or Limits(call_seconds=10, load_seconds=30)
    return {"use_namespaces": use_namespaces, "limits": limits,
            "data_dir": fashion_mnist_raw_dir(), "temp_root": temp_root}


def reference_submission(source_path=DEFAULT_SOURCE, use_namespaces=True, temp_root=None):
    """A started RestartingSubmission of the source notebook's solutions (for batches)."""
    source = read_notebook(source_path)
    reference = RestartingSubmission(submission_code(source, source).cells,
                                     **process_options(use_namespaces, temp_root=temp_root))
    reference.running()
    return reference


def reference_history(reference):
    """(history, None) of the reference's run of the student's Fashion-MNIST scenario, or
    (None, a warning saying why there is none)."""
    from .hidden.train import run_fashion_mnist

    try:
        return run_fashion_mnist(reference)["history"], None
    except (StudentError, ChildTimeout, ChildCrashed) as err:
        return None, f"the reference's training curve could not be recorded: {err}"


def start_reference(cells, options, record_history=False):
    """The reference's process, loading its cells in a thread while grading goes on.
    With `record_history` the thread then runs reference_history, on the core that the
    grader and the submission leave idle, and appends its result to the returned list.
    It is launched from this (the main) thread, which outlives it."""
    reference = RestartingSubmission(cells, **options)
    reference.launch()
    recorded = []

    def load():
        reference.process.load()
        if record_history:
            recorded.append(reference_history(reference))

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    return reference, thread, recorded


def forget_if_killed(submission):
    """After a timeout or a crash killed its process, the next part gets a fresh one."""
    if submission.process is not None and submission.process.process is None:
        submission.process = None


def grade_notebook(path, source_path=DEFAULT_SOURCE, use_namespaces=True, limits=None,
                   reference=None, temp_root=None, record_history=False):
    """GradeReport of one submission; an unreadable notebook gives a report with `error`.

    `reference` is a RestartingSubmission of the reference solution to reuse (a batch
    grades many submissions against one); without it one is started and closed here.
    `record_history` also records the reference's Fashion-MNIST history in the report,
    for the feedback's training curves.
    """
    start = time.perf_counter()
    source = read_notebook(source_path)
    report = GradeReport(submission=str(path), tests=[], execution_time=0.0, warnings=[])
    try:
        code = submission_code(path, source)
    except NotebookError as err:
        report.error = str(err)
        return report
    report.warnings += code.warnings
    options = process_options(use_namespaces, limits, temp_root)
    student = RestartingSubmission(code.cells, **options)
    student.launch()
    own_reference, reference_thread = reference is None, None
    try:
        # Only now: the submission's process imports torch (2 s) while the grader does.
        import torch

        from .judge import budgets_of, grade_budgets, grade_values, hidden_tests_by_part

        # The grader's own oracles work on small tensors: one thread is as fast, and
        # does not slow down when the submission's process keeps the other core busy.
        torch.set_num_threads(1)
        tests = hidden_tests_by_part()
        if own_reference:
            # Needed only for the budgets, which are judged after every part's values:
            # it loads meanwhile, on the core that the grader and the submission,
            # taking turns, leave idle.
            reference, reference_thread, recorded = start_reference(
                submission_code(source, source).cells, options, record_history)
        elif record_history:
            recorded = [reference_history(reference)]
        parts = find_parts(source)
        auto = [part for part in parts if not part.written]
        values, budgets = {}, {}
        for part in auto:
            values[part.id] = grade_values(part, tests.get(part.id, []), budgets_of(part.id),
                                           student, stubbed=part.id in code.stub_parts)
            forget_if_killed(student)
        if reference_thread is not None:
            reference_thread.join()
        if record_history:
            # empty when the reference's process failed to load: its budgets say so too
            report.reference_history, missing = recorded[0] if recorded else (
                None, "the reference's training curve could not be recorded: no reference process")
            if missing:
                report.warnings.append(missing)
        for part in auto:
            budgets[part.id] = grade_budgets(part, tests.get(part.id, []), budgets_of(part.id),
                                             values[part.id], student, reference,
                                             stubbed=part.id in code.stub_parts)
            forget_if_killed(student)
        for part in parts:
            report.tests += [written_answer(part.id, part.points)] if part.written \
                else values[part.id] + budgets[part.id]
        if student.process is not None:
            report.warnings += student.process.isolation.warnings
    finally:
        student.close()
        if reference_thread is not None:
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


def auto_graded_points(source_path):
    """The source notebook's auto-graded points: what an ungradable notebook misses."""
    return math.fsum(part.points for part in find_parts(read_notebook(source_path))
                     if not part.written)


def write_reports(report, args):
    """Write every report the command line asked for."""
    if args.results:
        write_gradescope(report, args.results)
    if args.classroom:
        write_classroom(report, args.classroom, auto_graded_points(args.source))
    if args.junit:
        write_junit(report, args.junit)
    if args.feedback:
        write_feedback(report, args.feedback)


def run(args):
    # Checked first: a mistake in these options should not cost a grading.
    gradebook = gradebook_target(args.nbgrader_db, args.student, args.assignment,
                                 args.source) if args.nbgrader_db else None
    report = grade_notebook(args.notebook, args.source, use_namespaces=not args.no_namespaces,
                            record_history=bool(args.feedback))
    print_report(report)
    write_reports(report, args)
    if report.error:
        raise NotebookError(report.error)
    if gradebook:
        record_grades(report, gradebook, read_notebook(args.source))
    if args.min_score is not None and report.score < args.min_score:
        print(f"softgrade grade: score {report.score:g} is below --min-score {args.min_score:g}",
              file=sys.stderr)
        return 1
    return 0
