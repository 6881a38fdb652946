"""Loading a torch.export program (``.pt2``) that is not trusted.

Besides its pickles (see ``pt_pickle``), torch 2.14's ``torch.export.load`` turns strings of the
archive's JSON program into Python code or imports:

* symbolic shape expressions go to ``sympy.sympify``, which ``eval``s them;
* placeholder names, attribute targets and keyword names become source text that torch.fx compiles
  (``def forward(self, <name>)``, ``getattr(self, "<target>")``) when a graph module is built, at load
  and again when ``ExportedProgram.module()`` unlifts the program;
* ``guards_code`` is pasted into a generated guard function by ``ExportedProgram.module()``;
* tree-spec contexts name modules to import and attributes to index (``enum_object_hook``,
  defaultdict factories);
* an AOTInductor package inside the archive is compiled native code that gets loaded.

Without ``--trust-code`` each of these is checked where torch consumes it: expressions must be sympy
constructor calls on numbers and identifiers (:func:`check_sym_expr`); graph strings that torch.fx
pastes into source must be identifiers (:func:`check_graph`, installed on ``Graph.python_code`` for
the rest of the process); guard functions are not generated (torch's own switch,
``_ok_to_generate_guards_fn``; inputs are then checked by torch's pre-hook); tree specs may only
name modules already imported and only ``Enum`` members; AOTInductor packages are refused; after
loading, every callable argument in the graphs must be a torch operator.
"""

from __future__ import annotations

import ast
import builtins
import contextlib
import enum
import logging
import re
import sys
import warnings

import sympy.parsing.sympy_parser as sympy_parser
import torch
import torch.export._unlift as torch_unlift
import torch.export.pt2_archive._package as pt2_package
import torch.fx.graph as fx_graph
import torch.utils._pytree as torch_pytree

from bridge.errors import SecurityRefusal
from bridge.frameworks.pt_pickle import active_guard, restricted_unpickling

# -- symbolic expressions ------------------------------------------------------------------------

# Callables a serialized shape expression may name: sympy's constructors as ``srepr`` prints them
# and torch's sympy functions (torch/_export/serde/serialize.py, ``sympy_functions``).
SYM_CALLABLES = frozenset(
    {
        "Symbol",
        "Dummy",
        "Integer",
        "Float",
        "Rational",
        "Add",
        "Mul",
        "Pow",
        "Mod",
        "Max",
        "Min",
        "Abs",
        "floor",
        "ceiling",
        "sqrt",
        "Eq",
        "Ne",
        "Lt",
        "Le",
        "Gt",
        "Ge",
        "Equality",
        "Unequality",
        "StrictLessThan",
        "StrictGreaterThan",
        "LessThan",
        "GreaterThan",
        "And",
        "Or",
        "Not",
        "Xor",
        "Piecewise",
        "ExprCondPair",
        "Tuple",
        "ITE",
        "FloorDiv",
        "ModularIndexing",
        "Where",
        "PythonMod",
        "CleanDiv",
        "CeilToInt",
        "FloorToInt",
        "CeilDiv",
        "LShift",
        "RShift",
        "PowByNatural",
        "FloatPow",
        "FloatTrueDiv",
        "IntTrueDiv",
        "IsNonOverlappingAndDenseIndicator",
        "TruncToFloat",
        "TruncToInt",
        "RoundToInt",
        "RoundDecimal",
        "ToFloat",
        "Identity",
        "IntInfinity",
        "NegativeIntInfinity",
    }
)
_SYM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")  # a symbol or keyword name; never a dunder
_SYM_STRING = re.compile(r"[A-Za-z0-9_.+\-]*\Z")  # Symbol('s0'), Float('1.5', precision=53)
_SYM_NODES = (
    ast.Expression,
    ast.Call,
    ast.Name,
    ast.Load,
    ast.Constant,
    ast.keyword,
    ast.BinOp,
    ast.UnaryOp,
    ast.Compare,
    ast.BoolOp,
    ast.Tuple,
    ast.operator,
    ast.unaryop,
    ast.cmpop,
    ast.boolop,
)
MAX_EXPR_CHARS = 20_000


def check_sym_expr(text: str) -> str | None:
    """Why ``text`` is not a plain symbolic expression, or None when it is. Allowed: numbers,
    arithmetic, comparison and boolean operators, tuples, names that are not Python builtins, and
    calls of :data:`SYM_CALLABLES` (by name) with allowed arguments, keywords only with constant
    values, strings only as names or numbers (``Symbol('s0')``, ``Float('1.5')``). No attribute
    access, subscripts, lambdas or comprehensions: ``eval`` can only build sympy objects."""
    if not isinstance(text, str):
        return None  # sympify of a non-string does not parse anything
    if not text.isascii() or len(text) > MAX_EXPR_CHARS:
        return "not a short ASCII expression"
    try:
        tree = ast.parse(text.replace("\n", ""), mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return "not a Python expression"
    for node in ast.walk(tree):
        if not isinstance(node, _SYM_NODES):
            return f"uses {type(node).__name__}"
        if isinstance(node, ast.Call):
            if not (isinstance(node.func, ast.Name) and node.func.id in SYM_CALLABLES):
                return f"calls {ast.unparse(node.func)[:40]}"
        elif isinstance(node, ast.Name):
            if not _SYM_NAME.match(node.id) or hasattr(builtins, node.id):
                return f"names {node.id[:40]}"
        elif isinstance(node, ast.keyword):
            if node.arg is None or not _SYM_NAME.match(node.arg) or not isinstance(node.value, ast.Constant):
                return "passes a computed keyword argument"
        elif isinstance(node, ast.Constant):
            if isinstance(node.value, str) and not _SYM_STRING.match(node.value):
                return f"holds the string {node.value[:40]!r}"
            if not isinstance(node.value, (str, int, float, bool)):
                return f"holds a {type(node.value).__name__} constant"
    return None


# -- graphs: what torch.fx pastes into generated source --------------------------------------------

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_ATTR_ATOM = re.compile(r"[A-Za-z0-9_]+\Z")  # module children may be named "0", "1", ...
_PLACEHOLDER = re.compile(r"\*{0,2}[A-Za-z_][A-Za-z0-9_]*\Z")


def check_graph(graph) -> str | None:
    """Why torch.fx would paste a string of ``graph`` into generated source unescaped, or None."""
    for node in graph.nodes:
        target = node.target
        if node.op == "placeholder" and not (isinstance(target, str) and _PLACEHOLDER.match(target)):
            return f"input name {str(target)[:60]!r} is not an identifier"
        if node.op in ("get_attr", "call_module") and not (
            isinstance(target, str) and all(_ATTR_ATOM.match(atom) for atom in target.split("."))
        ):
            return f"attribute target {str(target)[:60]!r} is not a dotted name"
        if node.op == "call_method" and not (isinstance(target, str) and _IDENT.match(target)):
            return f"method name {str(target)[:60]!r} is not an identifier"
        for key in node.kwargs:
            if not (isinstance(key, str) and _IDENT.match(key)):
                return f"keyword argument name {str(key)[:60]!r} of {node.name} is not an identifier"
    return None


def _operator_args(graph_module) -> str | None:
    """Why a node of the program passes a callable that is not a torch operator, or None."""
    allowed = (torch.fx.Node, torch._ops.OpOverload, torch._ops.OpOverloadPacket, torch._ops.HigherOrderOperator)
    for module in graph_module.modules():
        graph = getattr(module, "graph", None)
        if not isinstance(graph, torch.fx.Graph):
            continue
        for node in graph.nodes:
            for arg in torch_pytree.tree_leaves((node.args, node.kwargs)):
                if callable(arg) and not isinstance(arg, allowed):
                    what = getattr(arg, "__qualname__", type(arg).__name__)
                    return f"node {node.name} passes {what}, not a torch operator"
    return None


class _ProgramRefused(RuntimeError):
    """Raised inside torch's loader where a program string was refused (the guard records it)."""


def _refuse(text: str) -> _ProgramRefused:
    guard = active_guard()
    return _ProgramRefused(guard.refuse(text).args[0] if guard is not None else text)


_ORIGINAL_PYTHON_CODE = fx_graph.Graph.python_code


def _checked_python_code(self, *args, **kwargs):
    problem = check_graph(self)
    if problem is not None:
        text = f"program text would be compiled as Python source: {problem}"
        if active_guard() is not None:
            raise _refuse(text)
        raise SecurityRefusal(
            f"refusing to compile a torch.fx graph: {problem}",
            hint="pass --trust-code only if you trust where the program came from",
        )
    return _ORIGINAL_PYTHON_CODE(self, *args, **kwargs)


_HARDENED = False


def _harden_codegen() -> None:
    """Process-wide, once: fx graphs are checked before they are compiled, and ExportedProgram.module()
    generates no guard function from the program's guard strings (torch then checks inputs against the
    range constraints with a pre-hook)."""
    global _HARDENED
    if not _HARDENED:
        fx_graph.Graph.python_code = _checked_python_code
        torch_unlift._ok_to_generate_guards_fn = lambda: False
        _HARDENED = True


# -- what the load itself consults ---------------------------------------------------------------


class _ImportlibView:
    """``importlib`` as torch's pytree module sees it during a load: only modules already imported."""

    def __getattr__(self, name):
        import importlib

        return getattr(importlib, name)

    @staticmethod
    def import_module(name, package=None):
        if package is None and name in sys.modules:
            return sys.modules[name]
        raise _refuse(f"tree spec names module {str(name)[:80]!r}, which is not loaded; refusing to import it")


def _enum_object_hook(obj: dict):
    if "__enum__" not in obj:
        return obj
    modname, _, classname = str(obj.get("fqn", "")).partition(":")
    cls = sys.modules.get(modname)
    for attr in classname.split("."):
        cls = getattr(cls, attr, None) if _IDENT.match(attr) else None
    if not (isinstance(cls, type) and issubclass(cls, enum.Enum)):
        raise _refuse(f"tree spec names {modname}:{classname[:80]}, which is not a loaded Enum class")
    return cls[obj["name"]]


_ORIGINAL_PARSE_EXPR = sympy_parser.parse_expr


def _checked_parse_expr(s, *args, **kwargs):
    problem = check_sym_expr(s)
    if problem is not None:
        raise _refuse(f"symbolic expression {str(s)[:60]!r} {problem}; sympy would eval it")
    return _ORIGINAL_PARSE_EXPR(s, *args, **kwargs)


def _aoti_refused(*args, **kwargs):
    raise _refuse("holds an AOTInductor package (compiled native code) that would be loaded")


@contextlib.contextmanager
def _program_checks():
    patches = [
        (sympy_parser, "parse_expr", _checked_parse_expr),
        (pt2_package, "_load_aoti", _aoti_refused),
        (torch_pytree, "importlib", _ImportlibView()),
        (torch_pytree, "enum_object_hook", _enum_object_hook),
    ]
    saved = [(obj, attr, getattr(obj, attr)) for obj, attr, _ in patches]
    try:
        for obj, attr, value in patches:
            setattr(obj, attr, value)
        yield
    finally:
        for obj, attr, value in saved:
            setattr(obj, attr, value)


# -- the load ---------------------------------------------------------------------------------------


def _torch_load(path: str):
    logger = logging.getLogger("torch")
    level = logger.level
    logger.setLevel(logging.ERROR)  # torch.export.load logs a traceback before raising
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the old-format fallback warns before failing
            return torch.export.load(path)
    finally:
        logger.setLevel(level)


# Every torch internal replaced above: if one is missing, this torch is not the one these checks
# were written against, and an untrusted program is refused rather than loaded unchecked.
_PATCH_POINTS = (
    (sympy_parser, "parse_expr"),
    (pt2_package, "_load_aoti"),
    (torch_pytree, "importlib"),
    (torch_pytree, "enum_object_hook"),
    (torch_unlift, "_ok_to_generate_guards_fn"),
    (fx_graph.Graph, "python_code"),
    (torch._C, "_pickle_load_obj"),
)


def load_program(path: str, trust: bool = False):
    """``torch.export.load(path)``; unless ``trust``, with every pickle restricted and every string
    that torch would turn into code checked (module docstring). Raises SecurityRefusal for what is
    refused; other failures propagate as torch raised them."""
    if trust:
        return _torch_load(path)
    missing = [f"{getattr(obj, '__name__', obj)}.{attr}" for obj, attr in _PATCH_POINTS if not hasattr(obj, attr)]
    if missing:
        raise SecurityRefusal(
            f"{path}: cannot load an untrusted .pt2 with torch {torch.__version__}: {', '.join(missing)} "
            "changed, so its loader cannot be restricted",
            hint="use the torch version bridge pins, or pass --trust-code if you trust where the file came from",
        )
    _harden_codegen()
    with restricted_unpickling(path) as guard, _program_checks():
        try:
            program = _torch_load(path)
        except Exception:
            guard.raise_if_refused()  # torch may wrap, log or replace a refusal: the record decides
            raise
        guard.raise_if_refused()
        problem = _operator_args(program.graph_module)
        if problem is None:
            for spec in list(program.graph_signature.input_specs) + list(program.graph_signature.output_specs):
                target = getattr(spec, "target", None)
                if target is not None and not all(_ATTR_ATOM.match(a) for a in str(target).split(".")):
                    problem = f"state name {str(target)[:60]!r} is not a dotted name"
                    break
        if problem is not None:
            guard.refuse(f"program {problem}")
            guard.raise_if_refused()
    return program
