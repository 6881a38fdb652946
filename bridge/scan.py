"""Static inspection of pickles inside archives, before any loader unpickles them (stdlib only).

A ``.pt2`` file from ``torch.export.save`` is a zip whose members may be pickles (or torch.save
zips holding a ``data.pkl``) that ``torch.export.load`` unpickles without ``weights_only``. A
pickle runs code through the callables its GLOBAL / STACK_GLOBAL opcodes name, so each member's
opcodes are read with ``pickletools`` and every global must be on an allowlist of tensor-rebuilding
callables; anything else (``os.system``, ``builtins.eval``, ...) is refused before loading.
"""

from __future__ import annotations

import io
import pickletools
import zipfile

# (module, name) pairs a tensor / state pickle legitimately names. A module listed with "*" allows
# any name in it that is a storage or dtype class (checked by suffix below).
ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_tensor_v3"),
    ("torch._utils", "_rebuild_parameter"),
    ("torch._utils", "_rebuild_parameter_with_state"),
    ("torch._utils", "_rebuild_device_tensor_from_numpy"),
    ("torch._utils", "_rebuild_qtensor"),
    ("torch._utils", "_rebuild_sparse_tensor"),
    ("torch._utils", "_rebuild_nested_tensor"),
    ("torch._tensor", "_rebuild_from_type_v2"),
    ("torch.serialization", "_get_layout"),
    ("torch", "Size"),
    ("torch", "Tensor"),
    ("torch", "device"),
    ("torch.nn.parameter", "Parameter"),
    ("torch.export.pt2_archive._package_weights", "TensorProperties"),
}
_TORCH_TYPE_SUFFIXES = ("Storage", "dtype", "float32", "float16", "bfloat16", "float64", "int64", "int32",
                        "int16", "int8", "uint8", "bool", "complex64", "complex128")


def _allowed(module: str, name: str) -> bool:
    if (module, name) in ALLOWED_GLOBALS:
        return True
    return module == "torch" and name.endswith(_TORCH_TYPE_SUFFIXES)


def pickle_globals(data: bytes) -> list[tuple[str, str]]:
    """Every (module, name) a pickle imports, without executing it. Raises ValueError if unreadable."""
    found: list[tuple[str, str]] = []
    strings: list[str] = []
    for op, arg, _ in pickletools.genops(io.BytesIO(data)):
        if op.name in ("SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8", "UNICODE", "SHORT_BINSTRING",
                       "BINSTRING", "STRING"):
            strings.append(str(arg))
        elif op.name in ("GLOBAL", "INST"):
            module, _, name = str(arg).partition(" ")
            found.append((module, name))
        elif op.name == "STACK_GLOBAL":
            if len(strings) < 2:
                found.append(("?", "?"))  # a computed global: cannot be proven harmless
            else:
                found.append((strings[-2], strings[-1]))
        elif op.name in ("MEMOIZE", "PUT", "BINPUT", "LONG_BINPUT"):
            continue
        elif op.name in ("GET", "BINGET", "LONG_BINGET"):
            strings.append("?")  # a memo reference may stand for a string: keep the pair unprovable
    return found


def _looks_like_pickle(data: bytes) -> bool:
    return len(data) >= 2 and data[0] == 0x80 and 2 <= data[1] <= 5


def unsafe_pickle_globals(path: str, max_member_bytes: int = 1 << 30) -> list[str]:
    """Globals outside the allowlist in any pickle inside the zip at ``path`` (nested zips included),
    as 'member: module.name'. Weight blobs (not pickles) are skipped."""
    bad: list[str] = []

    def visit(zf: zipfile.ZipFile, prefix: str, depth: int) -> None:
        for info in zf.infolist():
            if info.is_dir() or info.file_size > max_member_bytes:
                continue
            with zf.open(info) as fh:
                head = fh.read(4)
            label = f"{prefix}{info.filename}"
            if head[:2] == b"PK" and depth < 3:
                with zf.open(info) as fh:
                    nested = io.BytesIO(fh.read())
                if zipfile.is_zipfile(nested):
                    with zipfile.ZipFile(nested) as inner:
                        visit(inner, label + "!", depth + 1)
                continue
            if not (info.filename.endswith(".pkl") or _looks_like_pickle(head)):
                continue
            data = zf.read(info)
            try:
                names = pickle_globals(data)
            except Exception:
                if info.filename.endswith(".pkl"):
                    bad.append(f"{label}: unreadable pickle")
                continue
            bad.extend(f"{label}: {m}.{n}" for m, n in names if not _allowed(m, n))

    with zipfile.ZipFile(path) as zf:
        visit(zf, "", 0)
    return bad
