"""`softgrade grade --nbgrader-db`: a submission's auto-graded scores, into an nbgrader
gradebook, so that formgrader shows them beside the written answers graded by hand.

Everything goes through nbgrader's own API (`nbgrader.api.Gradebook`):

1. the assignment, its notebook and its cells are recorded from the source notebook,
   when the gradebook does not have the notebook yet, by nbgrader's own SaveCells
   preprocessor after the release preprocessors that precede it in `nbgrader
   generate_assignment`, so the gradebook is the one nbgrader would have made;
2. the student and the submission are added when missing;
3. each auto-graded part's grade cell (grade_id == part id) gets softgrade's score as
   its `auto_score`. Written answers (`exK_written`) are left alone: nbgrader created
   them without an auto score, needing a manual grade.
4. a grading that was not isolated (--unsafe-no-sandbox) flags the submitted notebook
   and says "not isolated" in the automatic comment of each of its solution cells, so
   that formgrader shows it beside the scores.

Grading the same student again updates the same grades (nbgrader's find / update calls),
so nothing is duplicated. nbgrader is imported only here and only when a gradebook is
written: its import takes about two seconds (SQLAlchemy, alembic).
"""

import os
import shutil
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat

from .isolation import NOT_ISOLATED, UNSAFE_WARNING
from .notebook import find_parts


class GradebookError(ValueError):
    """The gradebook cannot take these scores; the message says what to fix."""


@dataclass
class GradebookTarget:
    """Where one submission's scores go in an nbgrader gradebook."""

    db_path: Path
    """The gradebook's sqlite file (an nbgrader course's gradebook.db); created if missing."""
    student: str
    """The student's id in the gradebook; added if missing."""
    assignment: str
    """The assignment's name in nbgrader (its folder under source/)."""
    notebook: str
    """The notebook's name in nbgrader: the source notebook's file name without .ipynb."""

    @property
    def url(self):
        return f"sqlite:///{self.db_path}"


def gradebook_target(db_path, student, assignment, source_path):
    """The GradebookTarget of the command-line options, checked before grading starts.

    The assignment defaults to the source notebook's folder name, as nbgrader's
    source/<assignment>/<notebook>.ipynb layout names it.
    """
    if not student:
        raise GradebookError("--nbgrader-db needs --student ID (the student's id in nbgrader)")
    db_path = Path(db_path).resolve()
    if not db_path.parent.is_dir():
        raise GradebookError(f"{db_path.parent}: no such directory for the gradebook")
    source_path = Path(source_path)
    return GradebookTarget(db_path=db_path, student=student,
                           assignment=assignment or source_path.resolve().parent.name,
                           notebook=source_path.stem)


def record_grades(report, target, source):
    """Set each auto-graded part's `auto_score` in the gradebook to the report's score.

    `source` is the instructor's source notebook (nbformat), whose grade cells define
    the gradebook's when it has none yet.
    """
    from nbgrader.api import Gradebook
    from sqlalchemy.exc import SAWarning

    _alembic_on_path()
    auto_parts = [part.id for part in find_parts(source) if not part.written]
    ensure_grade_cells(target, source, auto_parts)
    scores = report.part_scores()
    with Gradebook(target.url) as gradebook, warnings.catch_warnings():
        # nbgrader's add_submission builds its rows in a way SQLAlchemy 2 warns about
        # (objects not yet in the session); nbgrader adds them right after, so the
        # warnings say nothing to our user.
        warnings.simplefilter("ignore", SAWarning)
        gradebook.update_or_create_student(target.student)
        gradebook.update_or_create_submission(target.assignment, target.student)
        for part in auto_parts:
            grade = gradebook.find_grade(part, target.notebook, target.assignment,
                                         target.student)
            grade.auto_score = scores[part][0]
            # As nbgrader's SaveAutoGrades: a grade a person already gave needs a new look.
            grade.needs_manual_grade = grade.manual_score is not None
        if report.isolation == NOT_ISOLATED:
            _flag_not_isolated(gradebook, target)
        gradebook.db.commit()


def _flag_not_isolated(gradebook, target):
    notebook = gradebook.find_submission_notebook(target.notebook, target.assignment,
                                                  target.student)
    notebook.flagged = True
    for comment in notebook.comments:
        comment.auto_comment = UNSAFE_WARNING


def ensure_grade_cells(target, source, parts):
    """Make sure the gradebook has the assignment, its notebook and a grade cell for each
    of `parts`: recorded from `source` when the notebook is missing, GradebookError when
    a notebook recorded before lacks some of them."""
    from nbgrader.api import Gradebook

    with Gradebook(target.url) as gradebook:
        gradebook.update_or_create_assignment(target.assignment)
        recorded = _grade_cell_names(gradebook, target)
    if recorded is None:
        save_cells(source, target)  # once ours is closed: SaveCells opens the gradebook itself
        return
    missing = [part for part in parts if part not in recorded]
    if missing:
        raise GradebookError(
            f"the gradebook's notebook {target.assignment}/{target.notebook} has no grade cell "
            f"for {', '.join(missing)}: it was made from another source notebook (pass "
            "--assignment, or use a new gradebook)")


def _grade_cell_names(gradebook, target):
    """The names of the target notebook's grade cells; None when there is no such notebook."""
    from nbgrader.api import MissingEntry

    try:
        notebook = gradebook.find_notebook(target.notebook, target.assignment)
    except MissingEntry:
        return None
    return {cell.name for cell in notebook.grade_cells}


def save_cells(source, target):
    """Record the notebook and its cells in the gradebook as `nbgrader generate_assignment`
    does: the release preprocessors up to SaveCells, then SaveCells itself."""
    from nbgrader.preprocessors import SaveCells

    from .release import BEFORE_SAVE_CELLS

    notebook = nbformat.from_dict(source)
    resources = {"nbgrader": {"notebook": target.notebook, "assignment": target.assignment,
                              "db_url": target.url}}
    for preprocessor in BEFORE_SAVE_CELLS + (SaveCells,):
        notebook, resources = preprocessor().preprocess(notebook, resources)


def _alembic_on_path():
    """nbgrader stamps a new gradebook by running the `alembic` command; outside an
    activated virtual environment it is not on PATH, though it sits beside our Python."""
    if shutil.which("alembic") is None:
        os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent),
                                              os.environ.get("PATH", "")])
