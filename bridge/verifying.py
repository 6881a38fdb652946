"""Orchestration: TARGET (bundle or .onnx) [+ SOURCE] -> runners -> compare (+ bench) -> Report."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from bridge.artifact.bundle import Bundle, check_against_graph, is_bundle, open_bundle
from bridge.bench import Meter
from bridge.environment import environment_info
from bridge.errors import UsageError
from bridge.progress import stage
from bridge.report.model import Report, timed
from bridge.types import Case
from bridge.verdict.compare import dataset_metrics
from bridge.verdict.inputs import batch_sizes, load_labels, load_npz, make_feeds
from bridge.verdict.labels import scoped
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
    precision: str = "fp32"  # the bundle's claim checked against its graph (bridge/precision/methods.py)
    precision_note: str | None = None
    graph_precision: str = "fp32"  # what the graph itself holds, and the evidence
    graph_evidence: str = ""
    boundaries: object = None  # thresholds the graph applies to its inputs (bridge/verdict/thresholds.py)


def _run_verify(opts, obj=None) -> Report:
    target = resolve_target(opts.target)
    check_graph(target)  # a malformed or hostile file is refused as such, whatever else is missing
    if not opts.source and target.bundle is None:
        raise UsageError(
            f"nothing to compare {target.path} with",
            hint="pass --source SOURCE (the native model), or verify a bundle made by 'bridge export'",
        )
    policy, origin, notes = choose_policy(
        opts, target.stored_policy, target.bundle.outputs if target.bundle is not None else []
    )
    policy, precision_notes_ = precision_row(opts, target, policy)
    report = Report(
        kind=opts.command,
        target=str(target.path),
        source=opts.source,
        devices=list(opts.devices),
        policy=policy.to_json(),
        notes=notes + precision_notes_,
    )
    report.check = {"kind": "native" if opts.source else "golden", "policy_origin": origin}
    if policy.precision != "fp32":
        report.check["precision"] = policy.precision
    if opts.source:
        side = NativeSide.load(opts, obj, target, report)
        opts = side.request
        specs, problem = side.specs, side.problem
    else:
        side = None
        specs = target.bundle.inputs
        problem = target.binding
        report.cases = [case_json(c, "golden") for c, _, _ in target.golden]
        report.framework = target.bundle.manifest.get("source", {}).get("framework")
        report.exporter = target.bundle.manifest.get("exporter")
    baked = fixed_dynamic_axes(specs, target.onnx_inputs)
    padded = padded_outputs(specs, target.onnx_outputs)
    if problem or baked:
        report.forced_status = "fail"
        report.forced_reason = problem or ("declared dynamic axis baked into a constant: " + "; ".join(baked))

    reference = target.golden if side is None else None
    for device in opts.devices:
        stage(f"creating the ONNX Runtime session ({device})")
        with Meter() as ort_meter:  # no GPU: exit 4 here
            runner = open_ort(
                target.model_path, device, threads=opts.threads, spinning=opts.ort_spinning == "on", tf32=opts.tf32
            )
        with runner:
            if side is not None and side.needs_run(device):
                reference = side.run(device, report, target)
                if report.forced_status == "inconclusive":
                    break
            on_device(runner, device, reference, policy, padded, side, ort_meter, opts, target, report)
    if side is not None and policy.precision != "fp32" and reference and report.forced_status is None:
        derivation_rule(report, target, reference, policy, padded, opts, side.specs)
    report.notes.extend(padding_notes(padded, report.results) + rule_notes(report.results))
    if policy.precision != "fp32":
        from bridge.precision.quality import precision_notes

        report.notes.extend(precision_notes(policy, report.results, opts.samples, report.dataset))
    traced_branch_rule(report, target.bundle)
    if opts.localize and report.status == "fail" and reference:
        stage("localizing the first divergence")
        report.localize = _localize(
            target.model_path, reference, report, policy, side.model if side else None, opts.localize
        )
        why = untraceable_branch(target.bundle)
        if why and report.localize.get("status") != "diverged":
            report.localize.setdefault("notes", []).append(why)
    report.environment.update(environment_info(opts.threads))
    if side is not None:
        report.environment["versions"].update(side.model.versions())
        report.environment["native"] = {"precision": side.model.precision()}
    if target.bundle is not None:
        report.environment["bundle_versions"] = target.bundle.manifest.get("versions", {})
    return report


def precision_row(opts, target: Target, policy) -> tuple:
    """The reduced-precision row the verdict applies, and notes. With --source it is the verifier's to
    choose (``--precision``, a config key), never the bundle's: an int8 record in a manifest, or a
    quantization node in the graph, would otherwise loosen the test of whatever carries it. Without
    --source (a golden check under the bundle's own terms) the bundle's precision, checked against its
    graph, applies, and the verdict says the terms are the bundle's."""
    from dataclasses import replace

    notes = []
    if not opts.source:
        if target.precision_note:
            notes.append(target.precision_note)
        return replace(policy, precision=target.precision), notes
    asked = opts.precision
    if asked == "auto":  # what --precision auto published (bridge/precision/auto.py): the graph's own precision
        asked = target.graph_precision
        notes.append(
            f"--precision auto: the graph is {asked}, judged under the {asked} row"
            + ("" if asked == "fp32" else ", and as the derivation of the float32 parent it carries")
        )
    if target.graph_precision != asked:
        if asked == "fp32":
            notes.append(
                f"the graph is {target.graph_precision} ({target.graph_evidence}); it is judged by the strict float32 "
                f"row because the verifier asked for no other: verify with --precision {target.graph_precision} to "
                "judge it as a reduced-precision artifact"
            )
        else:
            notes.append(
                f"--precision {asked}: the {asked} row applies as the verifier asked, although the graph is "
                f"{target.graph_precision}" + (f" ({target.graph_evidence})" if target.graph_evidence else "")
            )
    return replace(policy, precision=asked), notes


def derivation_rule(report: Report, target: "Target", reference: list, policy, padded, opts, specs) -> None:
    """A reduced-precision graph judged under its row must also be the faithful derivation of a float32
    parent that passes (bridge/precision/provenance.py); one with no parent can pass only on real samples."""
    import tempfile
    from dataclasses import replace

    from bridge.precision import provenance

    parent = provenance.parent_of(target.bundle)
    if parent is None:
        if not opts.samples and report.status == "pass":
            report.forced_status = "inconclusive"
            report.forced_reason = (
                f"a {policy.precision} graph with no float32 parent to check its derivation against (a bare file, or "
                "a bundle that does not carry parent.onnx) passes only on real samples: random inputs alone cannot "
                "tell a faithful derivation from a tampered one inside the row's bounds; give --samples (and "
                "--labels for the accuracy drop), or export it with bridge export --precision"
            )
        return
    stage("verifying the float32 parent the graph was derived from")
    strict = replace(policy, precision="fp32")
    runs = [r for r in reference if r[0].label != "data"]
    with open_ort(parent, "cpu", threads=opts.threads) as runner:
        parent_results = run_onnx(runner, runs, strict, "cpu", padded=padded)
    report.results.extend(replace(r, name=f"{r.name} [fp32 parent]") for r in parent_results)
    stage(f"deriving the {policy.precision} graph again from its parent")
    with tempfile.TemporaryDirectory(prefix="bridge-rederive-") as tmp:
        again = provenance.rederive(target.bundle, Path(tmp), specs, opts.threads, opts.calibrate)
        found = provenance.differences(again, target.model_path, policy.precision)
    if found:
        report.forced_status = "fail"
        report.forced_reason = (
            f"derivation: the {policy.precision} graph is not what its recorded method makes of its float32 parent: "
            + "; ".join(found)
        )
    else:
        report.notes.append(
            f"derivation: the {policy.precision} graph is what the recorded method makes of its float32 parent "
            "(derived again and compared tensor by tensor); the parent itself was compared with the native model "
            "under the strict float32 row"
        )


def traced_branch_rule(report: Report, bundle) -> None:
    """A graph traced through data-dependent control flow holds one side of each branch: random draws
    cannot show that both sides were compared, so it does not pass (a failure stays a failure)."""
    if bundle is None or report.status != "pass":
        return
    settings = (bundle.manifest.get("exporter") or {}).get("settings") or {}
    branches = settings.get("traced_branches") if isinstance(settings, dict) else None
    if not isinstance(branches, list) or not branches:
        return
    where = ", ".join(str(b.get("where")) for b in branches[:3] if isinstance(b, dict))
    report.forced_status = "inconclusive"
    report.forced_reason = (
        f"the graph was traced through data-dependent control flow at {where}: it holds only the branch the "
        "trace took, and random inputs cannot show that both sides were compared; write the branch with "
        "torch.where or torch.cond, or export with --exporter dynamo"
    )


def on_device(runner, device, reference, policy, padded, side, ort_meter, opts, target, report) -> None:
    """ONNX Runtime on one device against the reference: results, real-sample metrics, latency, environment."""
    row = policy_device(device, opts.tf32)
    stage(f"running ONNX Runtime ({device})")
    kept = {"data": None} if opts.samples else None
    with Meter() as runs:
        report.results.extend(run_onnx(runner, reference, policy, row, keep=kept, padded=padded, notes=report.notes))
    ort_meter.add(runs)
    if kept and kept["data"] is not None:
        ref_out = next(out for c, _, out in reference if c.label == "data")
        report.dataset[device] = {
            "inputs": opts.samples,
            "labels": opts.labels,
            "outputs": scoped(
                dataset_metrics(ref_out, kept["data"], side.labels), side.labels, ref_out, opts.labels, report.notes
            ),
        }
        if policy.max_accuracy_drop is not None:
            from bridge.precision.quality import accuracy_gate

            report.results = accuracy_gate(report.results, report.dataset[device]["outputs"], policy, row)
    if opts.latency_runs > 0:
        stage(f"timing ({device})")
        native = side.model if side is not None else None
        meter = side.meter if side is not None else None
        report.latency[device] = _latency(native, runner, reference[0][1], opts, device, meter, ort_meter).to_json()
        if policy.precision != "fp32" or target.graph_precision != "fp32":
            report.latency[device]["precision"] = {"native": "fp32", "onnxruntime": target.graph_precision}
            report.latency[device]["notes"].append(
                f"the onnxruntime side runs the bundle's {target.graph_precision} graph; the native side runs the "
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
    if os.path.lexists(path):  # a FIFO, a device, a socket, a dangling link: never opened
        raise UsageError(
            f"TARGET {path} is not a regular file or a directory (a FIFO, device, socket or dangling link)",
            hint="give a bundle directory or a .onnx file",
        )
    raise UsageError(f"TARGET {path} does not exist", hint="give a bundle directory or a .onnx file")


def check_graph(target: Target) -> None:
    """onnx.checker on the model; for a bundle, the manifest against the graph and the golden data."""
    from bridge.precision.methods import target_precision
    from bridge.verdict.parity import inspect_file

    stage(f"checking {target.model_path}")
    info = inspect_file(target.model_path, boundaries=True)
    target.onnx_inputs, target.onnx_outputs = info.inputs, info.outputs
    target.graph_precision, target.graph_evidence, target.boundaries = info.precision, info.evidence, info.boundaries
    target.precision, target.precision_note = target_precision(
        target.bundle.manifest if target.bundle is not None else None, (info.precision, info.evidence), target.path
    )
    if target.bundle is not None:
        target.binding = check_against_graph(target.bundle, target.onnx_inputs)
        stage(f"reading the golden data of {target.path}")
        target.golden = target.bundle.golden()  # checked against the manifest whether or not it is used


class NativeSide:
    """The native model and everything decided on its side of a verification: the terms (bridge/verdict/
    terms.py), each input's kind and range, the case plan with its search, the real samples, and the
    native model's outputs on every case (run on each device the native model moves to)."""

    def __init__(self, request, loaded, specs, problem, plan, named, labels, meter, search_specs, budget):
        self.request, self.loaded, self.model = request, loaded, loaded.model
        self.specs, self.problem, self.plan = specs, problem, plan
        self.cases = named  # (Case, feeds): the named cases, then the search's once they are drawn
        self.labels, self.meter = labels, meter
        self.search_specs, self.budget = search_specs, budget
        self.searched = False
        self.device = None

    @classmethod
    def load(cls, opts, obj, target: "Target", report: Report) -> "NativeSide":
        from bridge.native.loading import load_native, stated_limits, with_semantics
        from bridge.verdict.search import SearchBudget
        from bridge.verdict.terms import decide

        stage(f"loading {opts.source}")
        meter = Meter()
        with meter:
            loaded = load_native(opts, obj=obj)
        opts = loaded.request  # with what the source declares
        report.framework = loaded.framework
        report.notes.extend(loaded.model.notes)
        if target.bundle is not None and obj is None:  # the manifest names another source: say so first
            from bridge.native.names import source_note

            named = source_note(target.bundle.manifest.get("source"), opts.source, opts.weights)
            if named:
                report.notes.insert(0, named)
        structure, where = input_structure(target, loaded, opts)
        terms = decide(opts, structure, where, target.bundle, opts.strict_terms)
        problem = binding_problem(terms.specs, target.onnx_inputs, loaded.model.input_names())
        stage("deciding what each input's values mean")
        sizes = export_sizes(target, opts)
        specs, inputs_table = with_semantics(
            loaded, terms.specs, sizes, terms.range_from, kinds=terms.kinds, weak=tuple(terms.widen)
        )
        terms.settle(inputs_table, opts.strict_terms)  # a table the model states replaces the bundle's range
        report.notes.extend(terms.notes)
        if terms.from_artifact:
            report.check["terms_from_artifact"] = list(terms.from_artifact)
        else:
            report.check.pop("terms_from_artifact", None)
        stage("generating inputs")
        plan = plan_cases(
            specs,
            opts.seed,
            sizes,
            minimum=terms.dim_min,
            maximum=terms.dim_max,
            stated=stated_limits(loaded, specs, sizes),
        )
        plan.inputs = inputs_table
        plan.cases += beyond_the_bundle(specs, terms.widen, plan.cases[0].sizes, opts.seed)
        named = [(c, make_feeds(specs, c)) for c in plan.cases]
        labels = None
        if opts.samples:
            feeds = load_npz(opts.samples, specs)
            labels = load_labels(opts.labels, feeds) if opts.labels else None
            named.append((Case("data", None, batch_sizes(specs, feeds), purpose="real samples"), feeds))
        # The search draws outside a domain that only the bundle declared (lenient terms).
        search_specs = [s.with_range(None) if s.name in terms.widen else s for s in specs]
        side = cls(
            opts,
            loaded,
            specs,
            problem,
            plan,
            named,
            labels,
            meter,
            search_specs,
            SearchBudget(opts.search, opts.search_seconds),
        )
        side.boundaries = target.boundaries
        side.report_plan(report)
        return side

    def needs_run(self, device: str) -> bool:
        return self.model.to(device) != self.device

    def run(self, device: str, report: Report, target: "Target") -> list:
        """The native model on every case on ``device`` (the search drawn after the named cases, its size
        set by what they cost)."""
        self.device = self.model.to(device)
        self.model.set_tf32(self.request.tf32 and self.device == "cuda")
        stage(f"running the native model ({self.device})")
        timings: dict = {}
        with Meter() as runs:
            reference, unstable, dropped = run_reference(self.model, self.cases, timings)
            if not self.searched and not unstable:
                reference += self.search(reference, timings, report)
        self.meter.add(runs)
        self.cases = [(c, f) for c, f, _ in reference]
        report.cases = [case_json(c, origin_of(c, self.request)) for c, _, _ in reference]
        report.notes.extend(n for n in dropped if n not in report.notes)
        report.environment.setdefault("native_devices", []).append(self.device)
        if unstable:
            report.forced_status, report.forced_reason = "inconclusive", unstable
        return reference

    def search(self, reference: list, timings: dict, report: Report) -> list:
        from bridge.verdict.plan import add_search
        from bridge.verdict.search import estimate_rows

        self.searched = True
        rows_run = [(c, timings.get(c.label)) for c, f, _ in reference if c.label in timings]
        per_row = None
        if rows_run:
            case, seconds = max(rows_run, key=lambda cs: max(cs[0].sizes.values(), default=1))
            per_row = seconds / max(1, max(case.sizes.values(), default=1)) if seconds else None
        rows, note = estimate_rows(self.budget, per_row)
        before = len(self.plan.cases)
        stage(f"searching: {rows} random rows and the graph's thresholds")
        add_search(
            self.plan,
            self.search_specs,
            self.request.seed,
            self.plan.cases[0].sizes,
            rows,
            self.boundaries,
            self.request.dim_max,
            self.budget,
            note,
        )
        extra = [(c, make_feeds(self.search_specs, c)) for c in self.plan.cases[before:]]
        runs, _, dropped = run_reference(self.model, extra) if extra else ([], None, [])
        report.notes.extend(dropped)
        self.report_plan(report)
        return runs

    def report_plan(self, report: Report) -> None:
        report.plan = self.plan.to_json()
        report.notes.extend(n for n in self.plan.notes if n not in report.notes)


def beyond_the_bundle(specs: list, widen: list, sizes: dict, seed: int) -> list:
    """Optional cases just past each range that only the bundle under test declared (lenient terms):
    a graph that is wrong there would otherwise pass inside its own declared domain. Dropped with a
    note when the native model rejects them (the range may be real)."""
    from bridge.verdict.plan import case_seed

    cases = []
    for s in specs:
        if s.name in widen and s.value_range is not None:
            for mode in ("above", "below"):
                label = f"{s.name}.{mode}"
                cases.append(
                    Case(
                        label,
                        case_seed(seed, label),
                        dict(sizes),
                        fill=((s.name, mode),),
                        optional=True,
                        purpose=f"{s.name} just {mode} the range only the bundle declares",
                    )
                )
    return cases


def input_structure(target: "Target", loaded, opts) -> tuple[list, str]:
    """The inputs' names, dtypes and dims, without ranges (terms.py decides those), and where they came
    from: the verifier's own specs (--input, a config, the API, the source's declaration), else the
    source's signature, else the bundle's manifest, else the graph's inputs."""
    if opts.inputs:
        origin = opts.origin("inputs")
        return [s.with_range(None) for s in opts.inputs], "--input" if origin == "command line" else origin
    if loaded.signature:
        return [s.with_range(None) for s in loaded.signature], f"{opts.source} (its signature)"
    if target.bundle is not None:
        return [s.with_range(None).with_kind(None) for s in target.bundle.inputs], "the bundle's manifest (structure)"
    return list(target.onnx_inputs), "the ONNX graph"


def export_sizes(target: Target, opts) -> dict:
    """Dynamic axis sizes the plan is built around: the bundle's export sizes, then the request's."""
    sizes = dict(opts.dims)
    if target.bundle is not None:
        sizes = {**(target.bundle.cases[0].sizes if target.bundle.cases else {}), **sizes}
    return sizes


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


def _latency(native, runner, feeds, opts, device, native_meter, ort_meter):
    """Native (host arrays in and out) vs ORT with numpy in/out; on CUDA also ORT with IO binding
    (inputs copied to the device once, outputs left there): the device-resident figure. TensorFlow
    is timed as a tf.function ("native") and eagerly ("native-eager")."""
    from bridge.bench import Side, measure_request

    sides = [Side("onnxruntime", lambda: runner.run(feeds), setup_ms=ort_meter.ms, rss_growth_mb=ort_meter.rss_mb)]
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
    return measure_request(
        sides,
        feeds,
        opts,
        # a run count the user (or a config's latency table) gave is kept; the default one fits the budget
        budget_s=None if opts.given("latency_runs") else getattr(opts, "latency_seconds", None),
        on_round=lambda line: stage(f"timing ({device}): {line}"),
    )
