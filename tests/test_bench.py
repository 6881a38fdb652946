"""The one latency method: waits between sides, alternating rounds, ratios."""

from __future__ import annotations

import threading
import time

import pytest

from bridge.bench import Side, measure, settle


def _spin(seconds: float) -> threading.Thread:
    def work():
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread


def test_settle_is_short_when_the_process_is_idle():
    assert settle(500) < 100


def test_settle_waits_for_a_spinning_thread_to_stop():
    thread = _spin(0.15)
    waited = settle(2000)
    thread.join()
    assert waited >= 120  # the spinner ran for 150 ms; the wait may not end while it runs


def test_settle_stops_at_its_limit():
    thread = _spin(0.5)
    waited = settle(60)
    thread.join()
    assert 60 <= waited < 300


def _sleeper(ms: float, log: list, name: str):
    def run():
        log.append(name)
        time.sleep(ms / 1000)

    return run


def test_measure_alternates_and_waits_only_when_the_side_changes():
    log: list = []
    result = measure([Side("a", _sleeper(4, log, "a")), Side("b", _sleeper(1, log, "b"))], runs=10, warmup=1, rounds=5)
    # first run + warm-up per side, then rounds A B | B A | A B | B A | A B
    blocks = [log[0]]
    for name in log[1:]:
        if name != blocks[-1]:
            blocks.append(name)
    assert blocks == ["a", "b", "a", "b", "a", "b", "a", "b"]
    assert len(result.idle_waits_ms) == result.to_json()["idle_wait_ms"]["count"] == len(blocks) - 1
    assert result.sides["a"].runs == result.sides["b"].runs == 10
    assert len(result.ratio_rounds["b"]) == 5
    assert 2.0 < result.ratio_p50["b"] < 6.0  # 4 ms vs 1 ms of sleep


def test_measure_notes_waits_that_hit_the_limit():
    stop = threading.Event()

    def busy_side():
        if not stop.is_set():
            _spin(0.3)
            stop.set()

    result = measure([Side("a", busy_side), Side("b", lambda: None)], runs=2, warmup=0, rounds=1, idle_gap_ms=20)
    assert result.notes and "still busy" in result.notes[0]


def test_measure_needs_a_side():
    with pytest.raises(ValueError):
        measure([])
