"""`softgrade release`: the instructor's source notebook -> the student notebook.

Built on nbgrader's own preprocessors, in the order of nbgrader's
`generate_assignment`, minus the ones that need a gradebook database. The output
is a pure function of the source: running it twice gives the same bytes.
"""

import sys
from pathlib import Path

import nbformat
from nbgrader.preprocessors import (
    CheckCellMetadata,
    ClearHiddenTests,
    ClearMarkScheme,
    ClearOutput,
    ClearSolutions,
    ComputeChecksums,
    LockCells,
)

from .notebook import NotebookError, read_notebook

USER_ERRORS = (NotebookError, OSError)

DESCRIPTION = """\
Turn the source notebook(s) of an assignment into the student version: solutions
become stubs that raise NotImplementedError, written answers are cleared, hidden
tests and mark schemes are removed, outputs are cleared, and instructor cells are
locked with nbgrader checksums.

ASSIGNMENT is a name under assignments/ (default: every assignment there), a
directory, or a single .ipynb file. The result goes to OUT/<name>/."""

# nbgrader's generate_assignment runs SaveCells (which records the cells in its
# gradebook) between these two halves; `softgrade grade --nbgrader-db` does the same.
BEFORE_SAVE_CELLS = (LockCells, ClearSolutions, ClearOutput, CheckCellMetadata, ComputeChecksums)
AFTER_SAVE_CELLS = (ClearHiddenTests, ClearMarkScheme, ComputeChecksums, CheckCellMetadata)
PREPROCESSORS = BEFORE_SAVE_CELLS + AFTER_SAVE_CELLS


def add_arguments(parser):
    parser.add_argument("assignment", nargs="?", default=None, metavar="ASSIGNMENT",
                        help="assignment name, directory or notebook (default: all in assignments/)")
    parser.add_argument("--out", default="release", metavar="DIR",
                        help="where the student notebooks go (default: %(default)s/)")
    parser.add_argument("--assignments-dir", default="assignments", metavar="DIR",
                        help="where assignment names are looked up (default: %(default)s/)")


def student_version(source):
    """The released notebook for a source notebook (a new object; `source` is untouched)."""
    notebook = nbformat.from_dict(source)
    resources = {}
    for preprocessor in PREPROCESSORS:
        notebook, resources = preprocessor().preprocess(notebook, resources)
    return notebook


def release_bytes(source_path):
    """The exact bytes `softgrade release` writes for one source notebook."""
    text = nbformat.writes(student_version(read_notebook(source_path)))
    return text if text.endswith("\n") else text + "\n"  # as nbformat.write ends a file


def sources_of(assignment, assignments_dir):
    """{assignment name: [source notebooks]} for the ASSIGNMENT argument."""
    assignments_dir = Path(assignments_dir)
    if assignment is None:
        if not assignments_dir.is_dir():
            raise FileNotFoundError(f"no assignments directory {assignments_dir}/ here "
                                    "(run from the course root or pass --assignments-dir)")
        folders = sorted(p for p in assignments_dir.iterdir() if p.is_dir())
    else:
        path = Path(assignment)
        if path.suffix == ".ipynb" and path.is_file():
            return {path.parent.name: [path]}
        folders = [path if path.is_dir() else assignments_dir / assignment]
        if not folders[0].is_dir():
            raise FileNotFoundError(f"no assignment {assignment!r}: neither a notebook, a "
                                    f"directory, nor a folder of {assignments_dir}/")
    found = {folder.name: sorted(folder.glob("*.ipynb")) for folder in folders}
    empty = [name for name, notebooks in found.items() if not notebooks]
    if empty:
        raise FileNotFoundError(f"no .ipynb source notebook in assignment(s): {', '.join(empty)}")
    return found


def run(args):
    for name, notebooks in sources_of(args.assignment, args.assignments_dir).items():
        target = Path(args.out) / name
        target.mkdir(parents=True, exist_ok=True)
        for source in notebooks:
            destination = target / source.name
            destination.write_text(release_bytes(source), encoding="utf-8")
            print(f"released {source} -> {destination}", file=sys.stderr)
    return 0
