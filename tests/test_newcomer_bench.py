"""bench on a slow model: the run count fits a time budget (with a note saying how many and how to change
it), warmup takes a small share of it, and each round is reported as it finishes."""

from __future__ import annotations

import time

from bridge.bench import Side, measure


def _sleep(ms: float):
    return lambda: time.sleep(ms / 1000)


def test_a_slow_model_gets_the_runs_that_fit_the_budget_and_a_note():
    lines: list = []
    start = time.perf_counter()
    result = measure(
        [Side("native", _sleep(40)), Side("onnxruntime", _sleep(10))],
        runs=100,
        warmup=10,
        rounds=5,
        budget_s=1.0,
        on_round=lines.append,
    )
    took = time.perf_counter() - start
    runs = result.sides["native"].runs
    assert 5 <= runs <= 20 and result.sides["onnxruntime"].runs == runs  # about 1 s / 50 ms per pair of runs
    assert took < 4.0, took  # not 100 runs of 50 ms plus 10 warmups each (over 5 s)
    note = next(n for n in result.notes if "timed runs per side instead of 100" in n)
    assert note.startswith(f"{runs} timed runs per side") and "--latency-seconds" in note and "--latency-runs" in note
    assert len(lines) == 5 and lines[0].startswith("round 1/5 (") and "native p50 " in lines[0]
    assert lines[-1].startswith("round 5/5")


def test_a_fast_model_keeps_its_run_count_and_gets_no_note():
    result = measure([Side("a", lambda: None), Side("b", lambda: None)], runs=50, warmup=5, rounds=5, budget_s=10.0)
    assert result.sides["a"].runs == 50 and not any("instead of" in n for n in result.notes)


def test_without_a_budget_the_count_is_kept_however_slow():
    result = measure([Side("a", _sleep(20)), Side("b", _sleep(1))], runs=10, warmup=1, rounds=5)
    assert result.sides["a"].runs == 10 and not any("instead of" in n for n in result.notes)
