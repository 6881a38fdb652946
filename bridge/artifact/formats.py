"""What a file given as TARGET is when it is not ONNX: a model bridge exports from (Keras, a SavedModel,
a torch.export program, PyTorch weights), recognised by its bytes and layout (never by running it), so
that the error says which command makes the bundle to verify or inspect."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from bridge.errors import InputError

_HDF5 = b"\x89HDF\r\n\x1a\n"


def recognise(path: str | Path) -> str | None:
    """A description of the model format ``path`` holds ("a Keras model", ...), or None."""
    p = Path(path)
    try:
        if p.is_dir():
            if (p / "saved_model.pb").is_file() or (p / "saved_model.pbtxt").is_file():
                return "a TensorFlow SavedModel directory"
            return None
        if not p.is_file():
            return None
        with open(p, "rb") as fh:
            head = fh.read(16)
    except OSError:
        return None
    suffix = p.suffix.lower()
    if head.startswith(_HDF5):
        return "a Keras model (HDF5)" if suffix in (".h5", ".hdf5", ".keras") else "an HDF5 file (a Keras .h5 model?)"
    if head.startswith(b"PK"):
        names = _zip_names(p)
        if "config.json" in names and any(n.endswith(".weights.h5") or n == "metadata.json" for n in names):
            return "a Keras model"
        if any(n.endswith(("archive_format", "serialized_exported_program.json")) for n in names) or any(
            "/models/model.json" in n or n.endswith("serialized_exported_program.pt") for n in names
        ):
            return "a torch.export program (.pt2)"
        if any(n.endswith("data.pkl") for n in names):
            return "a PyTorch checkpoint (weights saved with torch.save)"
        return None
    if suffix in (".pt", ".pth", ".bin") and head[:1] == b"\x80":
        return "a PyTorch checkpoint (weights saved with torch.save)"
    if suffix == ".safetensors" and _is_safetensors(p):
        return "a safetensors weights file"
    if suffix == ".py":
        return "Python code"
    return None


def _zip_names(p: Path) -> set[str]:
    try:
        with zipfile.ZipFile(p) as zf:
            return set(zf.namelist()[:1000])
    except (OSError, zipfile.BadZipFile, ValueError):
        return set()


def _is_safetensors(p: Path) -> bool:
    try:
        with open(p, "rb") as fh:
            size = int.from_bytes(fh.read(8), "little")
            if not 2 <= size <= 1 << 24:
                return False
            return isinstance(json.loads(fh.read(size)), dict)
    except (OSError, ValueError):
        return False


def not_onnx(path: str | Path, command: str | None = None) -> InputError | None:
    """The error for a TARGET that is a model bridge exports from, or None when it is none of those."""
    what = recognise(path)
    if what is None:
        return None
    name = Path(path).name or str(path)
    stem = Path(path).stem or "model"
    then = (
        f"bridge {command} bundles/{stem}"
        if command
        else f"bridge inspect bundles/{stem} or bridge verify bundles/{stem}"
    )
    if "weights" in what or "checkpoint" in what:
        how = (
            f"export the model that loads it first: bridge export model.py:build --weights {path} -o bundles/{stem}, "
            f"then {then}"
        )
    elif what == "Python code":
        how = f"export the model it builds first: bridge export {path}:FACTORY -o bundles/{stem}"
    else:
        how = f"run bridge export {path} -o bundles/{stem} first, then {then}" + (
            f" --source {path}" if command in (None, "verify") else ""
        )
    return InputError(
        f"{name} is {what}, not an ONNX file or a bundle: "
        + (f"bridge {command} reads" if command else "verify and inspect read")
        + " the bundle bridge export writes",
        hint=how,
    )
