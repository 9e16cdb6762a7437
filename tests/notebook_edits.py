"""Writing edited notebooks, for tests that need a student's version."""

import nbformat

from grader.notebook import cell_with_grade_id

STUB = "    # YOUR CODE HERE\n    raise NotImplementedError()"


def write(notebook, path):
    nbformat.write(notebook, path)
    return path


def fill_in(notebook, grade_id, function, body):
    """In a release notebook: the stub of `function` (in cell `grade_id`) becomes `body`,
    indented lines of code, as a student writes it."""
    cell = cell_with_grade_id(notebook, grade_id)
    at = cell.source.index(STUB, cell.source.index(f"def {function}("))
    cell.source = cell.source[:at] + body + cell.source[at + len(STUB):]
    return notebook


def stub_out(notebook, grade_id, function):
    """In the source notebook: the solution of `function` becomes the release's stub."""
    cell = cell_with_grade_id(notebook, grade_id)
    begin = cell.source.index("    ### BEGIN SOLUTION", cell.source.index(f"def {function}("))
    end = cell.source.index("### END SOLUTION", begin) + len("### END SOLUTION")
    cell.source = cell.source[:begin] + STUB + cell.source[end:]
    return notebook
