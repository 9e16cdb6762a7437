"""`softgrade check`: a student's self-check with the notebook's public tests only.

The notebook runs in a Jupyter kernel (what works in Jupyter works here), cell by
cell in order, skipping `softgrade-demo` cells. A part's public test cell may be
cut into sections, one per function (a line `# ---- name ----` opens each); every
section runs as a cell of its own, so a function that is still a stub hides
nothing of its siblings' tests. Whether a function is attempted is decided as
`softgrade grade` decides it (grader/attempted.py). Nothing hidden is used or
revealed: the hidden tests and the reference solution belong to `softgrade grade`.
"""

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from .attempted import live_stubs, raised_in
from .hidden.manifest import PARTS, function_points
from .notebook import NotebookError, find_parts, is_demo, is_stub, nbgrader_metadata, read_notebook

USER_ERRORS = (NotebookError, OSError)

DESCRIPTION = """\
Run the notebook's code and its public tests in a Jupyter kernel and print one
line per part: passed, incomplete (some functions are still stubs, the rest
pass), failed, error, timeout or not attempted (every function is still a stub).
Demonstration cells tagged softgrade-demo (the long training run, plots) are
skipped. Written answers are listed as answered or not; they are graded by hand.

Exit code: 0 when every public test passes, 1 when one does not, 2 when the
notebook cannot be read."""

TIMEOUT_ENAME = "CellTimeoutError"
SECTION_HEADER = re.compile(r"^# -{2,} (\w+) -{2,}$", re.MULTILINE)
# Outcomes of a function's tests that are its own fault, the most severe first.
FAILURES = ("timeout", "error", "failed")


@dataclass
class PartCheck:
    """The self-check's verdict on one part."""

    part: str
    """Part id (ASSIGNMENT.md)."""
    points: float
    """Points of the part (granted only by `softgrade grade`, shown for orientation)."""
    status: str
    """passed, incomplete, failed, error, timeout, not attempted; answered / unanswered
    for written parts."""
    message: str
    """What went wrong, in one line; empty when passed."""
    not_attempted: tuple[str, ...] = ()
    """The part's functions that are still stubs."""


@dataclass
class CellError:
    """What a cell (or a section of a test cell) raised in the kernel."""

    ename: str
    """The exception's class name."""
    evalue: str
    """Its message."""
    traceback: list[str]
    """IPython's traceback entries (ANSI colours included)."""


def add_arguments(parser):
    parser.add_argument("notebook", metavar="NOTEBOOK", help="the notebook to check (.ipynb)")
    parser.add_argument("--timeout", type=float, default=120, metavar="SECONDS",
                        help="longest a single cell may run (default: %(default)s)")


def sections(source):
    """[(function or None, code)]: a test cell cut at its `# ---- name ----` lines; the
    code before the first one (setup) and a cell without any are named None."""
    headers = list(SECTION_HEADER.finditer(source))
    if not headers:
        return [(None, source)]
    cut = [(None, source[:headers[0].start()])]
    for header, following in zip(headers, headers[1:] + [None]):
        end = following.start() if following else len(source)
        cut.append((header.group(1), source[header.start():end]))
    return cut


def runnable_pieces(notebook):
    """[(cell index, section name, code)] that the kernel runs, in order: the public
    test cells cut into their sections, every other code cell whole."""
    pieces = []
    for index, cell in enumerate(notebook.cells):
        if cell.cell_type == "code" and not is_demo(cell):
            cut = sections(cell.source) if nbgrader_metadata(cell).get("grade") else \
                [(None, cell.source)]
            pieces += [(index, name, code) for name, code in cut]
    return pieces


def execute(notebook, directory, timeout):
    """Run every non-demo code cell (test cells section by section) in a fresh kernel.

    Returns {(cell index, section name): CellError} for the pieces that raised; the
    kernel is interrupted at a piece that exceeds `timeout` and the next goes on.
    """
    pieces = runnable_pieces(notebook)
    cells = [nbformat.v4.new_code_cell(code) for _, _, code in pieces]
    runnable = nbformat.v4.new_notebook(metadata=notebook.metadata, cells=cells)
    errors = {}

    def on_cell_executed(cell, cell_index, execute_reply):
        content = execute_reply["content"]
        if content.get("status") == "error":
            index, name, _ = pieces[cell_index]
            errors[index, name] = CellError(content.get("ename", ""), content.get("evalue", ""),
                                            content.get("traceback", []))

    client = NotebookClient(
        runnable, timeout=timeout, kernel_name="python3", allow_errors=True,
        interrupt_on_timeout=True, on_cell_executed=on_cell_executed,
        error_on_timeout={"ename": TIMEOUT_ENAME,
                          "evalue": f"the cell ran longer than {timeout:g} s", "traceback": []},
        resources={"metadata": {"path": str(directory)}})
    with client.setup_kernel():
        for position, cell in enumerate(runnable.cells):
            try:
                client.execute_cell(cell, position)
            except DeadKernelError:
                index, name, _ = pieces[position]
                errors[index, name] = CellError("DeadKernelError",
                                                "the kernel died (out of memory?)", [])
                break
    return errors


def one_line(text, limit=240):
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def outcome(error, stubs):
    """(outcome, message) of one function's tests: passed, failed, error, timeout, or
    blocked when they stopped in a function that is still a stub."""
    if error is None:
        return "passed", ""
    if error.ename == TIMEOUT_ENAME:
        return "timeout", error.evalue
    if error.ename == "AssertionError":
        return "failed", error.evalue or "an assert failed"
    if error.ename == "NotImplementedError":
        where = raised_in(error.traceback)
        if where and where.split(".")[0] in stubs:
            return "blocked", f"calls {where.split('.')[0]}, which is still a stub"
        if where:
            return "error", (f"NotImplementedError raised in {where}: is a `raise "
                             "NotImplementedError()` left in code that runs?")
    return "error", f"{error.ename}: {error.evalue}"


def tested_functions(part, notebook, functions):
    """{function or None: section name} of a part's test cell: each function's section,
    or the whole cell for a part of one function (None: a cell without sections
    testing several)."""
    names = [name for name, _ in sections(notebook.cells[part.cell].source) if name]
    if names:
        return {name: name for name in names}
    return {functions[0] if len(functions) == 1 else None: None}


def verdict(part, notebook, errors, stubs):
    """PartCheck of one part; `stubs`: the functions that are stubs when its tests run."""
    if part.written:
        answered = not is_stub(notebook.cells[part.cell])
        return PartCheck(part.id, part.points, "answered" if answered else "unanswered",
                         "graded by hand")
    functions = PARTS[part.id].functions if part.id in PARTS else ()
    not_attempted = tuple(f for f in functions if f in stubs)
    if functions and len(not_attempted) == len(functions):
        return PartCheck(part.id, part.points, "not attempted",
                         "the stub still raises NotImplementedError" if len(functions) == 1
                         else "every function is still a stub (NotImplementedError)",
                         not_attempted)
    solution_error = errors.get((part.solution_cell, None))
    if solution_error is not None and solution_error.ename != "NotImplementedError":
        return PartCheck(part.id, part.points, "error",
                         one_line(f"your code cell raised {solution_error.ename}: "
                                  f"{solution_error.evalue}"), not_attempted)
    setup_error = errors.get((part.cell, None)) if len(functions) != 1 else None
    outcomes = {}
    for function, section in tested_functions(part, notebook, functions).items():
        if function not in not_attempted:
            outcomes[function] = outcome(errors.get((part.cell, section), setup_error), stubs)
    return PartCheck(part.id, part.points, *summary_of(part, outcomes, not_attempted),
                     not_attempted)


def summary_of(part, outcomes, not_attempted):
    """(status, message) of a part from its attempted functions' outcomes."""
    several = len(outcomes) + len(not_attempted) > 1
    points = function_points(part.id, part.points) if not_attempted else {}
    notes = []
    if not_attempted:
        notes.append("not attempted: " + ", ".join(f"{f} ({points[f]:g} points)"
                                                   for f in not_attempted))
    notes += [f"{f or 'the tests'} {message}" for f, (kind, message) in outcomes.items()
              if kind == "blocked"]
    notes += [f"{f}: {message}" if several and f else message
              for f, (kind, message) in outcomes.items() if kind in FAILURES]
    passed = [f for f, (kind, _) in outcomes.items() if kind == "passed"]
    if notes and passed and several:
        notes.append("passed: " + ", ".join(passed))
    kinds = {kind for kind, _ in outcomes.values()}
    status = next((kind for kind in FAILURES if kind in kinds),
                  "incomplete" if not_attempted or "blocked" in kinds else "passed")
    return status, one_line("; ".join(notes))


def check_notebook(path, timeout=120):
    """[PartCheck, ...] for the notebook at `path`, in notebook order."""
    notebook = read_notebook(path)
    parts = find_parts(notebook)
    if not parts:
        return []
    errors = execute(notebook, Path(path).resolve().parent, timeout)
    pieces = runnable_pieces(notebook)
    return [verdict(part, notebook, errors,
                    live_stubs(code for index, _, code in pieces if index < part.cell))
            for part in parts]


def print_table(checks, file=sys.stdout):
    width = max(len("part"), *(len(c.part) for c in checks))
    print(f"{'part':<{width}}  {'points':>6}  {'status':<13}  message", file=file)
    for c in checks:
        print(f"{c.part:<{width}}  {c.points:>6g}  {c.status:<13}  {c.message}", file=file)


def summary_line(checks):
    auto = [c for c in checks if c.status not in ("answered", "unanswered")]
    counts = {}
    for c in auto:
        counts[c.status] = counts.get(c.status, 0) + 1
    written = [c for c in checks if c not in auto]
    answered = sum(c.status == "answered" for c in written)
    order = ("passed", "incomplete", "failed", "error", "timeout", "not attempted")
    text = ", ".join(f"{counts[s]} {s}" for s in order if s in counts)
    return (f"public tests: {text} (of {len(auto)} parts); "
            f"written answers: {answered} of {len(written)} answered, graded by hand")


def run(args):
    checks = check_notebook(args.notebook, timeout=args.timeout)
    if not checks:
        print(f"softgrade check: {args.notebook}: no graded cells found (the nbgrader cell "
              "metadata is missing: start again from the released notebook)", file=sys.stderr)
        return 1
    print_table(checks)
    print(summary_line(checks))
    return 0 if all(c.status in ("passed", "answered", "unanswered") for c in checks) else 1
