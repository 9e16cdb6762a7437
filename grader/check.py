"""`softgrade check`: a student's self-check with the notebook's public tests only.

The notebook runs in a Jupyter kernel (what works in Jupyter works here), cell by
cell in order, skipping `softgrade-demo` cells; each part's status comes from
its public test cell. Nothing hidden is used or revealed: the hidden tests and
the reference solution belong to `softgrade grade`.
"""

import sys
from dataclasses import dataclass
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbclient.exceptions import DeadKernelError

from .notebook import NotebookError, find_parts, is_demo, is_stub, read_notebook

USER_ERRORS = (NotebookError, OSError)

DESCRIPTION = """\
Run the notebook's code and its public tests in a Jupyter kernel and print one
line per part: passed, failed, error, timeout or not attempted. Demonstration
cells tagged softgrade-demo (the long training run, plots) are skipped. Written
answers are listed as answered or not; they are graded by hand.

Exit code: 0 when every public test passes, 1 when one does not, 2 when the
notebook cannot be read."""

TIMEOUT_ENAME = "CellTimeoutError"


@dataclass
class PartCheck:
    """The self-check's verdict on one part."""

    part: str
    """Part id (ASSIGNMENT.md)."""
    points: float
    """Points of the part (granted only by `softgrade grade`, shown for orientation)."""
    status: str
    """passed, failed, error, timeout, not attempted; answered / unanswered for written parts."""
    message: str
    """What went wrong, in one line; empty when passed."""


def add_arguments(parser):
    parser.add_argument("notebook", metavar="NOTEBOOK", help="the notebook to check (.ipynb)")
    parser.add_argument("--timeout", type=float, default=120, metavar="SECONDS",
                        help="longest a single cell may run (default: %(default)s)")


def execute(notebook, directory, timeout):
    """Run every non-demo code cell in a fresh kernel.

    Returns {cell index: (ename, evalue)} for the cells that raised; the kernel
    is interrupted at a cell that exceeds `timeout` and the next cell goes on.
    """
    indices = [i for i, cell in enumerate(notebook.cells)
               if cell.cell_type == "code" and not is_demo(cell)]
    runnable = nbformat.v4.new_notebook(metadata=notebook.metadata,
                                        cells=[notebook.cells[i] for i in indices])
    errors = {}

    def on_cell_executed(cell, cell_index, execute_reply):
        content = execute_reply["content"]
        if content.get("status") == "error":
            errors[indices[cell_index]] = (content.get("ename", ""), content.get("evalue", ""))

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
                errors[indices[position]] = ("DeadKernelError", "the kernel died (out of memory?)")
                break
    return errors


def one_line(text, limit=160):
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[:limit - 1] + "…"


def verdict(part, notebook, errors):
    if part.written:
        answered = not is_stub(notebook.cells[part.cell])
        return PartCheck(part.id, part.points, "answered" if answered else "unanswered",
                         "graded by hand")
    solution = notebook.cells[part.solution_cell] if part.solution_cell is not None else None
    if solution is not None and is_stub(solution):
        return PartCheck(part.id, part.points, "not attempted",
                         "the stub still raises NotImplementedError")
    if part.solution_cell in errors and errors[part.solution_cell][0] != "NotImplementedError":
        ename, evalue = errors[part.solution_cell]
        return PartCheck(part.id, part.points, "error",
                         one_line(f"your code cell raised {ename}: {evalue}"))
    if part.cell not in errors:
        return PartCheck(part.id, part.points, "passed", "")
    ename, evalue = errors[part.cell]
    if ename == TIMEOUT_ENAME:
        return PartCheck(part.id, part.points, "timeout", evalue)
    if ename == "AssertionError":
        return PartCheck(part.id, part.points, "failed", one_line(evalue or "an assert failed"))
    if ename == "NotImplementedError":
        return PartCheck(part.id, part.points, "error",
                         "it uses a function that is still a stub (NotImplementedError)")
    return PartCheck(part.id, part.points, "error", one_line(f"{ename}: {evalue}"))


def check_notebook(path, timeout=120):
    """[PartCheck, ...] for the notebook at `path`, in notebook order."""
    notebook = read_notebook(path)
    parts = find_parts(notebook)
    if not parts:
        return []
    errors = execute(notebook, Path(path).resolve().parent, timeout)
    return [verdict(part, notebook, errors) for part in parts]


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
    order = ("passed", "failed", "error", "timeout", "not attempted")
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
