"""The from-scratch rule: the static analysis (grader/from_scratch.py) finds every spelling
of each forbidden family, through imports, aliases and the student's helpers, flags what it
cannot resolve, and flags nothing in the reference, the release or code in the book's
idioms; the run-time recorder (grader/watch.py) sees the same families on real calls."""

import re
import textwrap

import corpus
import pytest
import torch
from torch import nn
from torch.nn import functional as F

from grader import from_scratch, watch
from grader.from_scratch import DYNAMIC, TOP_LEVEL, families_of, families_reached, find_violations, message
from grader.hidden.manifest import ALL_FAMILIES, LOSS_FAMILY, PARTS, SOFTMAX_FAMILY
from grader.notebook import read_notebook
from grader.submission import submission_code

# The notebook's given imports (its first cell), before the student's code.
GIVEN = "import torch\nfrom torch import nn\nfrom torch.nn import functional as F\n"
EVERY_RULE = {f: families for spec in PARTS.values() for f, families in spec.forbidden.items()}


def check(code, function, families=ALL_FAMILIES, cells=None):
    """The violations of `function` in [GIVEN, code] (or in `cells`)."""
    cells = cells if cells is not None else [GIVEN, textwrap.dedent(code)]
    return find_violations(cells, {function: families})[function]


def only(violations):
    assert len(violations) == 1, [message(v) for v in violations]
    return violations[0]


# Each spelling: (graded function, its body or cell, resolved name, family, line in the cell).
SOFTMAX_SPELLINGS = [
    ("return torch.softmax(X, 1)", "torch.softmax", "softmax"),
    ("return torch.softmax(X, dim=1)", "torch.softmax", "softmax"),
    ("return F.softmax(X, dim=1)", "torch.nn.functional.softmax", "softmax"),
    ("return torch.nn.functional.softmax(X, dim=1)", "torch.nn.functional.softmax", "softmax"),
    ("return X.softmax(1)", "torch.Tensor.softmax", "softmax"),
    ("return (X * 1).softmax(dim=1)", "torch.Tensor.softmax", "softmax"),
    ("return torch.Tensor.softmax(X, 1)", "torch.Tensor.softmax", "softmax"),
    ("return nn.Softmax(dim=1)(X)", "torch.nn.Softmax", "softmax"),
    ("return nn.Softmin(dim=1)(-X)", "torch.nn.Softmin", "softmax"),
    ("return F.softmin(-X, 1)", "torch.nn.functional.softmin", "softmax"),
    ("return torch.special.softmax(X, 1)", "torch.special.softmax", "softmax"),
    ("return torch._softmax(X, 1, False)", "torch._softmax", "softmax"),
    ("return torch.ops.aten._softmax(X, 1, False)", "torch.ops.aten._softmax", "softmax"),
    ("return torch.masked.softmax(X, 1)", "torch.masked.softmax", "softmax"),
    ("return torch.exp(torch.log_softmax(X, 1))", "torch.log_softmax", "log_softmax"),
    ("return F.log_softmax(X, 1).exp()", "torch.nn.functional.log_softmax", "log_softmax"),
    ("return X.log_softmax(dim=1).exp()", "torch.Tensor.log_softmax", "log_softmax"),
    ("return nn.LogSoftmax(dim=1)(X).exp()", "torch.nn.LogSoftmax", "log_softmax"),
    ("return torch._log_softmax(X, 1, False).exp()", "torch._log_softmax", "log_softmax"),
    ("return torch.special.log_softmax(X, 1).exp()", "torch.special.log_softmax", "log_softmax"),
    ("return torch.distributions.Categorical(logits=X).probs",
     "torch.distributions.Categorical", "softmax"),
]
CROSS_ENTROPY_SPELLINGS = [
    ("return F.nll_loss(torch.log(y_hat), y, reduction='none')",
     "torch.nn.functional.nll_loss", "nll_loss"),
    ("return nn.NLLLoss(reduction='none')(torch.log(y_hat), y)", "torch.nn.NLLLoss", "nll_loss"),
    ("return torch._C._nn.nll_loss(torch.log(y_hat), y, None, 0, -100)",
     "torch._C._nn.nll_loss", "nll_loss"),
    ("return F.cross_entropy(torch.log(y_hat), y, reduction='none')",
     "torch.nn.functional.cross_entropy", "cross_entropy"),
    ("return nn.CrossEntropyLoss(reduction='none')(torch.log(y_hat), y)",
     "torch.nn.CrossEntropyLoss", "cross_entropy"),
    ("return F.binary_cross_entropy(y_hat[torch.arange(len(y)), y], torch.ones(len(y)), "
     "reduction='none')", "torch.nn.functional.binary_cross_entropy", "cross_entropy"),
    ("return F.kl_div(torch.log(y_hat), F.one_hot(y, 10).float(), reduction='none').sum(1)",
     "torch.nn.functional.kl_div", "nll_loss"),
    ("return -torch.distributions.Categorical(probs=y_hat).log_prob(y)",
     "torch.distributions.Categorical", "softmax"),
]
LOGITS_SPELLINGS = [  # for the exercises' functions, which may use none of the families
    ("return O - torch.logsumexp(O, 1, keepdim=True)", "torch.logsumexp", "logsumexp"),
    ("return O - O.logsumexp(1, keepdim=True)", "torch.Tensor.logsumexp", "logsumexp"),
    ("return O - torch.special.logsumexp(O, 1, keepdim=True)", "torch.special.logsumexp",
     "logsumexp"),
    ("return O - torch.logcumsumexp(O, 1)[:, -1:]", "torch.logcumsumexp", "logsumexp"),
    ("return O - O[:, :1].logaddexp(O[:, 1:2])", "torch.Tensor.logaddexp", "logsumexp"),
    ("return F.cross_entropy(O, torch.zeros(len(O), dtype=torch.long), reduction='none')",
     "torch.nn.functional.cross_entropy", "cross_entropy"),
    ("return torch.log_softmax(O, dim=1)", "torch.log_softmax", "log_softmax"),
    ("return torch.softmax(O, 1).log()", "torch.softmax", "softmax"),
]


@pytest.mark.parametrize("body, resolved, family", SOFTMAX_SPELLINGS)
def test_softmax_spellings(body, resolved, family):
    found = only(check(f"def softmax(X):\n    Z = X - 0\n    {body}\n", "softmax",
                       SOFTMAX_FAMILY))
    assert (found.resolved, found.family, found.cell, found.line) == (resolved, family, 1, 3)
    assert found.chain == ("softmax",)


@pytest.mark.parametrize("body, resolved, family", CROSS_ENTROPY_SPELLINGS)
def test_cross_entropy_spellings(body, resolved, family):
    found = only(check(f"def cross_entropy(y_hat, y):\n    {body}\n", "cross_entropy",
                       SOFTMAX_FAMILY + LOSS_FAMILY))
    assert (found.resolved, found.family, found.line) == (resolved, family, 2)


@pytest.mark.parametrize("body, resolved, family", LOGITS_SPELLINGS)
@pytest.mark.parametrize("function", ["log_softmax", "stable_softmax"])
def test_exercise_spellings(function, body, resolved, family):
    found = only(check(f"def {function}(O):\n    {body}\n", function))
    assert (found.resolved, found.family, found.line) == (resolved, family, 2)


def test_a_loss_over_a_log_softmax_is_two_violations():
    violations = check("def softmax_cross_entropy(O, y):\n"
                       "    return F.nll_loss(F.log_softmax(O, 1), y, reduction='none')\n",
                       "softmax_cross_entropy")
    assert {(v.resolved, v.family) for v in violations} == {
        ("torch.nn.functional.nll_loss", "nll_loss"),
        ("torch.nn.functional.log_softmax", "log_softmax")}


def test_logsumexp_is_allowed_where_the_manifest_allows_it():
    """`softmax` forbids only its own family (the manifest's rule), so logsumexp passes it."""
    code = "def softmax(X):\n    return torch.exp(X - torch.logsumexp(X, 1, keepdim=True))\n"
    assert check(code, "softmax", SOFTMAX_FAMILY) == []
    assert only(check(code, "softmax", ALL_FAMILIES)).family == "logsumexp"


# Imports and aliases: (cell, resolved, line of the use the violation points at).
ALIASES = [
    ("import torch as th\ndef stable_softmax(O):\n    return th.softmax(O, 1)\n",
     "torch.softmax", 3),
    ("from torch import softmax as sm\ndef stable_softmax(O):\n    return sm(O, 1)\n",
     "torch.softmax", 3),
    ("from torch.nn import functional as G\ndef stable_softmax(O):\n    return G.softmax(O, 1)\n",
     "torch.nn.functional.softmax", 3),
    ("import torch.nn.functional as tf\ndef stable_softmax(O):\n    return tf.softmax(O, 1)\n",
     "torch.nn.functional.softmax", 3),
    ("from torch.nn.functional import *\ndef stable_softmax(O):\n    return softmax(O, 1)\n",
     "torch.nn.functional.softmax", 3),
    ("import torch.nn as nn\ndef stable_softmax(O):\n"
     "    return nn.functional.log_softmax(O, 1).exp()\n", "torch.nn.functional.log_softmax", 3),
    ("import torch.nn.functional\ndef stable_softmax(O):\n"
     "    return torch.nn.functional.softmax(O, 1)\n", "torch.nn.functional.softmax", 3),
    ("import torch.special\ndef stable_softmax(O):\n    return torch.special.softmax(O, 1)\n",
     "torch.special.softmax", 3),
    ("from torch import special\ndef stable_softmax(O):\n    return special.softmax(O, 1)\n",
     "torch.special.softmax", 3),
    ("from torch import Tensor\ndef stable_softmax(O):\n    return Tensor.softmax(O, 1)\n",
     "torch.Tensor.softmax", 3),
    ("from torch.nn import CrossEntropyLoss\ndef stable_softmax(O):\n"
     "    return CrossEntropyLoss()(O, O.argmax(1))\n", "torch.nn.CrossEntropyLoss", 3),
    ("sm = torch.softmax\ndef stable_softmax(O):\n    return sm(O, 1)\n", "torch.softmax", 3),
    ("sm = F.softmax\nsoft = sm\ndef stable_softmax(O):\n    return soft(O, 1)\n",
     "torch.nn.functional.softmax", 4),
    ("def stable_softmax(O):\n    sm = torch.softmax\n    return sm(O, 1)\n", "torch.softmax", 2),
    ("def stable_softmax(O):\n    G = F\n    return G.softmax(O, 1)\n",
     "torch.nn.functional.softmax", 3),
    ("def stable_softmax(O):\n    import torch.nn.functional as G\n    return G.softmax(O, 1)\n",
     "torch.nn.functional.softmax", 3),
    ("import functools\nsm = functools.partial(F.softmax, dim=1)\n"
     "def stable_softmax(O):\n    return sm(O)\n", "torch.nn.functional.softmax", 2),
    ("from functools import partial\ndef stable_softmax(O):\n"
     "    return partial(torch.softmax, dim=1)(O)\n", "torch.softmax", 3),
    ("import scipy.special as ss\ndef stable_softmax(O):\n"
     "    return torch.from_numpy(ss.softmax(O.numpy(), axis=1))\n", "scipy.special.softmax", 3),
    ("from scipy.special import logsumexp\ndef stable_softmax(O):\n"
     "    return torch.exp(O - logsumexp(O.numpy(), 1, keepdims=True))\n",
     "scipy.special.logsumexp", 3),
    ("try:\n    from scipy.special import softmax as sp\nexcept ImportError:\n    sp = None\n"
     "def stable_softmax(O):\n    return sp(O, 1)\n", "scipy.special.softmax", 6),
    ("def stable_softmax(O):\n    return O\nstable_softmax = F.softmax\n",
     "torch.nn.functional.softmax", 3),
    ("from torch.nn.functional import softmax as stable_softmax\n",
     "torch.nn.functional.softmax", 1),
    ("def stable_softmax(O, f=F.softmax):\n    return f(O, dim=1)\n",
     "torch.nn.functional.softmax", 1),
]


@pytest.mark.parametrize("code, resolved, line", ALIASES)
def test_imports_and_aliases_are_resolved(code, resolved, line):
    found = only(check(code, "stable_softmax"))
    assert (found.resolved, found.cell, found.line) == (resolved, 1, line)


def test_a_module_level_loss_object_is_followed():
    found = only(check("loss_fn = nn.CrossEntropyLoss(reduction='none')\n\n"
                       "def softmax_cross_entropy(O, y):\n    return loss_fn(O, y)\n",
                       "softmax_cross_entropy"))
    assert (found.resolved, found.written, found.line) == ("torch.nn.CrossEntropyLoss",
                                                           "nn.CrossEntropyLoss", 1)
    assert found.chain == ("softmax_cross_entropy", "loss_fn")


def test_helpers_are_followed_transitively():
    cells = [GIVEN,
             "def lse(O):\n    return torch.logsumexp(O, 1, keepdim=True)\n",
             "def log_softmax(O):\n    return O - lse(O)\n",
             "def softmax_cross_entropy(O, y):\n"
             "    return -log_softmax(O)[torch.arange(len(y)), y]\n"]
    found = find_violations(cells, {"softmax_cross_entropy": ALL_FAMILIES,
                                    "log_softmax": ALL_FAMILIES})
    via = only(found["softmax_cross_entropy"])
    assert (via.resolved, via.cell, via.line) == ("torch.logsumexp", 1, 2)
    assert via.chain == ("softmax_cross_entropy", "log_softmax", "lse")
    assert only(found["log_softmax"]).chain == ("log_softmax", "lse")


@pytest.mark.parametrize("code, chain", [
    ("class Stable:\n    def __call__(self, O):\n        return F.softmax(O, 1)\n\n"
     "def stable_softmax(O):\n    return Stable()(O)\n", ("stable_softmax", "Stable")),
    ("class Helper:\n    def __init__(self):\n        self.f = nn.Softmax(dim=1)\n\n"
     "    def softmax(self, x):\n        return self.f(x)\n\n"
     "def stable_softmax(O):\n    h = Helper()\n    return h.softmax(O)\n",
     ("stable_softmax", "Helper")),
    ("class Loss(nn.CrossEntropyLoss):\n    pass\n\n"
     "def stable_softmax(O):\n    return Loss()(O, O.argmax(1))\n", ("stable_softmax", "Loss")),
    ("sm = lambda O: torch.special.softmax(O, 1)\n\ndef stable_softmax(O):\n    return sm(O)\n",
     ("stable_softmax", "sm")),
    ("def stable_softmax(O):\n    def inner(x):\n        return torch._softmax(x, 1, False)\n"
     "    return inner(O)\n", ("stable_softmax",)),
    ("def stable_softmax(O):\n    return (lambda x: x.softmax(1))(O)\n", ("stable_softmax",)),
    ("def helper(O):\n    return F.softmax(O, 1)\n\nOPS = {'softmax': helper}\n\n"
     "def stable_softmax(O):\n    return OPS['softmax'](O)\n",
     ("stable_softmax", "OPS", "helper")),
    ("def setup():\n    global sm\n    sm = torch.softmax\n\n"
     "def stable_softmax(O):\n    return sm(O, 1)\n", ("stable_softmax",)),
])
def test_classes_lambdas_and_nested_helpers_are_followed(code, chain):
    assert only(check(code, "stable_softmax")).chain == chain


@pytest.mark.parametrize("code, chain", [
    ("class Box:\n    pass\n\nbox = Box()\nbox.f = F.softmax\n\n"
     "def stable_softmax(O):\n    return box.f(O, dim=1)\n", ("stable_softmax", "box.f")),
    ("torch.mine = F.softmax\n\ndef stable_softmax(O):\n    return torch.mine(O, dim=1)\n",
     ("stable_softmax", "torch.mine")),
    ("OPS = {}\nOPS['sm'] = F.softmax\n\ndef stable_softmax(O):\n    return OPS['sm'](O, 1)\n",
     ("stable_softmax", "OPS['sm']")),
    ("FUNCS = []\nFUNCS.append(torch.softmax)\n\n"
     "def stable_softmax(O):\n    return FUNCS[0](O, 1)\n", ("stable_softmax", "FUNCS")),
    ("def setup():\n    setattr(torch, 'mine', torch.softmax)\n\nsetup()\n\n"
     "def stable_softmax(O):\n    return torch.mine(O, 1)\n", ("stable_softmax", "torch")),
    ("class M:\n    def __call__(self, O):\n        return getattr(self, 'f')(O, 1)\n\n"
     "m = M()\nm.f = torch.softmax\n\ndef stable_softmax(O):\n    return m(O)\n",
     ("stable_softmax", "m.f")),
    ("def helper(O):\n    return F.softmax(O, 1)\n\n"
     "def stable_softmax(O):\n    return stable_softmax.__globals__['helper'](O)\n",
     ("stable_softmax", "helper")),
    ("@lambda f: torch.softmax\ndef stable_softmax(O):\n    return O\n", ("stable_softmax",)),
])
def test_values_stored_into_objects_are_followed(code, chain):
    assert only(check(code, "stable_softmax")).chain == chain


@pytest.mark.parametrize("body", [
    "import sys\n    return sys._getframe().f_globals['hel' + 'per'](O)",
    "import gc\n    return [f for f in gc.get_objects() if repr(f) == 'x'][0](O, 1)",
    "return [c for c in nn.Module.__subclasses__() if c.__name__ == 'Soft' + 'max'][0](1)(O)",
    "return torch.jit.CompilationUnit('def f(x):\\n    return x').f(O)",
    "import subprocess\n    return subprocess.run(['python', '-c', 'print(1)'])",
])
def test_finding_objects_or_code_without_naming_them_is_reported(body):
    violations = check(f"def stable_softmax(O):\n    {body}\n", "stable_softmax")
    assert violations and {v.family for v in violations} == {DYNAMIC}, \
        [message(v) for v in violations]


def test_checks_against_the_library_and_honest_top_level_code_pass():
    """A notebook may compare its softmax with torch's, time it, profile it, collect garbage."""
    code = ("import gc, timeit, cProfile\n\n"
            "def softmax(X):\n    X_exp = torch.exp(X)\n"
            "    return X_exp / X_exp.sum(1, keepdim=True)\n\n"
            "class Model:\n    def __init__(self, **kw):\n        self.__dict__.update(kw)\n\n"
            "    def softmax(self, X):\n        return softmax(X)\n\n"
            "model = Model(lr=0.1)\nX = torch.randn(4, 3)\n"
            "torch.testing.assert_close(softmax(X), torch.softmax(X, 1))\n"
            "results = {}\nresults['torch'] = F.softmax(X, dim=1)\n"
            "print(timeit.timeit(lambda: softmax(X), number=10))\n"
            "cProfile.run('softmax(X)')\ngc.collect()\n\n"
            "def stable_softmax(O):\n"
            "    return model.softmax(O - O.max(dim=1, keepdim=True).values)\n")
    assert check(code, "stable_softmax") == []


def test_own_helper_through_another_graded_function():
    """two_level_log_prob may call the student's log_softmax when it is from scratch."""
    scratch = ("def log_softmax(O):\n    O = O - O.max(dim=1, keepdim=True).values\n"
               "    return O - torch.log(torch.exp(O).sum(dim=1, keepdim=True))\n")
    library = "def log_softmax(O):\n    return F.log_softmax(O, dim=1)\n"
    two_level = ("def two_level_log_prob(H, y, Wc, bc, Ww, bw):\n"
                 "    m = Ww.shape[2]\n    rows = torch.arange(H.shape[0])\n"
                 "    return log_softmax(H @ Wc + bc)[rows, y // m]\n")
    assert check(None, "two_level_log_prob", cells=[GIVEN, scratch, two_level]) == []
    found = only(check(None, "two_level_log_prob", cells=[GIVEN, library, two_level]))
    assert found.chain == ("two_level_log_prob", "log_softmax")


def test_only_reachable_code_counts():
    code = ("def compare(X):\n    return F.softmax(X, 1)\n\n"
            "def softmax(X):\n    X_exp = torch.exp(X)\n"
            "    return X_exp / X_exp.sum(1, keepdim=True)\n\n"
            "X = torch.ones(2, 3)\nprint(torch.softmax(X, 1), softmax(X), compare(X))\n")
    assert check(code, "softmax", SOFTMAX_FAMILY) == []


def test_a_later_definition_replaces_an_earlier_one():
    library = "def softmax(X):\n    return F.softmax(X, 1)\n"
    scratch = "def softmax(X):\n    return torch.exp(X) / torch.exp(X).sum(1, keepdim=True)\n"
    assert check(None, "softmax", SOFTMAX_FAMILY, cells=[GIVEN, library, scratch]) == []
    assert only(check(None, "softmax", SOFTMAX_FAMILY, cells=[GIVEN, scratch, library])).cell == 2
    star_then_own = "from torch.nn.functional import *\n" + scratch
    assert check(star_then_own, "softmax", SOFTMAX_FAMILY) == []


def test_a_conditional_definition_counts_as_well():
    code = ("def softmax(X):\n    return torch.exp(X) / torch.exp(X).sum(1, keepdim=True)\n"
            "if torch.cuda.is_available():\n    softmax = torch.softmax\n")
    assert only(check(code, "softmax", SOFTMAX_FAMILY)).resolved == "torch.softmax"


# What cannot be resolved statically, in a graded function: (body, why).
DYNAMIC_BODIES = [
    "return getattr(torch, 'soft' + 'max')(O, 1)",
    "name = 'softmax'\n    return getattr(F, name)(O, 1)",
    "return torch.__dict__['soft' + 'max'](O, 1)",
    "return vars(F)[''.join(['soft', 'max'])](O, 1)",
    "return F.__dict__.get('soft' + 'max')(O, 1)",
    "return torch.__getattribute__('soft' + 'max')(O, 1)",
    "return eval('torch.softmax')(O, 1)",
    "exec('r = torch.softmax(O, 1)')\n    return r",
    "return eval(compile('torch.softmax(O, 1)', 'x', 'eval'))",
    "return __import__('tor' + 'ch').softmax(O, 1)",
    "import importlib\n    return importlib.import_module('torch.' + 'nn').functional.softmax(O)",
    "return globals()['so' + 'ftmax'](O)",
    "return get_ipython().ev('torch.softmax(O, 1)')",
    "import operator\n    return operator.methodcaller('soft' + 'max', 1)(O)",
    "import inspect\n    return dict(inspect.getmembers(F))['softmax'](O, 1)",
    "import sys\n    return sys.modules[__name__].helper(O)",
    "with torch._C.DisableTorchFunction():\n        return O",
]


@pytest.mark.parametrize("body", DYNAMIC_BODIES)
def test_what_cannot_be_resolved_is_reported(body):
    violations = check(f"def stable_softmax(O):\n    {body}\n", "stable_softmax")
    assert violations and all(v.family == DYNAMIC for v in violations), \
        [message(v) for v in violations]
    assert violations[0].chain == ("stable_softmax",)
    assert "cannot be checked statically" in message(violations[0])


# Literal forms of the same lookups resolve to the library name.
LITERAL_LOOKUPS = [
    "getattr(torch, 'softmax')(O, 1)", "torch.__dict__['softmax'](O, 1)",
    "vars(torch)['softmax'](O, 1)", "torch.__dict__.get('softmax')(O, 1)",
    "torch.__getattribute__('softmax')(O, 1)", "object.__getattribute__(torch, 'softmax')(O, 1)",
    "__import__('torch').softmax(O, 1)", "globals()['torch'].softmax(O, 1)",
    "__import__('importlib').import_module('torch').softmax(O, 1)",
    "__import__('sys').modules['torch'].softmax(O, 1)",
]


@pytest.mark.parametrize("expression", LITERAL_LOOKUPS)
def test_literal_lookups_resolve(expression):
    found = only(check(f"def stable_softmax(O):\n    return {expression}\n", "stable_softmax"))
    assert (found.resolved, found.family) == ("torch.softmax", "softmax")


def test_methodcaller_with_a_literal_name_is_a_method_call():
    found = only(check("import operator\ndef stable_softmax(O):\n"
                       "    return operator.methodcaller('log_softmax', 1)(O).exp()\n",
                       "stable_softmax"))
    assert (found.resolved, found.line) == ("torch.Tensor.log_softmax", 3)


@pytest.mark.parametrize("top_level", [
    "exec('def stable_softmax(O): return torch.softmax(O, 1)')",
    "stable_softmax.__code__ = (lambda O: torch.softmax(O, 1)).__code__",
    "globals()['stable_softmax'] = F.softmax",
    "import sys\nsetattr(sys.modules[__name__], 'stable_softmax', F.softmax)",
    "import __main__\n__main__.stable_softmax = F.softmax",
    "import __main__\nsetattr(__main__, 'stable_softmax', F.softmax)",
    "sys = __import__('sys')\nsys.modules['__main__'].__dict__.update(stable_softmax=F.softmax)",
    "%run helpers.py",
])
def test_top_level_code_that_could_redefine_a_graded_function(top_level):
    code = ("def stable_softmax(O):\n    O = O - O.max(dim=1, keepdim=True).values\n"
            "    return torch.exp(O) / torch.exp(O).sum(1, keepdim=True)\n" + top_level + "\n")
    violations = check(code, "stable_softmax")
    assert violations and {v.family for v in violations} == {DYNAMIC}
    assert violations[0].chain[0] == TOP_LEVEL and violations[0].line >= 4
    assert "could redefine stable_softmax" in message(violations[0])


def test_top_level_code_is_followed_into_the_functions_it_calls():
    code = ("def stable_softmax(O):\n    return O\n\n"
            "def setup(src):\n    exec(src, globals())\n\nsetup('x = 1')\n")
    found = only(check(code, "stable_softmax"))
    assert (found.chain, found.line) == ((TOP_LEVEL, "setup"), 5)


def test_lookups_at_the_top_level_that_cannot_redefine_anything_pass():
    code = ("def stable_softmax(O):\n    return O\n\n"
            "name = 'softmax'\nprint(getattr(torch, name)(torch.ones(1, 2), 1))\n")
    assert check(code, "stable_softmax") == []


# Legitimate code: the library's exp, log, max, sum, gather, one_hot and indexing, and
# the student's own helpers, whatever their names.
LEGITIMATE = [
    ("softmax", "def softmax(X):\n    X_exp = torch.exp(X)\n"
                "    return X_exp / X_exp.sum(1, keepdim=True)\n"),
    ("softmax", "def softmax(X):\n    X_exp = X.exp()\n"
                "    return X_exp / X_exp.sum(dim=1, keepdim=True)\n"),
    ("cross_entropy", "def cross_entropy(y_hat, y):\n"
                      "    return -torch.log(y_hat[range(len(y_hat)), y])\n"),
    ("cross_entropy", "def cross_entropy(y_hat, y):\n"
                      "    return -torch.log(y_hat.gather(1, y.view(-1, 1))).squeeze(1)\n"),
    ("cross_entropy", "def cross_entropy(y_hat, y):\n"
                      "    return -(F.one_hot(y, y_hat.shape[1]) * y_hat.log()).sum(1)\n"),
    ("stable_softmax", "def stable_softmax(O):\n    m = O.max(dim=1, keepdim=True)[0]\n"
                       "    e = torch.exp(O - m)\n    return e / torch.sum(e, 1, keepdim=True)\n"),
    ("stable_softmax", "def softmax(X):\n    return torch.exp(X) / torch.exp(X).sum(1, True)\n"
                       "def stable_softmax(O):\n"
                       "    return softmax(O - torch.max(O, dim=1, keepdim=True).values)\n"),
    ("log_softmax", "def log_softmax(O):\n    m = torch.amax(O, dim=1, keepdim=True)\n"
                    "    return O - m - torch.log(torch.exp(O - m).sum(1, keepdim=True))\n"),
    ("softmax_cross_entropy", "def logsumexp(O):\n    m = O.max(1, keepdim=True).values\n"
                              "    return m + torch.log(torch.exp(O - m).sum(1, keepdim=True))\n"
                              "def softmax_cross_entropy(O, y):\n"
                              "    return (logsumexp(O) - O.gather(1, y[:, None])).squeeze(1)\n"),
    ("stable_softmax", "class Ops:\n    def softmax(self, O):\n"
                       "        e = torch.exp(O - O.max(1, keepdim=True).values)\n"
                       "        return e / e.sum(1, keepdim=True)\n\n"
                       "    def __call__(self, O):\n        return self.softmax(O)\n\n"
                       "def stable_softmax(O):\n    return Ops()(O)\n"),
    ("stable_softmax", "def stable_softmax(O, softmax=None):\n"
                       "    e = torch.exp(O - O.max(1, keepdim=True).values)\n"
                       "    return e / e.sum(1, keepdim=True)\n"),
    ("two_level_log_prob", "def full_log_prob(H, y, W, b):\n"
                           "    return torch.log_softmax(H @ W + b, 1)[torch.arange(len(y)), y]\n"
                           "def two_level_log_prob(H, y, Wc, bc, Ww, bw):\n"
                           "    S = H @ Wc + bc\n    m = S.max(1, keepdim=True).values\n"
                           "    return (S - m - (S - m).exp().sum(1, keepdim=True).log())[:, 0]\n"),
]


@pytest.mark.parametrize("function, code", LEGITIMATE)
def test_legitimate_code_is_not_flagged(function, code):
    assert check(code, function) == []


def test_a_function_without_a_rule_may_use_the_library():
    code = "def full_log_prob(H, y, W, b):\n    return F.log_softmax(H @ W + b, 1)[:, 0]\n"
    assert find_violations([GIVEN, code], {"full_log_prob": ()}) == {"full_log_prob": []}


def reference_cells():
    """The reference solutions as one notebook would hold them (no package-relative import)."""
    core = (corpus.ROOT / "solutions" / "softmax_regression.py").read_text()
    exercises = (corpus.ROOT / "solutions" / "exercises.py").read_text()
    assert "from .softmax_regression import softmax" in exercises
    return [core, exercises.replace("from .softmax_regression import softmax", "")]


@pytest.mark.parametrize("cells", [
    pytest.param(reference_cells, id="solutions"),
    pytest.param(lambda: submission_code(read_notebook(corpus.SOURCE),
                                         read_notebook(corpus.SOURCE)).cells, id="source"),
    pytest.param(lambda: submission_code(corpus.RELEASE, read_notebook(corpus.SOURCE)).cells,
                 id="release"),
])
def test_the_reference_and_the_release_are_clean(cells):
    found = find_violations(cells(), EVERY_RULE)
    assert set(found) == set(EVERY_RULE)
    assert {f: [message(v) for v in vs] for f, vs in found.items() if vs} == {}


# The book's chapter 3.6 (d2l PyTorch) idiom by idiom, written here: `d2l.` helpers, range
# indexing, the Accumulator, an Animator with IPython's display, updater(batch_size).
BOOK_IDIOMS = [
    "from d2l import torch as d2l\nimport torch\nfrom IPython import display\n",
    "W = torch.normal(0, 0.01, size=(784, 10), requires_grad=True)\n"
    "b = torch.zeros(10, requires_grad=True)\n",
    "def softmax(X):\n    X_exp = d2l.exp(X)\n"
    "    partition = d2l.reduce_sum(X_exp, 1, keepdim=True)\n"
    "    return X_exp / partition\n\nX_prob = softmax(d2l.normal(0, 1, (2, 5)))\n",
    "def net(X):\n    return softmax(d2l.matmul(d2l.reshape(X, (-1, W.shape[0])), W) + b)\n",
    "def cross_entropy(y_hat, y):\n    return - d2l.log(y_hat[range(len(y_hat)), y])\n",
    "class Accumulator:\n    def __init__(self, n):\n        self.data = [0.0] * n\n\n"
    "    def add(self, *args):\n"
    "        self.data = [a + float(b) for a, b in zip(self.data, args)]\n",
    "class Animator:\n    def __init__(self, **kwargs):\n"
    "        self.fig, self.axes = d2l.plt.subplots(1, 1)\n"
    "        self.config_axes = lambda: d2l.set_axes(self.axes, **kwargs)\n\n"
    "    def add(self, x, y):\n        self.axes.plot(x, y)\n        self.config_axes()\n"
    "        display.display(self.fig)\n        display.clear_output(wait=True)\n",
    "lr = 0.1\n\ndef updater(batch_size):\n    return d2l.sgd([W, b], lr, batch_size)\n\n"
    "animator = Animator(xlabel='epoch')\nanimator.add(1, cross_entropy(net(W.T), "
    "torch.arange(10)).sum())\n",
    "%matplotlib inline\ndef log_softmax(O):\n    O_max = O.max(axis=1, keepdims=True)[0]\n"
    "    return O - O_max - d2l.log(d2l.reduce_sum(d2l.exp(O - O_max), 1, keepdim=True))\n",
]


def test_the_books_idioms_are_clean():
    found = find_violations(BOOK_IDIOMS, EVERY_RULE)
    assert {f: [message(v) for v in vs] for f, vs in found.items() if vs} == {}


@pytest.mark.parametrize("cells", [
    ["def softmax(X:\n    return F.softmax(X)\n"],  # does not parse: defines nothing
    ["a = b\nb = a\ndef softmax(X):\n    return a(X)\n"],
    ["x = " + "(" * 400 + "1" + ")" * 400 + "\ndef softmax(X):\n    return X\n"],
    ["def softmax(X):\n    return X" + ".T" * 3000 + "\n"],
    ["%%bash\necho hi\n", "", "\x00\x01 not python"],
    ["class A(A):\n    pass\nclass B(B, A):\n    pass\ndef softmax(X):\n    return B().f(X)\n"],
])
def test_hostile_or_broken_cells_never_raise(cells):
    found = find_violations([GIVEN, *cells], EVERY_RULE)
    assert set(found) == set(EVERY_RULE)
    assert all(isinstance(v, from_scratch.Violation) for vs in found.values() for v in vs)


def test_aliases_that_double_at_every_step_stay_cheap():
    lines = ["x0 = torch.softmax"] + [f"x{i} = x{i - 1} if X else x{i - 1}" for i in range(1, 60)]
    code = "\n".join(lines) + "\ndef softmax(X):\n    return x59(X, 1)\n"
    assert only(check(code, "softmax", SOFTMAX_FAMILY)).resolved == "torch.softmax"


def test_intertwined_aliases_end_as_cannot_be_checked():
    names = [f"a{i}" for i in range(12)]
    lines = [f"{n} = " + " or ".join(m for m in names if m != n) for n in names]
    code = "\n".join(lines) + "\ndef softmax(X):\n    return a0(X, 1)\n"
    assert {v.family for v in check(code, "softmax", SOFTMAX_FAMILY)} == {DYNAMIC}


def test_magics_keep_the_students_lines():
    code = "%%time\ndef softmax(X):\n    %time Y = torch.softmax(X, 1)\n    return Y\n"
    found = only(check(code, "softmax", SOFTMAX_FAMILY))
    assert (found.resolved, found.line) == ("torch.softmax", 3)
    flagged = only(check("%load_ext foo\ndef softmax(X):\n    return X\n", "softmax"))
    assert (flagged.family, flagged.written, flagged.line) == (DYNAMIC, "%load_ext foo", 1)


def test_the_message_names_the_call_its_line_and_the_rule():
    found = only(check("def stable_softmax(O):\n    O = O - O.max(1, keepdim=True).values\n"
                       "    return F.softmax(O, dim=1)\n", "stable_softmax"))
    assert message(found) == ("stable_softmax uses torch.nn.functional.softmax (`F.softmax` at "
                              "line 3 of its cell): the task asks for it from scratch")
    cells = [GIVEN, "def lse(O):\n    return torch.logsumexp(O, 1, keepdim=True)\n",
             "def log_softmax(O):\n    return O - lse(O)\n"]
    assert message(only(check(None, "log_softmax", cells=cells))) == (
        "log_softmax uses torch.logsumexp through lse (`torch.logsumexp` at line 2 of lse's "
        "cell): the task asks for it from scratch")
    dynamic = only(check("def softmax(X):\n    return getattr(torch, 'soft' + 'max')(X, 1)\n",
                         "softmax"))
    assert message(dynamic) == (
        "softmax cannot be checked statically: `getattr(torch, 'soft' + 'max')` at line 2 of "
        "its cell looks a name up at run time; code the grader cannot read counts as a library "
        "call in a from-scratch function")
    assert all("\n" not in message(v) for v in (found, dynamic))


# torch's own API: every name of a family, in every namespace students reach, is known.
FAMILY_WORDS = re.compile(r"softm(ax|in)|logsumexp|logcumsumexp|logaddexp|cross_?entropy|nll",
                          re.I)


@pytest.mark.parametrize("prefix, namespace", [
    ("torch", torch), ("torch.Tensor", torch.Tensor), ("torch.nn.functional", F),
    ("torch.nn", nn), ("torch.special", torch.special), ("torch.masked", torch.masked),
    ("torch.sparse", torch.sparse), ("torch._C._nn", torch._C._nn),
    ("torch._C._special", torch._C._special)])
def test_every_spelling_in_torch_is_in_a_family(prefix, namespace):
    names = [n for n in dir(namespace) if FAMILY_WORDS.search(n)
             and not re.search(r"poisson|gaussian", n, re.I)]
    assert names, f"{prefix} has no name of a family: the test looks in the wrong place"
    assert [n for n in names if not families_of(f"{prefix}.{n}")] == []


def test_tensor_methods_of_the_families_are_known():
    assert {n for n in dir(torch.Tensor) if families_of(f"torch.Tensor.{n}")} \
        == from_scratch.TENSOR_METHODS


# The run-time recorder, on real calls: (call, families it must map to).
X = torch.randn(6, 4, dtype=torch.float64)
Y = torch.tensor([0, 1, 2, 3, 0, 1])
RUNTIME = [
    (lambda: torch.softmax(X, 1), {"softmax"}),
    (lambda: F.softmax(X, dim=1), {"softmax"}),
    (lambda: X.softmax(1), {"softmax"}),
    (lambda: torch.special.log_softmax(X, 1), {"softmax", "log_softmax"}),
    (lambda: nn.CrossEntropyLoss(reduction="none")(X, Y), {"cross_entropy", "log_softmax"}),
    (lambda: F.nll_loss(X, Y, reduction="none"), {"nll_loss"}),
    (lambda: torch.logsumexp(X, 1), {"logsumexp"}),
    (lambda: X.logsumexp(1), {"logsumexp"}),
    (lambda: torch.distributions.Categorical(logits=X).probs, {"softmax", "logsumexp"}),
    (lambda: exec("torch.soft" + "max(X, 1)", {"torch": torch, "X": X}), {"softmax"}),
    (lambda: getattr(torch, "soft" + "max")(X, 1), {"softmax"}),
    (lambda: torch.ops.aten._softmax(X, 1, False), {"softmax"}),
]


@pytest.mark.parametrize("call, families", RUNTIME)
def test_the_recorder_sees_the_families_a_call_reaches(call, families):
    with watch.recording() as recorder:
        call()
    assert set(families_reached(recorder.names())) == families


def test_the_recorder_maps_the_exercise_ingredients_to_no_family():
    with watch.recording() as recorder:
        shifted = X - X.max(dim=1, keepdim=True).values
        log_p = shifted - torch.log(torch.exp(shifted).sum(dim=1, keepdim=True))
        log_p.gather(1, Y[:, None])
        log_p[range(len(Y)), Y]
        log_p[torch.arange(len(Y)), Y]
        F.one_hot(Y, 4) * log_p
        torch.sum(X.exp(), 1)
        torch.max(X, 1)
    names = recorder.names()
    assert {"torch.exp", "torch.log", "torch.Tensor.max", "torch.Tensor.gather",
            "torch.Tensor.__getitem__", "torch.nn.functional.one_hot"} <= set(names)
    assert families_reached(names) == {}


def test_the_recorder_changes_no_result_and_stops_with_its_block():
    expected = torch.log_softmax(X, 1)
    with watch.recording() as recorder:
        got = torch.log_softmax(X, 1)
    torch.softmax(X, 1)
    assert torch.equal(got, expected)
    assert recorder.names() == ["torch.log_softmax"]
