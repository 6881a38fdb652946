"""Running the reference and ONNX Runtime over the same cases, and comparing them.

Shared by export (which records the verdict in the manifest) and verify.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import replace as _replace

from bridge.errors import BridgeError, ConversionError, InputError, exception_summary
from bridge.types import Case, TensorSpec
from bridge.verdict.compare import (
    FAIL,
    PASS,
    OutputResult,
    compare_outputs,
    cross_case_vacuity,
    detection_groups,
    outputs_equal,
)
from bridge.verdict.policy import Policy
from bridge.verdict.rounding import (
    VALUE_FAILURE,
    ExactRun,
    native_noise,
    recheck,
    recheck_detections,
    recheck_exact,
    recheck_noise,
)

CaseRun = tuple  # (Case, feeds, outputs)


# -- the artifact step every command shares: check an ONNX file, open it in ONNX Runtime, compare -----


@dataclass
class FileInfo:
    """What a checked ONNX file takes and returns, what it is (nodes, opsets) and its precision."""

    inputs: list
    outputs: list
    description: dict
    precision: str
    evidence: str
    boundaries: object = None  # the thresholds the graph applies to its inputs, when asked for


def inspect_file(path, *, produced_by: str | None = None, boundaries: bool = False) -> FileInfo:
    """onnx.checker (full) and onnx.load on ``path``; its inputs, outputs, description and precision,
    and (``boundaries``) the thresholds it applies to its inputs (bridge/verdict/thresholds.py). A file
    bridge's own step wrote (``produced_by``) that fails is a ConversionError naming the step; anything
    else an InputError."""
    from bridge.artifact.onnx_file import describe, io_specs, load_checked
    from bridge.precision.methods import graph_precision

    proto = load_checked(path, produced_by_us=produced_by is not None)
    inputs, outputs = io_specs(proto)
    precision, evidence = graph_precision(proto)
    found = None
    if boundaries:
        from bridge.verdict import thresholds

        found = thresholds.find(proto)
    return FileInfo(inputs, outputs, describe(proto), precision, evidence, found)


def open_ort(
    path,
    device: str = "cpu",
    *,
    threads: int | None = None,
    spinning: bool = False,
    tf32: bool = False,
    produced_by: str | None = None,
):
    """The file in ONNX Runtime on ``device`` (an OrtRunner: use it as a context manager). A file that
    bridge's own step wrote (``produced_by``) and ONNX Runtime cannot load is a ConversionError."""
    from bridge.frameworks import ort_runner_class

    try:
        return ort_runner_class()(str(path), device, threads=threads, spinning=spinning, tf32=tf32)
    except InputError as exc:
        if produced_by is None:
            raise
        raise ConversionError(
            f"{produced_by} wrote a model that ONNX Runtime cannot load: {exc.message.split(': ', 1)[-1]}",
            hint="the graph uses an operator or type this onnxruntime lacks on the CPU (e.g. bfloat16 Gemm); try "
            "another --opset, or export in float32",
        ) from None


def compare_file(
    path,
    runs: list,
    policy: Policy,
    *,
    device: str = "cpu",
    threads: int | None = None,
    padded: dict | None = None,
    keep: dict | None = None,
    produced_by: str | None = None,
    notes: list | None = None,
) -> list:
    """The file in ONNX Runtime, compared with the reference on every run (export's and derivation's
    step; verify opens the runner itself because it also times it)."""
    with open_ort(path, device, threads=threads, produced_by=produced_by) as runner:
        return run_onnx(runner, runs, policy, device, keep=keep, padded=padded, notes=notes)


def run_reference(
    model, cases: list[tuple[Case, dict]], timings: dict | None = None
) -> tuple[list[CaseRun], str | None, list[str]]:
    """Native outputs per case. The first case runs twice and must be bit-identical; the model's
    state (BatchNorm statistics) must not change. Optional cases the native model rejects (an error,
    or NaN/Inf where the first case had none) are dropped with a note; so are the rows of a search case
    on which the native model gives NaN/Inf (its domain's own limit, not an export error). Returns the
    runs, a problem description (or None) and the notes. ``timings``: filled with the seconds the native
    model took per case label (the search's budget uses them)."""
    import time

    runs: list[CaseRun] = []
    problem = None
    notes: list[str] = []
    from bridge.progress import stage

    for i, (case, feeds) in enumerate(cases):
        stage(f"running the native model: case {case.label} ({i + 1}/{len(cases)})")
        start = time.perf_counter()
        if case.optional or case.search:
            try:
                out = model.run(feeds)
            except Exception as exc:  # noqa: BLE001 - the model's own limit, not an export error
                notes.append(f"case {case.label} dropped: the native model rejects it ({exception_summary(exc, 160)})")
                continue
            if case.search and _nonfinite(out):
                kept = finite_rows(case, feeds, out)
                if kept is None:
                    notes.append(f"case {case.label} dropped: the native model gives NaN/Inf on it")
                    continue
                case, feeds, out, dropped = kept
                notes.append(f"case {case.label}: {dropped} rows dropped, on which the native model gives NaN/Inf")
            if case.search:
                case = _replace(case, noise=native_noise(model, feeds, out))
            elif runs and _nonfinite(out) and not _nonfinite(runs[0][2]):
                notes.append(f"case {case.label} dropped: the native model gives NaN/Inf on it")
                continue
        else:
            out = _run_native(model, feeds, case)
        if timings is not None:
            timings[case.label] = time.perf_counter() - start
        case = _replace(case, exact=ExactRun(model, feeds))
        if i == 0:
            again = _run_native(model, feeds, case)
            differ = outputs_equal(out, again)
            if differ:
                problem = (
                    f"nondeterministic reference: two runs of the native model on the same inputs differ "
                    f"in {', '.join(differ)} (dropout or random ops active in inference?)"
                )
        runs.append((case, feeds, out))
    mutated = model.check_state()
    if mutated and problem is None:
        problem = f"nondeterministic reference: {mutated} (BatchNorm in training mode?)"
    return runs, problem, notes


def rows_of(feeds: dict, outputs: dict) -> int | None:
    """The number of rows when every input and every output carries them along its first axis."""
    import numpy as np

    arrays = [np.asarray(a) for a in (*feeds.values(), *outputs.values())]
    firsts = {a.shape[0] if a.ndim else None for a in arrays}
    return firsts.pop() if len(firsts) == 1 and None not in firsts else None


def finite_rows(case: Case, feeds: dict, outputs: dict):
    """The case restricted to the rows on which every native output is finite: (case, feeds, outputs,
    rows dropped), or None when rows cannot be told apart or none is left."""
    import dataclasses

    import numpy as np

    n = rows_of(feeds, outputs)
    if not n:
        return None
    ok = np.ones(n, dtype=bool)
    for v in outputs.values():
        v = np.asarray(v)
        if v.dtype.kind in "fc":
            ok &= np.isfinite(v.reshape(n, -1)).all(axis=1)
    if not ok.any():
        return None
    axis = next((k for k, size in case.sizes.items() if size == n), None)
    sizes = {**case.sizes, axis: int(ok.sum())} if axis else dict(case.sizes)
    take = {k: np.asarray(v)[ok] for k, v in feeds.items()}
    return (
        dataclasses.replace(case, sizes=sizes),
        take,
        {k: np.asarray(v)[ok] for k, v in outputs.items()},
        int(n - ok.sum()),
    )


def _nonfinite(outputs: dict) -> bool:
    import numpy as np

    return any(np.asarray(v).dtype.kind in "fc" and not np.isfinite(v).all() for v in outputs.values())


def _run_native(model, feeds: dict, case: Case | None = None) -> dict:
    try:
        return model.run(feeds)
    except BridgeError:
        raise
    except Exception as exc:
        from bridge.native.failures import cuda_missing, dtype_hint, size_hint

        cuda = cuda_missing(exc, "the native model")
        if cuda is not None:
            raise cuda from None
        shapes = ", ".join(f"{k}:{v.dtype}{list(v.shape)}" for k, v in feeds.items())
        hint = dtype_hint(exc, feeds) or "check that the --input specs match the model's forward() arguments, in order"
        if case is not None and case.sizes and not hint.startswith("the model's weights are"):
            hint = size_hint(case)
        raise InputError(
            f"the native model failed on inputs {shapes} (case {case.label if case else '?'}): "
            f"{exception_summary(exc)}",
            hint=hint,
        ) from None


def binding_problem(
    specs: list[TensorSpec], onnx_inputs: list[TensorSpec], native_names: list[str] | None
) -> str | None:
    """Inputs are fed by name on every side. The ONNX graph's input names must be the model's, in the
    model's own order (forward()'s parameters, a Keras model's inputs): a graph whose same-shaped
    inputs trade names passes any positional check and swaps them at deployment."""
    graph = [s.name for s in onnx_inputs]
    ours = [s.name for s in specs]
    if sorted(graph) != sorted(ours):
        return (
            f"inputs: the ONNX graph takes {graph}, the model {ours}; name the inputs as the model does "
            "(--input NAME:..., BRIDGE_INPUTS)"
        )
    order = ours
    if native_names and set(ours) <= set(native_names):
        order = [n for n in native_names if n in set(ours)]
    if graph != order:
        return (
            f"inputs: the ONNX graph takes {graph} in this order, the native model {order}; a graph whose "
            "inputs trade names or places binds them differently from the model"
        )
    return None


def fixed_dynamic_axes(declared: list[TensorSpec], onnx_inputs: list[TensorSpec]) -> list[str]:
    """Declared-dynamic axes that the ONNX graph baked into a constant."""
    by_name = {s.name: s for s in onnx_inputs}
    baked = []
    for s in declared:
        got = by_name.get(s.name)
        if got is None:
            continue
        for axis, name in s.dynamic_axes.items():
            if axis < len(got.dims) and isinstance(got.dims[axis], int):
                baked.append(f"{s.name}[{axis}] '{name}' is fixed to {got.dims[axis]} in the ONNX graph")
    return baked


def padded_outputs(inputs: list[TensorSpec], outputs: list[TensorSpec]) -> dict[str, str]:
    """Outputs laid out along an attention mask (their leading axes are the mask's axes, by name):
    output name -> mask input name. Their elements at padded positions are compared like any other;
    only where the native model itself leaves them undefined (NaN or Inf there) are they not."""
    masks = [s for s in inputs if s.kind == "mask" and s.dims and all(isinstance(d, str) for d in s.dims)]
    found = {}
    for out in outputs:
        for m in masks:
            if len(out.dims) >= len(m.dims) and tuple(out.dims[: len(m.dims)]) == tuple(m.dims):
                found[out.name] = m.name
                break
    return found


def _ignored(padded: dict[str, str], feeds: dict, outputs: dict) -> dict:
    """Per padded output: the elements not compared, those at padded positions where the native output
    is NaN or Inf (the native model leaves them undefined; the ONNX side may put anything there). A
    NaN on the ONNX side where the native side is finite fails, padded or not."""
    import numpy as np

    ignore = {}
    for out, mask_name in padded.items():
        if out not in outputs or mask_name not in feeds:
            continue
        mask, arr = np.asarray(feeds[mask_name]), np.asarray(outputs[out])
        if arr.shape[: mask.ndim] != mask.shape or arr.dtype.kind not in "fc":
            continue
        off = np.broadcast_to((mask == 0).reshape(mask.shape + (1,) * (arr.ndim - mask.ndim)), arr.shape)
        undefined = off & ~np.isfinite(arr)
        if undefined.any():
            ignore[out] = undefined
    return ignore


def run_onnx(
    runner,
    reference: list[CaseRun],
    policy: Policy,
    device: str,
    keep: dict | None = None,
    padded: dict[str, str] | None = None,
    notes: list | None = None,
) -> list[OutputResult]:
    """ONNX Runtime on each case's inputs, compared with that case's reference outputs. The ONNX
    outputs of the cases named in ``keep`` (label -> None) are stored there for dataset metrics.
    ``padded`` (see ``padded_outputs``) names outputs laid along an attention mask. A search case can
    only find a failure: its results that prove nothing (inconclusive) leave the verdict, counted in
    ``notes``."""
    import time
    from dataclasses import replace

    from bridge.progress import stage

    results: list[OutputResult] = []
    structural = detection_groups(reference)
    failed = False
    for n, (case, feeds, ref_out) in enumerate(reference):
        stage(f"running ONNX Runtime ({device}) and comparing: case {case.label} ({n + 1}/{len(reference)})")
        start, first = time.perf_counter(), len(results)
        try:
            cand = runner.run(feeds)
        except Exception as exc:
            shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in feeds.items())
            from bridge.frameworks.ort import ort_message

            text = ort_message(exc) or type(exc).__name__
            results.extend(
                OutputResult(name, FAIL, f"ONNX Runtime failed on inputs {shapes}: {text}", case.label, device)
                for name in ref_out
            )
            continue
        if keep is not None and case.label in keep:
            keep[case.label] = cand
        results.extend(
            compare_outputs(
                ref_out,
                cand,
                policy,
                device,
                case.label,
                _ignored(padded, feeds, ref_out) if padded else None,
                structural,
            )
        )
        # an element-test failure within ONNX Runtime's own rounding: inconclusive
        other = recheck(results, first, feeds, ref_out, cand, runner.unoptimized)
        recheck_detections(results, first, feeds, cand, runner.unoptimized, policy, device)
        # ... or, row by row, within float32's own rounding measured against the native model in float64
        # (once a case has failed for good the verdict is a failure: later cases skip the float64 run)
        recheck_exact(results, first, ref_out, cand, None if failed else case.exact, other)
        if case.search and case.noise:
            recheck_noise(results, first, ref_out, cand, case.noise)
        if case.search:
            # A reduced-precision graph's error on the search's extreme rows is its quantization's own (a
            # dynamic int8 scale set by one row's outliers moves every row of the batch): finding wrong
            # exports there is the float32 parent's part (the same cases, the strict row) and the
            # derivation check's. Non-finite values and wrong shapes still fail.
            reduced = [
                r
                for r in results[first:]
                if r.status == FAIL
                and r.tolerance is not None
                and r.tolerance.row
                and r.reason.startswith(VALUE_FAILURE)
            ]
            if reduced and notes is not None:
                notes.append(
                    f"search case {case.label} on {device}: {', '.join(r.name for r in reduced)} not counted "
                    f"({reduced[0].reason.split(';')[0][:160]}): on a {reduced[0].tolerance.row} graph the search's "
                    "rows are judged through its float32 parent and the derivation check (with no parent, only real samples "
                    "can pass it)"
                )
            left_out = {id(r) for r in reduced}
            results[first:] = [r for r in results[first:] if id(r) not in left_out]
            idle = [r for r in results[first:] if r.status not in (PASS, FAIL)]
            if idle and notes is not None:
                notes.append(
                    f"search case {case.label} on {device}: {', '.join(r.name for r in idle)} not counted "
                    f"({idle[0].reason.split(';')[0][:160]}): a search case only counts when it fails or passes"
                )
            results[first:] = [r for r in results[first:] if r.status in (PASS, FAIL)]
        failed = failed or any(r.status == FAIL for r in results[first:])
        share = (time.perf_counter() - start) / max(1, len(results) - first)  # ONNX Runtime plus comparison
        results[first:] = [replace(r, seconds=round(share, 6)) for r in results[first:]]
    return cross_case_vacuity(reference, results, policy, device)


def case_json(case: Case, origin: str) -> dict:
    from bridge.verdict.plan import case_json as plan_case_json

    return plan_case_json(case, origin)


def rule_notes(results: list[OutputResult]) -> list[str]:
    """The comparison rules other than the element test that a report's results used."""
    rules: dict[str, str] = {}
    for r in results:
        if r.rule:
            rules.setdefault(r.name, r.rule)
    return [f"{name}: {rule}" for name, rule in rules.items()]


def padding_notes(padded: dict[str, str], results: list[OutputResult]) -> list[str]:
    ignored: dict[str, int] = {}
    for r in results:
        if r.ignored:
            ignored[r.name] = ignored.get(r.name, 0) + r.ignored
    return [
        f"{name}: {n} elements at padded positions ({padded[name]} == 0) were not compared: the native model "
        "gives NaN/Inf there (it leaves them undefined); every other padded position was compared"
        for name, n in ignored.items()
        if name in padded
    ]
