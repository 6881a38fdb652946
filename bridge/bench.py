"""One latency method for every runner. The only module that reads clocks.

Sides are timed in alternating rounds (A, B, B, A, A, B, ...) so that a slow minute on a shared
machine hits both; each round yields a ratio, and the spread of those ratios is reported. A short
idle gap separates sides so one runtime's spinning threads do not steal the other's cores.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np


@dataclass(frozen=True)
class Latency:
    side: str
    runs: int
    warmup: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    min_ms: float
    mean_ms: float
    throughput_per_s: float  # samples (batch rows) per second at the p50
    first_run_ms: float | None = None
    setup_ms: float | None = None
    samples_ms: tuple = ()  # every timed run, in order, for distributions
    rss_growth_mb: float | None = None  # resident memory this side added (load/session + runs)

    def to_json(self) -> dict:
        out = dict(self.__dict__)
        out["samples_ms"] = [round(x, 6) for x in self.samples_ms]
        return out


@dataclass(frozen=True)
class LatencyComparison:
    sides: dict  # side -> Latency
    baseline: str
    ratio_p50: dict  # side -> baseline p50 / side p50 (>1: side is faster than baseline)
    ratio_rounds: dict  # side -> [per-round ratios]
    rounds: int
    idle_gap_ms: float
    threads: int | None
    notes: list = field(default_factory=list)

    def to_json(self) -> dict:
        return {
            "baseline": self.baseline, "rounds": self.rounds, "idle_gap_ms": self.idle_gap_ms,
            "threads": self.threads, "notes": list(self.notes),
            "sides": {k: v.to_json() for k, v in self.sides.items()},
            "speedup_vs_baseline_p50": self.ratio_p50,
            "speedup_per_round": self.ratio_rounds,
        }


@dataclass
class Side:
    """A runner to time: ``run`` does one inference, ``sync`` waits for the device (may be a no-op)."""

    name: str
    run: Callable[[], object]
    sync: Callable[[], None] = lambda: None
    setup_ms: float | None = None
    rss_growth_mb: float | None = None


def _stats(side: Side, samples_ns: list[int], warmup: int, batch: int, first_ms: float | None) -> Latency:
    ms = np.asarray(samples_ns, dtype=np.float64) / 1e6
    p50 = float(np.percentile(ms, 50))
    return Latency(
        side=side.name, runs=len(ms), warmup=warmup,
        p50_ms=p50, p90_ms=float(np.percentile(ms, 90)), p99_ms=float(np.percentile(ms, 99)),
        min_ms=float(ms.min()), mean_ms=float(ms.mean()),
        throughput_per_s=batch * 1000.0 / p50 if p50 > 0 else float("inf"),
        first_run_ms=first_ms, setup_ms=side.setup_ms, samples_ms=tuple(float(x) for x in ms),
        rss_growth_mb=side.rss_growth_mb,
    )


def _timed(side: Side, n: int) -> list[int]:
    out = []
    run, sync, clock = side.run, side.sync, time.perf_counter_ns
    for _ in range(n):
        t0 = clock()
        run()
        sync()
        out.append(clock() - t0)
    return out


def measure(sides: list[Side], *, runs: int = 50, warmup: int = 5, rounds: int = 5, batch: int = 1,
            idle_gap_ms: float = 20.0, threads: int | None = None) -> LatencyComparison:
    """Time every side with the same method. The first side is the baseline of the ratios."""
    if not sides:
        raise ValueError("nothing to time")
    rounds = max(1, min(rounds, runs))
    per_round = max(1, runs // rounds)
    first_ms: dict[str, float] = {}
    for side in sides:  # the first run (lazy init, kernel selection) is reported on its own
        t0 = time.perf_counter_ns()
        side.run()
        side.sync()
        first_ms[side.name] = (time.perf_counter_ns() - t0) / 1e6
        _timed(side, warmup)
        time.sleep(idle_gap_ms / 1000)
    samples: dict[str, list[int]] = {s.name: [] for s in sides}
    round_p50: dict[str, list[float]] = {s.name: [] for s in sides}
    for r in range(rounds):
        order = sides if r % 2 == 0 else list(reversed(sides))
        for side in order:
            got = _timed(side, per_round)
            samples[side.name].extend(got)
            round_p50[side.name].append(statistics.median(got))
            time.sleep(idle_gap_ms / 1000)
    stats = {s.name: _stats(s, samples[s.name], warmup, batch, first_ms[s.name]) for s in sides}
    base = sides[0].name
    ratio = {n: stats[base].p50_ms / stats[n].p50_ms for n in stats if n != base}
    ratio_rounds = {n: [b / c for b, c in zip(round_p50[base], round_p50[n])] for n in stats if n != base}
    return LatencyComparison(stats, base, ratio, ratio_rounds, rounds, idle_gap_ms, threads)


def rss_mb() -> float | None:
    """This process's resident set size in MiB (Linux), for per-side memory growth."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


class Meter:
    """Wall time and resident-memory growth of one step (loading a model, creating a session)."""

    def __init__(self):
        self.ms: float | None = None
        self.rss_mb: float | None = None

    def __enter__(self) -> "Meter":
        self._t = time.perf_counter_ns()
        self._m = rss_mb()
        return self

    def __exit__(self, *exc) -> None:
        self.ms = (time.perf_counter_ns() - self._t) / 1e6
        now = rss_mb()
        self.rss_mb = now - self._m if now is not None and self._m is not None else None

    def add(self, other: "Meter") -> None:
        if other.rss_mb is not None:
            self.rss_mb = (self.rss_mb or 0.0) + other.rss_mb


def spread(values: list[float]) -> tuple[float, float]:
    return (min(values), max(values)) if values else (float("nan"), float("nan"))
