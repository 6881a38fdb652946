"""Reading and validating ONNX files with the onnx package (before ONNX Runtime sees them)."""

from __future__ import annotations

from pathlib import Path

from bridge.errors import ConversionError, InputError
from bridge.types import ONNX_TO_DTYPE, TensorSpec


def load_checked(path: str | Path, *, produced_by_us: bool = False):
    """Full onnx.checker pass, then onnx.load, which also bounds-checks external data offsets and
    lengths and confines their paths to the model's directory. Returns the ModelProto (weights
    included). ``produced_by_us`` turns a failure into a ConversionError (the converter wrote it)."""
    import onnx

    error = ConversionError if produced_by_us else InputError
    path = Path(path)
    if not path.is_file():
        raise _model_file(path, produced_by_us) or _not_a_file(path)
    # A file the exporter just wrote lies in a staging directory nobody asked about: name it so.
    name = "the exported ONNX file" if produced_by_us else str(path)

    def first(exc):
        return (
            _first(exc).replace(str(path.parent) + "/", "").replace(str(path), name) if produced_by_us else _first(exc)
        )

    try:
        onnx.checker.check_model(str(path), full_check=True)
    except Exception as exc:
        known = _model_file(path, produced_by_us)
        if known is not None:
            raise known from None
        raise error(
            f"{name} fails onnx.checker (full check): {first(exc)}",
            hint="the exporter wrote an invalid graph" if produced_by_us else "the file is not a valid ONNX model",
        ) from None
    import warnings

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            model = onnx.load(str(path))
    except Exception as exc:
        raise error(f"cannot load {name} with onnx: {first(exc)}") from None
    unknown = [str(w.message) for w in caught if "external data key" in str(w.message).lower()]
    if unknown:
        raise error(
            f"{name} has external data entries with unknown keys: {unknown[0][:200]}",
            hint="only location, offset, length, checksum and basepath are valid",
        )
    return model


def _not_a_file(path: Path) -> InputError:
    """What a path that is no regular file is: missing, or something never opened (a FIFO would block)."""
    import os

    if not os.path.lexists(path):
        return InputError(f"{path} does not exist")
    return InputError(
        f"{path} is not a regular file (a directory, FIFO, device, socket or dangling link)",
        hint="give a .onnx file or a bundle directory",
    )


def _model_file(path: Path, produced_by_us: bool):
    """A model bridge exports from, given where an ONNX file belongs: the error that says to export it."""
    if produced_by_us:
        return None
    from bridge.artifact.formats import not_onnx

    return not_onnx(path)


def io_specs(model) -> tuple[list[TensorSpec], list[TensorSpec]]:
    """Graph inputs (initializers excluded) and outputs as TensorSpecs; unnamed dims get a name."""
    inits = {i.name for i in model.graph.initializer}

    def spec(value, idx: int) -> TensorSpec:
        tt = value.type.tensor_type
        if not value.type.HasField("tensor_type"):
            raise InputError(f"graph value {value.name!r} is not a tensor (sequences and maps are not supported)")
        dtype = ONNX_TO_DTYPE.get(tt.elem_type)
        if dtype is None:
            raise InputError(f"graph value {value.name!r} has an unsupported element type {tt.elem_type}")
        dims = []
        for axis, d in enumerate(tt.shape.dim):
            if d.HasField("dim_value"):
                dims.append(int(d.dim_value))
            else:
                dims.append(d.dim_param or f"{value.name}_d{axis}")
        return TensorSpec(value.name, dtype, tuple(dims))

    inputs = [spec(v, i) for i, v in enumerate(model.graph.input) if v.name not in inits]
    outputs = [spec(v, i) for i, v in enumerate(model.graph.output)]
    return inputs, outputs


def describe(model) -> dict:
    return {
        "ir_version": int(model.ir_version),
        "opset": {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import},
        "producer": f"{model.producer_name} {model.producer_version}".strip(),
        "nodes": len(model.graph.node),
        "initializers": len(model.graph.initializer),
    }


def external_data_files(model) -> list[str]:
    """Relative locations of external data the model references."""
    import onnx.external_data_helper as edh

    locations = set()
    for tensor in edh._get_all_tensors(model):
        if tensor.data_location == 1:  # TensorProto.EXTERNAL
            for entry in tensor.external_data:
                if entry.key == "location":
                    locations.add(entry.value)
    return sorted(locations)


def _first(exc: BaseException) -> str:
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]
