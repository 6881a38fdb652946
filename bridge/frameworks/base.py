"""Protocols every framework module implements. numpy crosses these boundaries, nothing else."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from bridge.types import TensorSpec

Feeds = dict[str, np.ndarray]


@dataclass
class ExportResult:
    """What an exporter did: which route produced the file, with what settings, after which failures."""

    exporter: str
    settings: dict
    attempts: list = field(default_factory=list)  # [{"exporter": ..., "error": ...}] that failed first


class NativeModel(Protocol):
    framework: str
    source: str
    notes: list[str]  # what loading changed or found that a report must say (e.g. switched to eval mode)

    def input_specs(self) -> list[TensorSpec] | None:
        """The inputs the model declares itself (Keras, .pt2, BRIDGE_INPUTS), or None."""

    def input_names(self) -> list[str] | None:
        """The model's own input names in its order (forward()'s parameters, a Keras model's inputs);
        ``run`` binds feeds of these names by name. None when the model binds by position only."""

    def run(self, feeds: Feeds) -> Feeds:
        """One deterministic inference (eval mode / training=False), outputs by stable name."""

    def check_state(self) -> str | None:
        """A description of any state the reference runs changed (BatchNorm statistics), or None."""

    def to(self, device: str) -> str:
        """Run on 'cpu' or 'cuda' from now on; returns the device actually used."""

    def set_tf32(self, enabled: bool) -> None:
        """TF32 math on CUDA (cuDNN convolutions, matmuls) on or off."""

    def precision(self) -> dict:
        """The precision switches in force, for reports."""

    def export(self, path: str, specs: list[TensorSpec], feeds: Feeds, opset: int | None) -> ExportResult:
        """Write an ONNX file at ``path`` whose inputs are ``specs`` (by name)."""

    def synchronize(self) -> None: ...

    def versions(self) -> dict: ...

    def close(self) -> None: ...


def flat_names_from_path(path: tuple, root_is_sequence: bool) -> str:
    """A stable output name from a pytree-like key path: dict keys as they are, tuple items output_i."""
    parts = [str(p) for p in path]
    if not parts:
        return "output"
    if root_is_sequence:
        return "output_" + ".".join(parts)
    return ".".join(parts)
