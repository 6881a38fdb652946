"""The Python API, for notebooks and scripts that hold a model object.

    import bridge

    report = bridge.export(model, "bundles/net", inputs=["x:float32[batch,3,224,224]"])
    report = bridge.verify("bundles/net", source=model)          # in-process, the object itself
    report = bridge.verify("bundles/net", source="net.py:build")  # or any SOURCE the CLI takes

A model object (a torch ``nn.Module`` or a Keras model) runs in this process: the caller already
trusts it. A SOURCE string is loaded here too, with the CLI's safety rules (``trust_code=False``).
Keywords are the fields of ``bridge.options.ExportOptions`` / ``VerifyOptions`` (the same options the
CLI and ``bridge check`` build), with friendlier forms where a flag takes text: ``atol=1e-5`` or
``atol={"logits": 1e-4}``, ``input_ranges={"ids": (0, 30522)}``, ``dims={"batch": 4}``,
``input_kinds={"attention_mask": "mask"}``. Both return the Report (``report.status``, ``report.passed``,
``report.to_json()``); errors raise ``bridge.errors.BridgeError`` with its exit code.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import fields

__all__ = ["export", "verify"]


def _tolerance_tokens(value, what: str) -> list[str]:
    """A number, a {output: number} mapping, or CLI-style tokens ("1e-5", "logits:1e-4")."""
    if value is None:
        return []
    if isinstance(value, bool):
        raise TypeError(f"{what} must be a number, a mapping of output name -> number, or a list of tokens")
    if isinstance(value, (int, float)):
        return [repr(float(value))]
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [f"{k}:{float(v)!r}" for k, v in value.items()]
    return [str(v) if isinstance(v, str) else repr(float(v)) for v in value]


def _pairs(value, sep: str, join=None) -> list[str]:
    """{name: value} or ["name=value", ...] as the CLI's NAME=VALUE tokens."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [f"{k}{sep}{join(v) if join else v}" for k, v in value.items()]
    return [str(v) for v in value]


def _range_text(v) -> str:
    return f"{v[0]}:{v[1]}" if isinstance(v, (tuple, list)) else str(v)


# friendly keyword -> (options field, converter)
_FORMS = {
    "atol": ("atol", lambda v: _tolerance_tokens(v, "atol")),
    "rtol": ("rtol", lambda v: _tolerance_tokens(v, "rtol")),
    "scale_atol": ("scale_atol", lambda v: _tolerance_tokens(v, "scale_atol")),
    "input_ranges": ("ranges", lambda v: _pairs(v, "=", _range_text)),
    "dims": ("dims", lambda v: _pairs(v, "=")),
    "dim_min": ("dims_min", lambda v: _pairs(v, "=")),
    "dim_max": ("dims_max", lambda v: _pairs(v, "=")),
    "input_kinds": ("input_kinds", lambda v: _pairs(v, "=")),
    "samples": ("inputs_npz", os.fspath),
    "policy": ("policy_file", os.fspath),
    "weights": ("weights", os.fspath),
    "labels": ("labels", os.fspath),
}


def _options(cls, given: dict, fixed: dict):
    names = {f.name for f in fields(cls)}
    values = dict(fixed)
    for key, value in given.items():
        field_name, convert = _FORMS.get(key, (key, None))
        if field_name not in names or field_name in fixed:
            accepted = sorted((names - set(fixed)) | {k for k, (f, _) in _FORMS.items() if f in names})
            raise TypeError(f"unexpected keyword argument {key!r}; accepted: {', '.join(accepted)}")
        values[field_name] = convert(value) if convert and value is not None else value
    return cls(**values)


def _source(source):
    """(label for reports, model object or None)."""
    if source is None or isinstance(source, (str, os.PathLike)):
        return (None if source is None else os.fspath(source)), None
    from bridge.native import object_label

    return object_label(source), source


def export(model, out_dir, inputs=None, **options):
    """Export ``model`` (an object or a SOURCE string) to a bundle at ``out_dir``, verify it, return the
    Report. ``inputs``: specs like ``["x:float32[batch,3,224,224]"]`` (Keras models know their own)."""
    from bridge.exporting import run_export
    from bridge.options import ExportOptions

    label, obj = _source(model)
    if isinstance(inputs, str):
        inputs = [inputs]
    opts = _options(ExportOptions, options, {"source": label, "output": os.fspath(out_dir),
                                             "inputs": list(inputs or [])})
    return run_export(opts, obj)


def verify(target, source=None, **options):
    """Verify ``target`` (a bundle directory or a .onnx file) against ``source`` (an object or a
    SOURCE string) or, without one, against the bundle's golden outputs; return the Report."""
    from bridge.options import VerifyOptions
    from bridge.verifying import run_verify

    label, obj = _source(source)
    if "inputs" in options:  # the CLI's --input: specs, not samples
        specs = options.pop("inputs")
        options["input_specs"] = [specs] if isinstance(specs, str) else list(specs or [])
    opts = _options(VerifyOptions, options, {"target": os.fspath(target), "source": label})
    return run_verify(opts, obj)
