"""What the source notebook tells students agrees with what the grader does: points per
function, the from-scratch rule, one public test section per function."""

import re

import nbformat
import pytest
from test_source_notebook import SOURCE

from grader.check import sections
from grader.hidden.manifest import PARTS, function_points
from grader.notebook import cell_with_grade_id, find_parts

# How each library family of the from-scratch rule is spelled to students.
SPELLINGS = {
    "softmax": ["torch.softmax", "F.softmax", "X.softmax(", "nn.Softmax"],
    "log_softmax": ["torch.log_softmax", "F.log_softmax", "X.log_softmax(", "nn.LogSoftmax"],
    "logsumexp": ["torch.logsumexp", "X.logsumexp("],
    "cross_entropy": ["F.cross_entropy", "nn.CrossEntropyLoss"],
    "nll_loss": ["F.nll_loss", "nn.NLLLoss"],
}
ALLOWED = ["torch.exp", "log", "max", "sum", "gather", "indexing", "Helpers of your own"]


@pytest.fixture(scope="module")
def notebook():
    return nbformat.read(SOURCE, as_version=4)


@pytest.fixture(scope="module")
def parts(notebook):
    return {part.id: part for part in find_parts(notebook) if not part.written}


def task_text(notebook, part):
    """The Markdown cell that sets a part's task: the last one before its code."""
    cell = next(c for c in reversed(notebook.cells[:part.solution_cell])
                if c.cell_type == "markdown")
    return " ".join(cell.source.split())


def test_the_manifest_knows_every_part(parts):
    assert set(parts) == set(PARTS)


@pytest.mark.parametrize("part_id", [p for p, spec in PARTS.items() if len(spec.functions) > 1])
def test_a_task_of_several_functions_states_the_points_of_each(notebook, parts, part_id):
    part = parts[part_id]
    stated = {name: float(points) for name, points in
              re.findall(r"`(\w+)\([^`]*\)`,? \((\d+(?:\.\d+)?) points?\)",
                         task_text(notebook, part))}
    assert stated == function_points(part_id, part.points)


def from_scratch_paragraph(text):
    match = re.search(r"\*\*From scratch:\*\*(.*?)(?=\*\*|$)", text)
    return match.group(1) if match else None


@pytest.mark.parametrize("part_id", list(PARTS))
def test_each_from_scratch_task_names_what_it_may_not_call(notebook, parts, part_id):
    spec = PARTS[part_id]
    paragraph = from_scratch_paragraph(task_text(notebook, parts[part_id]))
    if not spec.forbidden:
        assert paragraph is None
        return
    assert paragraph is not None, f"{part_id}: its task does not state the from-scratch rule"
    named = {f for f in spec.functions if f"`{f}`" in paragraph.split("may not call")[0]}
    assert named == set(spec.forbidden)
    families = set(spec.forbidden[next(iter(named))])
    assert all(set(spec.forbidden[f]) == families for f in named)
    for family, spellings in SPELLINGS.items():
        for spelling in spellings:
            assert (spelling in paragraph) == (family in families), (part_id, spelling)
    assert all(word in paragraph for word in ALLOWED)
    assert "earns nothing for its value tests" in paragraph


def test_the_intro_names_every_from_scratch_function(notebook):
    intro = " ".join(cell_with_grade_id(notebook, "intro").source.split())
    bullet = intro[intro.index("**From scratch.**"):]
    bullet = bullet[:bullet.index("* **", 1)]
    named = set(re.findall(r"`(\w+)`", bullet.split(" are yours")[0]))
    assert named == {f for spec in PARTS.values() for f in spec.forbidden}


@pytest.mark.parametrize("part_id", list(PARTS))
def test_public_tests_have_one_section_per_function(notebook, parts, part_id):
    names = [name for name, _ in sections(notebook.cells[parts[part_id].cell].source) if name]
    functions = list(PARTS[part_id].functions)
    assert names == (functions if len(functions) > 1 else [])


def test_the_train_task_says_to_remove_the_books_asserts(notebook, parts):
    text = task_text(notebook, parts["train"])
    for line in ("assert train_loss < 0.5, train_loss",
                 "assert train_acc <= 1 and train_acc > 0.7, train_acc",
                 "assert test_acc <= 1 and test_acc > 0.7, test_acc"):
        assert f"`{line}`" in text
    assert "ten epochs" in text and "three epochs" in text


def test_the_cross_entropy_task_explains_the_shape(notebook, parts):
    text = task_text(notebook, parts["cross_entropy"])
    assert "`[n, 1] - [n]` broadcasts to `[n, n]`" in text
    assert "Right values in `[n, 1]` earn half credit" in text
