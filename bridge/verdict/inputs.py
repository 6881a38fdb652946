"""Input feeds: seeded draws from TensorSpecs, real samples from .npz files. numpy only."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bridge.artifact.files import require_regular
from bridge.errors import InputError
from bridge.types import Case, TensorSpec

Feeds = dict[str, np.ndarray]

# Values drawn when a spec carries no range: floats standard normal, integers in [0, 10), bools fair.
DEFAULT_INT_RANGE = (0, 10)


def numpy_dtype(name: str) -> np.dtype:
    if name == "bfloat16":
        import ml_dtypes  # shipped with onnx and tensorflow

        return np.dtype(ml_dtypes.bfloat16)
    return np.dtype(name)


def fill(spec: TensorSpec, shape: tuple[int, ...], mode: str, rng: np.random.Generator) -> np.ndarray:
    """Values at the edges of a declared range ("low", "high", "mix"), or over a whole integer dtype
    ("full"). HIGH is exclusive: the top is HIGH - 1 for integers, the largest value below HIGH for floats."""
    dtype = numpy_dtype(spec.dtype)
    if mode == "full":
        info = np.iinfo(dtype)
        lo, hi = int(info.min), int(info.max)
        if dtype.itemsize == 8:  # int64 ids beyond 2**31 are no index any model accepts
            lo, hi = -(2**31), 2**31 - 1
        return rng.integers(lo, hi, size=shape, endpoint=True, dtype=np.int64).astype(dtype)
    lo, hi = spec.value_range
    if dtype.kind in "iu":
        low, top = int(np.ceil(lo)), int(np.ceil(hi)) - 1
        info = np.iinfo(dtype)
        low, top = max(low, int(info.min)), min(top, int(info.max))
    else:
        low = np.asarray(lo, dtype=dtype)
        top = np.nextafter(np.asarray(hi, dtype=dtype), np.asarray(lo, dtype=dtype))
        if top < low:
            top = low
    edges = {"low": low, "high": top}
    if mode in edges:
        return np.full(shape, edges[mode], dtype=dtype)
    return np.where(rng.integers(0, 2, size=shape).astype(bool), top, low).astype(dtype)


def draw(spec: TensorSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    dtype = spec.dtype
    if dtype == "bool":
        return rng.integers(0, 2, size=shape).astype(bool)
    if dtype.startswith(("int", "uint")):
        lo, hi = spec.value_range or DEFAULT_INT_RANGE
        lo_i, hi_i = int(np.ceil(lo)), int(np.ceil(hi))
        info = np.iinfo(np.dtype(dtype))
        lo_i, hi_i = max(lo_i, info.min), min(hi_i, info.max)
        return rng.integers(lo_i, hi_i, size=shape, dtype=np.int64).astype(dtype)
    if spec.value_range is not None:
        lo, hi = spec.value_range
        values = rng.uniform(lo, hi, size=shape)
    else:
        values = rng.standard_normal(size=shape)
    return values.astype(numpy_dtype(dtype))


# Largest generated input: a model file can declare any dims, and its inputs are allocated here.
MAX_INPUT_BYTES = 4 << 30


def make_feeds(specs: list[TensorSpec], case: Case) -> Feeds:
    """One draw per input. Inputs are drawn in declaration order from one generator."""
    for s in specs:
        shape = s.shape(case.sizes)
        nbytes = int(np.prod(shape, dtype=object)) * numpy_dtype(s.dtype).itemsize
        if nbytes > MAX_INPUT_BYTES:
            raise InputError(
                f"input {s.to_text()} at sizes {case.sizes or {}} would take {nbytes / 2**30:.3g} GiB "
                f"(shape {list(shape)}); bridge generates at most {MAX_INPUT_BYTES >> 30} GiB per input",
                hint="check the dims the model declares; set dynamic sizes with --dim NAME=SIZE",
            )
    rng = np.random.default_rng(case.seed)
    modes = dict(case.fill)
    feeds = {}
    for s in specs:
        shape, mode = s.shape(case.sizes), modes.get(s.name)
        if s.kind == "mask":
            feeds[s.name] = mask(s, shape, mode, rng)
        elif s.kind == "positions":
            feeds[s.name] = positions(s, shape)
        elif mode is not None:
            feeds[s.name] = fill(s, shape, mode, rng)
        else:
            feeds[s.name] = draw(s, shape, rng)
    return feeds


def mask(spec: TensorSpec, shape: tuple[int, ...], mode: str | None, rng: np.random.Generator) -> np.ndarray:
    """A 0/1 attention mask along the last axis in which every row attends to at least one position:
    random lengths with suffix padding (mode None), prefix padding ("left"), no padding ("full") or
    one position per row ("min")."""
    dtype = numpy_dtype(spec.dtype)
    if not shape or shape[-1] == 0:
        return np.ones(shape, dtype=dtype)
    seq = shape[-1]
    rows = int(np.prod(shape[:-1], dtype=np.int64))
    if mode == "full":
        lengths = np.full(rows, seq)
    elif mode == "min":
        lengths = np.ones(rows, dtype=np.int64)
    else:
        lengths = rng.integers(1, seq + 1, size=rows)
    pos = np.arange(seq)[None, :]
    on = pos >= (seq - lengths[:, None]) if mode == "left" else pos < lengths[:, None]
    return on.reshape(shape).astype(dtype)


def positions(spec: TensorSpec, shape: tuple[int, ...]) -> np.ndarray:
    """0..n-1 along the last axis, as a tokenizer pipeline makes position ids."""
    dtype = numpy_dtype(spec.dtype)
    if not shape:
        return np.zeros((), dtype=dtype)
    return np.ascontiguousarray(np.broadcast_to(np.arange(shape[-1]), shape)).astype(dtype)


def load_npz(path: str | Path, specs: list[TensorSpec]) -> Feeds:
    """Real samples from an .npz file (never unpickled), checked against the input specs."""
    path = require_regular(path, "inputs file")
    try:
        data = np.load(path, allow_pickle=False)
        if not isinstance(data, np.lib.npyio.NpzFile):
            raise ValueError("it is a single .npy array, not an .npz of named arrays")
        with data:
            arrays = {k: data[k] for k in data.files}
    except Exception as exc:  # zip errors, pickled object arrays, ...
        raise InputError(
            f"cannot read inputs file {path}: {type(exc).__name__}: {exc}",
            hint="save plain arrays with numpy.savez(path, name=array, ...), one key per model input",
        ) from None
    expected = [s.name for s in specs]
    if sorted(arrays) != sorted(expected):
        raise InputError(
            f"inputs file {path} has arrays {sorted(arrays)}, the model's inputs are {sorted(expected)}",
            hint="name each array in the .npz after the model input it feeds",
        )
    out: Feeds = {}
    for s in specs:
        arr = arrays[s.name]
        if arr.ndim != len(s.dims) or any(isinstance(d, int) and d != n for d, n in zip(s.dims, arr.shape)):
            raise InputError(f"inputs file {path}: {s.name!r} has shape {arr.shape}, the model expects {s.to_text()}")
        want = numpy_dtype(s.dtype)
        if arr.dtype != want:
            if arr.dtype.kind != want.kind and not (arr.dtype.kind in "iu" and want.kind in "iu"):
                raise InputError(f"inputs file {path}: {s.name!r} is {arr.dtype}, the model expects {s.dtype}")
            cast = arr.astype(want)
            if arr.dtype.kind in "iu" and not np.array_equal(cast.astype(arr.dtype), arr):
                raise InputError(
                    f"inputs file {path}: {s.name!r} holds {arr.dtype} values that do not fit {s.dtype}",
                    hint=f"save the array as {s.dtype} with values in its range",
                )
            if arr.dtype.kind == "f" and not np.array_equal(np.isfinite(cast), np.isfinite(arr)):
                raise InputError(f"inputs file {path}: {s.name!r} holds {arr.dtype} values that overflow {s.dtype}")
            arr = cast
        out[s.name] = arr
    return out


def batch_sizes(specs: list[TensorSpec], feeds: Feeds) -> dict[str, int]:
    """The sizes of the dynamic axes in a given feed."""
    sizes: dict[str, int] = {}
    for s in specs:
        for axis, name in s.dynamic_axes.items():
            sizes[name] = int(feeds[s.name].shape[axis])
    return sizes


def load_labels(path: str | Path, feeds: Feeds) -> np.ndarray:
    """Integer class labels (.npy or an .npz with one array), one per row of the real samples."""
    path = require_regular(path, "labels file")
    try:
        data = np.load(path, allow_pickle=False)
        if isinstance(data, np.lib.npyio.NpzFile):
            with data:
                if len(data.files) != 1:
                    raise InputError(f"labels file {path} holds {len(data.files)} arrays, expected one")
                data = data[data.files[0]]
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"cannot read labels file {path}: {type(exc).__name__}: {exc}") from None
    rows = {int(v.shape[0]) for v in feeds.values() if v.ndim}
    if data.ndim != 1 or data.dtype.kind not in "iu" or (rows and data.shape[0] not in rows):
        raise InputError(
            f"labels file {path} holds {data.dtype}{list(data.shape)}, expected one integer label "
            f"per sample ({sorted(rows)} rows)"
        )
    return data.astype(np.int64)
