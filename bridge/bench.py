"""One latency method for every runner. The only module that reads clocks.

Sides are timed in alternating rounds (A, B, B, A, A, B, ...) so that a slow minute on a shared
machine hits both; each round yields a ratio, and the spread of those ratios is reported. Between
sides, ``settle`` waits until the previous side's spinning threads have parked, so they do not steal
the next side's cores.

Alternating rounds spread other work over both sides but cannot undo it: when another process takes a
core, torch's OpenMP team waits at every barrier for its descheduled thread and the native side slows
far more than ONNX Runtime's pool (ResNet-50 measured 3.30x, per round 2.95x..11.95x, beside another
job; 1.51x on an idle machine). So every round records the share of the machine's CPU that other
processes used meanwhile (``OtherLoad``), and a bench where it passes ``NOISY_SHARE`` says that its
timings are unreliable (``reliable: false`` and a note).
"""

from __future__ import annotations

import os
import statistics
import time
from dataclasses import dataclass, field, replace
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
    others_cpu: float | None = None  # share of the machine's CPU other processes used during this side's rounds

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
    idle_gap_ms: float  # the longest wait between sides (see settle)
    threads: int | None
    notes: list = field(default_factory=list)
    idle_waits_ms: tuple = ()  # each wait between sides, in order
    others_cpu: float | None = None  # over the whole timed phase (every round, side and wait)
    others_cpu_rounds: dict = field(default_factory=dict)  # side -> [share per round]
    reliable: bool | None = None  # False: other processes disturbed the timing; None: not measurable here

    def to_json(self) -> dict:
        waits = self.idle_waits_ms
        return {
            "baseline": self.baseline,
            "rounds": self.rounds,
            "idle_gap_ms": self.idle_gap_ms,
            "idle_wait_ms": {"mean": sum(waits) / len(waits), "max": max(waits), "count": len(waits)}
            if waits
            else None,
            "threads": self.threads,
            "notes": list(self.notes),
            "sides": {k: v.to_json() for k, v in self.sides.items()},
            "speedup_vs_baseline_p50": self.ratio_p50,
            "speedup_per_round": self.ratio_rounds,
            "reliable": self.reliable,
            "others_cpu": self.others_cpu,
            "others_cpu_per_round": self.others_cpu_rounds,
            "others_cpu_threshold": NOISY_SHARE,
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
        side=side.name,
        runs=len(ms),
        warmup=warmup,
        p50_ms=p50,
        p90_ms=float(np.percentile(ms, 90)),
        p99_ms=float(np.percentile(ms, 99)),
        min_ms=float(ms.min()),
        mean_ms=float(ms.mean()),
        throughput_per_s=batch * 1000.0 / p50 if p50 > 0 else float("inf"),
        first_run_ms=first_ms,
        setup_ms=side.setup_ms,
        samples_ms=tuple(float(x) for x in ms),
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


# Above this share of the machine's CPU taken by other processes while timing, a bench says its timings
# are unreliable. On this project's 2-core machine 5% is a tenth of a core: the idle machine measured
# 0% to 2% over every zoo bench, and a busy one 10% and more.
NOISY_SHARE = 0.05
# A side's own share is judged only over at least this much wall time: /proc/stat counts CPU time in
# scheduler ticks (10 ms), too coarse for the few milliseconds of a small model's round.
MIN_WINDOW_S = 0.25


def _machine_cpu() -> tuple[int, int] | None:
    """(busy, total) CPU ticks of the whole machine, from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as fh:
            vals = [int(v) for v in fh.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    if len(vals) < 4:
        return None
    idle = vals[3] + (vals[4] if len(vals) > 4 else 0)  # idle + iowait; steal counts as taken
    total = sum(vals[:8])
    return total - idle, total


class OtherLoad:
    """CPU time other processes used over windows of this process's timing: the machine's busy ticks
    (/proc/stat, every CPU, steal included) less this process's own CPU time (every thread), as a
    share of the machine's capacity over the window. 0 on a quiet machine; 0.5 = half the CPUs busy
    with other work. Windows are added up per key (a side) and in total."""

    def __init__(self):
        self._tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.available = _machine_cpu() is not None
        self.windows: dict[str, list[tuple[float, float, float]]] = {}  # key -> [(others s, capacity s, wall s)]

    def mark(self):
        return _machine_cpu(), time.process_time_ns(), time.perf_counter_ns()

    def add(self, key: str, start) -> float | None:
        """Close a window opened by ``mark``; its share (None when not measurable)."""
        end = self.mark()
        if start[0] is None or end[0] is None:
            return None
        busy = (end[0][0] - start[0][0]) / self._tick
        capacity = (end[0][1] - start[0][1]) / self._tick
        own = (end[1] - start[1]) / 1e9
        wall = (end[2] - start[2]) / 1e9
        others = max(0.0, busy - own)
        self.windows.setdefault(key, []).append((others, capacity, wall))
        return round(others / capacity, 4) if capacity > 0 else None

    def share(self, key: str) -> tuple[float | None, float]:
        """(share over every window of ``key``, their wall time in s)."""
        got = self.windows.get(key) or []
        capacity = sum(c for _, c, _ in got)
        return (round(sum(o for o, _, _ in got) / capacity, 4) if capacity > 0 else None), sum(w for _, _, w in got)


def settle(max_ms: float, window_ms: float = 10.0, busy_fraction: float = 0.1) -> float:
    """Sleep until this process's threads are idle, at most ``max_ms``; returns the wait in ms.

    After a run, a runtime's pool threads keep spinning before they park: measured on 2 cores,
    torch's OpenMP (libgomp) pool about 10 ms, ONNX Runtime's with allow_spinning about 50 ms at
    one full core. Timing the next side meanwhile would hand it one core fewer. Process CPU time
    covers every thread of the process, so the wait ends after the first window in which the process
    used less than ``busy_fraction`` of one core. The kernel charges other threads' CPU time at
    scheduler ticks (4 ms at 250 Hz), so a window shorter than a few ticks would miss a spinner.
    """
    start = time.perf_counter_ns()
    limit = start + int(max_ms * 1e6)
    while True:
        cpu0, t0 = time.process_time_ns(), time.perf_counter_ns()
        time.sleep(window_ms / 1000)
        t1 = time.perf_counter_ns()
        if time.process_time_ns() - cpu0 < busy_fraction * (t1 - t0) or t1 >= limit:
            return (t1 - start) / 1e6


def measure(
    sides: list[Side],
    *,
    runs: int = 50,
    warmup: int = 5,
    rounds: int = 5,
    batch: int = 1,
    idle_gap_ms: float = 250.0,
    threads: int | None = None,
    budget_s: float | None = None,
    on_round: Callable[[str], None] | None = None,
) -> LatencyComparison:
    """Time every side with the same method. The first side is the baseline of the ratios.

    Whenever the side changes, ``settle`` waits (at most ``idle_gap_ms``) until the previous side's
    threads have parked; the waits are reported, and a wait that hit the limit adds a note.

    ``budget_s``: the timed runs of every side together should take about this long. A run of each side
    after its first one estimates their cost; where ``runs`` would not fit, fewer are timed (at least
    ``rounds``, one per round, per side), with less warmup, and a note says how many and how to change it.
    ``on_round``: called with a line as each round finishes (the stage lines of a long bench)."""
    if not sides:
        raise ValueError("nothing to time")
    first_ms: dict[str, float] = {}
    waits: list[float] = []
    last = None

    def switch_to(side: Side) -> None:
        nonlocal last
        if last is not None and last is not side:
            waits.append(settle(idle_gap_ms))
        last = side

    estimate_ns = 0
    for side in sides:  # the first run (lazy init, kernel selection) is reported on its own
        switch_to(side)
        t0 = time.perf_counter_ns()
        side.run()
        side.sync()
        first_ms[side.name] = (time.perf_counter_ns() - t0) / 1e6
        left = warmup
        if budget_s is not None and warmup > 0:
            cost = min(_timed(side, 1))  # one warmup run: the cost of a steady run of this side
            estimate_ns += cost
            left = _fit(budget_s * WARMUP_SHARE, cost, warmup - 1)  # warmup takes a small share of the budget
        _timed(side, left)
    notes = []
    if budget_s is not None and estimate_ns > 0:
        fits = _fit(budget_s, estimate_ns, runs)
        if fits < runs:
            wanted = runs
            runs = max(rounds, fits)
            timed = max(1, runs // max(1, min(rounds, runs))) * max(1, min(rounds, runs))
            notes.append(
                f"{timed} timed runs per side instead of {wanted}: one run of every side takes about "
                f"{estimate_ns / 1e9:.3g} s, and the timed runs have a {budget_s:g} s budget; change it with "
                "--latency-seconds SECONDS, or ask for a count with --latency-runs N"
            )
    rounds = max(1, min(rounds, runs))
    per_round = max(1, runs // rounds)
    samples: dict[str, list[int]] = {s.name: [] for s in sides}
    round_p50: dict[str, list[float]] = {s.name: [] for s in sides}
    load = OtherLoad()
    round_load: dict[str, list[float | None]] = {s.name: [] for s in sides}
    whole = load.mark()
    for r in range(rounds):
        order = sides if r % 2 == 0 else list(reversed(sides))
        for side in order:
            switch_to(side)
            opened = load.mark()
            got = _timed(side, per_round)
            round_load[side.name].append(load.add(side.name, opened))
            samples[side.name].extend(got)
            round_p50[side.name].append(statistics.median(got))
        if on_round is not None:
            shown = ", ".join(f"{s.name} p50 {round_p50[s.name][-1] / 1e6:.4g} ms" for s in sides)
            on_round(f"round {r + 1}/{rounds} ({per_round} runs per side): {shown}")
    everything = load.add("", whole)
    stats = {
        s.name: replace(_stats(s, samples[s.name], warmup, batch, first_ms[s.name]), others_cpu=load.share(s.name)[0])
        for s in sides
    }
    base = sides[0].name
    ratio = {n: stats[base].p50_ms / stats[n].p50_ms for n in stats if n != base}
    ratio_rounds = {n: [b / c for b, c in zip(round_p50[base], round_p50[n])] for n in stats if n != base}
    capped = sum(1 for w in waits if w >= idle_gap_ms)
    if capped:
        notes.append(
            f"{capped} of {len(waits)} waits between sides reached {idle_gap_ms:g} ms with this process's "
            "threads still busy: one side's spinning threads may have overlapped the next side's runs"
        )
    reliable, note = judge_load(load, [s.name for s in sides], everything)
    if note:
        notes.append(note)
    return LatencyComparison(
        stats,
        base,
        ratio,
        ratio_rounds,
        rounds,
        idle_gap_ms,
        threads,
        notes,
        idle_waits_ms=tuple(round(w, 3) for w in waits),
        others_cpu=everything,
        others_cpu_rounds=round_load,
        reliable=reliable,
    )


def measure_request(
    sides: list[Side],
    feeds: dict,
    opts,
    *,
    budget_s: float | None = None,
    on_round: Callable[[str], None] | None = None,
) -> LatencyComparison:
    """The one latency method of a request (verify's latency part, ``bridge bench``, precision auto's
    candidates): ``opts.latency_runs`` timed runs per side in five alternating rounds after a tenth of
    them (at least two) as warmup, ``opts.threads`` on every side, and the batch read from the leading
    axis of the feeds (1 for scalars)."""
    return measure(
        sides,
        runs=opts.latency_runs,
        warmup=max(2, opts.latency_runs // 10),
        rounds=5,
        batch=next((int(v.shape[0]) for v in feeds.values() if v.ndim), 1),
        threads=opts.threads,
        budget_s=budget_s,
        on_round=on_round,
    )


WARMUP_SHARE = 0.05  # of a time budget, the most each side's warmup takes


def _fit(budget_s: float, estimate_ns: int, wanted: int) -> int:
    """How many runs of every side fit ``budget_s`` at ``estimate_ns`` per run of all of them."""
    if estimate_ns <= 0:
        return wanted
    return max(0, min(wanted, int(budget_s * 1e9 // estimate_ns)))


def judge_load(load: OtherLoad, names: list[str], everything: float | None) -> tuple[bool | None, str]:
    """Whether other processes left the timing alone: the share over the whole timed phase, and each
    side's share over its rounds (when they lasted long enough to be measured), at most NOISY_SHARE."""
    if not load.available or everything is None:
        return None, ""
    per_side = {n: load.share(n) for n in names}
    judged = {n: sh for n, (sh, wall) in per_side.items() if sh is not None and wall >= MIN_WINDOW_S}
    worst = max([everything, *judged.values()])
    if worst <= NOISY_SHARE:
        return True, ""
    sides = ", ".join(f"{n} {sh:.0%}" for n, (sh, _) in per_side.items() if sh is not None)
    return False, (
        f"other processes used {everything:.0%} of the machine's CPU while timing ({sides}; above "
        f"{NOISY_SHARE:.0%} the timings are unreliable: a descheduled thread stalls the native side's "
        "OpenMP barriers far more than ONNX Runtime's pool, so ratios come out too high); rerun on a "
        "quiet machine"
    )


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
