"""Export step for --precision fp16 / int8: derive the reduced graph from the float32 artifact that was
just verified, in the staging directory, and verify it again against the same native outputs.

The float32 artifact stays the proof of the conversion: it is kept in the bundle as ``parent.onnx``
(its verdict and sha256 go into the manifest), with the derivation's parameters and, for static int8,
its calibration samples, so that a verification can derive the reduced graph again and require it to
be the artifact (bridge/precision/provenance.py). The reduced graph is the bundle's ``model.onnx``,
the one file a deployment loads.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from pathlib import Path

from bridge.artifact.bundle import MODEL
from bridge.precision import methods as P
from bridge.precision import provenance
from bridge.progress import stage


def derive_verified(
    staging_dir: Path, model, specs: list, reference: list, fp32_io: tuple, padded: dict, opts, policy, report
) -> tuple:
    """Replace the verified float32 ``model.onnx`` in ``staging_dir`` by its ``opts.precision`` graph and
    verify that. Returns (policy applied, manifest entry, model description); the report's results,
    dataset metrics, policy and notes are the reduced graph's."""
    from bridge.types import Case
    from bridge.verdict.compare import REAL_DATA, dataset_metrics, summarize
    from bridge.verdict.parity import compare_file, fixed_dynamic_axes, inspect_file

    precision = opts.precision
    fp32_path = staging_dir / MODEL
    fp32 = {
        "sha256": P.sha256(fp32_path),
        "bytes": fp32_path.stat().st_size,
        "status": report.status,
        "reason": report.reason,
        "max_abs": _worst(summarize(report.results), "max_abs"),
        "max_rel_norm": _worst(summarize(report.results), "rel_norm"),
    }
    if report.status != "pass":
        report.notes.append(
            f"no {precision} graph derived: the float32 export is {report.status}, and a reduced "
            "graph is only derived from a float32 artifact that passed"
        )
        return policy, {"precision": "fp32", "requested": precision, "derived": False, "fp32": fp32}, None
    extra = sorted(p.name for p in staging_dir.iterdir() if p.name != MODEL)
    if extra:
        raise P.conversion_error(
            precision,
            f"the float32 graph stores its weights in external files ({', '.join(extra)}); "
            "reduced precision is not supported for models over 2 GB yet",
        )
    method, why = P.method_for(precision, opts.calibrate, opts.optimize)
    feeds, calibration = (None, None)
    if opts.calibrate:
        stage(f"reading the calibration samples {opts.calibrate}")
        feeds, calibration = P.calibration_samples(opts.calibrate, specs)
    work = staging_dir / ".reduced"
    work.mkdir()
    kept = work / "fp32.onnx"
    shutil.move(fp32_path, kept)
    out = work / MODEL
    stage(f"deriving the {precision} graph ({method})")
    settings = P.derive(kept, out, precision, method, feeds, opts.threads)
    stage(f"checking the {precision} graph")
    checked = inspect_file(out, produced_by=f"--precision {precision}")
    reduced_io = (checked.inputs, checked.outputs)
    problem = P.io_problem(fp32_io, reduced_io) or "; ".join(fixed_dynamic_axes(specs, reduced_io[0]))
    if problem:
        raise P.conversion_error(precision, problem)
    if checked.precision != precision:  # verify would refuse a bundle whose graph does not show its precision
        raise P.conversion_error(
            precision,
            f"the derived graph is {checked.precision}: the quantizer changed nothing (no operator it quantizes?)"
            if checked.precision == "fp32"
            else f"the derived graph is {checked.precision}",
        )
    info = checked.description
    runs = list(reference)
    if feeds is not None:
        stage("running the native model on the calibration samples")
        runs.append(
            (Case(REAL_DATA, None, {}, purpose="real samples (calibration)"), feeds, P.run_native_chunked(model, feeds))
        )
    reduced_policy = replace(policy, precision=precision)
    stage(f"running the {precision} graph in ONNX Runtime")
    keep = {REAL_DATA: None} if feeds is not None else None
    results = compare_file(
        out,
        runs,
        reduced_policy,
        threads=opts.threads,
        padded=padded,
        keep=keep,
        produced_by=f"--precision {precision}",
    )
    shutil.move(out, fp32_path)
    parent = provenance.keep_parent(staging_dir, kept)  # the bundle carries what it was derived from
    if calibration is not None:
        calibration["stored"] = provenance.keep_calibration(staging_dir, feeds)
    shutil.rmtree(work, ignore_errors=True)
    if keep and keep[REAL_DATA] is not None:
        report.dataset["cpu"] = {
            "inputs": opts.calibrate,
            "labels": None,
            "outputs": dataset_metrics(runs[-1][2], keep[REAL_DATA], None),
        }
    report.results = results
    report.policy = reduced_policy.to_json()
    report.notes.append(
        f"precision {precision} ({method}): {why}; derived from the float32 export, which passed "
        f"(max abs error {_fmt(fp32['max_abs'])}); the {precision} graph is verified against the "
        "same native outputs"
    )
    if feeds is not None:
        report.notes.extend(P.calibration_coverage(feeds, reference))
    if calibration:
        report.notes.append(
            f"calibration: {calibration['samples']} samples from {calibration['file']} "
            f"(sha256 {calibration['sha256'][:16]}…); the agreement on them is checked here, "
            "held-out samples are the real test: bridge verify --samples"
        )
    from bridge.precision.quality import precision_notes

    report.notes.extend(precision_notes(reduced_policy, results, opts.calibrate, report.dataset))
    entry = P.manifest_entry(precision, method, why, settings, calibration, fp32)
    entry["parent"] = parent
    return reduced_policy, entry, info


def _worst(summary: dict, key: str):
    values = [getattr(r, key) for r in summary.values() if isinstance(getattr(r, key), (int, float))]
    return max(values) if values else None


def _fmt(x) -> str:
    return "-" if x is None else f"{x:.2e}"
