"""Readable edits of the source notebook, for tests that need a student's version."""

import nbformat

from grader.notebook import nbgrader_metadata


def cell_by_grade_id(notebook, grade_id):
    return next(c for c in notebook.cells if nbgrader_metadata(c).get("grade_id") == grade_id)


def replace_in_cell(notebook, grade_id, old, new):
    """Replace `old` by `new` in one cell's source; fails loudly if `old` is not there."""
    cell = cell_by_grade_id(notebook, grade_id)
    assert old in cell.source, f"{old!r} not in cell {grade_id}"
    cell.source = cell.source.replace(old, new)
    return notebook


def write(notebook, path):
    nbformat.write(notebook, path)
    return path
