"""Write an ONNX model whose large tensors are streamed to the file one at a time.

``onnx.save_model`` serializes the whole ModelProto into one bytes object, and building that
ModelProto already copied every initializer once: a model's weights sit in memory three times over
while it is written. Here the ModelProto holds only the small tensors; each large one is written from
its source (a numpy array or a TensorProto) straight into the file, in protobuf's wire format: a
GraphProto is a sequence of fields, ``initializer`` (field 5) may appear anywhere in it, and a
TensorProto's ``raw_data`` (field 9) is a length-prefixed byte string. The result is an ordinary
ONNX file that onnx.load and ONNX Runtime read like any other.

Past ``LARGE_MODEL_BYTES`` of weights the tensors go to one external data file next to the model
(``model.onnx.data``), as protobuf cannot parse messages over 2 GB.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from typing import Callable

import numpy as np

# Above this many bytes of weights the tensors go to external data (protobuf caps a message at 2 GB).
LARGE_MODEL_BYTES = 1_800_000_000
# Tensors at least this large are streamed rather than kept in the ModelProto.
STREAM_BYTES = 1 << 20

_GRAPH_FIELD = 7  # ModelProto.graph
_INITIALIZER_FIELD = 5  # GraphProto.initializer
_RAW_DATA_FIELD = 9  # TensorProto.raw_data


@dataclass
class Streamed:
    """One initializer written from outside the ModelProto.

    ``read`` returns either a numpy array (its bytes become raw_data) or a TensorProto (written as
    it is, under ``name``)."""

    name: str
    dims: tuple
    data_type: int  # onnx.TensorProto.DataType
    nbytes: int
    read: Callable


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _key(field: int) -> bytes:
    return _varint(field << 3 | 2)  # wire type 2: length-delimited


def _header(item: Streamed):
    from onnx import TensorProto

    return TensorProto(name=item.name, dims=list(item.dims), data_type=item.data_type)


def _little_endian(array: np.ndarray) -> np.ndarray:
    array = np.ascontiguousarray(array)
    if array.dtype.byteorder == ">" or (array.dtype.byteorder == "=" and sys.byteorder == "big"):
        array = array.byteswap().view(array.dtype.newbyteorder("<"))
    return array


def save(model, streamed: list[Streamed], path: str, external: bool | None = None) -> dict:
    """Write ``model`` (whose graph lacks the ``streamed`` initializers) and those tensors to ``path``.
    Returns what was done, for the export's settings."""
    total = sum(s.nbytes for s in streamed)
    if external is None:
        external = total + model.ByteSize() > LARGE_MODEL_BYTES
    if external:
        _save_external(model, streamed, path)
    else:
        _save_inline(model, streamed, path)
    return {"streamed_tensors": len(streamed), "streamed_bytes": total, "external_data": bool(external)}


def _save_inline(model, streamed: list[Streamed], path: str) -> None:
    from onnx import ModelProto

    graph_bytes = model.graph.SerializeToString()
    rest = ModelProto()
    rest.CopyFrom(model)  # small: the large tensors are not in it
    rest.ClearField("graph")
    # Sizes first (the graph's length prefix covers every streamed tensor), then the bytes.
    entries = []
    for item in streamed:
        header = _header(item).SerializeToString()
        body = len(header) + len(_key(_RAW_DATA_FIELD)) + len(_varint(item.nbytes)) + item.nbytes
        entries.append((item, header, body))
    graph_len = len(graph_bytes) + sum(len(_key(_INITIALIZER_FIELD)) + len(_varint(b)) + b for _, _, b in entries)
    with open(path, "wb") as fh:
        fh.write(rest.SerializeToString())
        fh.write(_key(_GRAPH_FIELD) + _varint(graph_len))
        fh.write(graph_bytes)
        for item, header, body in entries:
            data = item.read()
            if not isinstance(data, np.ndarray):  # a TensorProto: take its raw bytes
                data = np.frombuffer(data.raw_data, dtype=np.uint8)
            data = _little_endian(data)
            if data.nbytes != item.nbytes:
                raise ValueError(f"tensor {item.name}: {data.nbytes} bytes, expected {item.nbytes}")
            fh.write(_key(_INITIALIZER_FIELD) + _varint(body))
            fh.write(header)
            fh.write(_key(_RAW_DATA_FIELD) + _varint(item.nbytes))
            fh.write(memoryview(data).cast("B"))
            del data


def _save_external(model, streamed: list[Streamed], path: str) -> None:
    import onnx
    from onnx import TensorProto

    location = os.path.basename(path) + ".data"
    offset = 0
    with open(os.path.join(os.path.dirname(path) or ".", location), "wb") as fh:
        for item in streamed:
            data = item.read()
            if not isinstance(data, np.ndarray):
                data = np.frombuffer(data.raw_data, dtype=np.uint8)
            data = _little_endian(data)
            pad = (-offset) % 4096  # page-aligned offsets, as onnx's own writer does
            fh.write(b"\0" * pad)
            offset += pad
            fh.write(memoryview(data).cast("B"))
            tensor = _header(item)
            tensor.data_location = TensorProto.EXTERNAL
            for key, value in (("location", location), ("offset", str(offset)), ("length", str(item.nbytes))):
                entry = tensor.external_data.add()
                entry.key, entry.value = key, value
            model.graph.initializer.append(tensor)
            offset += item.nbytes
            del data
    onnx.save_model(model, path)
