"""The one next step for a verdict that is not a pass, shared by every place that says it (assert_parity,
the HTML report): find where a failure starts, or make an inconclusive reference able to fail. Standard
library only; reads summary rows as report dicts or result objects."""

from __future__ import annotations


def _get(row, key):
    return row.get(key) if isinstance(row, dict) else getattr(row, key, None)


def next_step(
    status: str, target: str, source: str | None, rows, *, api: bool = False, python: bool = False
) -> str | None:
    """``rows``: the summary rows (one per output and device). ``api``: the source is a model object in the
    caller's process (the step is then a bridge.verify call, not a command line); ``python``: the reader is
    in Python (assert_parity): options are spelt as keywords."""
    if status == "inconclusive":
        flags = (
            ("samples='real.npz'", "input_ranges={...}", "weights=...")
            if api or python
            else (
                "--samples real.npz",
                "--input-range NAME=LOW:HIGH",
                "--weights",
            )
        )
        return (
            f"the reference cannot expose an error on these inputs (the reason above): verify on real inputs "
            f"({flags[0]}), give inputs their real ranges ({flags[1]}), or use trained weights ({flags[2]})"
        )
    if status != "fail":
        return None
    if not source:
        return (
            f"compare with the native model to see where it goes wrong: bridge verify {target} --source SOURCE "
            "--localize localize/ (from a test: assert_parity(TARGET, model))"
        )
    if api:
        find = f"bridge.verify({target!r}, source=model, localize='localize/')"
    else:
        find = f"bridge verify {target} --source {source} --localize localize/"
    step = f"{find} names the first diverging node and writes a reproduction"
    failing = [r for r in rows if _get(r, "status") == "fail" and _get(r, "needed_atol") is not None]
    if failing:
        from bridge.report.markdown import num_up

        worst = max(failing, key=lambda r: float(_get(r, "needed_atol")))
        step += (
            f"; if a difference this size is expected, atol={num_up(_get(worst, 'needed_atol'))} (rtol as applied) "
            f"passes {_get(worst, 'name')} (docs/tolerances.md)"
        )
    return step
