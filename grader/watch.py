"""Which torch functions a call of the student's code reached: the run-time signal of the
from-scratch rule (grader/from_scratch.py is the static one).

Runs inside the sandbox: copied next to sandbox_child.py, it imports only the standard
library and torch. Everything here is the student's to read and patch, so what it reports
is advisory: the grader maps the names with from_scratch.families_reached and may count
a family seen as a violation, but never takes an empty list as proof of innocence.

    with recording() as recorder:
        result = namespace["stable_softmax"](O)
    names = recorder.names()   # e.g. ["torch.Tensor.max", "torch.exp", ...]

A torch function mode sees every call that goes through torch's function dispatch:
torch.* and torch.special.* functions, Tensor methods and operators (indexing is
torch.Tensor.__getitem__), torch.nn.functional (an nn.Module's forward reaches it),
also when the call was built by exec or getattr. It sees the outermost call only: the
torch calls F.cross_entropy makes inside are not recorded, F.cross_entropy is.

Never leave it on in a timed budget round: every torch call pays a Python-level hook
(several microseconds each; the overhead measured on a [16384, 10] softmax is in
tests/test_from_scratch.py and docs/grading.md).
"""

import contextlib

from torch.overrides import TorchFunctionMode, resolve_name


def qualified_name(function):
    """A stable dotted name for a function torch dispatched, e.g. 'torch.nn.functional.softmax'."""
    try:
        name = resolve_name(function)
    except Exception:  # an object torch cannot name: fall back on its own attributes
        name = None
    if name:
        return name
    module = getattr(function, "__module__", None) or "?"
    return f"{module}.{getattr(function, '__name__', type(function).__name__)}"


class CallRecorder(TorchFunctionMode):
    """A torch function mode that remembers each distinct function called while it is on."""

    def __init__(self):
        super().__init__()
        # {function (or the name of one that cannot be a key): None}, in the order first
        # called; names are resolved only when asked for, to keep the hook cheap.
        self.functions = {}

    def __torch_function__(self, func, types, args=(), kwargs=None):
        try:
            self.functions[func] = None
        except TypeError:
            self.functions[qualified_name(func)] = None
        return func(*args, **(kwargs or {}))

    def names(self):
        """The qualified names of the functions reached, each once, in the order first called."""
        return list(dict.fromkeys(f if isinstance(f, str) else qualified_name(f)
                                  for f in self.functions))


@contextlib.contextmanager
def recording():
    """Record the torch functions called inside the block; yields the CallRecorder."""
    recorder = CallRecorder()
    with recorder:
        yield recorder
