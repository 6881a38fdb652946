"""The case plan: which inputs every verification runs, and why. Standard library only.

A graph can be right at the export size and wrong elsewhere: wrong only for the top id of a
vocabulary, only when batch and sequence differ, only at one odd size, only past a length it was
traced at. One seeded draw proves little, so the plan is:

* ``draw0``, ``draw1``: two seeded draws at the export sizes;
* per dynamic axis, on its own (the others at their export size): odd and even sizes from 1 up to
  the largest the model is deployed at (1, 3, 2n+1, 7, 8, 16, 17 and the largest), each within the
  axis's declared minimum and maximum; the largest is the declared maximum (``--dim-max``, a config
  key, the source's declaration), else one the model states (a position-embedding table's length),
  else 16 for the batch axis and 64 for any other;
* with two or more dynamic axes, ``distinct``: every axis at a different size, so that a graph
  which mixes two axes up cannot pass by luck;
* ``large``: every dynamic axis at its largest at once, within a memory budget on the case's inputs;
* per input with a declared range, at the export sizes: ``low`` (every value at LOW), ``high``
  (HIGH - 1 for integers, the largest value below HIGH for floats) and ``mix`` (each element one
  of the two); per attention mask: no padding, one position per row, prefix padding;
* per integer input without a range (drawn from 0..9 by default, which barely exercises an id
  input): a note saying so, and ``full``: values over the integer type's range, kept only if the
  native model accepts them;
* the search (bridge/verdict/search.py): random rows from many distributions over the domain, and the
  graph's own thresholds probed on both sides.

Every case's seed is derived from the run's seed and the case's label, so different seeds give
disjoint draws in every case. The plan's notes go into every report.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from bridge.types import DEFAULT_DYNAMIC_SIZE, Case, TensorSpec, input_bytes

# Inputs of the large case may take at most this many bytes (all inputs together).
LARGE_CASE_BYTES = 64 << 20
LARGE_BATCH = 16  # the largest batch when none is declared
LARGE_OTHER = 64  # the largest size of any other dynamic axis (a sequence) when none is declared or stated
SWEEP = (1, 3, 7, 8, 16, 17)  # each axis alone at these sizes (and at 2n+1 and its largest), where they fit


@dataclass
class Plan:
    cases: list[Case]
    notes: list[str] = field(default_factory=list)
    budget_bytes: int = LARGE_CASE_BYTES
    inputs: list = field(default_factory=list)  # per input: kind and range, and where each came from
    largest: dict = field(default_factory=dict)  # axis -> {"size", "from"}: how far each axis is taken
    search: dict = field(default_factory=dict)  # the search's budget, rows and what it probed

    def to_json(self) -> dict:
        return {
            "inputs": list(self.inputs),
            "cases": [case_json(c) for c in self.cases],
            "notes": list(self.notes),
            "large_case_input_budget_bytes": self.budget_bytes,
            "largest": dict(self.largest),
            "search": dict(self.search),
        }


def case_json(case: Case, origin: str = "seeded") -> dict:
    out = {"label": case.label, "seed": case.seed, "sizes": dict(case.sizes), "origin": origin}
    if case.fill:
        out["fill"] = {k: (v if len(v) <= 80 else v[:77] + "...") for k, v in case.fill}
    if case.purpose:
        out["purpose"] = case.purpose
    if case.search:
        out["search"] = True
    return out


def case_seed(seed: int, label: str) -> int:
    """A case's seed from the run's seed and its label: another run seed gives other draws in every case."""
    digest = hashlib.sha256(f"bridge:{int(seed)}:{label}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def dynamic_axes(specs: list[TensorSpec]) -> list[str]:
    axes: list[str] = []
    for s in specs:
        for d in s.dims:
            if isinstance(d, str) and d not in axes:
                axes.append(d)
    return axes


def batch_axis(specs: list[TensorSpec], axes: list[str]) -> str | None:
    """The batch axis: the first axis of an input, when it is dynamic."""
    return next((s.dims[0] for s in specs if s.dims and isinstance(s.dims[0], str)), axes[0] if axes else None)


def plan_cases(
    specs: list[TensorSpec],
    seed: int,
    sizes: dict | None = None,
    *,
    minimum: dict | None = None,
    maximum: dict | None = None,
    stated: dict | None = None,
    budget_bytes: int = LARGE_CASE_BYTES,
) -> Plan:
    """The named cases (the module doc). ``maximum``: the declared largest size per axis; ``stated``:
    axis -> (size, why) the model states itself (a position table), used where none is declared."""
    minimum, maximum, stated = dict(minimum or {}), dict(maximum or {}), dict(stated or {})
    axes = dynamic_axes(specs)

    def fit(axis: str, n: int) -> int:
        return max(minimum.get(axis, 1), min(n, maximum.get(axis, n)))

    base = {a: fit(a, int((sizes or {}).get(a, DEFAULT_DYNAMIC_SIZE))) for a in axes}
    cases: list[Case] = []
    notes: list[str] = []
    seen: set = set()

    def add(label: str, case_sizes: dict, purpose: str, **kw) -> None:
        key = tuple(sorted(case_sizes.items()))
        if not kw.get("fill") and key in seen:
            return  # the same sizes as a case already planned, e.g. an axis whose minimum is its size
        seen.add(key)
        cases.append(Case(label, case_seed(seed, label), case_sizes, purpose=purpose, **kw))

    cases.append(Case("draw0", case_seed(seed, "draw0"), base, purpose="seeded draw at the export sizes"))
    cases.append(Case("draw1", case_seed(seed, "draw1"), base, purpose="second seeded draw at the export sizes"))
    seen.add(tuple(sorted(base.items())))

    batch = batch_axis(specs, axes)
    largest = {}
    for a in axes:
        if a in maximum:
            largest[a] = {"size": maximum[a], "from": "declared maximum"}
        elif a in stated:
            largest[a] = {"size": max(base[a], int(stated[a][0])), "from": stated[a][1]}
        else:
            largest[a] = {
                "size": max(base[a], LARGE_BATCH if a == batch else LARGE_OTHER),
                "from": f"bridge's default for {'a batch' if a == batch else 'a non-batch'} axis "
                "(declare --dim-max to take it further)",
            }
    # The largest sizes must fit the input budget, alone and all together.
    for a in axes:
        want = largest[a]["size"]
        size = want
        while size > base[a] and input_bytes(specs, {**base, a: size}) > budget_bytes:
            size = max(base[a], size // 2)
        if size < want:
            notes.append(
                f"axis {a}: taken to {size} instead of {want}, to keep a case's inputs within {budget_bytes >> 20} MiB"
            )
            largest[a] = {**largest[a], "size": size, "from": largest[a]["from"] + f"; {size} within the input budget"}

    for a in axes:
        top = largest[a]["size"]
        wanted = sorted({fit(a, n) for n in (*SWEEP, 2 * base[a] + 1, top) if n <= top or n == 1})
        for n in wanted:
            what = (
                "its smallest size"
                if n == fit(a, 1)
                else "its largest size"
                if n == top
                else f"an {'odd' if n % 2 else 'even'} size"
            )
            add(f"{a}={n}", {**base, a: n}, f"axis {a} alone at {what}", optional=n > 2 * base[a] + 1)
    if len(axes) > 1:
        distinct = {a: fit(a, base[a] + 1 + i) for i, a in enumerate(axes)}
        if len(set(distinct.values())) == len(axes):
            add("distinct", distinct, "every dynamic axis at a different size")
        else:
            notes.append("no case with every dynamic axis at a different size fits the declared minimums and maximums")
        large = {a: largest[a]["size"] for a in axes}
        while input_bytes(specs, large) > budget_bytes and any(large[a] > base[a] for a in axes):
            biggest = max(axes, key=lambda a: large[a] / max(1, base[a]))
            large[biggest] = max(base[biggest], large[biggest] // 2)
        if any(large[a] > base[a] for a in axes):
            add(
                "large",
                large,
                f"every dynamic axis at its largest at once (inputs at most {budget_bytes >> 20} MiB)",
                optional=True,
            )

    for s in specs:
        if s.kind == "mask":
            for mode, what in (("full", "no padding"), ("min", "one position per row"), ("left", "prefix padding")):
                add(f"{s.name}.{mode}", base, f"{s.name} as an attention mask with {what}", fill=((s.name, mode),))
            continue
        if s.dtype == "bool" or s.kind == "positions":
            continue
        if s.value_range is not None:
            lo, hi = s.value_range
            for mode, what in (
                ("low", f"every value at {lo:g}"),
                ("high", "every value at the top of the range"),
                ("mix", "each value at one end of the range"),
            ):
                add(f"{s.name}.{mode}", base, f"{s.name} in {lo:g}:{hi:g}: {what}", fill=((s.name, mode),))
        elif s.dtype.startswith(("int", "uint")):
            notes.append(
                f"{s.name}: integer input without a declared range and no table found for it, drawn "
                f"from 0..9; declare its range (--input-range {s.name}=LOW:HIGH, e.g. the vocabulary size) "
                f"or its kind (--input-kind {s.name}=mask|positions|index) to exercise it"
            )
            add(
                f"{s.name}.full",
                base,
                f"{s.name} over the whole {s.dtype} range (kept if the native model accepts it)",
                fill=((s.name, "full"),),
                optional=True,
            )
    return Plan(cases, notes, budget_bytes, largest=largest)


def add_search(
    plan: Plan,
    specs: list[TensorSpec],
    seed: int,
    sizes: dict,
    rows: int,
    boundaries=None,
    maximum: dict | None = None,
    budget=None,
    note: str = "",
) -> None:
    """The search's cases after the named ones (bridge/verdict/search.py), and its record in the plan."""
    from bridge.verdict.search import probe_cases, row_cases

    axes = dynamic_axes(specs)
    base = {a: int(sizes.get(a, DEFAULT_DYNAMIC_SIZE)) for a in axes}
    for c in plan.cases[:1]:
        base = dict(c.sizes)
    rows_cases = row_cases(specs, base, rows, seed, lambda label: case_seed(seed, label), maximum)
    probes, probed = probe_cases(specs, base, boundaries, lambda label: case_seed(seed, label), maximum)
    plan.cases.extend(rows_cases + probes)
    plan.search = {
        "budget": budget.to_json() if budget is not None else None,
        "rows": rows if rows_cases else 0,
        "cases": len(rows_cases),
        "thresholds": probed,
    }
    if note:
        plan.notes.append(note)


def summary_lines(plan: dict) -> list[str]:
    """What a report prints about its plan (a Plan's JSON): how far each axis was taken, and what the
    search did, with what it cost in rows."""
    lines = []
    largest = plan.get("largest") or {}
    if isinstance(largest, dict) and largest:
        lines.append(
            "sizes: "
            + "; ".join(
                f"{axis} up to {v.get('size')} ({v.get('from')})" for axis, v in largest.items() if isinstance(v, dict)
            )
        )
    search = plan.get("search") or {}
    if isinstance(search, dict) and search:
        budget = search.get("budget") or {}
        text = (
            f"search: {search.get('rows', 0)} random rows in {search.get('cases', 0)} cases (budget "
            f"{budget.get('rows')} rows, {budget.get('seconds')} s)"
        )
        probed = search.get("thresholds") or {}
        if isinstance(probed, dict) and probed:
            shown = []
            for name, items in probed.items():
                if isinstance(items, list):
                    values = ", ".join(f"{t['value']:g}" for t in items[:4] if isinstance(t.get("value"), (int, float)))
                    shown.append(f"{name} at {values}" + (" and more" if len(items) > 4 else ""))
            text += "; graph thresholds probed: " + "; ".join(shown)
        lines.append(text)
    return lines
