"""The search: beyond the named cases of the plan, inputs a deployment may see that nobody listed.

A list of cases catches the kinds of wrong exports someone named; a search catches kinds nobody named,
because it looks for them. Three mechanisms, each with its cost stated in the report:

* **rows**: batched random rows over each input's declared domain, every row drawn from a family of
  its own (uniform over the domain, a narrow band somewhere in it, one constant, values on .5 ties,
  the domain's edges, wide normal draws with shifted means and spreads, sparse outliers), so that one
  batch covers many distributions, not one distribution many times. Rows on which the native model
  itself gives NaN or Inf are dropped with a note; an output that is NaN on the ONNX side where the
  native one is finite fails. Up to a budget (``--search ROWS``, ``--search-seconds``), in large
  batches so that each side pays little per row.
* **boundaries**: the thresholds the ONNX graph applies to its inputs through element-wise paths
  (bridge/verdict/thresholds.py), each probed just below, at and just above.
* **sizes** (bridge/verdict/plan.py): every dynamic axis alone at odd and even sizes, up to the largest
  the model is deployed at, and every axis grown at once.

A search case can only find a failure: its per-case rules that prove nothing (a constant reference on
a constant row, ONNX Runtime's own rounding on an ill-conditioned row) drop it from the verdict with a
note instead of making the verdict inconclusive. Different seeds give disjoint draws. Standard
library only (the draws themselves are bridge/verdict/inputs.py's).
"""

from __future__ import annotations

from dataclasses import dataclass

from bridge.types import FLOAT_DTYPES, Case, TensorSpec, input_bytes

SEARCH_ROWS = 512  # default rows of the search, per verification
SEARCH_SECONDS = 20.0  # default time the search may take per device (both sides), estimated from the plan's cases
CASE_BYTES = 16 << 20  # inputs of one search case at most (rows are split into cases of this size)
MAX_UNBATCHED = 16  # search cases when no axis can carry rows (a fixed batch): one row per case
PROBE_ROWS = 16

FAMILIES = ("uniform", "band", "constant", "ties", "edges", "wide", "sparse")


@dataclass(frozen=True)
class SearchBudget:
    rows: int = SEARCH_ROWS
    seconds: float = SEARCH_SECONDS

    def to_json(self) -> dict:
        return {"rows": self.rows, "seconds": self.seconds}


def row_axis(specs: list[TensorSpec]) -> str | None:
    """The dynamic axis that carries rows: the first axis of every input that has one, when it is the
    same named axis for all (the batch). None when there is none (rows then go one per case)."""
    first = {s.dims[0] for s in specs if s.dims}
    if len(first) == 1:
        axis = next(iter(first))
        if isinstance(axis, str) and all(s.dims and s.dims[0] == axis for s in specs if s.dims):
            return axis
    return None


def _bytes_per_row(specs: list[TensorSpec], sizes: dict, axis: str | None) -> int:
    one = {**sizes, **({axis: 1} if axis else {})}
    return max(1, input_bytes(specs, one))


def _searched(spec: TensorSpec) -> bool:
    return spec.kind not in ("mask", "positions")


def row_cases(
    specs: list[TensorSpec], sizes: dict, rows: int, seed: int, case_seed, maximum: dict | None = None
) -> list[Case]:
    """Cases holding ``rows`` random rows (see the module doc), each at most CASE_BYTES of inputs."""
    if rows <= 0 or not any(_searched(s) for s in specs):
        return []
    axis = row_axis(specs)
    fill = tuple((s.name, "search") for s in specs if _searched(s))
    if axis is None:
        count = min(rows, MAX_UNBATCHED)
        return [
            Case(
                f"search.{i}",
                case_seed(f"search.{i}"),
                dict(sizes),
                fill=fill,
                purpose="search: one random row",
                search=True,
            )
            for i in range(count)
        ]
    per_case = max(1, CASE_BYTES // _bytes_per_row(specs, sizes, axis))
    if maximum and axis in maximum:
        per_case = min(per_case, maximum[axis])
    cases, left, i = [], rows, 0
    while left > 0:
        n = min(per_case, left)
        label = f"search.{i}"
        cases.append(
            Case(
                label,
                case_seed(label),
                {**sizes, axis: n},
                fill=fill,
                search=True,
                purpose=f"search: {n} random rows, each from a family of its own ({', '.join(FAMILIES)})",
            )
        )
        left -= n
        i += 1
    return cases


def probe_cases(
    specs: list[TensorSpec], sizes: dict, boundaries, case_seed, maximum: dict | None = None
) -> tuple[list[Case], dict]:
    """One case per input with graph boundaries (inside its declared range when it has one): every
    element just below, at or just above one of them. Returns the cases and what was probed."""
    axis = row_axis(specs)
    cases, probed = [], {}
    for s in specs:
        if not _searched(s) or s.dtype not in FLOAT_DTYPES and not s.dtype.startswith(("int", "uint")):
            continue
        found = boundaries.for_input(s.name, s.value_range) if boundaries is not None else []
        if s.dtype.startswith(("int", "uint")):
            found = [(v, w) for v, w in found if float(v).is_integer() or abs(v - round(v)) == 0.5]
        if not found:
            continue
        probed[s.name] = [{"value": v, "why": w} for v, w in found]
        values = ",".join(repr(float(v)) for v, _ in found)
        case_sizes = dict(sizes)
        if axis is not None:
            case_sizes[axis] = min(PROBE_ROWS, (maximum or {}).get(axis, PROBE_ROWS))
        label = f"{s.name}.boundaries"
        cases.append(
            Case(
                label,
                case_seed(label),
                case_sizes,
                fill=((s.name, f"probe:{values}"),),
                search=True,
                purpose=f"{s.name} just below, at and just above the {len(found)} thresholds the graph applies to it",
            )
        )
    return cases, probed


def estimate_rows(budget: SearchBudget, seconds_per_row: float | None) -> tuple[int, str]:
    """The rows the search runs: the budget's, fewer when its time would pass ``budget.seconds`` at the
    measured cost per row of the native model (the ONNX side counted as much again)."""
    rows = budget.rows
    if seconds_per_row and seconds_per_row > 0:
        fits = int(budget.seconds / (2.0 * seconds_per_row))
        if fits < rows:
            return max(0, fits), (
                f"search: {max(0, fits)} of {rows} rows, to stay within {budget.seconds:g} s "
                f"(about {1000 * seconds_per_row:.3g} ms per row on the native side)"
            )
    return rows, ""
