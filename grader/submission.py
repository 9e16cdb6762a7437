"""From a submitted notebook to the code the grader runs: the student's solution
cells, the instructor's given cells restored from the source notebook, and none
of the public tests or demonstrations.

A submission whose cells no longer match the release (cells merged, split,
reordered, nbgrader metadata stripped, as Colab and copy-paste produce) is still
graded by the functions it defines: the source's given cells run first, then the
top-level imports, functions and classes of every code cell, with a warning.
"""

import ast
from dataclasses import dataclass, field

from .notebook import is_demo, nbgrader_metadata, read_submission


@dataclass
class SubmissionCode:
    """What the grader will run for one submission."""

    cells: list[str]
    """Code to run in the submission's process, in order."""
    warnings: list[str] = field(default_factory=list)
    """How the submission departed from the release (for the report)."""
    demo_names: set[str] = field(default_factory=set)
    """Names that only demonstration cells (which the grader skips) define: a NameError on
    one of them is explained as such."""


def is_definition(node):
    """Imports, functions, classes and constants (NAME = a literal such as a list of labels)."""
    if isinstance(node, (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.AsyncFunctionDef,
                         ast.ClassDef)):
        return True
    if isinstance(node, ast.Assign) and all(isinstance(t, ast.Name) for t in node.targets):
        try:
            ast.literal_eval(node.value)
        except ValueError:
            return False
        return True
    return False


def top_level_names(source):
    """Names a cell binds at its top level (assignments, loops, imports, defs)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        else:
            names |= {n.id for n in ast.walk(node)
                      if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return names


def demo_only_names(submission, source_notebook, cells):
    """Names bound by the demonstration cells of either notebook and by none of `cells`."""
    demos = [c.source for nb in (submission, source_notebook) for c in nb.cells
             if c.cell_type == "code" and is_demo(c)]
    shown = set().union(*map(top_level_names, demos)) if demos else set()
    return shown - set().union(set(), *map(top_level_names, cells))


def definitions_only(source):
    """The top-level definitions of a cell (no calls, loops or prints).

    Cells the student added, or cells of a restructured notebook, may hold training
    runs and experiments; grading needs only what they define.
    """
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return source  # run it as it is, so the student sees their syntax error
    kept = [node for node in tree.body if is_definition(node)]
    return "\n\n".join(ast.get_source_segment(source, node, padded=False) for node in kept)


def cell_roles(source_notebook):
    """{grade_id: (role, cell)} for the source notebook's cells; role is one of
    'given', 'solution', 'test', 'demo', 'text'."""
    roles = {}
    for cell in source_notebook.cells:
        meta = nbgrader_metadata(cell)
        grade_id = meta.get("grade_id")
        if grade_id is None:
            continue
        if cell.cell_type != "code":
            role = "text"
        elif is_demo(cell):
            role = "demo"
        elif meta.get("solution"):
            role = "solution"
        elif meta.get("grade"):
            role = "test"
        else:
            role = "given"
        roles[grade_id] = (role, cell)
    return roles


def given_sources(source_notebook):
    """The sources of the instructor's given cells (restored into every submission)."""
    return [cell.source for role, cell in cell_roles(source_notebook).values() if role == "given"]


def submission_code(submission, source_notebook):
    """SubmissionCode for a submission (a notebook or a path) against the source notebook."""
    if not hasattr(submission, "cells"):
        submission = read_submission(submission)
    roles = cell_roles(source_notebook)
    given_ids = [gid for gid, (role, _) in roles.items() if role == "given"]
    solution_ids = {gid for gid, (role, _) in roles.items() if role == "solution"}
    seen = {nbgrader_metadata(c).get("grade_id") for c in submission.cells}
    ids_in_order = [nbgrader_metadata(c).get("grade_id") for c in submission.cells
                    if nbgrader_metadata(c).get("grade_id") in roles]
    source_order = [gid for gid in roles if gid in seen]
    intact = (set(given_ids) | solution_ids) <= seen and ids_in_order == source_order
    if not intact:
        return restructured_code(submission, source_notebook, roles, given_ids)

    code = SubmissionCode(cells=[])
    for cell in submission.cells:
        grade_id = nbgrader_metadata(cell).get("grade_id")
        if grade_id in roles:
            role, source_cell = roles[grade_id]
            if role == "given":
                code.cells.append(source_cell.source)  # locked: the instructor's version
            elif role == "solution" and cell.cell_type == "code":
                code.cells.append(cell.source)
        elif cell.cell_type == "code" and not is_demo(cell):
            code.cells.append(definitions_only(cell.source))
    edited = [gid for gid in given_ids
              if any(nbgrader_metadata(c).get("grade_id") == gid
                     and c.source != roles[gid][1].source for c in submission.cells)]
    if edited:
        code.warnings.append("locked instructor cells were edited and have been restored: "
                             + ", ".join(edited))
    code.demo_names = demo_only_names(submission, source_notebook, code.cells)
    return code


def restructured_code(submission, source_notebook, roles, given_ids):
    code = SubmissionCode(
        cells=[roles[gid][1].source for gid in given_ids],
        warnings=["the notebook's cells differ from the release (merged, split, reordered or "
                  "without nbgrader metadata): graded by the functions it defines"])
    for cell in submission.cells:
        grade_id = nbgrader_metadata(cell).get("grade_id")
        role = roles.get(grade_id, ("student", None))[0]
        if cell.cell_type == "code" and role not in ("given", "test", "demo") and not is_demo(cell):
            code.cells.append(definitions_only(cell.source))
    code.demo_names = demo_only_names(submission, source_notebook, code.cells)
    return code
