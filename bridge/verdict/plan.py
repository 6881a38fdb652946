"""The case plan: which inputs every verification runs, and why. Standard library only.

A graph can be right at the export size and wrong elsewhere: wrong only for the top id of a
vocabulary, only when batch and sequence differ, only at batch 8 and above. One seeded draw proves
little, so the plan is:

* ``draw0``, ``draw1``: two seeded draws at the export sizes (two value distributions);
* per dynamic axis, on its own (the others at their export size): size 1 and an odd size above the
  export size (``batch=1``, ``batch=5``);
* with two or more dynamic axes, ``distinct``: every axis at a different size, so that a graph
  which mixes two axes up cannot pass by luck;
* ``large``: the batch axis (the first axis of an input) at max(8, 4 x export size), within a
  memory budget on the case's inputs;
* per input with a declared range, at the export sizes: ``low`` (every value at LOW), ``high``
  (HIGH - 1 for integers, the largest value below HIGH for floats) and ``mix`` (each element one
  of the two);
* per integer input without a range (drawn from 0..9 by default, which barely exercises an id
  input): a note saying so, and ``full``: values over the integer type's range, kept only if the
  native model accepts them.

Sizes respect per-axis minimums and maximums when they are declared. The plan's notes go into
every report.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.types import DEFAULT_DYNAMIC_SIZE, Case, TensorSpec

# Inputs of the large case may take at most this many bytes (all inputs together).
LARGE_CASE_BYTES = 64 << 20
LARGE_BATCH = 8

_ITEMSIZE = {
    "float16": 2,
    "bfloat16": 2,
    "float32": 4,
    "float64": 8,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "int32": 4,
    "int64": 8,
    "bool": 1,
}


@dataclass
class Plan:
    cases: list[Case]
    notes: list[str] = field(default_factory=list)
    budget_bytes: int = LARGE_CASE_BYTES
    inputs: list = field(default_factory=list)  # per input: kind and range, and where each came from

    def to_json(self) -> dict:
        return {
            "inputs": list(self.inputs),
            "cases": [case_json(c) for c in self.cases],
            "notes": list(self.notes),
            "large_case_input_budget_bytes": self.budget_bytes,
        }


def case_json(case: Case, origin: str = "seeded") -> dict:
    out = {"label": case.label, "seed": case.seed, "sizes": dict(case.sizes), "origin": origin}
    if case.fill:
        out["fill"] = dict(case.fill)
    if case.purpose:
        out["purpose"] = case.purpose
    return out


def _input_bytes(specs: list[TensorSpec], sizes: dict) -> int:
    total = 0
    for s in specs:
        n = 1
        for d in s.shape(sizes):
            n *= d
        total += n * _ITEMSIZE.get(s.dtype, 8)
    return total


def plan_cases(
    specs: list[TensorSpec],
    seed: int,
    sizes: dict | None = None,
    *,
    minimum: dict | None = None,
    maximum: dict | None = None,
    budget_bytes: int = LARGE_CASE_BYTES,
) -> Plan:
    minimum, maximum = dict(minimum or {}), dict(maximum or {})
    axes: list[str] = []
    for s in specs:
        for d in s.dims:
            if isinstance(d, str) and d not in axes:
                axes.append(d)

    def fit(axis: str, n: int) -> int:
        return max(minimum.get(axis, 1), min(n, maximum.get(axis, n)))

    base = {a: fit(a, int((sizes or {}).get(a, DEFAULT_DYNAMIC_SIZE))) for a in axes}
    cases = [
        Case("draw0", seed, base, purpose="seeded draw at the export sizes"),
        Case("draw1", seed + 1, base, purpose="second seeded draw at the export sizes"),
    ]
    notes: list[str] = []
    seen = {tuple(sorted(base.items()))}
    next_seed = seed + 2

    def add(label: str, case_sizes: dict, purpose: str, **kw) -> None:
        nonlocal next_seed
        key = tuple(sorted(case_sizes.items()))
        if not kw.get("fill") and key in seen:
            return  # the same sizes as a case already planned, e.g. an axis whose minimum is its size
        seen.add(key)
        cases.append(Case(label, next_seed, case_sizes, purpose=purpose, **kw))
        next_seed += 1

    for a in axes:
        add(f"{a}={fit(a, 1)}", {**base, a: fit(a, 1)}, f"axis {a} alone at its smallest size")
        odd = fit(a, 2 * base[a] + 1)
        add(f"{a}={odd}", {**base, a: odd}, f"axis {a} alone above its export size")
    if len(axes) > 1:
        distinct = {a: fit(a, base[a] + 1 + i) for i, a in enumerate(axes)}
        if len(set(distinct.values())) == len(axes):
            add("distinct", distinct, "every dynamic axis at a different size")
        else:
            notes.append("no case with every dynamic axis at a different size fits the declared minimums and maximums")
    batch = next((s.dims[0] for s in specs if s.dims and isinstance(s.dims[0], str)), axes[0] if axes else None)
    if batch is not None:
        want = fit(batch, max(LARGE_BATCH, 4 * base[batch]))
        size = want
        while size > base[batch] and _input_bytes(specs, {**base, batch: size}) > budget_bytes:
            size = max(base[batch], size // 2)
        if size > 2 * base[batch] + 1:
            add(
                f"{batch}={size}",
                {**base, batch: size},
                f"axis {batch} well above its export size (inputs at most {budget_bytes >> 20} MiB)",
                optional=True,
            )
            if size < want:
                notes.append(
                    f"large case: {batch}={size} instead of {want}, to keep its inputs within {budget_bytes >> 20} MiB"
                )
        else:
            notes.append(
                f"no large case for axis {batch}: {want} would not fit the declared maximum or the "
                f"{budget_bytes >> 20} MiB input budget"
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
    return Plan(cases, notes, budget_bytes)
