"""Orchestration: SOURCE -> bundle. No framework if/else here: frameworks hide behind NativeModel."""

from __future__ import annotations

import datetime as _dt
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from bridge.artifact.bundle import MODEL, SCHEMA_VERSION, Staging, check_destination, golden_arrays
from bridge.environment import environment_info
from bridge.errors import ConversionError
from bridge.native.loading import (
    in_model_order,
    load_native,
    range_origins,
    resolve_specs,
    stated_limits,
    with_semantics,
)
from bridge.progress import stage
from bridge.report.model import Report, timed
from bridge.verdict.inputs import make_feeds
from bridge.verdict.parity import (
    binding_problem,
    case_json,
    compare_file,
    fixed_dynamic_axes,
    inspect_file,
    padded_outputs,
    padding_notes,
    rule_notes,
    run_reference,
)
from bridge.verdict.plan import plan_cases
from bridge.verdict.policy import build_policy


def run_export(request, model=None) -> Report:
    """SOURCE -> bundle, under an ExportRequest (bridge/request.py). ``model``: a model object the caller
    holds, instead of loading request.source (in-process only; request.source is then its label)."""
    return timed(lambda r: _run_export(r, model), request)


def _run_export(opts, obj=None) -> Report:
    dest = Path(opts.output)
    check_destination(dest, opts.force)  # before any work: a refused destination costs nothing
    policy = build_policy({}, opts.atol, opts.rtol, scale_atol=opts.scale_atol)
    stage(f"loading {opts.source}")
    loaded = load_native(opts, obj=obj)
    opts = loaded.request  # with what the source declares
    model = loaded.model
    specs = in_model_order(resolve_specs(loaded), model.input_names())
    range_from = range_origins(opts, specs, f"{opts.source} (its signature)")
    stage("deciding what each input's values mean")
    specs, inputs_table = with_semantics(loaded, specs, opts.dims, range_from)
    plan = plan_cases(
        specs,
        opts.seed,
        opts.dims,
        minimum=opts.dim_min,
        maximum=opts.dim_max,
        stated=stated_limits(loaded, specs, opts.dims),
    )
    plan.inputs = inputs_table
    stage("running the native model")
    timings: dict = {}
    reference, problem, dropped = run_reference(model, [(c, make_feeds(specs, c)) for c in plan.cases], timings)
    searched = Searched(model, specs, plan, opts, timings, reference) if not problem else None
    report = Report(
        kind="export",
        target=str(dest),
        source=opts.source,
        framework=loaded.framework,
        cases=[case_json(c, "seeded") for c, _, _ in reference],
        policy=policy.to_json(),
        notes=[*model.notes, *plan.notes, *dropped, *(searched.notes if searched else [])],
        plan=plan.to_json(),
    )
    report.check = {
        "kind": "export",
        "policy_origin": "defaults"
        if not (opts.atol or opts.rtol or opts.scale_atol)
        else next(opts.origin(k) for k in ("atol", "rtol", "scale_atol") if getattr(opts, k)),
    }
    if problem:
        report.forced_status, report.forced_reason = "inconclusive", problem
        report.notes.append("no bundle written: golden outputs of a nondeterministic model prove nothing")
        return report

    with Staging(dest) as staging:
        chosen, attempts = None, []
        for i, route in enumerate(routes := model.export_routes(opts.exporter)):
            try:
                attempt = convert_and_check(
                    model, route, staging.dir / f".attempt-{i}", specs, reference, opts, policy, searched
                )
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
                "every exporter failed on "
                + opts.source
                + ": "
                + "; ".join(f"{a['exporter']}: {a['error']}" for a in attempts),
                hint="run with --debug for the full trace; check that forward() is traceable",
            )
        chosen.move_into(staging.dir)
        for leftover in staging.dir.glob(".attempt-*"):
            shutil.rmtree(leftover, ignore_errors=True)
        result, onnx_outputs, model_info = chosen.result, chosen.onnx_outputs, chosen.model_info
        report.results = chosen.results
        if chosen.traced:
            report.forced_status, report.forced_reason = "inconclusive", chosen.traced
        report.cases = [case_json(c, "seeded") for c, _, _ in reference + chosen.search_runs]
        report.plan = {**plan.to_json(), "search": chosen.search_record}
        report.notes.extend(chosen.notes)
        if chosen.binding:
            report.forced_status, report.forced_reason = "fail", chosen.binding
        report.notes.extend(padding_notes(chosen.padded, report.results) + rule_notes(report.results))
        failed_first = [*result.attempts, *attempts]

        report.exporter = {"name": result.exporter, "settings": result.settings, "failed_first": failed_first}
        reduced = None
        if opts.precision != "fp32":  # derived from the float32 artifact just verified, and verified again
            from bridge.precision.derive import derive_verified

            if opts.precision == "auto":  # the fastest verified candidate (bridge/precision/auto.py)
                from bridge.precision.auto import derive_verified
            policy, reduced, reduced_info = derive_verified(
                staging.dir,
                model,
                specs,
                reference,
                (chosen.onnx_inputs, onnx_outputs),
                chosen.padded,
                opts,
                policy,
                report,
            )
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
            "outputs": [
                {"name": s.name, "dtype": out_dtypes.get(s.name, s.dtype), "dims": list(s.dims)} for s in onnx_outputs
            ],
            "cases": [case_json(c, "seeded") for c, _, _ in reference],  # what golden.npz holds
            "seed": opts.seed,
            "request": {"dim_min": dict(opts.dim_min), "dim_max": dict(opts.dim_max), "dims": dict(opts.dims)},
            "policy": policy.to_json(),
            "versions": report.environment["versions"],
            "verification": {
                "status": report.status,
                "reason": report.reason,
                "device": "cpu",
                "at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            },
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
            report.notes.append(
                f"no bundle published at {dest}: the export's verification is {report.status}; "
                f"it is kept at {aside} for inspection"
            )
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
    search_runs: list = field(default_factory=list)  # the search's cases, run on the native side
    search_record: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)
    traced: str | None = None  # why a passing graph traced through a data-dependent branch proves nothing

    @property
    def status(self) -> str:
        if self.binding:
            return "fail"
        if self.traced:
            return "inconclusive"
        from bridge.verdict.compare import summarize
        from bridge.verdict.status import verdict

        return verdict(r.status for r in summarize(self.results).values())

    def summary(self) -> dict:
        """What the record keeps of an artifact that was not chosen."""
        from bridge.verdict.compare import summarize

        worst = next((r for r in summarize(self.results).values() if r.status != "pass"), None)
        reason = self.binding or (f"{worst.name}: {worst.reason}" if worst else "")
        return {"exporter": self.result.exporter, "verdict": self.status, "error": f"parity {self.status}: {reason}"}

    def move_into(self, target: Path) -> None:
        for entry in self.dir.iterdir():
            os.replace(entry, target / entry.name)


def convert_and_check(model, route, work: Path, specs, reference, opts, policy, searched=None) -> Attempt:
    """Export by one route into ``work``, check the file (onnx.checker, its inputs and outputs, ONNX
    Runtime can load it), and compare it with the native model on every case. A broken artifact is a
    ConversionError; a wrong one is an Attempt whose status says so."""
    work.mkdir()
    model_path = work / MODEL
    stage(f"converting {opts.source} to ONNX" + (f" with {route}" if route else ""))
    result = model.export(str(model_path), specs, reference[0][1], opts.opset, route)
    stage(f"checking the ONNX file {result.exporter} wrote")
    info = inspect_file(
        model_path, produced_by=result.exporter, boundaries=True
    )  # the exporter's own graph must be valid ONNX
    if opts.optimize != "none":
        from bridge.artifact.optimize import optimize_onnx

        result.settings["graph_optimization"] = optimize_onnx(model_path, opts.optimize, opts.threads)
        info = inspect_file(
            model_path, produced_by=f"--optimize {opts.optimize}", boundaries=True
        )  # and so must the optimized one
    _check_io(specs, info.inputs, [n for n in reference[0][2]], info.outputs, result.exporter)
    baked = fixed_dynamic_axes(specs, info.inputs)
    if baked:
        raise ConversionError(f"{result.exporter} wrote a graph with declared dynamic axes fixed: {'; '.join(baked)}")
    binding = binding_problem(specs, info.inputs, model.input_names())
    search_runs, record = searched.runs(info.boundaries) if searched is not None else ([], {})
    stage(f"running the ONNX file {result.exporter} wrote in ONNX Runtime")
    padded = padded_outputs(specs, info.outputs)
    notes: list = []
    results = compare_file(
        model_path,
        reference + search_runs,
        policy,
        threads=opts.threads,
        padded=padded,
        produced_by=result.exporter,
        notes=notes,
    )
    attempt = Attempt(route, work, result, info.outputs, info.description, results, binding, padded, info.inputs)
    attempt.search_runs, attempt.search_record, attempt.notes = search_runs, record, notes
    branches = result.settings.get("traced_branches")
    if branches and attempt.status == "pass":
        where = ", ".join(b["where"] for b in branches[:3])
        attempt.traced = (
            f"the graph was traced through data-dependent control flow at {where}: it holds only the branch the "
            "trace took, and random inputs cannot show that both sides were compared; write the branch with "
            "torch.where or torch.cond, or export with --exporter dynamo"
        )
    return attempt


class Searched:
    """The export's search (bridge/verdict/search.py): random rows drawn and run on the native side once,
    the graph's thresholds probed per exported graph. Its cases are compared, never stored in the bundle's
    golden data (a re-check with onnxruntime alone repeats the named cases)."""

    def __init__(self, model, specs, plan, opts, timings: dict, reference: list):
        from bridge.verdict.plan import add_search
        from bridge.verdict.search import SearchBudget, estimate_rows

        self.model, self.specs, self.opts = model, specs, opts
        self.budget = SearchBudget(opts.search, opts.search_seconds)
        self.base = dict(plan.cases[0].sizes)
        timed = [(c, timings[c.label]) for c, _, _ in reference if c.label in timings]
        per_row = None
        if timed:
            case, seconds = max(timed, key=lambda cs: max(cs[0].sizes.values(), default=1))
            per_row = seconds / max(1, max(case.sizes.values(), default=1)) if seconds else None
        rows, note = estimate_rows(self.budget, per_row)
        before = len(plan.cases)
        stage(f"searching: {rows} random rows")
        add_search(plan, specs, opts.seed, self.base, rows, None, opts.dim_max, self.budget, note)
        extra = [(c, make_feeds(specs, c)) for c in plan.cases[before:]]
        del plan.cases[before:]
        self.rows, _, self.notes = run_reference(model, extra) if extra else ([], None, [])
        self.record = dict(plan.search)

    def runs(self, boundaries) -> tuple[list, dict]:
        """Every search run for one exported graph: the random rows, and its thresholds probed."""
        from bridge.verdict.plan import case_seed
        from bridge.verdict.search import probe_cases

        cases, probed = probe_cases(
            self.specs, self.base, boundaries, lambda label: case_seed(self.opts.seed, label), self.opts.dim_max
        )
        probes, _, notes = (
            run_reference(self.model, [(c, make_feeds(self.specs, c)) for c in cases]) if cases else ([], None, [])
        )
        self.notes.extend(n for n in notes if n not in self.notes)
        return self.rows + probes, {**self.record, "thresholds": probed}


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
