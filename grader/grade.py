"""`softgrade grade`: full grading of one submission.

The submission's process and the reference's (sandbox.py) are started first; then,
for each part of the source notebook, in order, its hidden tests and budgets judge
the submission (judge.py). A crash or a timeout costs only the part that caused
it: the process is started afresh for the next part. Reports are written by
results.py.

This module imports no torch at the top: the two processes are launched before
the grader pays for its own `import torch`, and import theirs meanwhile.
"""

import contextlib
import math
import re
import sys
import threading
import time
from pathlib import Path

from .feedback import write_feedback
from .hidden import StudentError
from .hidden.manifest import PARTS
from .integrity import find_signals
from .isolation import CannotGrade, choose_isolation
from .nbgrader_db import GradebookError, gradebook_target, record_grades
from .notebook import NotebookError, find_parts, read_notebook
from .results import GradeReport, one_line, write_classroom, write_gradescope, write_junit, written_answer
from .sandbox import ChildCrashed, ChildTimeout, Limits, SubmissionProcess
from .secret import DEFAULT_SECRET, add_secret_argument, course_secret, submission_salt
from .submission import given_sources, submission_code

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_SOURCE = ROOT / "assignments" / "softmax_regression" / "softmax_regression.ipynb"
SCENARIO_SECONDS = 60.0  # scenarios may train for a few epochs

# OSError covers DataNotFoundError (no Fashion-MNIST), a FileNotFoundError.
# CannotGrade: no isolation here (NotIsolated), a memory limit too low for torch (LimitTooLow).
USER_ERRORS = (NotebookError, GradebookError, OSError, CannotGrade)

DESCRIPTION = """\
Grade one submitted notebook: its code runs in a sandboxed process, the hidden
tests and performance budgets judge each part, and a score table is printed.

Exit code: 0 when grading completed (and the score reached --min-score, if
given), 1 when the score is below --min-score, 2 when the notebook could not be
graded at all, or when this machine cannot isolate it (`softgrade doctor` says
why); the reason is one line on stderr. A notebook that could not be
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
    add_isolation_arguments(parser)
    add_secret_argument(parser)


def add_isolation_arguments(parser):
    """The options of `grade` and `grade-batch` about isolating submissions."""
    parser.add_argument("--no-namespaces", action="store_true",
                        help="do not use bubblewrap even where it works (for debugging); the "
                             "unprivileged fallback must then pass its checks")
    parser.add_argument("--unsafe-no-sandbox", action="store_true",
                        help="grade even where isolation cannot be proven, with none: the "
                             "submission could read the answers; every report says "
                             "'not isolated'")


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
        self.substitutes = {}  # {name: the book's source} installed in the process now
        self.modified_inputs = set()  # functions seen modifying their input (all processes)
        self.watched = set()  # from-scratch functions whose calls record what they reach
        self.reached = {}  # {function: torch functions its calls reached (all processes)}
        self.fashion_mnist_run = None  # the reference's, once recorded (see reference_run)
        self.raised = False  # the student's code raised in this process (forget_if_spoiled)

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
            if self.substitutes:  # a fresh process after a crash: as the last one was
                self.process.substitute(self.substitutes)
        return self.process

    def use_substitutes(self, names, closed=True):
        """Have the book's versions of exactly `names` (with `closed`, also of what those
        call) in place of the student's, and the student's own for everything else."""
        from .substitutes import sources

        wanted = sources(names) if closed else {name: sources([name])[name] for name in names}
        change = {name: None for name in self.substitutes if name not in wanted}
        change.update({n: src for n, src in wanted.items() if self.substitutes.get(n) != src})
        self.substitutes = wanted
        if change and self.process is not None and self.process.loaded:
            self.process.substitute(change)

    def cell_failures(self):
        """{name a failed cell defines: 'SyntaxError: ...'}: a NameError on it is explained."""
        errors = self.process.cell_errors if self.process is not None else []
        failures = {}
        for error in errors:
            source = self.cells[error["index"]]
            for name in re.findall(r"^(?:def|class)\s+(\w+)", source, flags=re.MULTILINE):
                failures[name] = one_line(f"{error['ename']}: {error['message']}", 200)
        return failures

    def forget_if_spoiled(self):
        """Between parts: the next test gets a fresh process after a timeout or a crash
        killed this one, or after the student's code raised in it (what failing code
        leaves behind, a full disk, patched globals, threads, is not the next part's)."""
        if self.process is not None and (self.process.process is None or self.raised):
            self.process.close()
            self.process = None
        self.raised = False

    @property
    def data_dir(self):
        return self.running().data_dir

    @contextlib.contextmanager
    def noting_errors(self):
        try:
            yield
        except StudentError as err:
            if err.ename != "NotImplementedError":  # a stub leaves nothing behind
                self.raised = True
            raise

    def call(self, name, *args):
        process = self.running()
        try:
            with self.noting_errors():
                return process.call(name, *args, watch=name in self.watched)
        finally:
            self.modified_inputs |= process.modified_inputs
            for function, names in process.reached.items():
                self.reached.setdefault(function, set()).update(names)

    def has(self, name):
        return self.running().has(name)

    def set_global(self, name, value):
        self.running().set_global(name, value)

    def scenario(self, name, *args):
        with self.noting_errors():
            return self.running().scenario(name, *args, timeout=SCENARIO_SECONDS)

    def timed_round(self, kind, name, calls, timeout=None):
        with self.noting_errors():
            return self.running().timed_round(kind, name, calls, timeout=timeout)

    def peak_memory(self, kind, name, args, timeout=None):
        with self.noting_errors():
            return self.running().peak_memory(kind, name, args, timeout=timeout)

    def close(self):
        if self.process is not None:
            self.process.close()


def protected_paths(source_path, secret_file=None):
    """Files besides the checkout's that a submission must not read: the source notebook
    and the course secret's file (isolation.py probes them)."""
    return tuple(str(Path(path).resolve()) for path in (source_path, secret_file) if path)


def process_options(use_namespaces=True, limits=None, temp_root=None, unsafe=False,
                    protected=()):
    """How submission (and reference) processes are started; NotIsolated when this
    machine cannot isolate them (and `unsafe` is not given)."""
    # 30 s for the cells: a correct notebook's take a few seconds, even with every core busy.
    limits = limits or Limits(call_seconds=10, load_seconds=30)
    data_dir = fashion_mnist_raw_dir()
    isolation = choose_isolation(use_namespaces, unsafe, data_dir, protected)
    return {"isolation": isolation, "limits": limits, "data_dir": data_dir,
            "temp_root": temp_root}


def reference_submission(source_path=DEFAULT_SOURCE, use_namespaces=True, temp_root=None,
                         unsafe=False, secret_file=None):
    """A started RestartingSubmission of the source notebook's solutions (for batches)."""
    source = read_notebook(source_path)
    options = process_options(use_namespaces, temp_root=temp_root, unsafe=unsafe,
                              protected=protected_paths(source_path, secret_file))
    reference = RestartingSubmission(submission_code(source, source).cells, **options)
    reference.running()
    return reference


def record_reference_run(reference):
    """Run the Fashion-MNIST scenario in the reference's process once (a batch's reference
    serves every submission): the end-to-end test compares the student's run with it, and
    the feedback draws its curves. Keeps the run, or the reason there is none."""
    from .hidden.train import run_fashion_mnist

    if reference.fashion_mnist_run is None:
        try:
            reference.fashion_mnist_run = run_fashion_mnist(reference)
        except (StudentError, ChildTimeout, ChildCrashed) as err:
            reference.fashion_mnist_run = f"the reference's Fashion-MNIST run failed: {err}"
    return reference.fashion_mnist_run


def start_reference(cells, options):
    """The reference's process, loading its cells and recording its Fashion-MNIST run in a
    thread while grading goes on, on the core that the grader and the submission leave
    idle. It is launched from this (the main) thread, which outlives it."""
    reference = RestartingSubmission(cells, **options)
    reference.launch()

    def load():
        try:
            reference.running()
        except (ChildTimeout, ChildCrashed, CannotGrade):
            return  # its budgets and the end-to-end test say so; no isolation: the
            # submission's own process fails the same way, in the main thread
        record_reference_run(reference)

    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    return reference, thread


def grade_notebook(path, source_path=DEFAULT_SOURCE, use_namespaces=True, limits=None,
                   reference=None, temp_root=None, secret=DEFAULT_SECRET, unsafe=False,
                   secret_file=None):
    """GradeReport of one submission; an unreadable notebook gives a report with `error`.
    NotIsolated when this machine cannot isolate it (unless `unsafe`: see isolation.py);
    the submission must not read `secret_file` (where `secret` came from) either.

    `reference` is a RestartingSubmission of the reference solution to reuse (a batch
    grades many submissions against one); without it one is started and closed here.
    The hidden inputs are drawn with the salt of `secret` (the course's, grader/secret.py)
    and the notebook's bytes.
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
    signals = find_signals(code.cells, trusted=given_sources(source))
    if signals:
        from .judge import hidden_tests_by_part, refuse_parts

        parts = find_parts(source)
        by_part = {}
        for result in refuse_parts([p for p in parts if not p.written], hidden_tests_by_part(),
                                   signals):
            by_part.setdefault(result.part, []).append(result)
        report.tests = [written_answer(p.id, p.points) if p.written else by_part.get(p.id, [])
                        for p in parts]
        report.tests = [t for entry in report.tests
                        for t in (entry if isinstance(entry, list) else [entry])]
        report.warnings.append("not graded: the notebook reaches into the grader: "
                               + "; ".join(map(str, signals[:5])))
        report.execution_time = time.perf_counter() - start
        return report
    options = process_options(use_namespaces, limits, temp_root, unsafe,
                              protected_paths(source_path, secret_file))
    report.isolation = options["isolation"].description
    report.warnings += options["isolation"].warnings
    student = RestartingSubmission(code.cells, **options)
    student.watched = {f for spec in PARTS.values() for f in spec.forbidden}
    student.launch()
    reference_thread, previous_salt = None, None
    try:
        # Only now: the submission's process imports torch (2 s) while the grader does.
        import torch

        from .from_scratch import find_violations
        from .hidden.checks import use_salt
        from .judge import Context, grade_parts, hidden_tests_by_part

        # The grader's own oracles work on small tensors: one thread is as fast, and
        # does not slow down when the submission's process keeps the other core busy.
        torch.set_num_threads(1)
        tests = hidden_tests_by_part()
        previous_salt = use_salt(submission_salt(secret, Path(path).read_bytes()))
        if reference is None:
            # Needed only for the budgets and the end-to-end test, which are judged after
            # the first phase's values: it loads meanwhile.
            reference, reference_thread = start_reference(submission_code(source, source).cells,
                                                          options)
        forbidden = {f: families for spec in PARTS.values()
                     for f, families in spec.forbidden.items()}
        context = Context(violations=find_violations(code.cells, forbidden),
                          demo_names=code.demo_names,
                          reference_run=lambda: record_reference_run(reference),
                          cell_failures=student.cell_failures)
        parts = find_parts(source)

        def wait_for_reference(phase):
            if phase == 0 and reference_thread is not None:
                reference_thread.join()

        results = grade_parts([p for p in parts if not p.written], tests, student, reference,
                              context, on_phase=wait_for_reference)
        by_part = {}
        for result in results:
            by_part.setdefault(result.part, []).append(result)
        for part in parts:
            report.tests += [written_answer(part.id, part.points)] if part.written \
                else by_part.get(part.id, [])
        run = reference.fashion_mnist_run
        if isinstance(run, dict):
            report.reference_history = run["history"]
        elif run:
            report.warnings.append(run)
    finally:
        if previous_salt is not None:  # the grading's salt must not outlive it
            use_salt(previous_salt)
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
    # One line per message of a part that many of its tests share (a stub, a refusal).
    shared, lines = {}, []
    for test in report.tests:
        if test.outcome not in ("passed", "manual"):
            shared.setdefault((test.part, test.message), []).append(test)
    for (part, message), tests in shared.items():
        lines.append(f"  - {tests[0].name}: {message}" if len(tests) == 1
                     else f"  - {part} ({len(tests)} tests): {message}")
    if lines:
        print("\n".join(lines), file=file)
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
    secret, _ = course_secret(args)
    report = grade_notebook(args.notebook, args.source, use_namespaces=not args.no_namespaces,
                            secret=secret, unsafe=args.unsafe_no_sandbox,
                            secret_file=args.secret_file)
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
