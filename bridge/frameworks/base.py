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

    def input_specs(self) -> list[TensorSpec] | None:
        """The inputs the model declares itself (Keras, .pt2, BRIDGE_INPUTS), or None."""

    def run(self, feeds: Feeds) -> Feeds:
        """One deterministic inference (eval mode / training=False), outputs by stable name."""

    def check_state(self) -> None:
        """Raise NondeterministicReference if running the model changed its state (BN statistics)."""

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
