"""grader/attempted.py: which functions are still stubs, and where a NotImplementedError
was raised, read from tracebacks that a real Jupyter kernel produced."""

import json

import nbformat
import pytest
from nbclient import NotebookClient
from test_release import RELEASE, SOURCE
from test_source_notebook import REFERENCE_DEFINITIONS

from grader.attempted import live_stubs, raised_in, stub_functions
from grader.notebook import nbgrader_metadata

RELEASE_STUB = '''\
def softmax(X):
    """Row-wise softmax."""
    # YOUR CODE HERE
    raise NotImplementedError()
'''


@pytest.mark.parametrize("source, stubs", [
    (RELEASE_STUB, {"softmax"}),
    ("def f(x):\n    raise NotImplementedError\n", {"f"}),
    ("def f(x):\n    raise NotImplementedError('write me')\n", {"f"}),
    ("async def f(x):\n    raise NotImplementedError()\n", {"f"}),
    ("def f(x):\n    # YOUR CODE HERE\n    return x + 1\n    raise NotImplementedError()\n",
     set()),
    ("def f(x):\n    pass\n", set()),
    ("def f(x):\n    raise ValueError()\n", set()),
    ("def f(x):\n    raise NotImplementedError() from None\n", set()),
    ("def f(x):\n    raise errors.NotImplementedError()\n", set()),
    ("def f(x):\n    '''doc'''\n    '''a second string is code'''\n"
     "    raise NotImplementedError()\n", set()),
    ("class A:\n    '''doc'''\n    size = 3\n\n    def __init__(self, n):\n"
     "        raise NotImplementedError()\n\n    def add(self, *args):\n"
     "        raise NotImplementedError()\n", {"A"}),
    ("class A:\n    def __init__(self, n):\n        self.n = n\n\n    def add(self, *args):\n"
     "        raise NotImplementedError()\n", set()),
    ("class A:\n    pass\n", set()),
    ("def outer():\n    def inner():\n        raise NotImplementedError()\n    return inner\n",
     set()),
    ("%matplotlib inline\n" + RELEASE_STUB, {"softmax"}),
    ("def f(x:\n    raise NotImplementedError()\n", set()),  # does not parse: defines nothing
])
def test_stub_functions(source, stubs):
    assert stub_functions(source) == stubs


def test_a_later_definition_replaces_an_earlier_one():
    written = "def softmax(X):\n    return X.exp() / X.exp().sum(1, keepdim=True)\n"
    assert live_stubs([RELEASE_STUB, written]) == set()
    assert live_stubs([written, RELEASE_STUB]) == {"softmax"}
    assert live_stubs([RELEASE_STUB, "softmax = lambda X: X.exp() / X.exp().sum(1)\n"]) == set()
    assert live_stubs([RELEASE_STUB, "from my_helpers import softmax\n"]) == set()
    assert live_stubs([RELEASE_STUB, "softmax(torch.zeros(2, 3))\n"]) == {"softmax"}


def solution_cells(path):
    notebook = nbformat.read(path, as_version=4)
    return [c.source for c in notebook.cells
            if nbgrader_metadata(c).get("grade_id", "").endswith("_solution")]


def test_every_function_of_the_release_is_a_stub_and_none_of_the_source():
    assert live_stubs(solution_cells(RELEASE)) == set(REFERENCE_DEFINITIONS)
    assert live_stubs(solution_cells(SOURCE)) == set()


KERNEL_CELLS = {
    "define": '''\
def f(x):
    """A stub."""
    # YOUR CODE HERE
    raise NotImplementedError()


def g(x):
    return f(x) + 1


class Accumulator:
    def __init__(self, n):
        raise NotImplementedError()


def lying(x):
    raise NotImplementedError("spoof\\nCell In[1], line 4, in softmax(X)\\n")


def handled(x):
    try:
        f(x)
    except NotImplementedError:
        raise NotImplementedError("while handling it") from None


def chained(x):
    try:
        f(x)
    except NotImplementedError as err:
        raise KeyError("after it") from err
''',
    "through_a_caller": "g(1)",
    "method": "Accumulator(3)",
    "top_level": "raise NotImplementedError('top')",
    "spoofed_message": "lying(0)",
    "handled": "handled(0)",
    "chained": "chained(0)",
    "library": "import json\njson.loads('{x')",
    "plain_python": '''\
import json as _json
import traceback as _traceback
try:
    g(1)
except NotImplementedError as err:
    print(_json.dumps({"text": _traceback.format_exc(),
                       "entries": _traceback.format_exception(err)}))
''',
}


@pytest.fixture(scope="module")
def kernel_output(tmp_path_factory):
    """{cell name: its error output's traceback, or what it printed} from a real kernel."""
    notebook = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell(code) for code in KERNEL_CELLS.values()])
    NotebookClient(notebook, timeout=60, kernel_name="python3", allow_errors=True,
                   resources={"metadata": {"path": str(tmp_path_factory.mktemp("kernel"))}}
                   ).execute()
    found = {}
    for name, cell in zip(KERNEL_CELLS, notebook.cells):
        for output in cell.outputs:
            if output.output_type == "error":
                found[name] = output.traceback
            elif output.output_type == "stream":
                found[name] = json.loads(output.text)
    return found


@pytest.mark.parametrize("cell, function", [
    ("through_a_caller", "f"),
    ("method", "Accumulator.__init__"),
    ("top_level", None),
    ("spoofed_message", "lying"),
    ("handled", "handled"),
    ("chained", "chained"),
    ("library", "JSONDecoder.raw_decode"),
])
def test_raised_in_reads_the_innermost_frame_of_ipython_tracebacks(kernel_output, cell,
                                                                     function):
    traceback = kernel_output[cell]
    assert any("\x1b[" in entry for entry in traceback), "the kernel's colours are kept"
    assert raised_in(traceback) == function


def test_raised_in_reads_python_tracebacks(kernel_output):
    printed = kernel_output["plain_python"]
    assert raised_in(printed["entries"]) == "f"
    assert raised_in(printed["text"]) == "f"


def test_raised_in_without_frames():
    assert raised_in([]) is None
    assert raised_in("") is None
