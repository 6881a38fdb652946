"""Parsing the command line's tensor vocabulary into TensorSpecs.

--input  NAME:DTYPE[DIMS]      x:float32[batch,3,224,224]   (ints fixed, names dynamic)
--input-range NAME=LOW:HIGH    ids=0:30522                   (ints: LOW inclusive, HIGH exclusive)
--dim NAME=SIZE                batch=4                       (size used for a dynamic axis)
"""

from __future__ import annotations

import math
import re

from bridge.errors import SpecError
from bridge.types import DTYPES, TensorSpec

_NAME = r"[A-Za-z_][A-Za-z0-9_.\-/]*"
_SPEC_RE = re.compile(rf"^\s*(?P<name>{_NAME})\s*:\s*(?P<dtype>[A-Za-z0-9]+)\s*\[(?P<dims>[^\]]*)\]\s*$")
_DIM_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

DTYPE_ALIASES = {
    "float": "float32",
    "f32": "float32",
    "fp32": "float32",
    "half": "float16",
    "f16": "float16",
    "fp16": "float16",
    "double": "float64",
    "f64": "float64",
    "fp64": "float64",
    "bf16": "bfloat16",
    "long": "int64",
    "int": "int64",
    "i64": "int64",
    "i32": "int32",
    "u8": "uint8",
    "byte": "uint8",
}

SPEC_HELP = "expected NAME:DTYPE[DIMS], e.g. x:float32[batch,3,224,224] or ids:int64[batch,16]"

# Bounds on what a spec may say (command line, factory declarations, bundle manifests alike): numpy
# arrays hold at most 64 dimensions and real models use a handful; names are identifiers, not payloads.
MAX_RANK = 32
MAX_NAME_CHARS = 512


def normalize_dtype(text: str) -> str:
    key = text.strip().lower()
    key = DTYPE_ALIASES.get(key, key)
    if key not in DTYPES:
        raise SpecError(
            f"unknown dtype {text!r}",
            hint=f"use one of: {', '.join(sorted(DTYPES))}",
        )
    return key


def parse_input_spec(text: str) -> TensorSpec:
    m = _SPEC_RE.match(text)
    if not m:
        raise SpecError(f"cannot parse input spec {text!r}: {SPEC_HELP}")
    dims: list[int | str] = []
    body = m.group("dims").strip()
    if body:
        for raw in body.split(","):
            tok = raw.strip()
            if not tok:
                raise SpecError(f"empty dimension in {text!r}: {SPEC_HELP}")
            if tok.lstrip("-").isdigit():
                val = int(tok)
                if val < 0:
                    raise SpecError(f"negative dimension {val} in {text!r}", hint="use a name for a dynamic axis")
                dims.append(val)
            elif _DIM_RE.match(tok):
                dims.append(tok)
            else:
                raise SpecError(f"bad dimension {tok!r} in {text!r}: integers are fixed, identifiers are dynamic")
    spec = TensorSpec(name=m.group("name"), dtype=normalize_dtype(m.group("dtype")), dims=tuple(dims))
    check_bounds(spec, "input spec")
    return spec


def check_bounds(spec: TensorSpec, what: str) -> None:
    """A name and a rank within what bridge handles, whatever declared them."""
    if len(spec.name) > MAX_NAME_CHARS:
        raise SpecError(
            f"{what} name of {len(spec.name)} characters ({spec.name[:40]}...) is too long",
            hint=f"input and output names have at most {MAX_NAME_CHARS} characters",
        )
    if len(spec.dims) > MAX_RANK:
        raise SpecError(f"{what} {spec.name!r} has {len(spec.dims)} dimensions; bridge handles at most {MAX_RANK}")
    for d in spec.dims:
        if isinstance(d, str) and len(d) > MAX_NAME_CHARS:
            raise SpecError(f"{what} {spec.name!r} names a dimension of {len(d)} characters; at most {MAX_NAME_CHARS}")


def _parse_number(tok: str, whole: str) -> float:
    try:
        val = float(tok)
    except ValueError:
        raise SpecError(f"bad number {tok!r} in {whole!r}: expected NAME=LOW:HIGH, e.g. ids=0:1000") from None
    if not math.isfinite(val):
        raise SpecError(f"range bound {tok!r} in {whole!r} is not finite")
    return val


def parse_range(text: str) -> tuple[str, tuple[float, float]]:
    name, sep, rest = text.partition("=")
    low, sep2, high = rest.partition(":")
    if not sep or not sep2 or not name.strip():
        raise SpecError(f"cannot parse input range {text!r}: expected NAME=LOW:HIGH, e.g. ids=0:1000")
    lo, hi = _parse_number(low.strip(), text), _parse_number(high.strip(), text)
    if not lo < hi:
        raise SpecError(f"empty input range {text!r}: LOW must be below HIGH")
    return name.strip(), (lo, hi)


def parse_dim_size(text: str) -> tuple[str, int]:
    name, sep, val = text.partition("=")
    name = name.strip()
    if not sep or not _DIM_RE.match(name) or not val.strip().isdigit() or int(val) < 1:
        raise SpecError(f"cannot parse dimension size {text!r}: expected NAME=SIZE with SIZE >= 1, e.g. batch=4")
    return name, int(val)


def apply_ranges(specs: list[TensorSpec], ranges: dict[str, tuple[float, float]]) -> list[TensorSpec]:
    names = {s.name for s in specs}
    unknown = sorted(set(ranges) - names)
    if unknown:
        raise SpecError(
            f"--input-range names {', '.join(unknown)}, which is not an input",
            hint=f"inputs are: {', '.join(sorted(names)) or '(none)'}",
        )
    out = []
    for s in specs:
        rng = ranges.get(s.name, s.value_range)
        if rng is not None and s.dtype.startswith(("int", "uint")) and rng[1] - rng[0] < 1:
            raise SpecError(f"integer input {s.name!r} has range {rng[0]}:{rng[1]}, which holds no integer")
        out.append(s.with_range(rng))
    return out


def check_unique(specs: list[TensorSpec]) -> None:
    seen = set()
    for s in specs:
        if s.name in seen:
            raise SpecError(f"input {s.name!r} is declared twice")
        seen.add(s.name)
