"""Orchestration: TARGET (bundle or .onnx) [+ SOURCE] -> runners -> compare (+ bench) -> Report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bridge.artifact.bundle import Bundle, check_against_graph, is_bundle, open_bundle
from bridge.bench import Meter
from bridge.environment import environment_info
from bridge.errors import UsageError
from bridge.native.loading import range_origins
from bridge.progress import stage
from bridge.report.model import Report, timed
from bridge.spec import apply_ranges
from bridge.types import Case
from bridge.verdict.compare import dataset_metrics
from bridge.verdict.inputs import batch_sizes, load_labels, load_npz, make_feeds
from bridge.verdict.parity import (
    binding_problem,
    case_json,
    fixed_dynamic_axes,
    open_ort,
    padded_outputs,
    padding_notes,
    rule_notes,
    run_onnx,
    run_reference,
)
from bridge.verdict.plan import plan_cases
from bridge.verdict.policy import build_policy, load_policy_file


def run_verify(request, model=None) -> Report:
    """TARGET vs SOURCE (or the bundle's golden outputs), under a VerifyRequest (bridge/request.py).
    ``model``: a model object the caller holds, instead of loading request.source (in-process only;
    request.source is then its label)."""
    return timed(lambda r: _run_verify(r, model), request)


@dataclass
class Target:
    """What is under test: a bundle (manifest, golden data) or a bare ONNX file."""

    path: Path
    model_path: Path
    bundle: Bundle | None = None
    stored_policy: dict = field(default_factory=dict)
    onnx_inputs: list = field(default_factory=list)
    onnx_outputs: list = field(default_factory=list)
    golden: list | None = None
    binding: str | None = None  # a verdict-level problem with the graph's input names or order
    precision: str = "fp32"  # the graph's: fp16 / int8 for a reduced-precision artifact (bridge/precision/methods.py)
    precision_note: str | None = None


def _run_verify(opts, obj=None) -> Report:
    target = resolve_target(opts.target)
    policy, origin, notes = choose_policy(
        opts, target.stored_policy, target.bundle.outputs if target.bundle is not None else []
    )
    check_graph(target)  # a malformed or hostile file is refused as such, whatever else is missing
    if target.precision != "fp32":  # a reduced-precision graph is judged by its own policy row
        from dataclasses import replace

        policy = replace(policy, precision=target.precision)
    if target.precision_note:
        notes.append(target.precision_note)
    if not opts.source and target.bundle is None:
        raise UsageError(
            f"nothing to compare {target.path} with",
            hint="pass --source SOURCE (the native model), or verify a bundle made by 'bridge export'",
        )
    report = Report(
        kind=opts.command,
        target=str(target.path),
        source=opts.source,
        devices=list(opts.devices),
        policy=policy.to_json(),
        notes=notes,
    )
    report.check = {"kind": "native" if opts.source else "golden", "policy_origin": origin}
    native = None
    native_meter = Meter()
    labels = None
    if opts.source:
        from bridge.native.loading import load_native, with_semantics

        stage(f"loading {opts.source}")
        with native_meter:
            loaded = load_native(opts, obj=obj)
        opts = loaded.request  # with what the source declares
        native = loaded.model
        report.framework = loaded.framework
        report.notes.extend(getattr(native, "notes", []))
        specs, range_from = native_specs(target, loaded, opts)
        problem = binding_problem(specs, target.onnx_inputs, native.input_names())
        baked = fixed_dynamic_axes(specs, target.onnx_inputs)
        stage("deciding what each input's values mean")
        sizes = export_sizes(target, opts)
        specs, inputs_table = with_semantics(loaded, specs, sizes, range_from)
        stage("generating inputs")
        cases, labels = planned_cases(specs, sizes, opts, report, loaded)
        report.plan["inputs"] = inputs_table
        reference = None  # computed per device below, where the native model runs
    else:
        specs = target.bundle.inputs
        problem = target.binding
        baked = fixed_dynamic_axes(specs, target.onnx_inputs)
        reference = target.golden
        report.cases = [case_json(c, "golden") for c, _, _ in reference]
        report.framework = target.bundle.manifest.get("source", {}).get("framework")
        report.exporter = target.bundle.manifest.get("exporter")
    padded = padded_outputs(specs, target.onnx_outputs)
    if problem or baked:
        report.forced_status = "fail"
        report.forced_reason = problem or ("declared dynamic axis baked into a constant: " + "; ".join(baked))

    native_on = None
    for device in opts.devices:
        stage(f"creating the ONNX Runtime session ({device})")
        with Meter() as ort_meter:  # no GPU: exit 4 here
            runner = open_ort(
                target.model_path, device, threads=opts.threads, spinning=opts.ort_spinning == "on", tf32=opts.tf32
            )
        with runner:
            if native is not None and native.to(device) != native_on:
                native_on = native.to(device)
                native.set_tf32(opts.tf32 and native_on == "cuda")
                stage(f"running the native model ({native_on})")
                with Meter() as runs:
                    reference, unstable, dropped = run_reference(native, cases)
                native_meter.add(runs)
                report.cases = [case_json(c, origin_of(c, opts)) for c, _, _ in reference]
                report.notes.extend(n for n in dropped if n not in report.notes)
                report.environment.setdefault("native_devices", []).append(native_on)
                if unstable:
                    report.forced_status, report.forced_reason = "inconclusive", unstable
                    break
            on_device(
                runner, device, reference, policy, padded, labels, native, native_meter, ort_meter, opts, target, report
            )
    report.notes.extend(padding_notes(padded, report.results) + rule_notes(report.results))
    if target.precision != "fp32":
        from bridge.precision.quality import precision_notes

        report.check["precision"] = target.precision
        report.notes.extend(precision_notes(policy, report.results, opts.samples, report.dataset))
    if opts.localize and report.status == "fail" and reference:
        stage("localizing the first divergence")
        report.localize = _localize(target.model_path, reference, report, policy, native, opts.localize)
        why = untraceable_branch(target.bundle)
        if why and report.localize.get("status") != "diverged":
            report.localize.setdefault("notes", []).append(why)
    report.environment.update(environment_info(opts.threads))
    if native is not None:
        report.environment["versions"].update(native.versions())
        report.environment["native"] = {"precision": native.precision()}
    if target.bundle is not None:
        report.environment["bundle_versions"] = target.bundle.manifest.get("versions", {})
    return report


def on_device(
    runner, device, reference, policy, padded, labels, native, native_meter, ort_meter, opts, target, report
) -> None:
    """ONNX Runtime on one device against the reference: results, real-sample metrics, latency, environment."""
    row = policy_device(device, opts.tf32)
    stage(f"running ONNX Runtime ({device})")
    kept = {"data": None} if opts.samples else None
    with Meter() as runs:
        report.results.extend(run_onnx(runner, reference, policy, row, keep=kept, padded=padded))
    ort_meter.add(runs)
    if kept and kept["data"] is not None:
        ref_out = next(out for c, _, out in reference if c.label == "data")
        report.dataset[device] = {
            "inputs": opts.samples,
            "labels": opts.labels,
            "outputs": dataset_metrics(ref_out, kept["data"], labels),
        }
        if policy.max_accuracy_drop is not None:
            from bridge.precision.quality import accuracy_gate

            report.results = accuracy_gate(report.results, report.dataset[device]["outputs"], policy, row)
    if opts.latency_runs > 0:
        stage(f"timing ({device})")
        report.latency[device] = _latency(
            native, runner, reference[0][1], opts, device, native_meter, ort_meter, ort_meter.ms
        ).to_json()
        if target.precision != "fp32":
            report.latency[device]["precision"] = {"native": "fp32", "onnxruntime": target.precision}
            report.latency[device]["notes"].append(
                f"the onnxruntime side runs the bundle's {target.precision} graph; the native side runs the "
                "float32 model"
            )
    report.environment.setdefault("onnxruntime", {})[device] = {
        "providers": runner.providers,
        "settings": runner.settings,
        "precision": runner.precision(),
        "nodes_per_provider": runner.node_placement(reference[0][1]) if device == "cuda" else None,
    }


def resolve_target(text: str) -> Target:
    path = Path(text)
    if is_bundle(path) or (path.is_dir() and not path.suffix == ".onnx"):
        stage(f"reading the bundle {path}")
        bundle = open_bundle(path)  # hashes first: a changed byte is refused before anything runs
        return Target(path, bundle.model_path, bundle, bundle.manifest.get("policy") or {})
    if path.is_file():
        return Target(path, path)
    raise UsageError(f"TARGET {path} does not exist", hint="give a bundle directory or a .onnx file")


def check_graph(target: Target) -> None:
    """onnx.checker on the model; for a bundle, the manifest against the graph and the golden data."""
    from bridge.precision.methods import target_precision
    from bridge.verdict.parity import inspect_file

    stage(f"checking {target.model_path}")
    info = inspect_file(target.model_path)
    target.onnx_inputs, target.onnx_outputs = info.inputs, info.outputs
    target.precision, target.precision_note = target_precision(
        target.bundle.manifest if target.bundle is not None else None, (info.precision, info.evidence), target.path
    )
    if target.bundle is not None:
        target.binding = check_against_graph(target.bundle, target.onnx_inputs)
        stage(f"reading the golden data of {target.path}")
        target.golden = target.bundle.golden()  # checked against the manifest whether or not it is used


def native_specs(target: Target, loaded, opts) -> tuple[list, dict]:
    """The inputs to generate, and where their ranges came from. Specs: the verifier's own (--input, a
    config, the API; ranges and kinds the bundle or the source gave stay), else the bundle's manifest,
    else what the source declares or its signature, else the graph's inputs. Ranges: the request's (the
    verifier's, or the source's declarations) on top."""
    declared = f"{opts.source} (declared)"
    if opts.inputs and opts.origin("inputs") != declared:
        earlier = {s.name: s for s in (target.bundle.inputs if target.bundle is not None else loaded.signature or [])}
        specs, where = [], "the earlier declaration"
        for spec in opts.inputs:
            if spec.name in earlier and spec.value_range is None:
                spec = spec.with_range(earlier[spec.name].value_range).with_kind(earlier[spec.name].kind)
            specs.append(spec)
    elif target.bundle is not None:
        specs, where = target.bundle.inputs, "the bundle's manifest"
    elif opts.inputs:
        specs, where = list(opts.inputs), declared
    elif loaded.signature:
        specs, where = list(loaded.signature), f"{opts.source} (its signature)"
    else:
        specs, where = list(target.onnx_inputs), "the ONNX graph"
    specs = apply_ranges(specs, opts.input_ranges)
    return specs, range_origins(opts, specs, where)


def export_sizes(target: Target, opts) -> dict:
    """Dynamic axis sizes the plan is built around: the bundle's export sizes, then the request's."""
    sizes = dict(opts.dims)
    if target.bundle is not None:
        sizes = {**(target.bundle.cases[0].sizes if target.bundle.cases else {}), **sizes}
    return sizes


def planned_cases(specs: list, sizes: dict, opts, report: Report, loaded) -> tuple[list, object]:
    """The case plan around the export sizes, plus the real samples of --samples; (cases, labels)."""
    plan = plan_cases(specs, opts.seed, sizes, minimum=opts.dim_min, maximum=opts.dim_max)
    report.plan = plan.to_json()
    report.notes.extend(plan.notes)
    cases = [(c, make_feeds(specs, c)) for c in plan.cases]
    labels = None
    if opts.samples:
        feeds = load_npz(opts.samples, specs)
        labels = load_labels(opts.labels, feeds) if opts.labels else None
        cases.append((Case("data", None, batch_sizes(specs, feeds), purpose="real samples"), feeds))
    report.cases = [case_json(c, origin_of(c, opts)) for c, _ in cases]
    return cases, labels


def origin_of(case: Case, opts) -> str:
    return opts.samples if case.label == "data" else "seeded"


def choose_policy(opts, stored: dict, outputs) -> tuple:
    """The policy a verification applies, where it came from, and notes about the bundle's own.

    With --source the bundle is what is under test, so its stored policy is never applied: the
    tolerance comes from the user (flags, --policy) or bridge's defaults, and a stored policy looser
    than the defaults is reported. Without --source the check is the bundle's golden outputs against
    ONNX Runtime, under the tolerance the bundle was exported with (unless the user gives one)."""
    stage("reading the tolerance policy")
    user = load_policy_file(opts.policy) if opts.policy else None
    notes = []
    if opts.source:
        base, origin = user or {}, "policy file" if user else "defaults"
        if stored:
            looser = looser_than_defaults(stored, outputs, opts.devices, opts.tf32)
            if looser:
                notes.append(
                    "the bundle's stored tolerance is looser than bridge's defaults and was not applied "
                    f"(--source given): {looser}"
                )
    else:
        base, origin = (user, "policy file") if user is not None else (stored, "bundle")
    if opts.atol or opts.rtol or opts.scale_atol or opts.min_top1 is not None or opts.allow_nonfinite:
        origin += " + command line"
    return build_policy(base, opts.atol, opts.rtol, opts.allow_nonfinite, opts.min_top1, opts.scale_atol), origin, notes


def looser_than_defaults(stored: dict, outputs, devices, tf32: bool) -> str:
    """'' when the stored policy allows no more than the defaults for any output; else what it loosens."""
    from bridge.errors import BridgeError
    from bridge.verdict.policy import Policy

    try:
        theirs = build_policy(stored)
    except BridgeError as exc:
        return f"it cannot be read ({exc.message})"
    ours = Policy(precision=theirs.precision)  # a reduced-precision bundle's rows against bridge's own
    found = []
    for spec in outputs:
        for device in devices:
            row = policy_device(device, tf32)
            a, b = theirs.tolerance(spec.name, spec.dtype, row), ours.tolerance(spec.name, spec.dtype, row)
            wider = [
                f"{k} {getattr(a, k):g} > {getattr(b, k):g}"
                for k in ("atol", "rtol", "scale_atol")
                if getattr(a, k) > getattr(b, k)
            ]
            if a.rel_norm is not None and b.rel_norm is not None and a.rel_norm > b.rel_norm:
                wider.append(f"rel_norm {a.rel_norm:g} > {b.rel_norm:g}")
            if a.min_top1 is not None and b.min_top1 is not None and a.min_top1 < b.min_top1:
                wider.append(f"min_top1 {a.min_top1:g} < {b.min_top1:g}")
            if a.allow_nonfinite and not b.allow_nonfinite:
                wider.append("NaN/Inf allowed")
            if wider:
                found.append(f"{spec.name} ({', '.join(wider)})")
    return "; ".join(found[:5]) + (f"; and {len(found) - 5} more" if len(found) > 5 else "")


def policy_device(device: str, tf32: bool) -> str:
    """The policy row (and the device label of results): the device's provider says (CUDA with TF32
    has rows of its own)."""
    from bridge.frameworks.providers import provider

    return provider(device).policy_row(tf32)


def _localize(model_path, reference, report, policy, native, out_dir) -> dict:
    """First diverging node on the inputs of the first failing case (native model on the CPU)."""
    from bridge.localize import localize

    failing = next((r.case for r in report.summary.values() if r.status == "fail" and r.case), None)
    feeds = next((f for c, f, _ in reference if c.label == failing), reference[0][1])
    if native is not None:
        native.to("cpu")
    result = localize(str(model_path), feeds, policy, out_dir, native=native)
    return {"case": failing or reference[0][0].label, **result.to_json()}


def untraceable_branch(bundle) -> str | None:
    """Why no node diverges although values do: the exporter that wrote the graph traced one branch of
    data-dependent control flow, which the dynamo exporter had refused (its error names the line)."""
    if bundle is None:
        return None
    for attempt in (bundle.manifest.get("exporter") or {}).get("failed_first") or []:
        text = f"{attempt.get('error', '')} {attempt.get('detail', '')}"
        if "data-dependent" in text or "GuardOnDataDependent" in text:
            where = f" at {attempt['where']}" if attempt.get("where") else ""
            return (
                f"the model has data-dependent control flow{where} (the dynamo exporter refused it); the graph "
                f"was traced through one branch, so every node matches its own branch and no single node "
                "diverges: export a model without the branch, or with torch.cond"
            )
    return None


def _latency(native, runner, feeds, opts, device, native_meter, ort_meter, ort_setup_ms):
    """Native (host arrays in and out) vs ORT with numpy in/out; on CUDA also ORT with IO binding
    (inputs copied to the device once, outputs left there): the device-resident figure. TensorFlow
    is timed as a tf.function ("native") and eagerly ("native-eager")."""
    from bridge.bench import Side, measure

    batch = next((int(v.shape[0]) for v in feeds.values() if v.ndim), 1)
    sides = [Side("onnxruntime", lambda: runner.run(feeds), setup_ms=ort_setup_ms, rss_growth_mb=ort_meter.rss_mb)]
    if native is not None:
        sides.insert(
            0,
            Side(
                "native",
                lambda: native.run(feeds),
                native.synchronize,
                setup_ms=native_meter.ms,
                rss_growth_mb=native_meter.rss_mb,
            ),
        )
        eager = native.eager()
        if eager is not None:
            sides.insert(1, Side("native-eager", lambda: eager(feeds), native.synchronize))
    if device == "cuda":
        runner.bind(feeds)
        sides.append(Side("onnxruntime-iobinding", runner.run_bound, runner.synchronize))
    return measure(
        sides,
        runs=opts.latency_runs,
        warmup=max(2, opts.latency_runs // 10),
        rounds=5,
        batch=batch,
        threads=opts.threads,
    )
