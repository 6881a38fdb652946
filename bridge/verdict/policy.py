"""Tolerance policy: defaults keyed by output dtype and device, overridable globally and per output.

The element test is |candidate - reference| <= atol + scale_atol * max|reference| + rtol * |reference|
(numpy's isclose plus a term proportional to the output's largest magnitude, without broadcasting
and without NaN equality). Rounding errors are proportional to the size of the values flowing
through a layer, not of each output element, so near-zero outputs of a large-valued layer need the
``scale_atol`` term: about 1e-5 of the scale on the CPU, more on CUDA where TF32 is the default. Defaults and the evidence: docs/tolerances.md.

A reduced-precision artifact (an int8 or float16 graph derived from a float32 export) is compared
with the float32 native model under a row of its own, keyed by (reference dtype, device, precision):
a looser element test, a bound on the relative error norm ``||onnx - ref|| / ||ref||`` of every
output, and a top-1 agreement floor on real samples for classifier outputs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from pathlib import Path

import tomllib

from bridge.errors import UsageError


@dataclass(frozen=True)
class Tolerance:
    atol: float
    rtol: float
    allow_nonfinite: bool = False
    scale_atol: float = 0.0
    # Reduced-precision rows only: a bound on ||onnx - ref|| / ||ref|| per output and case, a top-1
    # agreement floor on the real samples (classifier-shaped outputs), and the row's key.
    rel_norm: float | None = None
    min_top1: float | None = None
    row: str = ""

    def to_json(self) -> dict:
        out = {
            "atol": self.atol,
            "rtol": self.rtol,
            "scale_atol": self.scale_atol,
            "allow_nonfinite": self.allow_nonfinite,
        }
        if self.row:
            out.update(rel_norm=self.rel_norm, min_top1=self.min_top1, row=self.row)
        return out


EXACT = Tolerance(0.0, 0.0)

# (dtype, device) -> Tolerance. Integer and bool outputs are always exact.
DEFAULTS: dict[tuple[str, str], Tolerance] = {
    ("float64", "cpu"): Tolerance(1e-8, 1e-7),
    ("float64", "cuda"): Tolerance(1e-8, 1e-7),
    ("float64", "cuda-tf32"): Tolerance(1e-8, 1e-7),
    # Accumulated rounding grows with the values flowing through the layers, not with each output:
    # resnet50 with calibrated BatchNorm (largest |logit| ~1.9, torch; ~4.4, Keras) differed by up to
    # 2.7e-5 of that scale on the CPU. The scale term leaves about 4x headroom.
    ("float32", "cpu"): Tolerance(1e-5, 1e-4, scale_atol=1e-4),
    # CUDA is verified with TF32 off on both sides (ORT use_tf32=0, torch allow_tf32=False): fp32
    # kernels differ from the CPU's by algorithm only. 5x the CPU's scale term.
    ("float32", "cuda"): Tolerance(1e-5, 1e-4, scale_atol=5e-4),
    # --tf32 (the deployment default of ORT's CUDA EP and cuDNN): measured on an H200, errors reached
    # 3.4e-4 (transformers) to 2.8e-2 (conv nets with small logits) of the output's largest magnitude.
    # A loose check: it catches gross errors only; the TF32-off run is the proof.
    ("float32", "cuda-tf32"): Tolerance(1e-4, 1e-3, scale_atol=5e-2),
    ("float16", "cpu"): Tolerance(1e-3, 1e-2, scale_atol=5e-3),
    ("float16", "cuda"): Tolerance(1e-3, 1e-2, scale_atol=5e-3),
    ("float16", "cuda-tf32"): Tolerance(1e-3, 1e-2, scale_atol=5e-3),
    ("bfloat16", "cpu"): Tolerance(1e-2, 5e-2, scale_atol=2e-2),
    ("bfloat16", "cuda"): Tolerance(1e-2, 5e-2, scale_atol=2e-2),
    ("bfloat16", "cuda-tf32"): Tolerance(1e-2, 5e-2, scale_atol=2e-2),
}


PRECISIONS = ("fp32", "fp16", "int8")

# (reference dtype, device, artifact precision) -> Tolerance, for artifacts derived from a float32
# export at lower precision and compared with the float32 native model. Measured in
# docs/tolerances.md ("Reduced precision"): the element test catches gross local errors, the
# relative error norm bounds the spread, the top-1 floor applies on real samples only.
PRECISION_DEFAULTS: dict[tuple[str, str, str], Tolerance] = {
    ("float32", "cpu", "int8"): Tolerance(1e-4, 0.1, scale_atol=0.25, rel_norm=0.25, min_top1=0.99),
    ("float32", "cuda", "int8"): Tolerance(1e-4, 0.1, scale_atol=0.25, rel_norm=0.25, min_top1=0.99),
    ("float32", "cpu", "fp16"): Tolerance(1e-4, 1e-2, scale_atol=1e-2, rel_norm=1e-2, min_top1=0.99),
    ("float32", "cuda", "fp16"): Tolerance(1e-4, 1e-2, scale_atol=1e-2, rel_norm=1e-2, min_top1=0.99),
}


def precision_row(defaults: dict, dtype: str, device: str, precision: str) -> tuple[str, Tolerance] | None:
    """The reduced-precision row for a reference dtype and device: exact key, else the CPU's, else
    the float32 reference's (a float64 model's artifact is judged like a float32 one's)."""
    for key in (
        (dtype, device, precision),
        (dtype, "cpu", precision),
        ("float32", device, precision),
        ("float32", "cpu", precision),
    ):
        if key in defaults:
            return "/".join(key), defaults[key]
    return None


@dataclass(frozen=True)
class Policy:
    """Which tolerance applies to an output. Precedence: per-output > global override > default."""

    atol: float | None = None
    rtol: float | None = None
    scale_atol: float | None = None
    outputs_atol: dict = field(default_factory=dict)
    outputs_rtol: dict = field(default_factory=dict)
    outputs_scale_atol: dict = field(default_factory=dict)
    allow_nonfinite: bool = False
    defaults: dict = field(default_factory=lambda: dict(DEFAULTS))
    min_top1_agreement: float | None = None
    precision: str = "fp32"  # the artifact's: fp32, or fp16 / int8 for a graph derived at lower precision
    precision_defaults: dict = field(default_factory=lambda: dict(PRECISION_DEFAULTS))
    max_accuracy_drop: float | None = None  # with --labels: native accuracy minus ONNX accuracy, at most

    def tolerance(self, name: str, dtype: str, device: str) -> Tolerance:
        if dtype not in ("float16", "bfloat16", "float32", "float64"):
            return replace(EXACT, allow_nonfinite=self.allow_nonfinite)
        reduced = (
            precision_row(self.precision_defaults, dtype, device, self.precision)
            if self.precision != "fp32" and dtype in ("float32", "float64")
            else None
        )
        if reduced is not None:
            key, base = reduced
            tol = self._overridden(name, base)
            top1 = self.min_top1_agreement if self.min_top1_agreement is not None else base.min_top1
            return replace(tol, rel_norm=base.rel_norm, min_top1=top1, row=key)
        base = self.defaults.get((dtype, device)) or self.defaults.get((dtype, "cpu")) or DEFAULTS[("float32", "cpu")]
        return self._overridden(name, base)

    def _overridden(self, name: str, base: Tolerance) -> Tolerance:
        atol = self.outputs_atol.get(name, self.atol if self.atol is not None else base.atol)
        rtol = self.outputs_rtol.get(name, self.rtol if self.rtol is not None else base.rtol)
        # An explicit atol is the whole absolute allowance unless a scale term is given explicitly too.
        atol_given = name in self.outputs_atol or self.atol is not None
        default_scale = 0.0 if atol_given else base.scale_atol
        scale = self.outputs_scale_atol.get(name, self.scale_atol if self.scale_atol is not None else default_scale)
        return Tolerance(float(atol), float(rtol), self.allow_nonfinite, float(scale))

    def to_json(self) -> dict:
        per = (("atol", self.outputs_atol), ("rtol", self.outputs_rtol), ("scale_atol", self.outputs_scale_atol))
        names = sorted(set().union(*(d for _, d in per)))
        return {
            "atol": self.atol,
            "rtol": self.rtol,
            "scale_atol": self.scale_atol,
            "outputs": {n: {k: d[n] for k, d in per if n in d} for n in names},
            "allow_nonfinite": self.allow_nonfinite,
            "min_top1_agreement": self.min_top1_agreement,
            "defaults": {f"{d}/{dev}": t.to_json() for (d, dev), t in sorted(self.defaults.items())},
            **self._precision_json(),
        }

    def _precision_json(self) -> dict:
        """For a reduced-precision artifact: its precision and the rows that apply to it (a float32
        policy's JSON is unchanged)."""
        if self.precision == "fp32" and self.max_accuracy_drop is None:
            return {}
        rows = {
            "/".join(k): t.to_json() | {"rel_norm": t.rel_norm, "min_top1": t.min_top1}
            for k, t in sorted(self.precision_defaults.items())
            if k[2] == self.precision
        }
        for row in rows.values():
            row.pop("row", None)
        return {"precision": self.precision, "precision_defaults": rows, "max_accuracy_drop": self.max_accuracy_drop}

    @classmethod
    def from_json(cls, data: dict) -> "Policy":
        defaults = dict(DEFAULTS)
        reduced = dict(PRECISION_DEFAULTS)
        rows = {}
        for section in ("precision_defaults", "defaults"):
            table = data.get(section) or {}
            if not isinstance(table, dict):
                raise UsageError(
                    f"policy '{section}' must map \"dtype/device\" keys to tables like {{atol = 1e-4, rtol = 1e-3}}"
                )
            rows.update(table)
        for key, tol in rows.items():
            dtype, device, precision = (str(key).split("/") + ["", ""])[:3]
            try:
                row = Tolerance(
                    _num(tol["atol"], f"{key}.atol"),
                    _num(tol["rtol"], f"{key}.rtol"),
                    scale_atol=_num(tol.get("scale_atol", 0.0), f"{key}.scale_atol"),
                )
                if precision:
                    if precision not in PRECISIONS[1:]:
                        raise UsageError(
                            f"policy default {key!r}: precision {precision!r} is not one of {', '.join(PRECISIONS[1:])}"
                        )
                    row = replace(
                        row,
                        rel_norm=_num(tol.get("rel_norm"), f"{key}.rel_norm"),
                        min_top1=_fraction(tol.get("min_top1"), f"{key}.min_top1"),
                    )
                    reduced[(dtype, device or "cpu", precision)] = row
                else:
                    defaults[(dtype, device or "cpu")] = row
            except (KeyError, TypeError, AttributeError):
                raise UsageError(f"policy default {key!r} needs atol and rtol numbers") from None
        precision = data.get("precision", "fp32")
        if precision not in PRECISIONS:
            raise UsageError(f"policy precision {precision!r} is not one of {', '.join(PRECISIONS)}")
        outs = data.get("outputs") or {}
        if not isinstance(outs, dict) or not all(isinstance(v, dict) for v in outs.values()):
            raise UsageError("policy 'outputs' must map output names to tables like {atol = 1e-4}")
        return cls(
            atol=_num(data.get("atol"), "atol"),
            rtol=_num(data.get("rtol"), "rtol"),
            scale_atol=_num(data.get("scale_atol"), "scale_atol"),
            outputs_atol={n: _num(v["atol"], f"{n}.atol") for n, v in outs.items() if "atol" in v},
            outputs_rtol={n: _num(v["rtol"], f"{n}.rtol") for n, v in outs.items() if "rtol" in v},
            outputs_scale_atol={
                n: _num(v["scale_atol"], f"{n}.scale_atol") for n, v in outs.items() if "scale_atol" in v
            },
            allow_nonfinite=bool(data.get("allow_nonfinite", False)),
            defaults=defaults,
            min_top1_agreement=_num(data.get("min_top1_agreement"), "min_top1_agreement"),
            precision=precision,
            precision_defaults=reduced,
            max_accuracy_drop=_fraction(data.get("max_accuracy_drop"), "max_accuracy_drop"),
        )


def _num(value, what: str) -> float | None:
    from bridge.request import Invalid, tolerance_number

    if value is None:
        return None
    try:
        return tolerance_number(value)
    except Invalid as exc:
        raise UsageError(f"tolerance {what}={value!r}: {exc}") from None


def _fraction(value, what: str) -> float | None:
    val = _num(value, what)
    if val is not None and val > 1:
        raise UsageError(f"{what}={value!r} must be a fraction between 0 and 1")
    return val


def load_policy_file(path: str) -> dict:
    from bridge.artifact.files import POLICY_BYTES, read_bounded

    p = Path(path)
    raw = read_bounded(p, POLICY_BYTES, "policy file", UsageError)
    try:
        text = raw.decode("utf-8")
        data = tomllib.loads(text) if p.suffix == ".toml" else json.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(
            f"policy file {path} is not valid {'TOML' if p.suffix == '.toml' else 'JSON'}: {exc}"
        ) from None
    if not isinstance(data, dict):
        raise UsageError(f"policy file {path} must hold a table/object at top level")
    return data


def build_policy(
    base: dict | None = None,
    atol=None,
    rtol=None,
    allow_nonfinite: bool = False,
    min_top1: float | None = None,
    scale_atol=None,
) -> Policy:
    """A policy from a stored/file dict, then a request's tolerances on top (``TolSpec`` values of
    bridge/request.py: one number for every output and/or numbers per output)."""
    from bridge.request import TolSpec

    policy = Policy.from_json(base or {})
    atol, rtol, scale = atol or TolSpec(), rtol or TolSpec(), scale_atol or TolSpec()
    return replace(
        policy,
        atol=atol.value if atol.value is not None else policy.atol,
        rtol=rtol.value if rtol.value is not None else policy.rtol,
        scale_atol=scale.value if scale.value is not None else policy.scale_atol,
        outputs_atol={**policy.outputs_atol, **atol.outputs},
        outputs_rtol={**policy.outputs_rtol, **rtol.outputs},
        outputs_scale_atol={**policy.outputs_scale_atol, **scale.outputs},
        allow_nonfinite=allow_nonfinite or policy.allow_nonfinite,
        min_top1_agreement=min_top1 if min_top1 is not None else policy.min_top1_agreement,
    )
