"""Code that reaches into the grader: found in the submission's source, by the grader.

Everything in the submission's process is the student's to read and patch, so what the
grader observes there (which request is running, the scenario's call logs, the harness
that checks inputs after a call) could be rewritten by code that goes looking for it.
Honest solutions to this assignment never need to: they do not walk the call stack,
search the garbage collector's objects, touch `sys.modules` or the harness's modules,
patch torch or the builtins, or build code at run time. A notebook that does any of it
is not graded (every part scores 0 and the report names the line), so that hiding a
mistake from the grader costs more than the mistake.
"""

import ast
from dataclasses import dataclass

HARNESS_MODULES = {"protocol", "scenarios", "sandbox_child"}
FRAME_FUNCTIONS = {("sys", "_getframe"), ("sys", "_current_frames"), ("sys", "settrace"),
                   ("sys", "setprofile"), ("inspect", "currentframe"), ("inspect", "stack"),
                   ("inspect", "getouterframes"), ("inspect", "trace"), ("gc", "get_objects"),
                   ("gc", "get_referrers"), ("gc", "get_referents"), ("threading", "settrace"),
                   ("importlib", "import_module"), ("importlib", "reload"),
                   ("traceback", "extract_stack"), ("traceback", "walk_stack"),
                   ("traceback", "format_stack"), ("traceback", "print_stack"),
                   ("traceback", "walk_tb")}
FRAME_ATTRIBUTES = {"f_back", "f_locals", "f_globals", "f_code", "tb_frame", "tb_next",
                    "gi_frame", "cr_frame", "__traceback__", "__closure__", "__globals__",
                    "__builtins__", "__subclasses__"}
DYNAMIC_CODE = {"exec", "eval", "compile", "__import__", "breakpoint"}
PATCHED_MODULES = {"torch", "builtins", "sys", "os", "nn", "F", "functional", "Tensor",
                   "np", "numpy", "math", "random"}
FORBIDDEN_IMPORTS = {"ctypes", "builtins"} | HARNESS_MODULES


@dataclass(frozen=True)
class Signal:
    """One place where the submission's code reaches into the grader."""

    what: str
    """What it does, e.g. 'walks the call stack (sys._getframe)'."""
    cell: str
    """Which cell: 'the cell defining softmax' (its first definition), else 'a cell'."""
    line: int
    """Line within that cell."""

    def __str__(self):
        return f"{self.what} at line {self.line} of {self.cell}"


def dotted(node):
    """'a.b.c' for a Name/Attribute chain, else None."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        return ".".join([node.id, *reversed(parts)])
    return None


def signals_in(source):
    """[Signal] of one cell's code; a cell that does not parse has none (it does not run)."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return []
    found = []
    defined = [n.name for n in tree.body
               if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))]
    cell = f"the cell defining {defined[0]}" if defined else "a cell"

    def flag(node, what):
        found.append(Signal(what, cell, getattr(node, "lineno", 0)))

    for node in ast.walk(tree):
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) \
                else [node.module or ""]
            for name in names:
                root = name.split(".")[0]
                if root in FORBIDDEN_IMPORTS:
                    flag(node, f"imports {name}")
        elif isinstance(node, ast.Call):
            name = dotted(node.func)
            if name in DYNAMIC_CODE:
                flag(node, f"builds code at run time ({name})")
            elif name == "setattr" and node.args and dotted(node.args[0]) and \
                    dotted(node.args[0]).split(".")[0] in PATCHED_MODULES:
                flag(node, f"patches {dotted(node.args[0])} (setattr)")
            elif name and tuple(name.rsplit(".", 1)[-2:]) in FRAME_FUNCTIONS:
                flag(node, f"reaches into the running program ({name})")
        elif isinstance(node, ast.Attribute):
            if node.attr in FRAME_ATTRIBUTES:
                flag(node, f"reads the interpreter's internals (.{node.attr})")
            elif node.attr == "modules" and dotted(node) == "sys.modules":
                flag(node, "reads sys.modules")
        elif isinstance(node, (ast.Assign, ast.AugAssign, ast.Delete)):
            targets = node.targets if isinstance(node, (ast.Assign, ast.Delete)) \
                else [node.target]
            for target in targets:
                name = dotted(target) if isinstance(target, ast.Attribute) else None
                if name and name.split(".")[0] in PATCHED_MODULES:
                    flag(node, f"patches {name}")
        elif isinstance(node, ast.Constant) and node.value in HARNESS_MODULES:
            flag(node, f"names the grader's module {node.value!r}")
    return found


def find_signals(cells, trusted=()):
    """[Signal] over the cells the grader runs; `trusted` cells (the instructor's given
    cells, restored from the source notebook) are not the student's and are skipped."""
    trusted = set(trusted)
    return [signal for source in cells if source not in trusted for signal in signals_in(source)]
