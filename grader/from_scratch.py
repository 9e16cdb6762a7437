"""The from-scratch rule, checked from the submission's code: which library softmax,
log-softmax, log-sum-exp, cross-entropy and NLL functions a graded function can reach.

Runs in the grader, on the code cells it sends to the child (never inside the child):

    violations = find_violations(code.cells, {f: PARTS[p].forbidden[f] ...})
    for v in violations["stable_softmax"]: print(message(v))

Names are resolved as Python resolves them once every cell has run (a later
definition replaces an earlier one): imports and their aliases, star imports,
module-level and local aliases, `functools.partial`, attribute access by a literal
string (`getattr(torch, "softmax")`, `F.__dict__["softmax"]`), and method calls on
objects the analysis cannot type (`X.softmax(1)` is taken for Tensor.softmax). Only
code the graded function can reach counts: its body, and transitively the student's
functions, classes, lambdas and module-level values it names (the student's own
helpers are fine when they are from scratch too). What cannot be resolved statically
(a name built at run time, eval, exec, a namespace read by a computed key) is reported
in the family DYNAMIC; so is code at the top level of the notebook that could redefine
a graded function at run time (exec, writes to globals(), setattr on a module, ...).

The run-time recorder (grader/watch.py, in the child) is a second, advisory signal:
`families_reached` maps the names it reports with the same rules as `families_of`.
"""

import ast
import builtins
import re
from collections import deque
from dataclasses import dataclass, field, replace
from functools import partial

DYNAMIC = "dynamic"
"""The family of code that cannot be checked statically; a violation in a from-scratch function."""
TOP_LEVEL = "<top level>"
"""First element of a Violation's chain for code the notebook runs at its top level."""

# Each family by the name fragments that spell it; every component of a library name after
# its root is tried, so torch.nn.functional.softmax, torch.ops.aten._softmax.default,
# torch._C._special.special_log_softmax and scipy.special.logsumexp are all found.
# A categorical cross-entropy computes a log-softmax too (so it may not stand in for one).
NAME_FAMILIES = (
    (re.compile(r"binary_cross_?entropy", re.I), ("cross_entropy",)),
    (re.compile(r"cross_?entropy", re.I), ("cross_entropy", "log_softmax")),
    (re.compile(r"nll_?loss", re.I), ("nll_loss",)),
    (re.compile(r"log_?softmax", re.I), ("log_softmax", "softmax")),
    (re.compile(r"soft_?m(ax|in)", re.I), ("softmax",)),
    (re.compile(r"log_?(cum)?sum_?exp|logaddexp", re.I), ("logsumexp",)),
)
NOT_CATEGORICAL = re.compile(r"poisson|gaussian", re.I)  # regression losses named *_nll_loss
# torch objects whose names do not say that they compute one of the families.
DISTRIBUTION = ("softmax", "log_softmax", "logsumexp")  # they normalise their logits
TORCH_COMPUTES = {
    **dict.fromkeys(("Categorical", "OneHotCategorical", "OneHotCategoricalStraightThrough",
                     "RelaxedOneHotCategorical", "ExpRelaxedCategorical", "Multinomial",
                     "logits_to_probs"), DISTRIBUTION),
    **dict.fromkeys(("scaled_dot_product_attention", "multi_head_attention_forward",
                     "MultiheadAttention", "flex_attention"), ("softmax",)),
    **dict.fromkeys(("kl_div", "KLDivLoss"), ("nll_loss", "cross_entropy")),  # one-hot target
}
# Tensor methods of the families (tests/test_from_scratch.py checks them against torch).
TENSOR_METHODS = frozenset({"softmax", "log_softmax", "logsumexp", "logcumsumexp", "logaddexp",
                            "logaddexp2"})

RUNS_CODE = "runs code built at run time"
LOOKS_UP = "looks a name up at run time"
FINDS_OBJECTS = "finds objects without naming them"
NAMESPACE = "reads or writes a namespace by name"

# Library names that run or find code the analysis cannot read: {name: (why, could it
# redefine a graded function)}. A name matches itself and everything under it. Only what
# defines names counts at the top level, where honest notebooks also profile, time, load
# checkpoints and collect garbage.
DEFINES_NAMES = ("builtins.eval", "builtins.exec", "builtins.compile", "builtins.get_ipython",
                 "IPython.get_ipython", "IPython.core.getipython",
                 "IPython.core.interactiveshell", "IPython.InteractiveShell", "IPython.embed",
                 "importlib", "zipimport", "runpy", "code", "codeop", "types.FunctionType",
                 "types.CodeType", "types.LambdaType", "ctypes", "cffi")
RUNS_STRINGS = ("pkgutil", "pickle", "marshal", "shelve", "dill", "cloudpickle", "torch.load",
                "torch.serialization", "torch.hub", "torch.jit.CompilationUnit",
                "torch.utils.cpp_extension", "timeit", "doctest", "pdb", "bdb", "profile",
                "cProfile", "trace")
FINDS = ("gc", "sys._getframe", "inspect.currentframe", "inspect.stack", "inspect.trace",
         "inspect.getouterframes")
LOOKS_UP_NAMES = ("inspect.getmembers", "inspect.getmembers_static", "inspect.getattr_static",
                  "inspect.get_annotations", "typing.get_type_hints", "torch.overrides",
                  "torch.utils._python_dispatch")
SUBPROCESSES = ("subprocess", "os.system", "os.popen", "os.execv", "os.execve", "os.execl",
                "os.spawnv", "os.posix_spawn")
ALWAYS_DYNAMIC = {**dict.fromkeys(DEFINES_NAMES, (RUNS_CODE, True)),
                  **dict.fromkeys(RUNS_STRINGS, (RUNS_CODE, False)),
                  **dict.fromkeys(FINDS, (FINDS_OBJECTS, False)),
                  **dict.fromkeys(LOOKS_UP_NAMES, (LOOKS_UP, False)),
                  **dict.fromkeys(SUBPROCESSES, ("runs another program", False))}
HIDES_CALLS = re.compile(r"torch_?function", re.I)  # switching off the run-time recorder
# Dynamic only when not in the literal form the analysis resolves (getattr(x, "name"), ...):
# {name: could it, named bare, redefine a graded function}.
BARE_DYNAMIC = {"builtins.getattr": False, "operator.attrgetter": False,
                "operator.methodcaller": False, "builtins.vars": True, "builtins.globals": True,
                "builtins.locals": True, "builtins.__import__": True,
                "importlib.import_module": True, "builtins.setattr": True,
                "builtins.delattr": True}
LITERAL_FORMS = frozenset(BARE_DYNAMIC) | {"functools.partial"}
GETATTR_DUNDERS = frozenset({"__getattribute__", "__getattr__"})
GLOBALS_OF = frozenset({"__globals__", "f_globals", "func_globals"})  # a module's namespace
MUTATORS = frozenset({"append", "extend", "insert", "update", "setdefault", "__setitem__", "add",
                      "appendleft"})
CODE_DUNDERS = frozenset({"__code__", "__globals__", "__defaults__", "__kwdefaults__",
                          "__closure__", "__dict__", "__call__", "__builtins__"})
NOT_BUILTINS = {"__builtins__": "builtins", "get_ipython": "builtins.get_ipython"}


@dataclass(frozen=True)
class Violation:
    """One library call a from-scratch function may not make, or code that cannot be checked."""

    function: str
    """The graded function, e.g. 'stable_softmax'."""
    written: str
    """The expression as the student wrote it, e.g. 'F.softmax' (one line, shortened)."""
    resolved: str
    """What it resolves to, e.g. 'torch.nn.functional.softmax'; for DYNAMIC, why it cannot."""
    family: str
    """Its family: one of manifest.ALL_FAMILIES, or DYNAMIC."""
    cell: int
    """Index of the cell (in the list given to find_violations) where it is written."""
    line: int
    """Line within that cell, from 1."""
    chain: tuple[str, ...]
    """How it is reached: the graded function (or TOP_LEVEL), then the student's helpers."""


def families_of(name):
    """The families a library object computes, from its qualified name; () for none."""
    root, *rest = name.split(".")
    for component in rest or [root]:
        if root == "torch" and component in TORCH_COMPUTES:
            return TORCH_COMPUTES[component]
        for pattern, families in NAME_FAMILIES:
            if pattern.search(component) and not NOT_CATEGORICAL.search(component):
                return families
    return ()


def families_reached(names):
    """{family: [names]} of the torch function names the run-time recorder reported."""
    reached = {}
    for name in names:
        for family in families_of(name):
            reached.setdefault(family, []).append(name)
    return reached


def dynamic_reason(name):
    """(why, could redefine a graded function) for a library name that runs or looks up
    code the analysis cannot read, or None."""
    for prefix, reason in ALWAYS_DYNAMIC.items():
        if name == prefix or name.startswith(prefix + "."):
            return reason
    if any(HIDES_CALLS.search(component) for component in name.split(".")[1:]):
        return "switches off torch's function hooks (the grader's run-time check)", False
    return None


# What a name or expression can be.

@dataclass(eq=False)
class Scope:
    """A namespace of the submission: the module, a function's locals, or a class body."""

    kind: str
    """'module', 'function' or 'class'."""
    parent: "Scope | None"
    """Where names not bound here are looked up (a method's parent skips its class)."""
    names: dict = field(default_factory=dict)
    """{name: [Binding]}; the module's in the order the cells bind them."""


@dataclass(eq=False)
class Binding:
    """One statement that binds a name."""

    name: str
    """The name bound."""
    kind: str
    """import, star, def, class, assign, param, self or other."""
    node: ast.AST
    """The defining node: the def or class, the import statement, the assigned expression."""
    scope: Scope
    """The scope it binds in (an assigned expression is resolved there)."""
    cell: int
    """Index of its cell."""
    target: str = ""
    """import and star: the library name; self: unused."""
    value: ast.expr | None = None
    """assign: the expression bound to the name."""
    owner: "Binding | None" = None
    """self: the class whose instance the first parameter of a method is."""
    conditional: bool = False
    """Bound inside an if, loop, try or the like: it may not replace the previous binding."""
    order: float = 0
    """Position in the notebook, for the module's bindings."""


@dataclass(frozen=True)
class Lib:
    """A library object (module, function, class, attribute) by its qualified name."""

    path: str
    shown: bool = False  # already reported where it is written (a local alias)


@dataclass(frozen=True)
class Own:
    """Something the student defined: followed when reached."""

    binding: Binding


@dataclass(frozen=True)
class Instance:
    """An instance of one of the student's classes."""

    cls: Binding


@dataclass(frozen=True)
class Namespace:
    """A namespace as a mapping (F.__dict__, vars(x), globals(), sys.modules)."""

    kind: str  # attributes, globals, locals or modules
    of: tuple = ()
    scope: Scope | None = None


@dataclass(frozen=True)
class Dynamic:
    """Something the analysis cannot resolve."""

    why: str
    rebinds: bool
    shown: bool = False


class Unknown:
    """Any other value: a parameter, a call's result, a tensor."""


UNKNOWN = Unknown()


def shown(value):
    return replace(value, shown=True) if isinstance(value, (Lib, Dynamic)) else value


def literal(node):
    """The string of a literal string node, else None."""
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


# Cell magics whose body runs as Python in the user's namespace, and those that run no
# Python there (they define nothing); any other runs code the analysis cannot read.
PYTHON_CELL_MAGICS = frozenset({"time", "capture", "prun"})
FOREIGN_CELL_MAGICS = frozenset({"bash", "sh", "script", "html", "HTML", "javascript", "js",
                                 "latex", "markdown", "svg", "perl", "ruby", "sx", "system",
                                 "python", "python2", "python3", "pypy", "timeit"})
# Line magics that cannot define or replace a name of the notebook.
HARMLESS_LINE_MAGICS = frozenset({"matplotlib", "config", "pip", "conda", "who", "whos",
                                  "who_ls", "pwd", "ls", "cd", "env", "precision", "pprint",
                                  "xmode", "autoreload", "history", "lsmagic", "magic", "tb",
                                  "pdb", "colors", "page", "clear", "pinfo", "pinfo2",
                                  "psearch", "timeit"})
HELP_LINE = re.compile(r"^\??[\w.]+\??\?$")


def parse_cell(source):
    """(tree or None, the Python source parsed). IPython syntax (magics, shell escapes) is
    translated line for line, so line numbers stay the student's; a cell that does not
    parse defines nothing (the child's shell cannot run it either)."""
    try:
        return ast.parse(source), source
    except SyntaxError:
        python = translate_magics(source)
    except (RecursionError, MemoryError, ValueError):
        return None, source
    if python is None:
        return None, source
    try:
        return ast.parse(python), python
    except (SyntaxError, RecursionError, MemoryError, ValueError):
        return None, source


def translate_magics(source):
    """The cell as Python: `%time x` -> `x`, harmless magics and `!cmd` -> `pass`, any other
    magic -> a get_ipython() call (which the analysis cannot follow); None for a cell
    magic that runs no Python in the notebook's namespace."""
    lines = source.split("\n")
    first = lines[0].strip()
    if first.startswith("%%"):
        magic = first[2:].split(maxsplit=1)[0] if first[2:].strip() else ""
        if magic in FOREIGN_CELL_MAGICS:
            return None
        if magic not in PYTHON_CELL_MAGICS:
            return f"get_ipython().run_cell_magic({magic!r}, '', '')" + "\n" * len(lines)
        lines[0] = ""
    return "\n".join(translate_line(line) for line in lines)


def translate_line(line):
    stripped = line.lstrip()
    indent = line[:len(line) - len(stripped)]
    if stripped.startswith("!") or HELP_LINE.match(stripped):
        return indent + "pass"
    if not stripped.startswith("%"):
        return line
    magic, _, rest = stripped.lstrip("%").partition(" ")
    if magic == "time" and rest.strip():
        return indent + rest.strip()
    if magic in HARMLESS_LINE_MAGICS or (magic == "load_ext" and rest.strip() == "autoreload"):
        return indent + "pass"
    return indent + f"get_ipython().run_line_magic({magic!r}, {rest!r})"


# Which names a statement binds.

def binder(scope, cell, **fixed):
    """The `make` that statement_bindings calls: a Binding in `scope`, from `cell`."""
    def make(name, kind, node, **extra):
        return Binding(name, kind, node, scope, cell, **{**fixed, **extra})
    return make


def target_bindings(target, value, make):
    """Bindings of an assignment target; tuples are paired with tuple values."""
    if isinstance(target, ast.Name):
        yield make(target.id, "assign", value, value=value)
    elif isinstance(target, ast.Starred):
        yield from target_bindings(target.value, value, make)
    elif isinstance(target, (ast.Tuple, ast.List)):
        pairs = isinstance(value, (ast.Tuple, ast.List)) and len(value.elts) == len(target.elts) \
            and not any(isinstance(e, ast.Starred) for e in target.elts + value.elts)
        for i, element in enumerate(target.elts):
            yield from target_bindings(element, value.elts[i] if pairs else value, make)


def statement_bindings(stmt, make, conditional=False):
    """Bindings made by a statement, and by the statements inside it (conditional ones
    inside if, loops, try handlers and match); never inside nested functions or classes."""
    def bind(name, kind, node, **extra):
        return make(name, kind, node, conditional=conditional, **extra)

    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
        yield bind(stmt.name, "def", stmt)
    elif isinstance(stmt, ast.ClassDef):
        yield bind(stmt.name, "class", stmt)
    elif isinstance(stmt, ast.Import):
        for alias in stmt.names:
            top = alias.name.split(".")[0]
            yield bind(alias.asname or top, "import", stmt,
                       target=alias.name if alias.asname else top)
    elif isinstance(stmt, ast.ImportFrom):
        module = "." * stmt.level + (stmt.module or "")
        for alias in stmt.names:
            if alias.name == "*":
                yield bind("*", "star", stmt, target=module)
            else:
                yield bind(alias.asname or alias.name, "import", stmt,
                           target=f"{module}.{alias.name}")
    elif isinstance(stmt, ast.AugAssign):  # x += v: x may still be what it was, too
        yield from target_bindings(stmt.target, stmt.value, partial(make, conditional=True))
    elif isinstance(stmt, (ast.Assign, ast.AnnAssign)) and stmt.value is not None:
        for target in stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]:
            yield from target_bindings(target, stmt.value, bind)
    elif isinstance(stmt, (ast.For, ast.AsyncFor)):
        yield from target_bindings(stmt.target, stmt.iter, bind)
    elif isinstance(stmt, (ast.With, ast.AsyncWith)):
        for item in stmt.items:
            if item.optional_vars is not None:
                yield from target_bindings(item.optional_vars, item.context_expr, bind)
    elif isinstance(stmt, ast.ExceptHandler) and stmt.name:
        yield bind(stmt.name, "other", stmt)
    for node in walrus_and_captures(stmt):
        if isinstance(node, ast.NamedExpr):
            yield make(node.target.id, "assign", node.value, value=node.value, conditional=True)
        else:
            yield make(node.name, "other", node, conditional=True)
    for name, inner in nested_statements(stmt):
        keeps_flow = name in ("body", "finalbody") and isinstance(
            stmt, (ast.With, ast.AsyncWith, ast.Try, ast.TryStar))
        for child in inner:
            yield from statement_bindings(child, make, conditional or not keeps_flow)


def nested_statements(stmt):
    """(field, statements) of a compound statement (not of functions or classes)."""
    if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return
    for name in ("body", "orelse", "finalbody", "handlers", "cases"):
        inner = getattr(stmt, name, None)
        if isinstance(inner, list) and inner and isinstance(inner[0], (ast.stmt, ast.excepthandler,
                                                                        ast.match_case)):
            yield name, [s for c in inner for s in ([c] if not isinstance(c, ast.match_case)
                                                    else c.body)]


def walrus_and_captures(stmt):
    """NamedExpr nodes and match captures in a statement's own expressions."""
    stack = [child for name, child in ast.iter_fields(stmt)
             if name not in ("body", "orelse", "finalbody", "handlers")]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, (ast.NamedExpr, ast.MatchAs, ast.MatchStar)):
            if isinstance(node, ast.NamedExpr) or node.name:
                yield node
            stack.extend(ast.iter_child_nodes(node))
        elif isinstance(node, ast.AST) and not isinstance(node, (ast.Lambda, ast.stmt)):
            stack.extend(ast.iter_child_nodes(node))


# The program: every cell, and the module namespace after they all ran.

class Program:
    """The submission's cells, parsed, with its module scope and lazily built local scopes."""

    def __init__(self, cells):
        parsed = [parse_cell(source) for source in cells]
        self.trees = [tree for tree, _ in parsed]
        self.sources = [source for _, source in parsed]
        self.written_lines = [source.split("\n") for source in cells]
        self.module = Scope("module", None)
        self.scopes = {}  # id(function, lambda or class node) -> Scope
        self.cell_of = {}  # id(def or class node) -> cell
        self.final = {}  # name -> its module_bindings
        for cell, tree in enumerate(self.trees):
            if tree is None:
                continue
            for position, stmt in enumerate(tree.body):
                make = binder(self.module, cell, order=cell * 1e6 + position)
                for binding in statement_bindings(stmt, make):
                    self.module.names.setdefault(binding.name, []).append(binding)
            for node in ast.walk(tree):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef,
                                     ast.Lambda)):
                    self.cell_of[id(node)] = cell
        self.bind_global_declarations()
        self.stores = {}  # module-level name -> [Binding] of values stored into it
        for cell, tree in enumerate(self.trees):
            if tree is not None:
                self.collect_stores(tree.body, self.module, cell)

    def collect_stores(self, body, scope, cell):
        """Values stored into a module-level object (`box.f = F.softmax`, `OPS["sm"] = ...`,
        `FUNCS.append(...)`, `setattr(torch, "mine", ...)`), anywhere in the notebook: a use
        of the object reaches them."""
        local = set(scope.names) if scope.kind == "function" else set()
        for node in own_nodes(body):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                inner = self.build_function_scope(node, self.module, None)
                self.collect_stores(node.body, inner, cell)
                continue
            for target, value in stored_values(node):
                root = root_name(target)
                if root is not None and root not in local:
                    label = ast.get_source_segment(self.sources[cell], target) or root
                    self.stores.setdefault(root, []).append(
                        Binding(label.split("\n")[0][:40], "store", value, scope, cell))

    def written(self, cell, node):
        """The source of `node` as the student wrote it (a translated magic: its line)."""
        if not 0 <= cell < len(self.sources) or not hasattr(node, "lineno"):
            return None
        python_line = self.sources[cell].split("\n")[node.lineno - 1]
        student_line = self.written_lines[cell][node.lineno - 1]
        if python_line != student_line:
            return student_line
        return ast.get_source_segment(self.sources[cell], node)

    def bind_global_declarations(self):
        """A function's `global x; x = ...` may rebind x whenever it is called."""
        for cell, tree in enumerate(self.trees):
            for node in ast.walk(tree) if tree is not None else ():
                if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                declared = {name for stmt in ast.walk(node) if isinstance(stmt, ast.Global)
                            for name in stmt.names}
                if not declared:
                    continue
                make = binder(self.build_function_scope(node, self.module, None), cell)
                for stmt in node.body:
                    for binding in statement_bindings(stmt, make):
                        if binding.name in declared:
                            self.module.names.setdefault(binding.name, []).append(
                                replace(binding, conditional=True, order=float("inf")))

    def module_bindings(self, name):
        """The bindings `name` can have once every cell ran: the last unconditional one and
        every conditional one after it; a star import counts where it exports a family."""
        if name not in self.final:
            self.final[name] = self.final_bindings(name)
        return self.final[name]

    def final_bindings(self, name):
        events = list(self.module.names.get(name, []))
        for star in self.module.names.get("*", []):
            path = f"{star.target}.{name}"
            if families_of(path) or dynamic_reason(path):
                events.append(replace(star, name=name, target=path))
        current = []
        for binding in sorted(events, key=lambda b: b.order):
            current = current + [binding] if binding.conditional else [binding]
        return current

    def function_scope(self, node, parent, method_of):
        """The local scope of a def or lambda, built once."""
        if id(node) not in self.scopes:
            self.scopes[id(node)] = self.build_function_scope(node, parent, method_of)
        return self.scopes[id(node)]

    def build_function_scope(self, node, parent, method_of):
        """The local scope of a def or lambda: every name it binds, flow-insensitively."""
        scope = Scope("function", parent)
        make = binder(scope, self.cell_of.get(id(node), -1))
        args = node.args
        positional = args.posonlyargs + args.args
        static = any(isinstance(d, ast.Name) and d.id == "staticmethod"
                     for d in getattr(node, "decorator_list", []))
        for arg in positional + args.kwonlyargs + [a for a in (args.vararg, args.kwarg) if a]:
            is_self = method_of is not None and not static and positional and arg is positional[0]
            binding = make(arg.arg, "self" if is_self else "param", arg,
                           owner=method_of if is_self else None)
            scope.names.setdefault(arg.arg, []).append(binding)
        body = node.body if isinstance(node.body, list) else []
        outside = {name for stmt in body for inner in ast.walk(stmt)
                   if isinstance(inner, (ast.Global, ast.Nonlocal)) for name in inner.names}
        for stmt in body:
            for binding in statement_bindings(stmt, make):
                if binding.name not in outside:
                    scope.names.setdefault(binding.name, []).append(binding)
        for target in comprehension_targets(node):
            if target.id not in outside:
                scope.names.setdefault(target.id, []).append(make(target.id, "other", target))
        if isinstance(node, ast.Lambda):
            for walrus in (n for n in ast.walk(node.body) if isinstance(n, ast.NamedExpr)):
                scope.names.setdefault(walrus.target.id, []).append(
                    make(walrus.target.id, "other", walrus))
        return scope

    def class_scope(self, node, parent):
        if id(node) not in self.scopes:
            scope = Scope("class", parent)
            make = binder(scope, self.cell_of.get(id(node), -1))
            for stmt in node.body:
                for binding in statement_bindings(stmt, make):
                    scope.names.setdefault(binding.name, []).append(binding)
            self.scopes[id(node)] = scope
        return self.scopes[id(node)]


def own_nodes(body):
    """Every node of a block, without descending into the functions and lambdas it defines
    (those are yielded, not entered)."""
    stack = list(reversed(body))
    while stack:
        node = stack.pop()
        yield node
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            stack.extend(reversed(list(ast.iter_child_nodes(node))))


def stored_values(node):
    """(target, value) pairs a node stores into an object rather than binding a name."""
    if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)) and node.value is not None:
        targets = node.targets if isinstance(node, ast.Assign) else [node.target]
        for target in targets:
            for element in ast.walk(target):
                if isinstance(element, (ast.Attribute, ast.Subscript)) \
                        and isinstance(element.ctx, ast.Store):
                    yield element, node.value
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) \
            and node.func.attr in MUTATORS:
        for value in node.args + [k.value for k in node.keywords]:
            yield node.func.value, value
    elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) \
            and node.func.id == "setattr" and len(node.args) == 3:
        yield node.args[0], node.args[2]


def root_name(node):
    """The name an attribute, subscript or call chain starts from (`a` of a.b[0].c())."""
    while isinstance(node, (ast.Attribute, ast.Subscript, ast.Call)):
        node = node.func if isinstance(node, ast.Call) else node.value
    return node.id if isinstance(node, ast.Name) else None


def comprehension_targets(function):
    """Names bound by the comprehensions of a function (not of nested functions)."""
    stack = list(ast.iter_child_nodes(function))
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda)):
            continue
        if isinstance(node, ast.comprehension):
            yield from (n for n in ast.walk(node.target) if isinstance(n, ast.Name))
        stack.extend(ast.iter_child_nodes(node))


# Resolution: what an expression can be, reaching the student's code on the way.

MAX_RESOLUTIONS = 5_000  # per search; the source notebook and the book need under 200


class TooComplex(Exception):
    """Aliases so intertwined (or nested so deeply) that resolving them would not end soon."""


class Resolver:
    """Resolves names and expressions; calls `reach(binding)` for each of the student's
    definitions a resolution passes through, so the walk can follow it."""

    def __init__(self, program, reach):
        self.program = program
        self.reach = reach
        self.active = set()  # bindings being resolved (a = b; b = a)
        self.cycles_cut = 0  # how often a binding being resolved was met again
        self.steps = 0  # bindings resolved (cycles of aliases are not remembered)
        self.memo = {}  # id(binding) -> its values
        self.members_cache = {}

    def lookup(self, name, scope):
        while scope is not None and scope.kind != "module":
            if name in scope.names:
                return self.values_of(scope.names[name])
            scope = scope.parent
        return self.module_values(name)

    def module_values(self, name):
        for store in self.program.stores.get(name, ()):
            self.reach(store)
        bindings = self.program.module_bindings(name)
        if bindings:
            return self.values_of(bindings)
        if name in NOT_BUILTINS:
            return [Lib(NOT_BUILTINS[name])]
        if hasattr(builtins, name):
            return [Lib(f"builtins.{name}")]
        return [UNKNOWN]

    def values_of(self, bindings):
        values = []
        for binding in bindings:
            if id(binding) in self.memo:
                values += self.memo[id(binding)]
            elif id(binding) in self.active:
                self.cycles_cut += 1
                values.append(UNKNOWN)
            else:
                values += self.resolve_binding(binding)
        return list(dict.fromkeys(values))

    def resolve_binding(self, binding):
        """A binding's values, remembered unless a cycle cut them short."""
        self.steps += 1
        if self.steps > MAX_RESOLUTIONS:
            raise TooComplex()
        cut_before = self.cycles_cut
        self.active.add(id(binding))
        try:
            values = self.binding_values(binding)
        finally:
            self.active.discard(id(binding))
        if self.cycles_cut == cut_before:
            self.memo[id(binding)] = values
        return values

    def binding_values(self, binding):
        kind = binding.kind
        if kind in ("import", "star"):
            return [Lib(binding.target)]
        if kind in ("def", "class"):
            self.reach(binding)
            return [Own(binding)]
        if kind == "self":
            return [Instance(binding.owner)]
        if kind != "assign":
            return [UNKNOWN]
        values = self.resolve(binding.value, binding.scope)
        if binding.scope.kind == "function" and binding.order != float("inf"):
            return [shown(v) for v in values]  # written in the body, which the walk reads
        if is_alias(binding.value):
            return values  # reported where it is used
        self.reach(binding)  # walked as code of its own, which reports what it holds
        return [Own(binding)] + [shown(v) for v in values]

    def resolve(self, node, scope):
        """What an expression can be, each value once (x2 = x1 if c else x1 ... stays small)."""
        return list(dict.fromkeys(self.resolve_expression(node, scope)))

    def resolve_expression(self, node, scope):
        if isinstance(node, ast.Name):
            return self.lookup(node.id, scope)
        if isinstance(node, ast.Attribute):
            return [v for base in self.resolve(node.value, scope)
                    for v in self.attribute(base, node.attr)]
        if isinstance(node, ast.Call):
            return self.resolve_call(node, scope)
        if isinstance(node, ast.Subscript):
            return self.resolve_subscript(node, scope)
        if isinstance(node, ast.NamedExpr):
            return self.resolve(node.value, scope)
        if isinstance(node, ast.IfExp):
            return self.resolve(node.body, scope) + self.resolve(node.orelse, scope)
        if isinstance(node, ast.BoolOp):
            return [v for operand in node.values for v in self.resolve(operand, scope)]
        return [UNKNOWN]

    def attribute(self, value, attr):
        """What `value.attr` can be."""
        if attr in GETATTR_DUNDERS or attr == "__subclasses__":  # classes found by name
            return [Dynamic(LOOKS_UP, False)]
        if attr == "__dict__":
            return [Namespace("attributes", (value,))]
        if attr in GLOBALS_OF:
            return [Namespace("globals")]
        if attr in ("f_locals", "f_builtins", "__builtins__"):
            return [Dynamic(NAMESPACE, True)]
        if isinstance(value, Namespace):  # ns.update(...), ns.items(), ...
            return [Dynamic(NAMESPACE, True)] if can_rebind(value) else [UNKNOWN]
        if isinstance(value, Dynamic):
            return [value]
        if isinstance(value, Lib):
            if value.path == "__main__":
                return self.module_values(attr)
            if value.path == "sys" and attr == "modules":
                return [Namespace("modules")]
            return [Lib(f"{value.path}.{attr}")]
        if isinstance(value, Own) and value.binding.kind == "assign":
            return []  # what the assigned value is comes with it (shown, Instance, ...)
        cls = value.cls if isinstance(value, Instance) else \
            value.binding if isinstance(value, Own) and value.binding.kind == "class" else None
        if cls is not None and attr in self.members(cls):
            return []  # the class is walked as a whole once reached
        return method_guess(attr)

    def members(self, cls):
        """Names a student's class (and its student bases) defines, self.x included."""
        if id(cls) in self.members_cache:
            return self.members_cache[id(cls)]
        self.members_cache[id(cls)] = names = set()
        node = cls.node
        names.update(self.program.class_scope(node, cls.scope).names)
        for inner in ast.walk(node):
            if isinstance(inner, ast.Attribute) and isinstance(inner.ctx, ast.Store):
                names.add(inner.attr)
        for base in node.bases:
            for value in self.resolve(base, cls.scope):
                if isinstance(value, Own) and value.binding.kind == "class":
                    names |= self.members(value.binding)
        return names

    def resolve_call(self, node, scope):
        values = []
        for function in self.resolve(node.func, scope):
            values += self.call_result(function, node, scope)
        if isinstance(node.func, ast.Attribute):
            values += self.method_form(node, scope)
        return values or [UNKNOWN]

    def call_result(self, function, node, scope):
        """What calling `function` (one value of node.func) gives."""
        args = node.args
        if isinstance(function, Own) and function.binding.kind == "class":
            return [Instance(function.binding)]
        if not isinstance(function, Lib) or function.path not in LITERAL_FORMS:
            return [UNKNOWN]
        path, first = function.path, args[0] if args else None
        name = literal(args[1]) if len(args) > 1 else None
        if path == "builtins.getattr":
            bases = self.resolve(first, scope)
            if name is not None:
                return [v for base in bases for v in self.attribute(base, name)]
            # an instance of the student's class holds only what visible code stored in it
            return [UNKNOWN] if bases and all(isinstance(b, Instance) for b in bases) \
                else [Dynamic(LOOKS_UP, False)]
        if path == "builtins.vars":
            return [Namespace("attributes", tuple(self.resolve(first, scope)))] if args \
                else [Namespace("locals", scope=scope)]
        if path in ("builtins.globals", "builtins.locals"):
            return [Namespace(path.split(".")[1], scope=scope)]
        if path in ("builtins.__import__", "importlib.import_module"):
            module = literal(first) if first is not None else None
            return [Lib(module)] if module else [Dynamic(RUNS_CODE, True)]
        if path in ("operator.attrgetter", "operator.methodcaller"):
            attr = literal(first) if first is not None else None
            return method_guess(attr.split(".")[-1]) if attr else [Dynamic(LOOKS_UP, False)]
        if path == "functools.partial":
            return self.resolve(first, scope) if first is not None else [UNKNOWN]
        # setattr / delattr: a literal name on a named object is a store the walk follows
        # (Program.stores); on the notebook's own namespace, or by a computed name on a module
        # or function, it may replace anything
        targets = self.resolve(first, scope) if first is not None else []
        if any(isinstance(t, Lib) and t.path in ("__main__", "builtins") for t in targets) \
                or name in CODE_DUNDERS:
            return [Dynamic("sets an attribute of the notebook's namespace", True)]
        if name is not None and isinstance(first, ast.Name):
            return [UNKNOWN]
        if any(isinstance(t, (Lib, Dynamic)) or isinstance(t, Namespace) and can_rebind(t)
               or isinstance(t, Own) and t.binding.kind in ("def", "class") for t in targets):
            return [Dynamic("sets an attribute of a module or function", True)]
        return [UNKNOWN]

    def method_form(self, node, scope):
        """x.__getattribute__("name"), object.__getattribute__(x, "name"), ns.get("name")."""
        func, args = node.func, node.args
        receiver = self.resolve(func.value, scope)
        if func.attr in GETATTR_DUNDERS:
            on_type = any(isinstance(v, Lib) and v.path in ("builtins.object", "builtins.type")
                          for v in receiver)
            if on_type and args:
                receiver, args = self.resolve(args[0], scope), args[1:]
            name = literal(args[0]) if args else None
            if name is None:
                return [Dynamic(LOOKS_UP, False)]
            return [v for base in receiver for v in self.attribute(base, name)]
        namespaces = [v for v in receiver if isinstance(v, Namespace)]
        if func.attr == "get" and namespaces:
            key = literal(args[0]) if args else None
            if key is None:
                return [Dynamic(LOOKS_UP, False)]
            return [v for ns in namespaces for v in self.namespace_entry(ns, key)]
        return []

    def resolve_subscript(self, node, scope):
        values = []
        for base in self.resolve(node.value, scope):
            if not isinstance(base, Namespace):
                continue
            key = literal(node.slice)
            if key is not None:
                values += self.namespace_entry(base, key)
            elif can_rebind(base):
                values.append(Dynamic(LOOKS_UP, False))
        return values or [UNKNOWN]

    def namespace_entry(self, namespace, key):
        if namespace.kind == "attributes":
            return [v for base in namespace.of for v in self.attribute(base, key)]
        if namespace.kind == "globals":
            return self.module_values(key)
        if namespace.kind == "locals":
            return self.lookup(key, namespace.scope)
        return [Lib(key)]  # sys.modules


def can_rebind(namespace):
    """Whether writing to a namespace could replace a function of the notebook (an instance's
    own __dict__ cannot)."""
    return namespace.kind != "attributes" or not all(isinstance(v, Instance)
                                                     for v in namespace.of)


def method_guess(attr):
    """`x.attr` on an object the analysis cannot type: a family's name is taken for the
    Tensor method (X.softmax(1)), or for a library function on an unknown receiver."""
    if attr in TENSOR_METHODS:
        return [Lib(f"torch.Tensor.{attr}")]
    return [Lib(f"<unresolved>.{attr}")] if families_of(f"<unresolved>.{attr}") else [UNKNOWN]


def is_alias(node):
    """A plain reference (a name, an attribute chain, getattr with a literal): its uses are
    the uses of what it names."""
    if isinstance(node, ast.Name):
        return True
    if isinstance(node, ast.Attribute):
        return is_alias(node.value)
    return (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
            and node.func.id == "getattr" and len(node.args) == 2
            and literal(node.args[1]) is not None and is_alias(node.args[0]))


# The walk: every unit of code a graded function reaches.

class Walk(ast.NodeVisitor):
    """Reports the library uses and unresolvable code of one unit, in one scope."""

    def __init__(self, search, scope, cell, chain):
        self.search, self.scope, self.cell, self.chain = search, scope, cell, chain
        self.resolver = search.resolver
        self.skip = set()  # ids of nodes already accounted for by an enclosing node

    def visit_FunctionDef(self, node, top_level=False):
        for expr in node.decorator_list + node.args.defaults + \
                [d for d in node.args.kw_defaults if d is not None]:
            self.visit(expr)
        if top_level:
            return
        method_of = self.search.class_binding if self.scope.kind == "class" else None
        parent = self.scope.parent if self.scope.kind == "class" else self.scope
        inner = self.search.program.function_scope(node, parent, method_of)
        self.within(inner, node.body)

    visit_AsyncFunctionDef = visit_FunctionDef

    def visit_Lambda(self, node):
        for expr in node.args.defaults + [d for d in node.args.kw_defaults if d is not None]:
            self.visit(expr)
        self.within(self.search.program.function_scope(node, self.scope, None), [node.body])

    def visit_ClassDef(self, node, top_level=False):
        for expr in node.decorator_list + node.bases + [k.value for k in node.keywords]:
            self.visit(expr)
        scope = self.search.program.class_scope(node, self.scope)
        outer_class = self.search.class_binding
        self.search.class_binding = self.search.class_of(node, self.scope)
        saved = self.scope
        self.scope = scope
        try:
            for stmt in node.body:
                if top_level and isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    self.visit_FunctionDef(stmt, top_level=True)
                else:
                    self.visit(stmt)
        finally:
            self.scope, self.search.class_binding = saved, outer_class

    def within(self, scope, nodes):
        saved, saved_class = self.scope, self.search.class_binding
        self.scope = scope
        if scope.kind == "function":
            self.search.class_binding = None
        try:
            for node in nodes:
                self.visit(node)
        finally:
            self.scope, self.search.class_binding = saved, saved_class

    def visit_Name(self, node):
        if isinstance(node.ctx, ast.Load):
            self.report(node)

    def visit_Attribute(self, node):
        if isinstance(node.value, (ast.Name, ast.Attribute)):
            self.skip.add(id(node.value))  # the whole chain is reported here
        if isinstance(node.ctx, ast.Load):
            self.report(node)
        elif node.attr in CODE_DUNDERS:
            self.add(node, DYNAMIC, f"rewrites {node.attr}", rebinds=True)
        elif any(isinstance(v, Lib) and v.path in ("__main__", "builtins")
                 for v in self.resolver.resolve(node.value, self.scope)):
            self.add(node, DYNAMIC, "sets an attribute of the notebook's namespace", rebinds=True)
        self.generic_visit(node)

    def visit_Call(self, node):
        if self.is_literal_form(node):
            self.skip.add(id(node.func))
            if isinstance(node.func, ast.Attribute):
                self.skip.add(id(node.func.value))
        self.report(node)
        self.generic_visit(node)

    def visit_Subscript(self, node):
        namespaces = [v for v in self.resolver.resolve(node.value, self.scope)
                      if isinstance(v, Namespace)]
        if namespaces:
            self.skip.add(id(node.value))
            if not isinstance(node.ctx, ast.Load) and any(map(can_rebind, namespaces)):
                self.add(node, DYNAMIC, NAMESPACE, rebinds=True)
        if isinstance(node.ctx, ast.Load):
            self.report(node)
        self.generic_visit(node)

    def is_literal_form(self, node):
        func = node.func
        if isinstance(func, ast.Attribute) and (func.attr in GETATTR_DUNDERS or func.attr == "get"
                                                and any(isinstance(v, Namespace) for v in
                                                        self.resolver.resolve(func.value,
                                                                              self.scope))):
            return True
        return any(isinstance(v, Lib) and v.path in LITERAL_FORMS
                   for v in self.resolver.resolve(func, self.scope))

    def report(self, node):
        """Report what a reference (name, attribute, call, subscript) resolves to."""
        if id(node) in self.skip:
            return
        for value in self.resolver.resolve(node, self.scope):
            if isinstance(value, Lib) and not value.shown:
                self.report_library(node, value.path)
            elif isinstance(value, Dynamic) and not value.shown:
                self.add(node, DYNAMIC, value.why, value.rebinds)
            elif isinstance(value, Namespace) and can_rebind(value):
                self.add(node, DYNAMIC, NAMESPACE, rebinds=True)

    def report_library(self, node, path):
        if path in BARE_DYNAMIC:  # a bare getattr, vars, ... (not in its literal form)
            self.add(node, DYNAMIC, LOOKS_UP, BARE_DYNAMIC[path])
            return
        dynamic = dynamic_reason(path)
        if dynamic:
            self.add(node, DYNAMIC, dynamic[0], dynamic[1])
        forbidden = [f for f in families_of(path) if f in self.search.families]
        if forbidden:
            self.add(node, forbidden[0], path)

    def add(self, node, family, resolved, rebinds=False):
        self.search.add(self, node, family, resolved, rebinds)


class Search:
    """Everything reachable from one graded function (or from the top level), and what
    of it breaks the rule."""

    def __init__(self, program, function, families, top_level=False):
        self.program, self.function, self.families = program, function, set(families)
        self.top_level = top_level
        self.resolver = Resolver(program, self.enqueue)
        self.queue, self.seen, self.found = deque(), set(), {}
        self.class_binding = None
        self.current_chain = (TOP_LEVEL,) if top_level else (function,)

    def enqueue(self, binding):
        if id(binding.node) not in self.seen:
            self.seen.add(id(binding.node))
            self.queue.append((binding, self.current_chain + (binding.name,)))

    def class_of(self, node, scope):
        """The binding of a class node (for its methods' `self`)."""
        for binding in scope.names.get(node.name, []) if scope.kind != "module" else \
                self.program.module.names.get(node.name, []):
            if binding.node is node:
                return binding
        return Binding(node.name, "class", node, scope, self.program.cell_of.get(id(node), -1))

    def run_function(self):
        for binding in self.program.module_bindings(self.function):
            self.seen.add(id(binding.node))
            if binding.kind in ("import", "star"):
                self.add_binding_use(binding)
            elif binding.kind in ("def", "class") or binding.kind == "assign":
                self.queue.append((binding, (self.function,)))
        self.drain()

    def run_top_level(self):
        for cell, tree in enumerate(self.program.trees):
            for stmt in tree.body if tree is not None else ():
                walk = Walk(self, self.program.module, cell, (TOP_LEVEL,))
                if isinstance(stmt, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    walk.visit_FunctionDef(stmt, top_level=True)
                elif isinstance(stmt, ast.ClassDef):
                    walk.visit_ClassDef(stmt, top_level=True)
                else:
                    walk.visit(stmt)
        self.drain()

    def drain(self):
        while self.queue:
            binding, chain = self.queue.popleft()
            self.current_chain = chain
            Walk(self, binding.scope, binding.cell, chain).visit(binding.node)

    def add_binding_use(self, binding):
        """The graded name is itself a library import: `from torch import softmax`."""
        walk = Walk(self, binding.scope, binding.cell, (self.function,))
        walk.report_library(binding.node, binding.target)

    def add(self, walk, node, family, resolved, rebinds):
        if self.top_level and not (family == DYNAMIC and rebinds):
            return
        key = (walk.cell, getattr(node, "lineno", 0), family)
        if key in self.found:
            return
        written = " ".join((self.program.written(walk.cell, node) or resolved).split())
        if len(written) > 60:
            written = written[:57] + "..."
        self.found[key] = (written, resolved, family, walk.cell, getattr(node, "lineno", 0),
                           walk.chain)


def find_violations(cells, forbidden):
    """{function: [Violation]} for each function of `forbidden` ({function: families it may
    not use}, as PARTS[part].forbidden gives them), over the code cells the grader runs, in
    order. DYNAMIC violations (code that cannot be checked) are reported for every function."""
    program = Program(list(cells))
    top_level = Search(program, None, (), top_level=True)
    top_found = guarded(top_level.run_top_level, top_level)
    result = {}
    for function, families in forbidden.items():
        search = Search(program, function, families)
        found = guarded(search.run_function, search)
        for key, entry in top_found.items():
            found.setdefault(key, entry)
        result[function] = [Violation(function, *entry) for entry in found.values()]
    return result


def guarded(run, search):
    """search.found after run(); code too complex to analyse cannot be checked."""
    try:
        run()
    except (RecursionError, TooComplex):
        search.found[(-1, 0, DYNAMIC)] = ("(the whole notebook)",
                                         "is too deeply nested or intertwined to check",
                                         DYNAMIC, -1, 0, search.current_chain[:1])
    return search.found


def message(violation):
    """One line for the student's feedback about a violation."""
    v = violation
    owner = v.chain[-1] if v.chain else TOP_LEVEL
    if owner == TOP_LEVEL:
        where = "the top-level code of its cell"
    elif len(v.chain) == 1:
        where = "its cell"
    else:
        where = f"{owner}'s cell"
    through = f" through {' -> '.join(v.chain[1:])}" if len(v.chain) > 1 else ""
    at = f"`{v.written}` at line {v.line} of {where}" if v.cell >= 0 else "its code"
    if v.family != DYNAMIC:
        return (f"{v.function} uses {v.resolved}{through} ({at}): the task asks for it "
                "from scratch")
    if v.chain[:1] == (TOP_LEVEL,):
        return (f"{v.function} cannot be checked statically: {at} {v.resolved}, so it could "
                f"redefine {v.function}; code the grader cannot read counts as a library call "
                "in a from-scratch function")
    return (f"{v.function} cannot be checked statically{through}: {at} {v.resolved}; code "
            "the grader cannot read counts as a library call in a from-scratch function")
