"""`softgrade release`: the student notebook is what nbgrader would make, and nothing more."""

import ast
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from grader.notebook import find_parts, nbgrader_metadata
from grader.release import release_bytes

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "assignments" / "softmax_regression" / "softmax_regression.ipynb"
RELEASE = ROOT / "release" / "softmax_regression" / "softmax_regression.ipynb"


@pytest.fixture(scope="module")
def release():
    return nbformat.read(RELEASE, as_version=4)


@pytest.fixture(scope="module")
def source():
    return nbformat.read(SOURCE, as_version=4)


def test_committed_release_is_what_release_makes_today():
    assert RELEASE.read_bytes().decode() == release_bytes(SOURCE), \
        "release/ is stale: run `softgrade release` and commit the result"


def test_command_writes_the_same_bytes_every_run(tmp_path):
    outputs = []
    for run in ("a", "b"):
        proc = subprocess.run([sys.executable, "-m", "grader.cli", "release", "softmax_regression",
                               "--out", str(tmp_path / run)], cwd=ROOT, capture_output=True,
                              text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
        outputs.append((tmp_path / run / "softmax_regression" / "softmax_regression.ipynb")
                       .read_bytes())
    assert outputs[0] == outputs[1] == RELEASE.read_bytes()


def test_release_is_a_valid_notebook_without_outputs(release):
    nbformat.validate(release)
    for cell in release.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None


def solution_regions(notebook):
    """{grade_id: [lines between BEGIN and END SOLUTION]} of a source notebook."""
    regions = {}
    for cell in notebook.cells:
        lines, inside = [], False
        for line in cell.source.splitlines():
            if "### BEGIN SOLUTION" in line:
                inside = True
            elif "### END SOLUTION" in line:
                inside = False
            elif inside and line.strip():
                lines.append(line.strip())
        if lines:
            regions[nbgrader_metadata(cell)["grade_id"]] = lines
    return regions


def test_no_solution_code_or_answer_is_left(source, release):
    regions = solution_regions(source)
    assert len(regions) == 20  # 15 code parts + 5 written answers
    released = {nbgrader_metadata(c).get("grade_id"): c for c in release.cells}
    for grade_id, lines in regions.items():
        cell = released[grade_id]
        assert "BEGIN SOLUTION" not in cell.source
        leaked = [line for line in lines if any(line == l.strip() for l in cell.source.splitlines())]
        assert leaked == [], f"{grade_id}: solution lines left in the release: {leaked}"
        if cell.cell_type == "markdown":
            assert cell.source.strip() == "YOUR ANSWER HERE"
        else:
            assert "raise NotImplementedError()" in cell.source


def test_every_stub_raises_not_implemented(release):
    """Define every function of the solution cells and call it: each must raise."""
    namespace = {}
    for cell in release.cells:
        if nbgrader_metadata(cell).get("grade_id", "").endswith("_solution"):
            exec(compile(cell.source, "<stub>", "exec"), namespace)
            for node in ast.parse(cell.source).body:
                if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                    target = namespace[node.name]
                    if isinstance(node, ast.FunctionDef):
                        arity = len(node.args.args) - len(node.args.defaults)
                    else:
                        arity = 1  # Accumulator(n)
                    with pytest.raises(NotImplementedError):
                        target(*[None] * arity)


def test_instructor_cells_are_locked_with_checksums(release):
    for cell in release.cells:
        meta = nbgrader_metadata(cell)
        assert meta, "every cell keeps its nbgrader metadata"
        if meta.get("locked") or meta.get("grade") or meta.get("solution"):
            assert "checksum" in meta
        if not meta.get("solution"):
            assert cell.metadata.get("editable") is False and cell.metadata.get("deletable") is False


def test_parts_and_points_survive_the_release(source, release):
    assert [(p.id, p.points, p.written) for p in find_parts(release)] == \
        [(p.id, p.points, p.written) for p in find_parts(source)]


def test_nbgrader_generate_assignment_makes_the_same_student_cells(tmp_path, release):
    course = tmp_path / "course"
    (course / "source" / "softmax_regression").mkdir(parents=True)
    (course / "source" / "softmax_regression" / SOURCE.name).write_bytes(SOURCE.read_bytes())
    proc = subprocess.run([sys.executable, "-m", "nbgrader", "generate_assignment",
                           "softmax_regression", "--no-db", "--force"],
                          cwd=course, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    theirs = nbformat.read(course / "release" / "softmax_regression" / SOURCE.name, as_version=4)
    assert len(theirs.cells) == len(release.cells)
    for ours, their in zip(release.cells, theirs.cells):
        assert (ours.cell_type, ours.source) == (their.cell_type, their.source)
        assert ours.metadata == their.metadata


def test_release_command_errors_are_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "grader.cli", "release", "no_such_assignment",
                           "--out", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2
    assert "no assignment 'no_such_assignment'" in proc.stderr and "Traceback" not in proc.stderr
