"""The Python API, for notebooks and scripts that hold a model object.

    import bridge

    report = bridge.export(model, "bundles/net", inputs=["x:float32[batch,3,224,224]"])
    report = bridge.verify("bundles/net", source=model)          # in-process, the object itself
    report = bridge.verify("bundles/net", source="net.py:build")  # or any SOURCE the CLI takes

A model object (a torch ``nn.Module`` or a Keras model) runs in this process: the caller already
trusts it. A SOURCE string is loaded here too, with the CLI's safety rules (``trust_code=False``).
Keywords are the options of the command line and the keys of ``bridge.toml``, by the same names and
parsed by the same table (bridge/request.py), with Python values: ``atol=1e-5`` or ``atol={"logits":
1e-4}``, ``input_ranges={"ids": (0, 30522)}``, ``dims={"batch": 4}``, ``input_kinds={"attention_mask":
"mask"}``, ``inputs=["x:float32[batch,4]"]`` (specs), ``samples="real.npz"`` (real samples). Both return
the Report (``report.status``, ``report.passed``, ``report.to_json()``). Every error, an unknown keyword
or a bad value included, raises ``bridge.errors.BridgeError`` with the exit code and message the
command line gives.
"""

from __future__ import annotations

import os

__all__ = ["export", "verify"]


def _path(value, what: str) -> str:
    from bridge.errors import UsageError

    try:
        text = os.fspath(value)
    except TypeError:
        raise UsageError(f"{what}={value!r}: expected a path (str or os.PathLike)") from None
    if not isinstance(text, str) or not text or "\0" in text:
        raise UsageError(f"{what}={value!r}: expected a non-empty path without NUL characters")
    return text


def _source(source):
    """(label for reports, model object or None)."""
    if source is None:
        return None, None
    if isinstance(source, (str, os.PathLike)):
        return _path(source, "source"), None
    from bridge.native.loading import object_label

    return object_label(source), source


def _guarded(work, request, obj):
    """Run ``work(request, obj)`` as the command line's worker would, raising only BridgeError subclasses:
    an exception bridge did not foresee (a bug, a library failing in a new way) becomes InternalError
    (exit 8) naming the stage it happened in, as the command line says it; Ctrl-C stays KeyboardInterrupt."""
    from bridge.errors import BridgeError, InternalError, exception_summary
    from bridge.frameworks import quiet_trace_log
    from bridge.progress import stages_to

    stage = ["starting"]
    try:
        with stages_to(lambda name: stage.__setitem__(0, name)), quiet_trace_log():
            return work(request, obj)
    except BridgeError:
        raise
    except Exception as exc:  # noqa: BLE001 - the API's promise: BridgeError or a result
        raise InternalError(f"{stage[0]}: {exception_summary(exc)}") from exc


def _run(build, work, obj):
    """Build the request (its refusals are UsageError already), then run it under ``_guarded``."""
    from bridge.errors import BridgeError, InternalError, exception_summary

    try:
        request = build()
    except BridgeError:
        raise
    except Exception as exc:  # noqa: BLE001
        raise InternalError(f"reading the options: {exception_summary(exc)}") from exc
    return _guarded(work, request, obj)


def export(model, out_dir, **options):
    """Export ``model`` (an object or a SOURCE string) to a bundle at ``out_dir``, verify it, return the
    Report. ``inputs``: specs like ``["x:float32[batch,3,224,224]"]`` (Keras models know their own)."""
    from bridge.exporting import run_export
    from bridge.request import from_api

    label, obj = _source(model)
    if label is None:
        from bridge.errors import UsageError

        raise UsageError("export needs a model: an nn.Module, a Keras model or a SOURCE string")
    output = _path(out_dir, "out_dir")
    return _run(lambda: from_api("export", options, {"source": label, "output": output}), run_export, obj)


def verify(target, source=None, **options):
    """Verify ``target`` (a bundle directory or a .onnx file) against ``source`` (an object or a
    SOURCE string) or, without one, against the bundle's golden outputs; return the Report."""
    from bridge.request import from_api
    from bridge.verifying import run_verify

    label, obj = _source(source)
    path = _path(target, "target")
    return _run(lambda: from_api("verify", options, {"target": path, "source": label}), run_verify, obj)
