"""Export-time graph optimizations, applied to the exported file before it is checked and verified.

Levels:
  none         the exporter's graph as it is
  ort          ONNX Runtime's offline optimizer (basic + extended fusions), saved as the bundle's graph
"""

from __future__ import annotations

import os
from pathlib import Path

from bridge.errors import ConversionError, UsageError

LEVELS = ("none", "ort")


def optimize_onnx(path: str | Path, level: str, threads: int | None = None) -> dict:
    """Rewrite the ONNX file at ``path`` in place; returns what was done, for the manifest."""
    if level not in LEVELS:
        raise UsageError(f"unknown --optimize level {level!r}", hint=f"use one of: {', '.join(LEVELS)}")
    if level == "none":
        return {"level": "none"}
    from bridge.frameworks.ort import save_optimized

    path = Path(path)
    tmp = path.with_name(path.stem + ".opt.onnx")
    try:
        info = save_optimized(str(path), str(tmp), threads=threads)
        os.replace(tmp, path)
    except Exception as exc:
        if tmp.exists():
            tmp.unlink()
        if isinstance(exc, (ConversionError, UsageError)):
            raise
        raise ConversionError(f"--optimize {level} failed: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}") from None
    return {"level": level, **info}
