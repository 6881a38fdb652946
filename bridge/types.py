"""Plain data shared by every module: tensor specs and dtype names. numpy-free at import."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Union

Dim = Union[int, str]

# dtype names bridge understands, as numpy spells them, with the ONNX TensorProto enum value.
DTYPES = {
    "float16": 10,
    "float32": 1,
    "float64": 11,
    "bfloat16": 16,
    "int8": 3,
    "int16": 5,
    "int32": 6,
    "int64": 7,
    "uint8": 2,
    "bool": 9,
}
ONNX_TO_DTYPE = {v: k for k, v in DTYPES.items()}

FLOAT_DTYPES = ("float16", "bfloat16", "float32", "float64")

# Kinds of input values (TensorSpec.kind).
INPUT_KINDS = ("values", "index", "mask", "positions")

# Default size given to a dynamic (named) axis when inputs are generated for export.
# Not 1: exporters specialise size-1 axes (torch.export treats 0 and 1 as special).
DEFAULT_DYNAMIC_SIZE = 2


@dataclass(frozen=True)
class TensorSpec:
    """A named input or output: dtype, dims (ints fixed, strings dynamic) and value range."""

    name: str
    dtype: str
    dims: tuple[Dim, ...]
    value_range: tuple[float, float] | None = None
    # What the values mean, for generating them (bridge/verdict/semantics.py): "values" (any number in the
    # range), "index" (integer ids into a table), "mask" (0/1 attention mask: every row attends to at
    # least one position) or "positions" (0..n-1 along the last axis). None: plain values.
    kind: str | None = None

    @property
    def dynamic_axes(self) -> dict[int, str]:
        return {i: d for i, d in enumerate(self.dims) if isinstance(d, str)}

    def shape(self, sizes: dict[str, int] | None = None) -> tuple[int, ...]:
        sizes = sizes or {}
        return tuple(d if isinstance(d, int) else int(sizes.get(d, DEFAULT_DYNAMIC_SIZE)) for d in self.dims)

    def with_range(self, value_range: tuple[float, float] | None) -> "TensorSpec":
        return replace(self, value_range=value_range)

    def with_kind(self, kind: str | None) -> "TensorSpec":
        return replace(self, kind=kind)

    def to_text(self) -> str:
        return f"{self.name}:{self.dtype}[{','.join(str(d) for d in self.dims)}]"

    def to_json(self) -> dict:
        out = {"name": self.name, "dtype": self.dtype, "dims": list(self.dims)}
        if self.value_range is not None:
            out["range"] = list(self.value_range)
        if self.kind is not None:
            out["kind"] = self.kind
        return out

    @classmethod
    def from_json(cls, data: dict) -> "TensorSpec":
        rng = data.get("range")
        return cls(
            name=str(data["name"]),
            dtype=str(data["dtype"]),
            dims=tuple(d if isinstance(d, int) else str(d) for d in data["dims"]),
            value_range=(float(rng[0]), float(rng[1])) if rng is not None else None,
            kind=str(data["kind"]) if data.get("kind") is not None else None,
        )


@dataclass(frozen=True)
class Case:
    """One set of inputs to run on every side: a label, the seed it came from, the axis sizes."""

    label: str
    seed: int | None
    sizes: dict = field(default_factory=dict)
    # How values are drawn, per input, where not seeded draws: "low", "high", "mix" (of the two) for a
    # declared range, "full" for the whole range of an integer dtype. Pairs, in input order.
    fill: tuple = ()
    purpose: str = ""  # why the case is in the plan, for reports
    optional: bool = False  # dropped (with a note) when the native model rejects its inputs
    search: bool = False  # a search case (bridge/verdict/search.py): it can only find a failure
    # The native outputs' movement under a 1e-6 nudge of the inputs (bridge/verdict/rounding.py),
    # measured on search cases: output name -> array. Not part of a case's identity.
    noise: dict | None = field(default=None, compare=False, repr=False)
    # The native outputs in float64 on this case's inputs, computed on first call (a failing case only;
    # bridge/verdict/rounding.py ExactRun), or None. Not part of a case's identity.
    exact: object = field(default=None, compare=False, repr=False)


ITEMSIZE = {
    "float16": 2,
    "bfloat16": 2,
    "float32": 4,
    "float64": 8,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "int32": 4,
    "int64": 8,
    "bool": 1,
}


def input_bytes(specs: list[TensorSpec], sizes: dict) -> int:
    """Bytes the inputs ``specs`` take at the dynamic axis ``sizes``."""
    total = 0
    for s in specs:
        n = 1
        for d in s.shape(sizes):
            n *= d
        total += n * ITEMSIZE.get(s.dtype, 8)
    return total
