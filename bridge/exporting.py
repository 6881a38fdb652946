"""Orchestration: SOURCE -> bundle. No framework if/else here: frameworks hide behind NativeModel."""

from __future__ import annotations

import datetime as _dt
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bridge.bundle import MODEL, SCHEMA_VERSION, Staging, check_destination, golden_arrays
from bridge.contain import stage
from bridge.environment import environment_info
from bridge.errors import ConversionError, InputError, UsageError
from bridge.inputs import make_feeds
from bridge.native import in_model_order, load_native, resolve_specs, with_semantics
from bridge.onnx_file import describe, io_specs, load_checked
from bridge.options import ExportOptions
from bridge.parity import (binding_problem, case_json, fixed_dynamic_axes, padded_outputs, padding_notes, rule_notes,
                           run_onnx,
                           run_reference)
from bridge.plan import plan_cases
from bridge.precision import check_request
from bridge.policy import build_policy
from bridge.report.model import Report, timed
from bridge.spec import parse_dim_size, parse_range


def run_export(opts: ExportOptions, model=None) -> Report:
    """SOURCE -> bundle. ``model``: a model object the caller holds, instead of loading opts.source
    (in-process only; opts.source is then its label)."""
    return timed(lambda o: _run_export(o, model), opts)


def _run_export(opts: ExportOptions, obj=None) -> Report:
    dest = Path(opts.output)
    check_destination(dest, opts.force)  # before any work: a refused destination costs nothing
    check_request(opts.precision, opts.calibrate)
    sizes = dict(parse_dim_size(d) for d in opts.dims)
    policy = build_policy({}, opts.atol, opts.rtol, scale_args=opts.scale_atol)
    stage(f"loading {opts.source}")
    loaded = load_native(opts.source, weights=opts.weights, framework=opts.framework,
                         trust_code=opts.trust_code, threads=opts.threads, obj=obj)
    model = loaded.model
    specs = in_model_order(resolve_specs(loaded, opts.inputs, opts.ranges), model.input_names())
    cli_ranges = {parse_range(r)[0] for r in opts.ranges}
    range_from = {s.name: "--input-range" if s.name in cli_ranges else f"{opts.source} (declared)"
                  for s in specs if s.value_range is not None}
    stage("deciding what each input's values mean")
    specs, inputs_table = with_semantics(loaded, specs, opts.input_kinds, sizes, range_from)
    plan = plan_cases(specs, opts.seed, sizes,
                      minimum={**loaded.dim_min, **dict(parse_dim_size(d) for d in opts.dims_min)},
                      maximum={**loaded.dim_max, **dict(parse_dim_size(d) for d in opts.dims_max)})
    plan.inputs = inputs_table
    stage("running the native model")
    reference, problem, dropped = run_reference(model, [(c, make_feeds(specs, c)) for c in plan.cases])
    report = Report(kind="export", target=str(dest), source=opts.source, framework=loaded.framework,
                    cases=[case_json(c, "seeded") for c, _, _ in reference], policy=policy.to_json(),
                    notes=[*getattr(model, "notes", []), *plan.notes, *dropped], plan=plan.to_json())
    report.check = {"kind": "export", "policy_origin": "command line" if opts.atol or opts.rtol or opts.scale_atol
                    else "defaults"}
    if problem:
        report.forced_status, report.forced_reason = "inconclusive", problem
        report.notes.append("no bundle written: golden outputs of a nondeterministic model prove nothing")
        return report

    from bridge.frameworks import ort_runner_class

    OrtRunner = ort_runner_class()

    with Staging(dest) as staging:
        chosen, attempts = None, []
        for i, route in enumerate(routes := export_routes(model, opts.exporter)):
            try:
                attempt = convert_and_check(model, route, staging.dir / f".attempt-{i}", specs, reference, opts,
                                            policy, OrtRunner)
            except ConversionError as exc:
                if len(routes) == 1:
                    raise
                attempts.append({"exporter": route or "default", "error": exc.message, **(exc.detail or {})})
                continue
            if chosen is None or attempt.status == "pass":
                if chosen is not None:
                    attempts.append(chosen.summary())  # an earlier artifact that did not pass: kept in the record
                chosen = attempt
            else:
                attempts.append(attempt.summary())
            if chosen.status == "pass":
                break
        if chosen is None:
            raise ConversionError(
                "every exporter failed on " + opts.source + ": "
                + "; ".join(f"{a['exporter']}: {a['error']}" for a in attempts),
                hint="run with --debug for the full trace; check that forward() is traceable")
        chosen.move_into(staging.dir)
        for leftover in staging.dir.glob(".attempt-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        result, onnx_outputs, model_info = chosen.result, chosen.onnx_outputs, chosen.model_info
        report.results = chosen.results
        if chosen.binding:
            report.forced_status, report.forced_reason = "fail", chosen.binding
        report.notes.extend(padding_notes(chosen.padded, report.results) + rule_notes(report.results))
        failed_first = [*result.attempts, *attempts]

        report.exporter = {"name": result.exporter, "settings": result.settings, "failed_first": failed_first}
        reduced = None
        if opts.precision != "fp32":  # derived from the float32 artifact just verified, and verified again
            from bridge.derive import derive_verified

            policy, reduced, reduced_info = derive_verified(
                staging.dir, model, specs, reference, (chosen.onnx_inputs, onnx_outputs), chosen.padded, opts,
                policy, OrtRunner, report)
            model_info = reduced_info or model_info
            report.exporter["precision"] = reduced
            report.check["precision"] = policy.precision
        report.environment = environment(model, opts.threads)
        staging.write_golden(golden_arrays(reference))
        out_dtypes = {n: a.dtype.name for n, a in reference[0][2].items()}
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "source": {**loaded.ref.to_json(), "framework": loaded.framework, "weights": opts.weights},
            "exporter": report.exporter,
            "model": {"file": MODEL, **model_info},
            "inputs": [s.to_json() for s in specs],
            "outputs": [{"name": s.name, "dtype": out_dtypes.get(s.name, s.dtype), "dims": list(s.dims)}
                        for s in onnx_outputs],
            "cases": report.cases,
            "seed": opts.seed,
            "policy": policy.to_json(),
            "versions": report.environment["versions"],
            "verification": {"status": report.status, "reason": report.reason, "device": "cpu",
                             "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")},
        }
        if reduced is not None:
            manifest["precision"] = reduced
            manifest["verification"]["precision"] = policy.precision
        stage("publishing the bundle")
        staging.write_manifest(manifest)
        if report.status == "pass" or opts.publish_failed:
            staging.publish(opts.force)
        else:  # a script that checks for the bundle directory must not ship an export that failed
            aside = set_aside_path(dest, report.status)
            staging.publish(True, aside)
            report.notes.append(f"no bundle published at {dest}: the export's verification is {report.status}; "
                                f"it is kept at {aside} for inspection")
    return report


@dataclass
class Attempt:
    """One exporter route's artifact, checked and compared on every case."""

    route: str | None
    dir: Path
    result: object  # ExportResult
    onnx_outputs: list
    model_info: dict
    results: list
    binding: str | None
    padded: dict
    onnx_inputs: list = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.binding:
            return "fail"
        from bridge.compare import summarize
        from bridge.results import status

        return status([{"status": r.status} for r in summarize(self.results).values()])

    def summary(self) -> dict:
        """What the record keeps of an artifact that was not chosen."""
        from bridge.compare import summarize

        worst = next((r for r in summarize(self.results).values() if r.status != "pass"), None)
        reason = self.binding or (f"{worst.name}: {worst.reason}" if worst else "")
        return {"exporter": self.result.exporter, "verdict": self.status, "error": f"parity {self.status}: {reason}"}

    def move_into(self, target: Path) -> None:
        for entry in self.dir.iterdir():
            os.replace(entry, target / entry.name)


def export_routes(model, choice: str) -> list[str | None]:
    """The exporter routes to try, in order: one when pinned (or when the framework has one route)."""
    routes = getattr(model, "export_routes", None)
    if routes is None:
        if choice not in ("auto", None):
            raise UsageError(f"--exporter {choice} does not apply to a {model.framework} model",
                             hint="--exporter auto")
        return [None]
    return routes(choice)


def convert_and_check(model, route, work: Path, specs, reference, opts: ExportOptions, policy, OrtRunner) -> Attempt:
    """Export by one route into ``work``, check the file (onnx.checker, its inputs and outputs, ONNX
    Runtime can load it), and compare it with the native model on every case. A broken artifact is a
    ConversionError; a wrong one is an Attempt whose status says so."""
    work.mkdir()
    model_path = work / MODEL
    stage(f"converting {opts.source} to ONNX" + (f" with {route}" if route else ""))
    result = model.export(str(model_path), specs, reference[0][1], opts.opset, **({"route": route} if route else {}))
    stage(f"checking the ONNX file {result.exporter} wrote")
    proto = load_checked(model_path, produced_by_us=True)  # the exporter's own graph must be valid ONNX
    if opts.optimize != "none":
        from bridge.optimize import optimize_onnx

        del proto
        result.settings["graph_optimization"] = optimize_onnx(model_path, opts.optimize, opts.threads)
        proto = load_checked(model_path, produced_by_us=True)  # and so must the optimized one
    onnx_inputs, onnx_outputs = io_specs(proto)
    _check_io(specs, onnx_inputs, [n for n in reference[0][2]], onnx_outputs, result.exporter)
    baked = fixed_dynamic_axes(specs, onnx_inputs)
    if baked:
        raise ConversionError(f"{result.exporter} wrote a graph with declared dynamic axes fixed: {'; '.join(baked)}")
    binding = binding_problem(specs, onnx_inputs, model.input_names())
    stage(f"running the ONNX file {result.exporter} wrote in ONNX Runtime")
    try:  # the exported file must load in ONNX Runtime, or the export failed
        runner = OrtRunner(str(model_path), "cpu", threads=opts.threads)
    except InputError as exc:
        raise ConversionError(
            f"{result.exporter} wrote a model that ONNX Runtime cannot load: "
            f"{exc.message.split(': ', 1)[-1]}",
            hint="the graph uses an operator or type this onnxruntime lacks on the CPU "
                 "(e.g. bfloat16 Gemm); try another --opset, or export in float32") from None
    padded = padded_outputs(specs, onnx_outputs)
    try:
        results = run_onnx(runner, reference, policy, "cpu", padded=padded)
    finally:
        runner.close()
    info = describe(proto)
    del proto
    return Attempt(route, work, result, onnx_outputs, info, results, binding, padded, onnx_inputs)


def set_aside_path(dest: Path, status: str) -> Path:
    """Where an export that did not pass is kept: next to DEST, named after its verdict."""
    return dest.with_name(f"{dest.name}.{'failed' if status == 'fail' else status}")


def _check_io(specs, onnx_inputs, native_outputs: list[str], onnx_outputs, exporter: str) -> None:
    got_in = [s.name for s in onnx_inputs]
    want_in = [s.name for s in specs]
    if sorted(got_in) != sorted(want_in):
        raise ConversionError(f"{exporter} wrote a graph with inputs {got_in}, expected {want_in}")
    got_out = [s.name for s in onnx_outputs]
    if sorted(got_out) != sorted(native_outputs):
        raise ConversionError(f"{exporter} wrote a graph with outputs {got_out}, the model returns {native_outputs}")


def environment(model, threads: int | None) -> dict:
    env = environment_info(threads)
    env["versions"].update(model.versions())
    env["precision"] = {"native": model.precision()}
    return env
