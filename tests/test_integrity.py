"""grader/integrity.py: code that reaches into the grader is found; honest code is not."""

import inspect

import nbformat
import pytest
from corpus import MISTAKES, RELEASE, SOURCE

import solutions.exercises
import solutions.softmax_regression
from grader.integrity import find_signals, signals_in
from grader.notebook import read_notebook
from grader.submission import given_sources, submission_code

REACHING = {
    "walks the call stack": "import sys\ndef softmax(X):\n    caller = sys._getframe(1)\n",
    "reads a frame": "def softmax(X):\n    import inspect\n    f = inspect.currentframe().f_back\n",
    "searches the gc": "import gc\ndef softmax(X):\n    objs = gc.get_objects()\n",
    "reads sys.modules": "import sys\ndef softmax(X):\n    p = sys.modules['protocol']\n",
    "names the harness": "def softmax(X):\n    m = __import__('scenarios')\n",
    "imports the harness": "import scenarios\ndef softmax(X):\n    return X\n",
    "patches torch": "import torch\ntorch.allclose = lambda *a, **k: True\n",
    "patches a method": "import torch\ntorch.Tensor.__eq__ = lambda a, b: True\n",
    "patches by setattr": "import torch\nsetattr(torch, 'equal', lambda a, b: True)\n",
    "patches builtins": "import builtins\nbuiltins.isinstance = lambda *a: True\n",
    "runs built code": "def softmax(X):\n    return eval('X.softmax(1)')\n",
    "exec": "exec('import os')\n",
    "ctypes": "import ctypes\n",
    "globals of a function": "def softmax(X):\n    g = softmax.__globals__\n",
    "importlib": "import importlib\nm = importlib.import_module('protocol')\n",
    "the stack as text": "import traceback\ndef softmax(X):\n    s = traceback.extract_stack()\n",
    "a traceback's frames": "def softmax(X):\n    try:\n        1 / 0\n    except Exception as e:\n"
                            "        f = e.__traceback__\n",
}


@pytest.mark.parametrize("what", REACHING)
def test_code_that_reaches_into_the_grader_is_found(what):
    found = signals_in(REACHING[what])
    assert found, what
    assert all(signal.line >= 1 for signal in found)


def test_a_signal_names_its_line_and_cell():
    (signal,) = signals_in("def softmax(X):\n    import sys\n    f = sys._getframe(1)\n")
    assert str(signal) == ("reaches into the running program (sys._getframe) at line 3 of "
                           "the cell defining softmax")


HONEST = [
    "import gc\ngc.collect()\n",
    "import sys\nprint(sys.version)\n",
    "import inspect\nprint(inspect.signature(len))\n",
    "import re\npattern = re.compile('a+')\n",
    "import torch\nmodel = torch.compile(lambda x: x)\n",
    "import torch\ndef softmax(X):\n    X_exp = X.exp()\n    return X_exp / X_exp.sum(1, keepdim=True)\n",
    "import numpy as np\nx = np.arange(3)\n",
]


@pytest.mark.parametrize("source", HONEST)
def test_honest_code_is_not_flagged(source):
    assert signals_in(source) == []


def test_the_reference_the_release_and_every_corpus_mistake_are_not_flagged():
    source = read_notebook(SOURCE)
    trusted = given_sources(source)
    for notebook in (source, read_notebook(RELEASE)):
        assert find_signals(submission_code(notebook, source).cells, trusted) == []
    for entry in MISTAKES:
        notebook = nbformat.reads(entry.make().decode(), as_version=4)
        assert find_signals(submission_code(notebook, source).cells, trusted) == [], entry.name


def test_the_reference_package_is_not_flagged():
    for module in (solutions.softmax_regression, solutions.exercises):
        assert signals_in(inspect.getsource(module)) == []

