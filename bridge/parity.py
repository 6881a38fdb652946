"""Running the reference and ONNX Runtime over the same cases, and comparing them.

Shared by export (which records the verdict in the manifest) and verify.
"""

from __future__ import annotations

from bridge.errors import BridgeError, InputError, exception_summary
from bridge.compare import FAIL, OutputResult, compare_outputs, outputs_equal
from bridge.policy import Policy
from bridge.types import Case, TensorSpec

CaseRun = tuple  # (Case, feeds, outputs)


def run_reference(model, cases: list[tuple[Case, dict]]) -> tuple[list[CaseRun], str | None]:
    """Native outputs per case. The first case runs twice and must be bit-identical; the model's
    state (BatchNorm statistics) must not change. Returns the runs and a problem description."""
    runs: list[CaseRun] = []
    problem = None
    for i, (case, feeds) in enumerate(cases):
        out = _run_native(model, feeds)
        if i == 0:
            again = _run_native(model, feeds)
            differ = outputs_equal(out, again)
            if differ:
                problem = (f"nondeterministic reference: two runs of the native model on the same inputs differ "
                           f"in {', '.join(differ)} (dropout or random ops active in inference?)")
        runs.append((case, feeds, out))
    mutated = model.check_state()
    if mutated and problem is None:
        problem = f"nondeterministic reference: {mutated} (BatchNorm in training mode?)"
    return runs, problem


def _run_native(model, feeds: dict) -> dict:
    try:
        return model.run(feeds)
    except BridgeError:
        raise
    except Exception as exc:
        shapes = ", ".join(f"{k}:{v.dtype}{list(v.shape)}" for k, v in feeds.items())
        raise InputError(f"the native model failed on inputs {shapes}: {exception_summary(exc)}",
                         hint="check that the --input specs match the model's forward() arguments, in order") from None


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


def run_onnx(runner, reference: list[CaseRun], policy: Policy, device: str,
             keep: dict | None = None) -> list[OutputResult]:
    """ONNX Runtime on each case's inputs, compared with that case's reference outputs. The ONNX
    outputs of the cases named in ``keep`` (label -> None) are stored there for dataset metrics."""
    results: list[OutputResult] = []
    for case, feeds, ref_out in reference:
        try:
            cand = runner.run(feeds)
        except Exception as exc:
            shapes = ", ".join(f"{k}{list(v.shape)}" for k, v in feeds.items())
            from bridge.frameworks.ort import ort_message

            text = ort_message(exc) or type(exc).__name__
            results.extend(OutputResult(name, FAIL, f"ONNX Runtime failed on inputs {shapes}: {text}", case.label, device)
                           for name in ref_out)
            continue
        if keep is not None and case.label in keep:
            keep[case.label] = cand
        results.extend(compare_outputs(ref_out, cand, policy, device, case.label))
    return results


def case_json(case: Case, origin: str) -> dict:
    return {"label": case.label, "seed": case.seed, "sizes": dict(case.sizes), "origin": origin}
