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
    """Values at the edges of a declared range ("low", "high", "mix"), just past it ("above", "below":
    half the elements, the rest inside), or over a whole integer dtype ("full"). HIGH is exclusive: the
    top is HIGH - 1 for integers, the largest value below HIGH for floats."""
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
    if mode in ("above", "below"):  # just past a range (one the bundle under test declared): mixed with inside
        if dtype.kind in "iu":
            past = min(int(np.ceil(hi)), int(info.max)) if mode == "above" else max(low - 1, int(info.min))
        else:
            past = (
                hi + 0.1 * (hi - lo) * rng.random(shape)
                if mode == "above"
                else lo - 0.1 * (hi - lo) * rng.random(shape)
            )
        inside = (
            rng.uniform(lo, hi, size=shape) if dtype.kind == "f" else rng.integers(low, top, size=shape, endpoint=True)
        )
        return np.where(rng.random(shape) < 0.5, past, inside).astype(dtype)
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
        elif mode == "search":
            feeds[s.name] = search_rows(s, shape, rng)
        elif mode is not None and mode.startswith("probe:"):
            feeds[s.name] = probe(s, shape, [float(v) for v in mode[len("probe:") :].split(",")], rng)
        elif mode is not None:
            feeds[s.name] = fill(s, shape, mode, rng)
        else:
            feeds[s.name] = draw(s, shape, rng)
    return feeds


SEARCH_FAMILIES = ("uniform", "band", "constant", "ties", "edges", "wide", "sparse")


def search_rows(spec: TensorSpec, shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    """Rows along the first axis, each drawn from a family of its own (bridge/verdict/search.py): one
    batch covers many distributions over the input's domain, not one distribution many times."""
    dtype = numpy_dtype(spec.dtype)
    if not shape:
        return _row(spec, (), SEARCH_FAMILIES[int(rng.integers(len(SEARCH_FAMILIES)))], rng).astype(dtype)
    out = np.empty(shape, dtype=dtype)
    for r in range(shape[0]):
        out[r] = _row(spec, shape[1:], SEARCH_FAMILIES[int(rng.integers(len(SEARCH_FAMILIES)))], rng)
    return out


def _row(spec: TensorSpec, shape: tuple, family: str, rng: np.random.Generator) -> np.ndarray:
    if spec.dtype == "bool":
        p = float(rng.choice([0.0, 0.05, 0.5, 0.95, 1.0]))
        return rng.random(shape) < p
    if spec.dtype.startswith(("int", "uint")):
        return _int_row(spec, shape, family, rng)
    return _float_row(spec, shape, family, rng)


def _int_row(spec: TensorSpec, shape: tuple, family: str, rng: np.random.Generator) -> np.ndarray:
    lo, hi = spec.value_range or DEFAULT_INT_RANGE
    info = np.iinfo(np.dtype(spec.dtype))
    lo, top = max(int(np.ceil(lo)), int(info.min)), min(int(np.ceil(hi)) - 1, int(info.max))
    if top < lo:
        top = lo
    if family == "constant":
        return np.full(shape, rng.integers(lo, top, endpoint=True), dtype=np.int64)
    if family == "edges":
        return np.where(rng.integers(0, 2, size=shape).astype(bool), top, lo)
    if family == "band":
        c = int(rng.integers(lo, top, endpoint=True))
        w = max(1, int((top - lo) * 10 ** rng.uniform(-3, -1)))
        return rng.integers(max(lo, c - w), min(top, c + w), size=shape, endpoint=True)
    if family == "sparse":
        out = np.full(shape, lo, dtype=np.int64)
        out[rng.random(shape) < 0.02] = top
        return out
    return rng.integers(lo, top, size=shape, endpoint=True)


def _float_row(spec: TensorSpec, shape: tuple, family: str, rng: np.random.Generator) -> np.ndarray:
    if spec.value_range is not None:
        lo, hi = spec.value_range
        top = float(np.nextafter(np.float32(hi), np.float32(lo)))
        span = hi - lo
        if family == "band":
            c, w = rng.uniform(lo, hi), span * 10 ** rng.uniform(-4, -1)
            return np.clip(rng.uniform(c - w, c + w, size=shape), lo, top)
        if family == "constant":
            c = lo + span * (rng.integers(0, 9) / 8 if rng.random() < 0.5 else rng.random())
            return np.full(shape, min(c, top))
        if family == "ties":
            ties = np.arange(np.ceil(lo - 0.5), np.floor(hi - 0.5) + 1) + 0.5
            ties = ties[(ties >= lo) & (ties <= top)]
            if ties.size == 0:
                ties = lo + span * (np.arange(8) + 0.5) / 8
            return rng.choice(ties, size=shape)
        if family == "edges":
            return np.where(rng.integers(0, 2, size=shape).astype(bool), top, lo)
        if family == "wide":  # toward the edges or the middle: a skewed spread over the whole domain
            u = rng.random(shape) ** (10 ** rng.uniform(-1, 1))
            return np.clip(lo + span * (u if rng.random() < 0.5 else 1 - u), lo, top)
        if family == "sparse":
            out = np.full(shape, rng.uniform(lo, hi))
            spikes = rng.random(shape) < 0.02
            out[spikes] = np.where(rng.random(int(spikes.sum())) < 0.5, lo, top)
            return np.clip(out, lo, top)
        return rng.uniform(lo, hi, size=shape)
    if family == "band":
        c, w = rng.normal(0, 2), 10 ** rng.uniform(-4, -1)
        return rng.uniform(c - w, c + w, size=shape)
    if family == "constant":
        return np.full(shape, rng.integers(-16, 17) / 4 if rng.random() < 0.5 else rng.normal(0, 3))
    if family == "ties":
        return rng.integers(-6, 6, size=shape) + 0.5
    if family == "edges":
        return rng.choice([-1.0, 0.0, 1.0], size=shape)
    if family == "wide":  # shifted means and spreads from 0.01 to 20: thresholds few draws reach
        return rng.normal(rng.uniform(-5, 5), 10 ** rng.uniform(-2, 1.3), size=shape)
    if family == "sparse":
        out = np.zeros(shape)
        spikes = rng.random(shape) < 0.02
        out[spikes] = rng.choice([-1.0, 1.0], int(spikes.sum())) * 10 ** rng.uniform(0, 2, int(spikes.sum()))
        return out
    return rng.standard_normal(size=shape)


def probe(spec: TensorSpec, shape: tuple[int, ...], values: list[float], rng: np.random.Generator) -> np.ndarray:
    """Every element just below, at or just above one of ``values`` (graph thresholds in the input's
    units; bridge/verdict/thresholds.py), within the input's declared range."""
    dtype = numpy_dtype(spec.dtype)
    t = np.asarray(values, dtype=np.float64)[rng.integers(0, len(values), size=shape)]
    if dtype.kind in "iu":
        side = rng.integers(-1, 2, size=shape)
        out = np.where(
            side < 0, np.floor(t) - (np.floor(t) == t), np.where(side > 0, np.ceil(t) + (np.ceil(t) == t), t)
        )
        lo, hi = spec.value_range or (np.iinfo(dtype).min, np.iinfo(dtype).max + 1)
        return np.clip(np.round(out), np.ceil(lo), np.ceil(hi) - 1).astype(dtype)
    t32 = t.astype(np.float32)
    step = np.maximum(np.abs(t) * 1e-3, 1e-3)
    choice = rng.integers(0, 5, size=shape)
    out = np.select(
        [choice == 0, choice == 1, choice == 2, choice == 3],
        [t - step, np.nextafter(t32, np.float32(-np.inf)), t32, np.nextafter(t32, np.float32(np.inf))],
        t + step,
    )
    if spec.value_range is not None:
        lo, hi = spec.value_range
        out = np.clip(out, lo, np.nextafter(np.float32(hi), np.float32(lo)))
    return out.astype(dtype)


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
