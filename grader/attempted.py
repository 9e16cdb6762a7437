"""Which of a submission's functions are still the release's stubs, and where a
NotImplementedError came from: one answer to "attempted?" for `softgrade check` and
`softgrade grade`.

A function is attempted unless its live definition (the last one the cells make) is
a stub: after an optional docstring (comments are not code), its body is only
`raise NotImplementedError` or `raise NotImplementedError(...)`. A class is a stub
when every one of its methods is. So a function that returns before a leftover
stub line is attempted, and so is a part's written function beside a sibling stub.

When a call raises NotImplementedError, `raised_in` reads the traceback's innermost
frame: a stub there means "still a stub", anything else is the student's own error.
A traceback is what the submission's process reports, so it can say anything; it
only ever names which stub stopped a call, it never makes a function a stub (that
is decided from the source alone).
"""

import ast
import re

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
# The first line of a frame, as IPython 8+ prints it ("Cell In[3], line 2, in f(x)",
# "File /path/m.py:2, in Acc.add(self, *args)") or as Python does ('  File "m.py",
# line 2, in f'). A frame at a cell's top level names no function.
FRAME_HEADER = re.compile(
    r"^(?:Cell In\[\d*\], line \d+|File .+?:\d+|\s*File \".*\", line \d+)"
    r"(?:, in (?P<function>[\w.<>]+))?")


def stub_functions(source):
    """The top-level functions and classes of a cell's `source` that are still stubs.

    IPython syntax (magics, `!` commands) is understood; a cell that does not parse
    defines nothing, so it has no stubs."""
    return {name for name, is_stub in definitions(source).items() if is_stub}


def live_stubs(sources):
    """The stubs among the definitions in force after `sources` (cells) run in order:
    a later definition of a name (`def`, `class`, an assignment, an import) replaces
    an earlier one."""
    live = {}
    for source in sources:
        live.update(definitions(source))
    return {name for name, is_stub in live.items() if is_stub}


def raised_in(traceback):
    """The function in which a traceback's exception was raised: its innermost frame.

    `traceback` is the `traceback` list of a Jupyter error output (IPython's frames,
    ANSI colours included), a list from `traceback.format_exception`, or a Python
    traceback as one text (where a message may hold lines that look like frames).
    The name is as printed: `f`, or `Accumulator.add` for a method (IPython 8+).
    None when the innermost frame is a cell's top level or no frame is found."""
    if isinstance(traceback, str):
        lines = ANSI_ESCAPE.sub("", traceback).splitlines()
    else:
        # Only an entry's first line can be a frame: the lines after it are source
        # code, and an exception's message is an entry of its own.
        lines = [ANSI_ESCAPE.sub("", entry).split("\n", 1)[0] for entry in traceback]
    innermost = None
    for line in lines:
        match = FRAME_HEADER.match(line)
        if match:
            innermost = match.group("function")
    return None if innermost == "<module>" else innermost


def definitions(source):
    """{name: whether it is a stub} of the names `source` binds at its top level: its
    functions and classes, and names it assigns or imports (never stubs)."""
    tree = parse_cell(source)
    if tree is None:
        return {}
    found = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            found.update((t.id, False) for t in targets if isinstance(t, ast.Name))
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found.update(((a.asname or a.name).split(".")[0], False) for a in node.names)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            found[node.name] = is_stub_body(node.body)
        elif isinstance(node, ast.ClassDef):
            methods = [n for n in node.body if isinstance(n, (ast.FunctionDef,
                                                              ast.AsyncFunctionDef))]
            found[node.name] = bool(methods) and all(is_stub_body(m.body) for m in methods)
    return found


def parse_cell(source):
    try:
        return ast.parse(source)
    except SyntaxError:
        pass
    from IPython.core.inputtransformer2 import TransformerManager  # only for magics

    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except (SyntaxError, ValueError):
        return None


def is_stub_body(body):
    """Whether a function body is only `raise NotImplementedError[(...)]`, after an
    optional docstring."""
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        body = body[1:]
    if len(body) != 1 or not isinstance(body[0], ast.Raise) or body[0].cause is not None:
        return False
    raised = body[0].exc
    if isinstance(raised, ast.Call):
        raised = raised.func
    return isinstance(raised, ast.Name) and raised.id == "NotImplementedError"
