"""Protocols every framework module implements. numpy crosses these boundaries, nothing else."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field

import numpy as np

from bridge.types import TensorSpec

Feeds = dict[str, np.ndarray]
EXACT_LIMIT_BYTES = 4 << 30  # the float64 copy of a model's weights that run_exact may make


@dataclass
class ExportResult:
    """What an exporter did: which route produced the file, with what settings, after which failures."""

    exporter: str
    settings: dict
    attempts: list = field(default_factory=list)  # [{"exporter": ..., "error": ...}] that failed first


class Runner(ABC):
    """What every side that runs a model implements: the native model and ONNX Runtime alike.

    A runner is opened by its constructor (or a module's ``load``), runs feeds by name to outputs by
    name (numpy in, numpy out), and is closed once: use it as a context manager so that it is closed
    on every path. Optional capabilities have defaults here, so callers never probe for them."""

    framework = ""
    notes: list  # what opening the runner changed or found that a report must say

    @abstractmethod
    def run(self, feeds: Feeds) -> Feeds:
        """Outputs by name for ``feeds`` by name."""

    def synchronize(self) -> None:
        """Wait for work queued on a device (CUDA); a no-op on the CPU."""

    def versions(self) -> dict:
        return {}

    def precision(self) -> dict:
        """The precision switches in force (TF32 and such), for reports."""
        return {}

    def close(self) -> None:
        """Release the model or session; the runner is not used after this."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class NativeModel(Runner):
    """A loaded PyTorch or TensorFlow model (bridge/frameworks/pt.py, tf.py)."""

    source: str

    def input_specs(self) -> list[TensorSpec] | None:
        """The inputs the model states itself (Keras, .pt2), or None."""
        return None

    def input_names(self) -> list[str] | None:
        """The model's own input names in its order (forward()'s parameters, a Keras model's inputs);
        ``run`` binds feeds of these names by name. None when the model binds by position only."""
        return None

    def index_ranges(self, feeds: Feeds) -> dict[str, tuple[int, str]]:
        """Inputs fed straight to an embedding table: name -> (table size, which table)."""
        return {}

    def axis_limits(self, feeds: Feeds, sizes: dict) -> dict[str, tuple[int, str]]:
        """The largest size a dynamic axis can take that the model states itself (a position table's
        length), found on one run of ``feeds`` whose dynamic axes have the distinct ``sizes``:
        axis -> (size, why)."""
        return {}

    def eager(self):
        """A second way to run the model for timing (TensorFlow's eager mode beside its tf.function), or
        None."""
        return None

    def check_state(self) -> str | None:
        """A description of any state the reference runs changed (BatchNorm statistics), or None."""
        return None

    _exact = None  # the float64 twin: None until first asked for, False where it cannot be made

    def run_exact(self, feeds: Feeds) -> Feeds | None:
        """The model run in float64 on the CPU (its float inputs widened): how far its own float32 run is
        from exact arithmetic on ``feeds``, which tells an ill-conditioned input from a wrong export
        (bridge/verdict/rounding.py). The twin is made on the first call; None where it cannot be made
        or run (the check is optional evidence: without it a verdict stands as it is)."""
        if self._exact is None:
            try:
                twin = self.float64_twin()
            except Exception:  # noqa: BLE001 - a model that cannot be rebuilt in float64: no float64 check
                twin = None
            self._exact = False if twin is None else twin
        if self._exact is False:
            return None
        widened = {k: v.astype(np.float64) if v.dtype.kind == "f" else v for k, v in feeds.items()}
        try:
            return self.run_twin(self._exact, widened)
        except Exception:  # noqa: BLE001 - an op without a float64 kernel, a tensor made float32 inside the model
            return None

    def float64_twin(self):
        """The model with float64 weights (at most EXACT_LIMIT_BYTES of them), or None where the framework
        cannot make one."""
        return None

    def run_twin(self, twin, feeds: Feeds) -> Feeds:
        """Outputs by name of ``twin`` (from ``float64_twin``) on float64 ``feeds``."""
        raise TypeError(f"{type(self).__name__} makes no float64 twin")

    def to(self, device: str) -> str:
        """Run on 'cpu' or 'cuda' from now on; returns the device actually used."""
        return "cpu"

    def set_tf32(self, enabled: bool) -> None:
        """TF32 math on CUDA (cuDNN convolutions, matmuls) on or off."""

    def export_routes(self, choice: str = "auto") -> list[str | None]:
        """Exporters to try in order (one when pinned). A framework with one route returns [None]."""
        if choice not in ("auto", None):
            from bridge.errors import UsageError

            raise UsageError(f"--exporter {choice} does not apply to a {self.framework} model", hint="--exporter auto")
        return [None]

    @abstractmethod
    def export(
        self, path: str, specs: list[TensorSpec], feeds: Feeds, opset: int | None, route: str | None = None
    ) -> ExportResult:
        """Write an ONNX file at ``path`` whose inputs are ``specs`` (by name)."""


def flat_names_from_path(path: tuple, root_is_sequence: bool) -> str:
    """A stable output name from a pytree-like key path: dict keys as they are, tuple items output_i."""
    parts = [str(p) for p in path]
    if not parts:
        return "output"
    if root_is_sequence:
        return "output_" + ".".join(parts)
    return ".".join(parts)


def distribution_versions(*names: str) -> dict:
    """Installed versions by distribution name, read from package metadata (nothing is imported)."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in names:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out
