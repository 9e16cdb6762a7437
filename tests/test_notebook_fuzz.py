"""Fuzzing the notebook reader: a submitted file mutated at random (values replaced,
keys deleted, text cut, bytes flipped) ends either in code to grade or in a
NotebookError with one line for the user, never in another exception."""

import json

import corpus
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from grader.notebook import NotebookError, read_notebook
from grader.submission import submission_code

SOURCE = read_notebook(corpus.SOURCE)
RELEASE_TEXT = corpus.RELEASE.read_text()

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=3)
    | st.dictionaries(st.text(max_size=10), children, max_size=3),
    max_leaves=8)


def replace_at(document, choices, value):
    """`document` with the node reached by following `choices` (indices into each
    level's keys or items) replaced by `value`, or deleted when value is ...(Ellipsis)."""
    parent, key = None, None
    node = document
    for choice in choices:
        if isinstance(node, dict) and node:
            key = sorted(node)[choice % len(node)]
        elif isinstance(node, list) and node:
            key = choice % len(node)
        else:
            break
        parent, node = node, node[key]
    if parent is None:
        return value if value is not ... else {}
    if value is ...:
        del parent[key]
    else:
        parent[key] = value
    return document


def outcome_of(path):
    """'graded' or 'error', after the grader's reading of the file; anything else raises."""
    try:
        code = submission_code(path, SOURCE)
    except NotebookError as err:
        assert "\n" not in str(err) and str(err).startswith(str(path))
        return "error"
    assert all(isinstance(cell, str) for cell in code.cells)
    return "graded"


FUZZ = settings(max_examples=150, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@FUZZ
@given(mutations=st.lists(st.tuples(st.lists(st.integers(0, 1000), max_size=6),
                                    json_values | st.just(...)), min_size=1, max_size=4))
def test_mutated_notebook_json_is_graded_or_refused_clearly(tmp_path, mutations):
    document = json.loads(RELEASE_TEXT)
    for choices, value in mutations:
        document = replace_at(document, choices, value)
    path = tmp_path / "mutated.ipynb"
    path.write_text(json.dumps(document))
    assert outcome_of(path) in ("graded", "error")


@FUZZ
@given(cut=st.integers(0, len(RELEASE_TEXT)), flips=st.lists(st.tuples(st.integers(0, 10**6),
                                                                       st.integers(0, 255)),
                                                             max_size=5))
def test_cut_or_corrupted_bytes_are_graded_or_refused_clearly(tmp_path, cut, flips):
    data = bytearray(RELEASE_TEXT.encode()[:cut])
    for position, byte in flips:
        if data:
            data[position % len(data)] = byte
    path = tmp_path / "corrupted.ipynb"
    path.write_bytes(bytes(data))
    assert outcome_of(path) in ("graded", "error")
