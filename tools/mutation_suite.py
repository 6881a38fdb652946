"""Run the mutation suite of tests/mutation outside pytest: build every mutant once, verify each
with the bridge CLI, print one row per mutant and the catch rate.

    .venv/bin/python tools/mutation_suite.py [--workers N] [--keep DIR] [--json PATH]

A row is caught when `bridge verify` exits with the code the table expects (1 for a wrong export,
3 for a reference that cannot expose an error, 0 for a correct control). Exit status: 0 when every
row is caught, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for _p in (str(ROOT), str(ROOT / "tests")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from mutation.test_mutants import CLASSES, GAPS, MUTANTS, WORKERS, reason, run_suite  # noqa: E402


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=WORKERS, help=f"CLI calls at a time (default {WORKERS})")
    p.add_argument("--keep", metavar="DIR", help="build into DIR and keep it (default: a temporary directory)")
    p.add_argument("--json", metavar="PATH", help="write the rows as JSON")
    args = p.parse_args(argv)

    start = time.perf_counter()
    base = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="bridge_mutation_"))
    base.mkdir(parents=True, exist_ok=True)
    try:
        plan, results, timings = run_suite(base, args.workers)
    finally:
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    rows = []
    for mid, (cls, fw, expected, description) in MUTANTS.items():
        if mid not in plan:
            continue  # its framework is not installed
        if mid in results:
            got, why = results[mid].returncode, reason(results[mid])
        else:
            got, why = "-", f"not built: {plan[mid]['build_error']}"
        rows.append(
            {
                "id": mid,
                "class": cls,
                "framework": fw,
                "expected": expected,
                "got": got,
                "caught": got == expected,
                "known_gap": mid in GAPS,
                "reason": why,
                "description": description,
            }
        )

    widths = {k: max(len(k), *(len(str(r[k])) for r in rows)) for k in ("id", "class", "framework")}
    head = (
        f"{'id':<{widths['id']}}  {'class':<{widths['class']}}  {'framework':<{widths['framework']}}  "
        f"expected  got  caught  reason"
    )
    print(head)
    print("-" * len(head))
    for r in rows:
        print(
            f"{r['id']:<{widths['id']}}  {r['class']:<{widths['class']}}  {r['framework']:<{widths['framework']}}  "
            f"{r['expected']:>8}  {r['got']:>3}  {'yes' if r['caught'] else 'no':<6}  {r['reason'][:150]}"
        )

    wrong = [r for r in rows if r["expected"] != 0]
    controls = [r for r in rows if r["expected"] == 0]
    caught = sum(r["caught"] for r in wrong)
    through = sum(r["got"] == 0 for r in wrong)
    print()
    print(
        f"wrong exports caught: {caught}/{len(wrong)} ({100 * caught / max(1, len(wrong)):.0f}%); "
        f"let through with exit 0: {through}/{len(wrong)} ({100 * through / max(1, len(wrong)):.0f}%)"
    )
    print(f"correct controls passed: {sum(r['caught'] for r in controls)}/{len(controls)}")
    print(f"all rows as expected: {sum(r['caught'] for r in rows)}/{len(rows)}")
    per_class = {}
    for r in rows:
        per_class.setdefault(r["class"], []).append(r["caught"])
    print("per class: " + ", ".join(f"{c} {sum(v)}/{len(v)}" for c, v in per_class.items()))
    gaps_fixed = [r["id"] for r in rows if r["known_gap"] and r["caught"]]
    if gaps_fixed:
        print(
            "caught now but marked as gaps (remove them from GAPS in tests/mutation/test_mutants.py): "
            + ", ".join(gaps_fixed)
        )
    new_misses = [r["id"] for r in rows if not r["known_gap"] and not r["caught"]]
    if new_misses:
        print(f"missed and not marked as gaps (a regression?): {', '.join(new_misses)}")
    build_s = ", ".join(f"{k[6:]} built after {v:.0f} s" for k, v in timings.items() if k.startswith("build_"))
    print(
        f"wall time: {time.perf_counter() - start:.0f} s ({build_s}; {len(rows)} verify calls, "
        f"{args.workers} at a time)"
    )
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "timings": timings, "classes": CLASSES}, indent=2))
    return 0 if all(r["caught"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
