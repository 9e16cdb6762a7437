"""Reading notebooks and finding the assignment's parts in them.

A part is named by nbgrader metadata (schema v3): the public test cell of an
auto-graded part has `grade_id` equal to the part id (ASSIGNMENT.md) and carries
its points; its code lives in the cell `<part>_solution`; a written answer is a
Markdown cell with `solution` and `grade` set. Cells tagged `softgrade-demo` are
heavy demonstrations (training runs, plots) that students run and that
`softgrade check` and the grader skip.
"""

import json
from dataclasses import dataclass
from pathlib import Path

import nbformat

DEMO_TAG = "softgrade-demo"
SOLUTION_SUFFIX = "_solution"
TEXT_STUB = "YOUR ANSWER HERE"


class NotebookError(ValueError):
    """A file that cannot be used as a notebook; the message is one line for the user."""


@dataclass
class Part:
    """One graded part of the assignment, as the notebook lays it out."""

    id: str
    """The part id of ASSIGNMENT.md, e.g. 'softmax' or 'ex1_written'."""
    points: float
    """Points the source notebook gives the part."""
    written: bool
    """True for a Markdown answer graded by hand; False for auto-graded code."""
    cell: int
    """Index of the part's graded cell: the public test cell, or the written answer."""
    solution_cell: int | None
    """Index of the cell holding the part's code (`<part>_solution`), if present."""


def read_notebook(path):
    """Read any notebook file as nbformat 4; NotebookError with a one-line reason otherwise."""
    path = Path(path)
    if not path.is_file():
        raise NotebookError(f"{path}: no such file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise NotebookError(f"{path}: not a notebook (not UTF-8 text)") from None
    if not text.strip():
        raise NotebookError(f"{path}: the file is empty")
    try:
        raw = json.loads(text)
    except json.JSONDecodeError as err:
        raise NotebookError(f"{path}: not a notebook (invalid JSON: {err})") from None
    if not isinstance(raw, dict) or "nbformat" not in raw:
        raise NotebookError(f"{path}: not a notebook (no 'nbformat' field)")
    if raw["nbformat"] != 4:
        raise NotebookError(f"{path}: an nbformat {raw['nbformat']} notebook; open it in "
                            "Jupyter and save it again (nbformat 4)")
    try:
        notebook = nbformat.reads(text, as_version=4)
        nbformat.validate(notebook)
    except Exception as err:  # nbformat raises several unrelated types for bad input
        reason = " ".join(str(err).split())[:300]
        raise NotebookError(f"{path}: not a valid notebook ({reason})") from None
    return notebook


MAX_SUBMISSION_MB = 20


def read_submission(path):
    """read_notebook, and what a submitted notebook must also be to be graded: at most
    MAX_SUBMISSION_MB, a Python notebook, with code cells, each grade_id in one cell.
    NotebookError with a one-line reason and its fix otherwise."""
    path = Path(path)
    if path.is_file() and path.stat().st_size > MAX_SUBMISSION_MB << 20:
        raise NotebookError(f"{path}: {path.stat().st_size / (1 << 20):.0f} MB, more than the "
                            f"{MAX_SUBMISSION_MB} MB a submission may have: clear the outputs "
                            "(Kernel > Restart & Clear Output), save, and submit again")
    notebook = read_notebook(path)
    language = (notebook.metadata.get("kernelspec", {}).get("language")
                or notebook.metadata.get("language_info", {}).get("name") or "python")
    if str(language).lower() != "python":  # the schema leaves kernelspec.language untyped
        raise NotebookError(f"{path}: the notebook's kernel runs {language}; this assignment "
                            "is in Python")
    if not any(cell.cell_type == "code" for cell in notebook.cells):
        raise NotebookError(f"{path}: no code cells, nothing to grade")
    grade_ids = [nbgrader_metadata(cell).get("grade_id") for cell in notebook.cells]
    repeated = sorted({gid for gid in grade_ids if gid and grade_ids.count(gid) > 1})
    if repeated:
        raise NotebookError(f"{path}: the cell {repeated[0]!r} appears more than once (a copied "
                            "cell?): keep your code in one of them and delete the copies")
    return notebook


def nbgrader_metadata(cell):
    return cell.get("metadata", {}).get("nbgrader", {})


def is_demo(cell):
    return DEMO_TAG in cell.get("metadata", {}).get("tags", [])


def find_parts(notebook):
    """The graded parts of a notebook, in notebook order."""
    solution_cells = {}
    for index, cell in enumerate(notebook.cells):
        grade_id = nbgrader_metadata(cell).get("grade_id", "")
        if grade_id.endswith(SOLUTION_SUFFIX):
            solution_cells[grade_id[:-len(SOLUTION_SUFFIX)]] = index
    parts = []
    for index, cell in enumerate(notebook.cells):
        meta = nbgrader_metadata(cell)
        if not meta.get("grade"):
            continue
        written = cell.cell_type == "markdown"
        parts.append(Part(id=meta["grade_id"], points=float(meta.get("points", 0)),
                          written=written, cell=index,
                          solution_cell=None if written else solution_cells.get(meta["grade_id"])))
    return parts


def is_stub(cell):
    """Whether a written answer (a Markdown cell) is still the release's placeholder.
    Code is judged function by function, by grader/attempted.py."""
    if cell.cell_type != "markdown":
        raise TypeError("is_stub judges written answers; code: grader.attempted")
    return cell.source.strip() in ("", TEXT_STUB)


def cell_with_grade_id(notebook, grade_id):
    """The cell whose nbgrader grade_id is `grade_id` (KeyError if none)."""
    for cell in notebook.cells:
        if nbgrader_metadata(cell).get("grade_id") == grade_id:
            return cell
    raise KeyError(f"no cell with grade_id {grade_id!r}")


def replace_in_cell(notebook, grade_id, old, new):
    """Replace `old` by `new` in one cell's source (a readable edit of a notebook, for
    example submissions and test corpora); ValueError if `old` is not there."""
    cell = cell_with_grade_id(notebook, grade_id)
    if old not in cell.source:
        raise ValueError(f"{old!r} is not in cell {grade_id}")
    cell.source = cell.source.replace(old, new)
    return notebook
