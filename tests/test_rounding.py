"""An element-test failure within ONNX Runtime's own rounding is inconclusive, never a pass; a wrong
graph stays a failure (bridge/verdict/rounding.py)."""

from __future__ import annotations

import numpy as np

from bridge.types import Case
from bridge.verdict.compare import FAIL, INCONCLUSIVE, PASS, compare_one
from bridge.verdict.parity import run_onnx
from bridge.verdict.policy import Policy

RNG = np.random.default_rng(0)
REF = RNG.standard_normal((4, 100)).astype(np.float32) * 5


def _fail(cand):
    result = compare_one("y", REF, cand, Policy())
    assert result.status == FAIL and result.reason.startswith("values:"), result.reason
    return result


class _Runner:
    """Returns fixed outputs; its unoptimized twin returns others."""

    def __init__(self, out, plain_out=None):
        self.out, self.plain_out, self.made = out, plain_out, 0

    def run(self, feeds):
        return {"y": self.out}

    def unoptimized(self):
        self.made += 1
        return _Runner(self.plain_out)


def _run(runner):
    case = Case("draw0", 0, {})
    return run_onnx(runner, [(case, {"x": np.zeros(1, np.float32)}, {"y": REF})], Policy(), "cpu")


def test_error_within_the_runtimes_own_rounding_is_inconclusive():
    cand = REF.copy()
    cand[0, :3] += 0.01  # above the float32 allowance (about 1e-5 + 1e-4 * max|ref|)
    plain = cand.copy()
    plain[1, :10] -= 0.02  # the runtime without optimizations moves by more than that
    (result,) = _run(_Runner(cand, plain))
    assert result.status == INCONCLUSIVE, result.reason
    assert "ONNX Runtime disagrees with itself" in result.reason and "ill-conditioned" in result.reason
    assert result.max_abs is not None and result.fail_count == 3  # the figures stay


def test_a_wrong_graph_stays_a_failure():
    wrong = REF * 1.05
    plain = wrong + 1e-6  # its own rounding is tiny
    (result,) = _run(_Runner(wrong, plain))
    assert result.status == FAIL and "beyond its rounding" in result.reason
    same = REF * 1.05
    (result,) = _run(_Runner(same, same.copy()))
    assert result.status == FAIL and "gives the same values" in result.reason


def test_only_failures_that_need_it_run_the_second_session():
    runner = _Runner(REF.copy(), REF.copy())
    (result,) = _run(runner)
    assert result.status in (PASS, INCONCLUSIVE) and runner.made == 0  # passing cases cost nothing
    shape = _Runner(REF[:, :50].copy(), REF[:, :50].copy())
    (result,) = _run(shape)
    assert result.status == FAIL and shape.made == 0  # a shape failure is no rounding question


def test_judge_needs_every_failing_element_within_the_allowance():
    from bridge.verdict.rounding import judge

    cand = REF.copy()
    cand[0, 0] += 0.5  # one large error
    cand[0, 1] += 0.01
    plain = cand.copy()
    plain[2, 2] += 0.02  # the runtime's own spread covers the small error, not the large one
    result = judge(_fail(cand), REF, cand, plain)
    assert result.status == FAIL and "beyond its rounding" in result.reason
    assert judge(_fail(cand), REF, cand, np.full_like(cand, np.nan)).status == FAIL  # a broken twin changes nothing


class _DetRunner:
    """Detections on the ONNX side; its unoptimized twin returns ``plain``."""

    def __init__(self, out, plain=None):
        self.out, self.plain = out, plain

    def run(self, feeds):
        return dict(self.out)

    def unoptimized(self):
        return _DetRunner(self.plain)


def _detections(boxes, scores, labels):
    return {
        "boxes": np.asarray(boxes, np.float32),
        "scores": np.asarray(scores, np.float32),
        "labels": np.asarray(labels, np.int64),
    }


def _run_det(cand, plain):
    ref = _detections([[0, 0, 10, 10], [20, 20, 30, 30]], [0.9, 0.2], [1, 2])
    case = Case("zeros", 0, {})
    (result,) = run_onnx(_DetRunner(cand, plain), [(case, {"x": np.zeros(1, np.float32)}, ref)], Policy(), "cpu")
    return result


def test_detections_the_runtime_itself_disagrees_on_are_inconclusive():
    # the first box moved on the ONNX side, and ONNX Runtime without optimizations puts it elsewhere again
    cand = _detections([[0, 0, 10, 12], [20, 20, 30, 30]], [0.9, 0.2], [1, 2])
    plain = _detections([[0, 0, 10, 10.5], [20, 20, 30, 30]], [0.9, 0.2], [1, 2])
    result = _run_det(cand, plain)
    assert result.status == INCONCLUSIVE and "disagrees with itself" in result.reason


def test_a_wrong_detection_head_stays_a_failure():
    cand = _detections([[0, 0, 10, 12], [20, 20, 30, 30]], [0.9, 0.2], [1, 2])
    result = _run_det(cand, dict(cand))  # the runtime agrees with itself: the moved box is the graph's
    assert result.status == FAIL


# -- the native model's own distance from float64 arithmetic (bridge/verdict/rounding.py judge_exact) --


class _Exact:
    """Stands for an ExactRun: the native outputs in float64; counts its calls."""

    def __init__(self, truth):
        self.truth, self.calls = truth, 0

    def __call__(self):
        self.calls += 1
        return {"y": self.truth}


def _run_exact(cand, truth, ref=REF):
    exact = _Exact(truth)
    case = Case("search.0", 0, {}, exact=exact)
    (result,) = run_onnx(
        _Runner(cand, cand.copy()), [(case, {"x": np.zeros(1, np.float32)}, {"y": ref})], Policy(), "cpu"
    )
    return result, exact


def test_error_within_the_native_models_own_float32_error_is_inconclusive():
    truth = REF.astype(np.float64)
    ref = REF.copy()
    ref[1] += 0.3  # the native float32 run is itself 0.3 off the float64 result on row 1 (ill-conditioned)
    cand = REF.copy()
    cand[1] -= 0.5  # ONNX Runtime is 0.5 off it: within 4x the native model's own error
    result, exact = _run_exact(cand, truth, ref)
    assert result.status == INCONCLUSIVE and exact.calls == 1, result.reason
    assert "run in float64" in result.reason and "ill-conditioned" in result.reason
    assert result.max_abs is not None and result.fail_count  # the figures stay


def test_a_wrong_graph_stays_a_failure_against_float64():
    truth = REF.astype(np.float64) + 1e-7  # the native float32 run is accurate here
    result, _ = _run_exact(REF * 1.05, truth)
    assert result.status == FAIL and "the error is the export's" in result.reason, result.reason


def test_an_ill_conditioned_row_does_not_excuse_another():
    truth = REF.astype(np.float64)
    ref = REF.copy()
    ref[0] += 1.0  # row 0: the native model far from float64
    cand = ref.copy()
    cand[0] = REF[0] - 1.0  # within its allowance
    cand[3] = REF[3] * 1.05  # row 3 is well conditioned and wrong
    result, _ = _run_exact(cand, truth, ref)
    assert result.status == FAIL and "the error is the export's" in result.reason, result.reason


def test_a_row_where_onnx_runtime_disagrees_with_itself_is_measured_against_float64_too():
    """Row 0: the native float32 run is accurate but ONNX Runtime moves 0.3 against itself (its kernels
    round differently); row 1: the native run is 0.4 off float64. Each row is explained by one measure,
    and neither measure alone by the whole case: inconclusive. A wrong row 3 beside them still fails."""
    from bridge.verdict.rounding import judge_exact

    truth = REF.astype(np.float64)
    ref = REF.copy()
    ref[1] += 0.4
    cand = REF.copy()
    cand[0] += 0.3
    cand[1] -= 0.4
    other = cand.copy()
    other[0] -= 0.3  # ONNX Runtime without optimizations: back on the float64 result
    failure = _fail_against(ref, cand)
    result = judge_exact(failure, ref, cand, truth, other)
    assert result.status == INCONCLUSIVE and "against itself" in result.reason, result.reason
    assert judge_exact(failure, ref, cand, truth, None).status == FAIL  # without the runtime's own spread
    wrong = cand.copy()
    wrong[3] *= 1.05
    wrong_other = wrong.copy()  # the wrong graph without optimizations: as wrong on row 3
    wrong_other[0] -= 0.3
    result = judge_exact(_fail_against(ref, wrong), ref, wrong, truth, wrong_other)
    assert result.status == FAIL and "the error is the export's" in result.reason


def test_a_chaotic_row_allows_more_than_a_well_conditioned_one():
    """Where float32's own rounding reaches 1e-4 of the row's scale, ONNX Runtime's less exact kernels are
    amplified alike (50x the native error on a random-init EfficientNet's constant image); below that,
    the same ratio is a failure."""
    from bridge.verdict.rounding import judge_exact

    truth = REF.astype(np.float64)
    scale = float(np.abs(truth[1]).max())
    for native_err, expected in ((2e-4 * scale, INCONCLUSIVE), (2e-6 * scale, FAIL)):
        ref = REF.copy()
        ref[1, 0] += native_err
        cand = REF.copy()
        cand[1, 1:] += np.float32(30 * native_err + 4e-4 * np.abs(REF).max())  # 30x the native error, beyond the test
        result = judge_exact(_fail_against(ref, cand), ref, cand, truth, cand.copy())
        assert result.status == expected, (native_err, result.reason)


def _fail_against(ref, cand):
    result = compare_one("y", ref, cand, Policy())
    assert result.status == FAIL, result.reason
    return result


def test_after_a_failure_for_good_later_cases_skip_the_float64_run():
    """A wrong export fails on every case: the float64 run is paid until the first confirmed failure."""
    truth = REF.astype(np.float64) + 1e-7
    wrong = REF * 1.05
    exacts = [_Exact(truth), _Exact(truth)]
    runs = [
        (Case(f"draw{i}", i, {}, exact=e), {"x": np.zeros(1, np.float32)}, {"y": REF}) for i, e in enumerate(exacts)
    ]
    results = run_onnx(_Runner(wrong, wrong.copy()), runs, Policy(), "cpu")
    assert [r.status for r in results] == [FAIL, FAIL] and [e.calls for e in exacts] == [1, 0]


def test_a_passing_case_never_runs_the_float64_model():
    result, exact = _run_exact(REF.copy(), REF.astype(np.float64))
    assert result.status in (PASS, INCONCLUSIVE) and exact.calls == 0


def test_torch_models_run_in_float64():
    torch = __import__("pytest").importorskip("torch")
    from bridge.frameworks.pt import TorchModel
    from bridge.verdict.rounding import ExactRun

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 3))
    model = TorchModel("test", net)
    feeds = {"x": np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)}
    exact = ExactRun(model, feeds)
    out, truth = model.run(feeds)["output"], exact()["output"]
    assert truth.dtype == np.float64 and truth.shape == out.shape
    assert 0 < np.abs(truth - out).max() < 1e-5  # float32 rounding, measured
    assert next(net.parameters()).dtype == torch.float32  # the model itself is untouched
    assert exact() is exact()  # computed once
    model.close()
    assert ExactRun(model, feeds)() is None  # a closed model has no float64 twin


def test_keras_models_run_in_float64():
    keras = __import__("pytest").importorskip("keras")
    from bridge.frameworks.tf import KerasModel
    from bridge.verdict.rounding import ExactRun

    keras.utils.set_random_seed(0)
    inp = keras.Input((8,), name="x")
    hidden = keras.layers.BatchNormalization()(keras.layers.Dense(16, activation="tanh")(inp))
    net = keras.Model(inp, keras.layers.Dense(3, name="probs")(hidden))
    model = KerasModel("test", net)
    feeds = {"x": np.random.default_rng(1).standard_normal((5, 8)).astype(np.float32)}
    out, truth = model.run(feeds)["probs"], ExactRun(model, feeds)()["probs"]
    assert truth.dtype == np.float64 and truth.shape == out.shape
    assert 0 < np.abs(truth - out).max() < 1e-5
    assert net.layers[1].dtype == "float32"  # the model itself is untouched


def test_a_reduced_graphs_error_on_search_rows_is_left_to_its_parent():
    """Under an int8 row, an element-test failure on a search case is not counted (a note says where the
    search's rows are judged: the float32 parent, the derivation check); on a named case it fails, and
    NaN fails on a search case as anywhere."""
    policy = Policy(precision="int8")
    wrong = REF * 3.0  # far outside the int8 row
    notes: list = []
    search = Case("search.0", 0, {}, search=True)
    named = Case("draw0", 0, {})
    feeds = {"x": np.zeros(1, np.float32)}
    results = run_onnx(_Runner(wrong, wrong.copy()), [(search, feeds, {"y": REF})], policy, "cpu", notes=notes)
    assert results == [] and any("float32 parent" in n for n in notes), notes
    (result,) = run_onnx(_Runner(wrong, wrong.copy()), [(named, feeds, {"y": REF})], policy, "cpu")
    assert result.status == FAIL
    nan = REF.copy()
    nan[0, 0] = np.nan
    (result,) = run_onnx(_Runner(nan, nan.copy()), [(search, feeds, {"y": REF})], policy, "cpu")
    assert result.status == FAIL and result.reason.startswith("non-finite")
    (result,) = run_onnx(_Runner(wrong, wrong.copy()), [(search, feeds, {"y": REF})], Policy(), "cpu")
    assert result.status == FAIL  # a float32 graph's search failure counts


def test_a_tolerance_tighter_than_float32_on_a_well_conditioned_row_fails_as_asked():
    """The native float32 run 1e-7 off float64 (a few ulps of outputs near 1): a well-conditioned row.
    A user's atol of 1e-12 fails there, although ONNX Runtime is as close to float64 as the native run."""
    from bridge.verdict.rounding import judge_exact

    truth = np.linspace(-1, 1, 400).reshape(4, 100)
    ref = (truth + 1e-7).astype(np.float32)
    cand = (truth - 1e-7).astype(np.float32)
    result = compare_one("y", ref, cand, Policy(atol=1e-12, rtol=0.0, scale_atol=0.0))
    assert result.status == FAIL
    assert judge_exact(result, ref, cand, truth, cand.copy()).status == FAIL
