"""The instructor's source notebook: complete, valid for nbgrader, and the reference's code."""

import ast
import inspect
import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

from grader.notebook import find_parts, is_demo, nbgrader_metadata
from solutions import exercises, softmax_regression

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "assignments" / "softmax_regression" / "softmax_regression.ipynb"

# The part ids of ASSIGNMENT.md, in the order the notebook teaches them.
CODE_PARTS = ["softmax", "net", "cross_entropy", "accuracy", "evaluate_accuracy", "accumulator",
              "sgd", "train_epoch", "train", "predict", "ex1_overflow", "ex2_log_domain",
              "ex3_stable_loss", "ex4_decision", "ex5_large_vocab"]
WRITTEN_PARTS = [f"ex{k}_written" for k in range(1, 6)]
# What the students write: every function and class of ASSIGNMENT.md.
REFERENCE_DEFINITIONS = [
    "softmax", "net", "cross_entropy", "accuracy", "evaluate_accuracy", "Accumulator", "sgd",
    "train_epoch_ch3", "train_ch3", "get_fashion_mnist_labels", "predict_ch3",
    "overflow_threshold", "naive_softmax_breaks", "log_softmax", "naive_cross_entropy_breaks",
    "stable_softmax", "softmax_cross_entropy", "expected_cost", "bayes_decision",
    "decide_with_reject", "full_log_prob", "two_level_log_prob"]


@pytest.fixture(scope="module")
def source():
    return nbformat.read(SOURCE, as_version=4)


def test_parts_are_the_contract(source):
    parts = find_parts(source)
    assert [p.id for p in parts if not p.written] == CODE_PARTS
    assert sorted(p.id for p in parts if p.written) == WRITTEN_PARTS
    assert sum(p.points for p in parts) == 100
    assert all(p.points > 0 for p in parts)
    assert all(p.solution_cell is not None and p.solution_cell < p.cell
               for p in parts if not p.written)
    grade_ids = [nbgrader_metadata(c).get("grade_id") for c in source.cells]
    assert None not in grade_ids and len(set(grade_ids)) == len(grade_ids)


def without_solution_markers(text):
    return "\n".join(line for line in text.splitlines()
                     if "### BEGIN SOLUTION" not in line and "### END SOLUTION" not in line)


def test_solution_cells_are_the_reference_package(source):
    """The notebook's solutions are solutions/'s functions, line for line (as ASTs)."""
    compared = []
    for cell in source.cells:
        if not nbgrader_metadata(cell).get("grade_id", "").endswith("_solution"):
            continue
        for node in ast.parse(without_solution_markers(cell.source)).body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                module = exercises if hasattr(exercises, node.name) else softmax_regression
                reference = ast.parse(inspect.getsource(getattr(module, node.name))).body[0]
                assert ast.dump(node) == ast.dump(reference), \
                    f"{node.name} in the notebook differs from solutions/"
                compared.append(node.name)
    assert sorted(compared) == sorted(REFERENCE_DEFINITIONS)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    """The source notebook run top to bottom in a real kernel, demos included."""
    notebook = nbformat.read(SOURCE, as_version=4)
    client = NotebookClient(notebook, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path_factory.mktemp("run"))}})
    start = time.perf_counter()
    client.execute()
    return notebook, time.perf_counter() - start


def test_runs_top_to_bottom_within_90_seconds(executed):
    notebook, seconds = executed
    assert seconds < 90
    errors = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert errors == []
    assert any(is_demo(c) for c in notebook.cells)


def test_demo_training_reaches_the_book_accuracy(executed):
    notebook, _ = executed
    text = "".join(o.get("text", "") for c in notebook.cells if is_demo(c) for o in c.outputs)
    accuracies = [float(word) for line in text.splitlines() if "test acc" in line
                  for word in line.replace(",", " ").split() if word.replace(".", "").isdigit()
                  and "." in word]
    assert accuracies and max(accuracies) >= 0.8, text[-500:]


def test_demo_cells_show_pictures(executed):
    notebook, _ = executed
    images = [o for c in notebook.cells if is_demo(c) for o in c.outputs
              if "image/png" in o.get("data", {})]
    assert len(images) >= 3  # sample images, training curves, predictions


def test_nbgrader_validator_accepts_it():
    from nbgrader.validator import Validator
    assert Validator().validate(str(SOURCE)) == {}
