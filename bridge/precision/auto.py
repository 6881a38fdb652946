"""``--precision auto``: the fastest artifact that passes, proven against the native model.

The float32 export is made and verified first, as always: it is the proof of the conversion. From it
auto builds candidates, in a scratch directory of the staging bundle:

  fp32        the export itself, as ONNX Runtime runs it (always a candidate: the float32 baseline)
  fused       onnxscript's ONNX Runtime fusions (``--optimize transformer``; bridge/frameworks/
              ort_fusion.py), where they find something to fuse; what was fused is recorded
  int8        GEMM-bound graphs: dynamic quantization of MatMul/LSTM weights; convolutional graphs
              with ``--calibrate`` samples: static QDQ, int8 weights per output channel
  fused+int8  with fused and int8 both asked for and fusion applying: the fused graph quantized after
              fusion (q/k/v projections left as MatMuls so that quantization reaches them)
  fp16        float16 weights and arithmetic (asked for by default on CUDA only: ONNX Runtime's CPU
              provider has few float16 kernels and no float16 GEMM speed-up)

Each candidate is verified against the same native outputs as the export (the plan's cases, and the
real samples of ``--samples``, else of ``--calibrate``) under the row of its precision
(bridge/verdict/policy.py), with ``--labels`` also by the accuracy drop. A candidate is eligible when
it passes, and a reduced-precision one without held-out real samples (``--samples``; calibration
samples are compared too, but a static graph was fitted to them) only where its seeded check is strong:
on the two seeded draws at the export sizes, the native outputs of the two draws must lie at least
``SEPARATION`` times further apart than the candidate lies from the native model. A random-init
classifier whose logits barely move between inputs cannot show that an int8 graph is right, whatever
its error norm, and the report says so instead of choosing it.

Then ONE bench (bridge/bench.py: alternating rounds, waits between sides, other load measured) times
the native float32 model, the framework's own int8 (torch.ao dynamic quantization of Linear and LSTM,
for torch modules that have them), and every candidate that passed. The fastest eligible candidate is
published as the bundle's ``model.onnx``; one of higher fidelity (fp32 > fp16 > int8) within
``TIE`` of the fastest wins instead, so that noise never buys lower precision. Every candidate, with
its speed, error and verdict, is in the report (``exporter.auto``) and the manifest.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field, replace
from pathlib import Path

from bridge.artifact.bundle import MODEL
from bridge.errors import BridgeError
from bridge.precision import methods as P
from bridge.progress import stage

SEPARATION = 10.0  # seeded draws' native outputs at least this many times further apart than the candidate's error
TIE = 0.05  # a higher-fidelity candidate within 5% of the fastest's p50 is chosen instead
ACCURACY_DROP = 0.01  # with --labels and no policy max_accuracy_drop: at most 1 point below the native model
FIDELITY = {"fp32": 0, "fp16": 1, "int8": 2}
DEFAULT = ("fp32", "fused", "int8")


@dataclass
class Candidate:
    name: str  # fp32, fused, int8, fused+int8, fp16 (+ "@tf32" for a TF32 run of a float32 graph on CUDA)
    precision: str  # the graph's: fp32, int8, fp16
    path: Path | None = None
    parent: str | None = None  # the candidate (or intermediate graph) it was derived from
    parent_path: Path | None = None  # that float32 graph: a reduced-precision bundle carries it (parent.onnx)
    method: str = ""
    why: str = ""
    settings: dict = field(default_factory=dict)
    calibration: dict | None = None
    tf32: bool = False
    status: str = "not built"  # pass | fail | inconclusive | skipped | error | not built
    reason: str = ""
    results: list = field(default_factory=list)
    policy: object = None
    dataset: dict = field(default_factory=dict)
    separation: float | None = None
    eligible: bool = False
    why_not: str = ""
    info: dict | None = None  # the graph's description (bridge/artifact/onnx_file.py)

    def row(self, timing: dict | None) -> dict:
        from bridge.verdict.compare import summarize

        summary = summarize(self.results).values() if self.results else []
        rel = [r.rel_norm for r in summary if isinstance(r.rel_norm, (int, float))]
        scale = [r.max_abs / r.ref_abs_max for r in summary if r.ref_abs_max and isinstance(r.max_abs, (int, float))]
        first = next(iter(self.dataset.values()), {})
        return {
            "name": self.name,
            "precision": self.precision,
            "parent": self.parent,
            "method": self.method,
            "why": self.why,
            "settings": self.settings,
            "status": self.status,
            "reason": self.reason,
            "max_abs": max((r.max_abs for r in summary if isinstance(r.max_abs, (int, float))), default=None),
            "rel_norm": max(rel) if rel else None,
            "abs_over_scale": max(scale) if scale else None,
            "top1_real": first.get("top1_agreement"),
            "accuracy_native": first.get("accuracy_native"),
            "accuracy_onnx": first.get("accuracy_onnx"),
            "separation": self.separation,
            "eligible": self.eligible,
            "why_not": self.why_not,
            "tf32": self.tf32,
            **(timing or {}),
        }


def requested(opts, device: str) -> list[str]:
    """The candidates to build, in order: the request's (fp32 always among them), else the default for
    the device (fp16 where it pays: CUDA)."""
    names = list(opts.candidates) if opts.candidates else [*DEFAULT, *(["fp16"] if device == "cuda" else [])]
    return ["fp32", *[n for n in names if n != "fp32"]]


def int8_method(path: Path, calibrate: str | None) -> tuple[str, str]:
    """(method, why) for the int8 candidate: a graph with convolutions is quantized statically on the
    calibration samples (dynamic quantization has no fast convolution: ConvInteger ran 2.3x slower than
    float32 on ResNet-50), a GEMM-bound one dynamically (MatMul/Gemm, LSTM weights, no data needed)."""
    conv, gemm = weight_elements(path)
    share = f"{conv / max(1, conv + gemm):.0%} of the weights in convolutions"
    if conv and calibrate:
        return "static-qdq", f"graph with convolutions ({share}): static QDQ calibrated on --calibrate {calibrate}"
    if conv:
        return "dynamic", (
            f"graph with convolutions ({share}) but no --calibrate samples: dynamic quantization of the MatMul/LSTM "
            "weights only, convolutions stay float32 (give --calibrate for static int8)"
        )
    return "dynamic", "GEMM-bound graph: dynamic quantization of MatMul/Gemm and LSTM weights, no data needed"


def weight_elements(path: Path) -> tuple[int, int]:
    """Weight elements feeding convolutions, and those feeding MatMul/Gemm/LSTM/Attention nodes."""
    import onnx

    proto = onnx.load(str(path), load_external_data=False)
    size = {t.name: _elements(t) for t in proto.graph.initializer}
    conv = gemm = 0
    for node in proto.graph.node:
        weights = sum(size.get(i, 0) for i in node.input[1:])
        if node.op_type in ("Conv", "ConvTranspose"):
            conv += weights
        elif node.op_type in ("MatMul", "Gemm", "LSTM", "GRU", "Attention", "MultiHeadAttention"):
            gemm += weights
    return conv, gemm


def _elements(tensor) -> int:
    n = 1
    for d in tensor.dims:
        n *= int(d)
    return n


def separation(reference: list, kept: dict) -> float | None:
    """How strongly seeded inputs test a candidate: over the float outputs of the first two cases with
    the same sizes (the plan's two draws), the distance between the native outputs of the two draws
    divided by the candidate's largest distance from the native model (its L2 norms). None when no
    such pair or no float output exists; inf when the candidate is exact."""
    import numpy as np

    pair = _draw_pair(reference)
    if pair is None or any(c.label not in kept or kept[c.label] is None for c, _, _ in pair):
        return None
    (ca, _, ra), (cb, _, rb) = pair
    worst = None
    for name, ref_a in ra.items():
        ref_a, ref_b = np.asarray(ref_a), np.asarray(rb.get(name))
        out_a, out_b = kept[ca.label].get(name), kept[cb.label].get(name)
        if ref_a.dtype.kind != "f" or out_a is None or out_b is None or ref_a.shape != ref_b.shape:
            continue
        apart = float(np.linalg.norm((ref_a - ref_b).astype(np.float64)))
        err = max(
            float(np.linalg.norm((np.asarray(out_a, np.float64) - ref_a))),
            float(np.linalg.norm((np.asarray(out_b, np.float64) - ref_b))),
        )
        value = float("inf") if err == 0 else apart / err
        worst = value if worst is None else min(worst, value)
    return worst


def _draw_pair(reference: list):
    seen = {}
    for run in reference:
        case = run[0]
        if case.label == "data" or getattr(case, "search", False):
            continue
        key = tuple(sorted(case.sizes.items()))
        if key in seen:
            return seen[key], run
        seen[key] = run
    return None


def choose(candidates: list[Candidate], timing: dict) -> Candidate | None:
    """The fastest eligible timed candidate; one of higher fidelity within ``TIE`` of it instead."""
    timed = [c for c in candidates if c.eligible and c.name in timing]
    if not timed:
        return None
    fastest = min(timed, key=lambda c: timing[c.name]["p50_ms"])
    close = [c for c in timed if timing[c.name]["p50_ms"] <= timing[fastest.name]["p50_ms"] * (1 + TIE)]
    return min(close, key=lambda c: (FIDELITY[c.precision], c.tf32, timing[c.name]["p50_ms"]))


# -- the export step ------------------------------------------------------------------------------------


def derive_verified(
    staging_dir: Path, model, specs: list, reference: list, fp32_io: tuple, padded: dict, opts, policy, report
) -> tuple:
    """Build, verify and time the candidates beside the verified float32 ``model.onnx`` in
    ``staging_dir``, and leave the chosen one as the bundle's ``model.onnx``. Returns (policy applied,
    manifest precision entry, model description or None when the float32 graph stays); the report's
    results, dataset metrics, latency, policy and notes are the chosen candidate's, and
    ``report.exporter["auto"]`` holds every candidate."""
    fp32_path = staging_dir / MODEL
    fp32 = {"sha256": P.sha256(fp32_path), "bytes": fp32_path.stat().st_size, "status": report.status}
    device = (getattr(opts, "devices", None) or ("cpu",))[0]
    if report.status != "pass":
        report.notes.append(
            f"precision auto: no candidates built, the float32 export is {report.status}; candidates are only "
            "derived from a float32 artifact that passed"
        )
        return policy, {"precision": "fp32", "requested": "auto", "derived": False, "fp32": fp32}, None
    extra = sorted(p.name for p in staging_dir.iterdir() if p.name != MODEL and not p.name.startswith("."))
    if extra:
        raise P.conversion_error(
            "auto", f"the float32 graph stores its weights in external files ({', '.join(extra)}); not supported yet"
        )
    work = staging_dir / ".auto"
    work.mkdir()
    try:
        return _run(work, staging_dir, fp32, device, model, specs, reference, fp32_io, padded, opts, policy, report)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _run(work, staging_dir, fp32, device, model, specs, reference, fp32_io, padded, opts, policy, report):
    from bridge.verdict.compare import REAL_DATA

    fp32_path = staging_dir / MODEL
    names = requested(opts, device)
    runs, labels, real_from = _with_real_samples(model, specs, reference, opts)
    held_out = opts.samples or None  # calibration samples are compared too, but only held-out ones waive separation
    if labels is not None and policy.max_accuracy_drop is None:
        policy = replace(policy, max_accuracy_drop=ACCURACY_DROP)
    calib = None
    if opts.calibrate:
        stage(f"reading the calibration samples {opts.calibrate}")
        calib = P.calibration_samples(opts.calibrate, specs)

    shutil.copyfile(fp32_path, work / "fp32.onnx")
    cands = [Candidate("fp32", "fp32", work / "fp32.onnx", method="export", why="the float32 export, unfused")]
    unpacked = None  # the fused graph with q/k/v projections apart, for quantization after fusion
    if "fused" in names:
        cands.append(_fused(work, fp32_path))
        if cands[-1].path is not None and "int8" in names:
            unpacked = _unpacked(work, fp32_path)
    if "int8" in names:
        cands.append(_int8("int8", work / "fp32.onnx", "fp32", work / "int8", calib, opts))
        if unpacked is not None:
            cands.append(_int8("fused+int8", unpacked[0], "fused (q/k/v unpacked)", work / "fused_int8", calib, opts))
            cands[-1].settings = {"fusion": unpacked[1], **cands[-1].settings}
            _check_parent(cands[-1], runs, policy, padded, opts)
    if "fp16" in names:
        cands.append(_fp16(work, work / "fp32.onnx", opts))
    if device == "cuda" and getattr(opts, "tf32", False):
        cands += [
            Candidate(
                f"{c.name}@tf32", "fp32", c.path, c.name, c.method, c.why + "; run with TF32 on", c.settings, tf32=True
            )
            for c in list(cands)
            if c.precision == "fp32" and c.path is not None
        ]
    keep_labels = [c.label for c, _, _ in (_draw_pair(runs) or ())]
    for c in cands:
        if c.path is None:
            continue
        _verify(c, runs, policy, padded, opts, device, labels, keep_labels, fp32_io, specs, held_out)

    timing, bench, peer = _bench(cands, model, specs, reference, opts, device)
    chosen = choose(cands, timing) or cands[0]
    table = [c.row(timing.get(c.name)) for c in cands]
    report.exporter["auto"] = {
        "device": device,
        "chosen": chosen.name,
        "candidates": table,
        "peers": peer,
        "rule": _rule(held_out),
        "separation_min": SEPARATION,
        "tie": TIE,
        "real_samples": real_from,
        "held_out": bool(held_out),
    }
    if bench is not None:
        report.latency[device] = bench
    report.notes.append(_summary(chosen, cands, timing, real_from, held_out))
    report.notes.extend(
        f"precision auto: {c.name} not chosen: {c.why_not}" for c in cands if c.why_not and c is not chosen
    )
    if calib is not None and any(c.method == "static-qdq" for c in cands):
        report.notes.extend(P.calibration_coverage(calib[0], reference))

    if chosen.path != work / "fp32.onnx" and chosen.path is not None:
        shutil.copyfile(chosen.path, fp32_path)
    report.results = chosen.results
    report.policy = chosen.policy.to_json()
    report.dataset.pop("cpu", None)
    if REAL_DATA in {r.case for r in chosen.results} and chosen.dataset:
        report.dataset[device] = {
            "inputs": real_from,
            "labels": opts.labels,
            "outputs": chosen.dataset,
        }
    if chosen.name.startswith("fused"):
        fusion = chosen.settings.get("fusion") or chosen.settings
        report.exporter.setdefault("settings", {})["graph_optimization"] = {"level": "transformer", **fusion}
    info = chosen.info if chosen.name != "fp32" else None
    if chosen.precision == "fp32":
        entry = {"precision": "fp32", "requested": "auto", "chosen": chosen.name, "tf32": chosen.tf32, "fp32": fp32}
        return chosen.policy, entry, info
    from bridge.precision.quality import precision_notes

    report.notes.extend(precision_notes(chosen.policy, chosen.results, real_from, report.dataset))
    entry = P.manifest_entry(chosen.precision, chosen.method, chosen.why, chosen.settings, chosen.calibration, fp32)
    entry.update(requested="auto", chosen=chosen.name, derived_from=chosen.parent)
    from bridge.precision import provenance

    # the bundle carries the float32 graph the artifact was derived from, and its calibration samples: a
    # verification derives the artifact again from them (bridge/precision/provenance.py)
    entry["parent"] = provenance.keep_parent(staging_dir, chosen.parent_path)
    if entry.get("calibration") is not None and calib is not None:
        entry["calibration"] = {**entry["calibration"], "stored": provenance.keep_calibration(staging_dir, calib[0])}
    return chosen.policy, entry, info


def _with_real_samples(model, specs, reference, opts) -> tuple[list, object, str | None]:
    """The plan's runs, plus the real samples (``--samples``, else ``--calibrate``) with the native
    model's outputs on them; their labels; which file they came from."""
    from bridge.types import Case
    from bridge.verdict.compare import REAL_DATA
    from bridge.verdict.inputs import batch_sizes, load_labels, load_npz

    path = opts.samples or opts.calibrate
    if not path:
        return list(reference), None, None
    stage(f"running the native model on the real samples {path}")
    feeds = load_npz(path, specs)
    labels = load_labels(opts.labels, feeds) if opts.samples and opts.labels else None
    case = Case(REAL_DATA, None, batch_sizes(specs, feeds), purpose="real samples")
    return [*reference, (case, feeds, P.run_native_chunked(model, feeds))], labels, path


def _fused(work: Path, fp32_path: Path) -> Candidate:
    from bridge.frameworks.ort_fusion import fuse

    c = Candidate("fused", "fp32", parent="fp32", method="onnxscript fusions", why="--optimize transformer")
    stage("fusing the float32 graph (onnxscript's ONNX Runtime fusions)")
    try:
        c.settings = fuse(fp32_path, work / "fused.onnx")
    except Exception as exc:  # noqa: BLE001 - the rewriter raises anything; the candidate records it
        c.status, c.reason = "error", f"the fusion rewriter failed: {_short(exc)}"
        return c
    if not c.settings["fused"]:
        c.status, c.reason = "skipped", "nothing to fuse (no attention, normalization or GELU pattern matched)"
        return c
    c.path = work / "fused.onnx"
    c.why = "fused: " + ", ".join(f"{k} x{v}" for k, v in c.settings["fused"].items())
    return c


def _unpacked(work: Path, fp32_path: Path):
    from bridge.frameworks.ort_fusion import fuse

    try:
        settings = fuse(fp32_path, work / "fused_unpacked.onnx", pack_qkv=False)
    except Exception:  # noqa: BLE001 - the packed fusion worked; the int8 of the export stays a candidate
        return None
    return (work / "fused_unpacked.onnx", settings) if settings["fused"] else None


def _int8(name: str, src: Path, parent: str, out_dir: Path, calib, opts) -> Candidate:
    method, why = int8_method(src, opts.calibrate)
    c = Candidate(name, "int8", parent=parent, parent_path=src, method=method, why=why)
    out_dir.mkdir()
    stage(f"deriving the {name} graph ({method})")
    try:
        c.settings = P.derive(src, out_dir / MODEL, "int8", method, calib[0] if calib else None, opts.threads)
    except BridgeError as exc:
        c.status, c.reason = "error", exc.message
        return c
    c.calibration = calib[1] if calib and method == "static-qdq" else None
    c.path = out_dir / MODEL
    return c


def _fp16(work: Path, fp32_path: Path, opts) -> Candidate:
    c = Candidate(
        "fp16", "fp16", parent="fp32", parent_path=fp32_path, method="fp16", why=P.method_for("fp16", None, "none")[1]
    )
    (work / "fp16").mkdir()
    stage("deriving the fp16 graph")
    try:
        c.settings = P.derive(fp32_path, work / "fp16" / MODEL, "fp16", "fp16", None, opts.threads)
    except BridgeError as exc:
        c.status, c.reason = "error", exc.message
        return c
    c.path = work / "fp16" / MODEL
    return c


def _check_parent(c: Candidate, runs, policy, padded, opts) -> None:
    """A graph quantized after fusion carries the fused float32 graph as its parent: that graph must pass
    the strict float32 row itself (a verification of the bundle checks it again)."""
    from bridge.verdict.compare import summarize
    from bridge.verdict.parity import compare_file
    from bridge.verdict.status import verdict

    if c.path is None or c.parent_path is None:
        return
    stage(f"verifying the float32 parent of the {c.name} candidate")
    try:
        results = compare_file(c.parent_path, runs, policy, threads=opts.threads, padded=padded)
    except BridgeError as exc:
        c.path, c.status, c.reason = None, "error", f"its float32 parent: {exc.message}"
        return
    status = verdict(r.status for r in summarize(results).values())
    if status != "pass":
        c.path, c.status, c.reason = None, "error", f"its float32 parent (the fused graph, unpacked) is {status}"


def _verify(c: Candidate, runs, policy, padded, opts, device, labels, keep_labels, fp32_io, specs, held_out) -> None:
    """The candidate against the native outputs under its precision's row: results, real-sample metrics
    and the accuracy gate, its separation, and whether it may be chosen."""
    from bridge.verdict.compare import REAL_DATA, dataset_metrics
    from bridge.verdict.parity import fixed_dynamic_axes, inspect_file, open_ort, run_onnx
    from bridge.verdict.status import verdict

    stage(f"checking and verifying the {c.name} candidate")
    try:
        checked = inspect_file(c.path, produced_by=f"--precision auto ({c.name})")
        problem = P.io_problem(fp32_io, (checked.inputs, checked.outputs)) or "; ".join(
            fixed_dynamic_axes(specs, checked.inputs)
        )
        if not problem and checked.precision != c.precision:
            problem = f"the derived graph is {checked.precision}, not {c.precision}"
        if problem:
            c.status, c.reason = "error", problem
            return
        c.info = checked.description
        c.policy = replace(policy, precision=c.precision)
        row_device = _row_device(device, c)
        keep = {label: None for label in keep_labels}
        real = any(case.label == REAL_DATA for case, _, _ in runs)
        if real:
            keep[REAL_DATA] = None
        with open_ort(
            c.path, device, threads=opts.threads, tf32=c.tf32, produced_by=f"--precision auto ({c.name})"
        ) as runner:
            c.results = run_onnx(runner, runs, c.policy, row_device, keep=keep, padded=padded)
    except BridgeError as exc:
        c.status, c.reason = "error", exc.message
        return
    if real and keep.get(REAL_DATA) is not None:
        ref_out = next(out for case, _, out in runs if case.label == REAL_DATA)
        c.dataset = dataset_metrics(ref_out, keep[REAL_DATA], labels)
        if labels is not None:
            from bridge.precision.quality import accuracy_gate

            c.results = accuracy_gate(c.results, c.dataset, c.policy, row_device)
    c.separation = separation(runs, keep)
    from bridge.verdict.compare import summarize

    summary = summarize(c.results)
    c.status = verdict(r.status for r in summary.values())
    bad = next((r for r in summary.values() if r.status != "pass"), None)
    c.reason = f"{bad.name}: {bad.reason}" if bad else ""
    if c.status != "pass":
        c.why_not = f"verification {c.status}"
    elif c.precision != "fp32" and not held_out and (c.separation is None or c.separation < SEPARATION):
        shown = "not measurable" if c.separation is None else f"{c.separation:.1f}"
        c.why_not = (
            f"no held-out real samples, and the seeded check is weak: the native outputs of two seeded draws lie only "
            f"{shown} times further apart than this candidate's error (at least {SEPARATION:g} needed), so random "
            "inputs cannot show it is right; give --samples (and --labels) to let it compete"
        )
    else:
        c.eligible = True


def _row_device(device: str, c: Candidate) -> str:
    if device == "cpu":
        return "cpu"
    from bridge.frameworks.providers import provider

    return provider(device).policy_row(c.tf32)


def _bench(cands, model, specs, reference, opts, device) -> tuple[dict, dict | None, dict]:
    """ONE bench: native float32, the framework's own int8 where there is one, every candidate that
    passed. Returns (candidate name -> its timing, the bench's JSON, the peers' record)."""
    from bridge.bench import Side, measure_request
    from bridge.frameworks import ort_runner_class
    from bridge.types import Case
    from bridge.verdict.inputs import make_feeds
    from bridge.verdict.plan import case_seed

    sizes = {**(reference[0][0].sizes if reference else {}), **dict(getattr(opts, "latency_dims", None) or {})}
    feeds = make_feeds(specs, Case("latency", case_seed(opts.seed, "latency"), sizes, purpose="timed inputs"))
    peers: dict = {"native": {"precision": "fp32", "device": device}, "sizes": sizes}
    sides, runners = [], []
    if device != "cpu":
        model.to(device)
        model.set_tf32(False)
    sides.append(Side("native", lambda: model.run(feeds), model.synchronize))
    twin, record = (
        _framework_int8(model) if device == "cpu" else (None, {"why": "torch.ao's int8 runs on the CPU only"})
    )
    peers["native-int8"] = record
    if twin is not None:
        try:
            peer_out = twin.run(feeds)
        except Exception as exc:  # noqa: BLE001 - code that reads a Linear's weight itself (F.linear(x, m.weight))
            from bridge.errors import exception_summary

            record = {**record, "why": f"torch.ao's dynamic int8 model fails to run: {exception_summary(exc, 160)}"}
            peers["native-int8"] = record
            twin.close()
            twin = None
    if twin is not None:
        record["rel_norm"] = _rel_norm(model.run(feeds), peer_out)
        sides.append(Side("native-int8", lambda: twin.run(feeds), twin.synchronize))
    timed = [c for c in cands if c.status == "pass" and c.path is not None]
    OrtRunner = ort_runner_class()
    try:
        for c in timed:
            runner = OrtRunner(str(c.path), device, threads=opts.threads, spinning=True, tf32=c.tf32)
            runners.append(runner)
            if device == "cuda":  # inputs on the device once, outputs left there: the deployment's figure
                runner.bind(feeds)
                sides.append(Side(c.name, runner.run_bound, runner.synchronize))
            else:
                sides.append(Side(c.name, lambda runner=runner: runner.run(feeds)))
        if not timed or opts.latency_runs < 1:
            return {}, None, peers
        stage(f"timing the native model and {len(timed)} candidates in one bench ({device})")
        result = measure_request(sides, feeds, opts, on_round=stage).to_json()
    finally:
        for runner in runners:
            runner.close()
        if twin is not None:
            twin.close()
        if device != "cpu":
            model.to("cpu")
    for side in result["sides"].values():
        side.pop("samples_ms", None)
    result["sizes"] = sizes
    timing = {}
    for c in timed:
        s = result["sides"][c.name]
        timing[c.name] = {
            "p50_ms": s["p50_ms"],
            "vs_native": result["speedup_vs_baseline_p50"][c.name],
            "vs_native_rounds": result["speedup_per_round"][c.name],
        }
    fp32 = result["sides"].get("fp32", {}).get("p50_ms")
    for name, t in timing.items():
        t["vs_ort_fp32"] = fp32 / t["p50_ms"] if fp32 else None
        if "native-int8" in result["sides"]:
            t["vs_native_int8"] = result["sides"]["native-int8"]["p50_ms"] / t["p50_ms"]
    return timing, result, peers


def _framework_int8(model):
    if getattr(model, "framework", "") != "torch":
        return None, {"why": "TensorFlow's own int8 is TF Lite's converter and interpreter, another runtime: not timed"}
    from bridge.frameworks.pt_quantize import dynamic_int8

    return dynamic_int8(model)


def _rel_norm(ref: dict, out: dict) -> float | None:
    import numpy as np

    worst = None
    for name, r in ref.items():
        r = np.asarray(r, np.float64)
        if r.dtype.kind != "f" or name not in out or not np.linalg.norm(r):
            continue
        value = float(np.linalg.norm(np.asarray(out[name], np.float64) - r) / np.linalg.norm(r))
        worst = value if worst is None else max(worst, value)
    return worst


def _rule(held_out: str | None) -> str:
    if held_out:
        return (
            f"eligible: the candidate passes its precision's row on the plan's cases and on the real samples "
            f"{held_out} (top-1 agreement floor; with labels, accuracy at most the policy's drop below the native "
            "model's); chosen: the fastest eligible, or one of higher fidelity within "
            f"{TIE:.0%} of it"
        )
    return (
        "eligible: the candidate passes its precision's row on the plan's cases (and on the calibration samples, "
        "when there are some); without held-out real samples (--samples) a "
        f"reduced-precision candidate also needs a strong seeded check (separation at least {SEPARATION:g}); "
        f"chosen: the fastest eligible, or one of higher fidelity within {TIE:.0%} of it"
    )


def _summary(chosen: Candidate, cands: list, timing: dict, real_from, held_out) -> str:
    parts = []
    for c in cands:
        t = timing.get(c.name)
        speed = f"{t['p50_ms']:.3g} ms, {t['vs_native']:.2f}x native" if t else "not timed"
        shown = f"{c.status} (not eligible)" if c.status == "pass" and not c.eligible else c.status
        parts.append(f"{c.name} {shown} ({speed})")
    if held_out:
        basis = f"judged on the held-out samples {held_out} too"
    elif real_from:
        basis = f"judged on seeded inputs and the calibration samples {real_from} (not held out)"
    else:
        basis = "judged on seeded inputs only"
    return f"precision auto: chose {chosen.name} among " + "; ".join(parts) + f"; {basis}"


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text[:300]}"
