"""bridge: export native PyTorch and TensorFlow/Keras models to ONNX and prove the export.

``bridge.export(model, out_dir, ...)`` and ``bridge.verify(target, source=model, ...)`` (bridge/api.py),
``bridge.assert_parity`` (bridge/testing.py). Importing bridge imports nothing else: each is loaded
when first used.
"""

__version__ = "0.1.0"

__all__ = ["export", "verify", "assert_parity", "__version__"]


def __getattr__(name):
    if name in ("export", "verify"):
        from bridge import api

        return getattr(api, name)
    if name == "assert_parity":
        from bridge.testing import assert_parity

        return assert_parity
    raise AttributeError(f"module 'bridge' has no attribute {name!r}")
