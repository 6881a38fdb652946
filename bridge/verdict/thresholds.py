"""Graph-guided boundaries: the input values at which an ONNX graph changes behaviour, read from the graph.

A wrong export can differ from the model only on one side of a threshold (``x > 0.5``), only at exact
.5 ties of a rounding, only past a clip bound. Random draws rarely land there; the graph says where
they are. From each graph input, element-wise paths are followed through affine steps with constant
operands (Add, Sub, Mul, Div, Neg, casts to float, layout ops that keep values), tracking each value as
``a * x + b``; where such a value meets

* a comparison with a constant (Greater, Less, GreaterOrEqual, LessOrEqual, Equal), ``Where`` through
  its condition, ``Clip``, ``Min``/``Max`` against a constant, ``Relu``/``LeakyRelu``/``PRelu``/``Abs``/
  ``Sign`` (at 0), ``HardSigmoid`` and ``HardSwish`` (their corners): the input value that puts it on
  the boundary;
* ``Round``: the .5 ties; ``Floor``/``Ceil``, casts to an integer type: the integers; ``Mod`` with a
  constant: its multiples; ``Log``, ``Sqrt``, ``Reciprocal`` and a division by the value: 0, where
  NaN or Inf begins,

the boundary is mapped back to the input's units (``(c - b) / a``). The plan probes both sides of each
and the boundary itself (bridge/verdict/search.py); every report lists what was probed. Pure: onnx
protos in, numbers out (numpy for the constants).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

COMPARISONS = {"Greater", "Less", "GreaterOrEqual", "LessOrEqual", "Equal"}
LAYOUT = {
    "Identity",
    "Reshape",
    "Flatten",
    "Squeeze",
    "Unsqueeze",
    "Transpose",
    "Expand",
    "Tile",
    "Gather",
    "Slice",
    "Concat",
    "Split",
    "Pad",
    "DepthToSpace",
    "SpaceToDepth",
    "MaxPool",
}
INT_TYPES = {
    2,
    3,
    4,
    5,
    6,
    7,
    12,
    13,
    9,
}  # onnx TensorProto: uint8, int8, uint16, int16, int32, int64, uint32, uint64, bool
FLOAT_TYPES = {1, 10, 11, 16}
MAX_PER_INPUT = 64  # boundaries kept per input (the nearest the domain first)
MAX_WALK = 20000  # graph edges followed per input at most


@dataclass
class Boundaries:
    """Per graph input: boundary values (in the input's units) and, for each, what put it there."""

    values: dict = field(default_factory=dict)  # input name -> {value: why}

    def add(self, name: str, value: float, why: str) -> None:
        if value is None or not math.isfinite(value):
            return
        value = float(value)
        self.values.setdefault(name, {}).setdefault(value, why)

    def for_input(self, name: str, domain: tuple | None = None) -> list[tuple[float, str]]:
        """The boundaries of one input inside ``domain`` (LOW, HIGH) when one is given, nearest first."""
        found = self.values.get(name, {})
        items = sorted(found.items(), key=lambda kv: abs(kv[0]))
        if domain is not None:
            lo, hi = domain
            items = [(v, w) for v, w in items if lo <= v <= hi]
        return items[:MAX_PER_INPUT]

    def to_json(self, domains: dict | None = None) -> dict:
        return {
            name: [{"value": v, "why": w} for v, w in self.for_input(name, (domains or {}).get(name))]
            for name in self.values
        }


def _constants(graph) -> dict:
    """Name -> numpy array of every constant a node can read: initializers and Constant nodes."""
    from onnx import numpy_helper

    out = {}
    for t in graph.initializer:
        try:
            if t.data_location != 1:  # external data is weights, not thresholds
                out[t.name] = numpy_helper.to_array(t)
        except Exception:  # noqa: BLE001 - an unreadable constant bounds nothing
            continue
    for n in graph.node:
        if n.op_type == "Constant" and n.output:
            for a in n.attribute:
                try:
                    if a.name == "value":
                        out[n.output[0]] = numpy_helper.to_array(a.t)
                    elif a.name in ("value_float", "value_int"):
                        out[n.output[0]] = float(a.f if a.name == "value_float" else a.i)
                    elif a.name in ("value_floats", "value_ints"):
                        import numpy as np

                        out[n.output[0]] = np.asarray(list(a.floats or a.ints), dtype=float)
                except Exception:  # noqa: BLE001
                    continue
    return out


def _scalars(value) -> list[float]:
    """The distinct finite values of a small constant (a threshold tensor of a few elements)."""
    import numpy as np

    arr = np.asarray(value, dtype=float).reshape(-1)
    if arr.size == 0 or arr.size > 16:
        return []
    return sorted({float(v) for v in arr if np.isfinite(v)})


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            if a.type == 1:
                return a.f
            if a.type == 2:
                return a.i
    return default


def find(model, inputs: list[str] | None = None, grid: tuple = (-4, 4)) -> Boundaries:
    """The boundaries of ``model``'s graph inputs (all float and integer inputs when ``inputs`` is None).
    ``grid``: the integer range in which the ties of a Round and the steps of a Floor are listed (in
    the units of the value reaching it; mapped back to the input)."""
    graph = model.graph
    consts = _constants(graph)
    init_names = {t.name for t in graph.initializer}
    names = [i.name for i in graph.input if i.name not in init_names and (inputs is None or i.name in inputs)]
    consumers: dict[str, list] = {}
    for n in graph.node:
        for i in n.input:
            if i:
                consumers.setdefault(i, []).append(n)
    found = Boundaries()
    for name in names:
        _walk(name, consumers, consts, found, grid)
    return found


def _walk(name: str, consumers: dict, consts: dict, found: Boundaries, grid: tuple) -> None:
    # (value name, a, b): the value equals a * input + b element-wise
    todo = [(name, 1.0, 0.0)]
    seen = set()
    steps = 0
    while todo and steps < MAX_WALK:
        value, a, b = todo.pop()
        key = (value, round(a, 12), round(b, 12))
        if key in seen or a == 0 or not (math.isfinite(a) and math.isfinite(b)):
            continue
        seen.add(key)
        for node in consumers.get(value, []):
            steps += 1
            for nxt in _step(node, value, a, b, consts, found, name, grid):
                todo.append(nxt)


def _back(c: float, a: float, b: float) -> float:
    return (c - b) / a


def _other(node, value: str, consts: dict):
    """The constant operand of a binary node whose other operand is ``value``, as scalars, or None."""
    others = [i for i in node.input if i and i != value]
    if len(others) != 1 or others[0] not in consts:
        return None
    scalars = _scalars(consts[others[0]])
    return scalars or None


def _step(node, value, a, b, consts, found: Boundaries, name: str, grid: tuple) -> list:
    op = node.op_type
    out = node.output[0] if node.output else None
    here = f"{op} {node.name or out}".strip()
    if op in ("Add", "Sub", "Mul", "Div"):
        cs = _other(node, value, consts)
        if cs is None or len(cs) != 1:
            return []
        c = cs[0]
        first = node.input[0] == value
        if op == "Add":
            return [(out, a, b + c)]
        if op == "Sub":
            return [(out, a, b - c)] if first else [(out, -a, c - b)]
        if op == "Mul":
            return [(out, a * c, b * c)]
        if first and c != 0:  # x / c
            return [(out, a / c, b / c)]
        found.add(name, _back(0.0, a, b), f"{here}: a division by zero at 0")
        return []
    if op == "Neg":
        return [(out, -a, -b)]
    if op in LAYOUT:
        if op == "Gather" and node.input[0] != value:
            return []  # an index into a table: what it selects is not this value
        return [(o, a, b) for o in node.output if o]
    if op == "Cast":
        to = _attr(node, "to")
        if to in FLOAT_TYPES:
            return [(out, a, b)]
        if to in INT_TYPES:  # truncation: every integer (the grid) is a step
            for k in range(grid[0], grid[1] + 1):
                found.add(name, _back(k, a, b), f"{here}: a cast to an integer type truncates at {k}")
        return []
    if op in COMPARISONS:
        for c in _other(node, value, consts) or []:
            found.add(name, _back(c, a, b), f"{here}: compared with {c:g}")
        return []
    if op == "Clip":
        for bound in node.input[1:3]:
            for c in _scalars(consts[bound]) if bound in consts else []:
                found.add(name, _back(c, a, b), f"{here}: clipped at {c:g}")
        lo, hi = _attr(node, "min"), _attr(node, "max")
        for c in (lo, hi):
            if c is not None:
                found.add(name, _back(c, a, b), f"{here}: clipped at {c:g}")
        return []
    if op in ("Min", "Max"):
        for c in _other(node, value, consts) or []:
            found.add(name, _back(c, a, b), f"{here} with {c:g}")
        return []
    if op in ("Relu", "LeakyRelu", "PRelu", "Abs", "Sign", "Elu", "Selu", "Celu", "ThresholdedRelu"):
        at = _attr(node, "alpha", 1.0) if op == "ThresholdedRelu" else 0.0
        found.add(name, _back(at, a, b), f"{here}: its corner at {at:g}")
        return []
    if op == "HardSigmoid":
        alpha, beta = _attr(node, "alpha", 0.2), _attr(node, "beta", 0.5)
        for y in (0.0, 1.0):
            if alpha:
                found.add(name, _back((y - beta) / alpha, a, b), f"{here}: its corner where alpha*x+beta = {y:g}")
        return []
    if op == "HardSwish":
        for c in (-3.0, 3.0):
            found.add(name, _back(c, a, b), f"{here}: its corner at {c:g}")
        return []
    if op == "Round":
        for k in range(grid[0], grid[1]):
            found.add(name, _back(k + 0.5, a, b), f"{here}: a .5 tie ({k + 0.5:g})")
        return []
    if op in ("Floor", "Ceil"):
        for k in range(grid[0], grid[1] + 1):
            found.add(name, _back(float(k), a, b), f"{here}: a step at {k}")
        return []
    if op == "Mod":
        for m in _other(node, value, consts) or []:
            if m:
                for k in range(grid[0], grid[1] + 1):
                    found.add(name, _back(k * m, a, b), f"{here}: a multiple of {m:g}")
        return []
    if op in ("Log", "Sqrt", "Reciprocal"):
        found.add(name, _back(0.0, a, b), f"{here}: its domain ends at 0 (NaN or Inf past it)")
        return []
    if op == "Where":
        return []  # its condition is a comparison, found where the comparison is
    return []
