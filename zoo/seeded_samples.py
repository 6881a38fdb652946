"""Seeded samples for a model that has no real data (a random-init zoo model), written as an .npz with one
array per input: what the zoo calibrates static int8 on, stated as such in every table that uses it.

    python seeded_samples.py OUT.npz --input 'x:float32[16,3,224,224]' --range x=-2.12:2.64 [--seed 0]

Values are uniform over the declared range (float inputs) or the integers LOW..HIGH-1. numpy only.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import numpy as np

SPEC = re.compile(r"^(\w+):(\w+)\[([0-9, ]+)\]$")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--input", action="append", required=True, metavar="NAME:DTYPE[N,...]")
    parser.add_argument("--range", action="append", default=[], metavar="NAME=LOW:HIGH")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    ranges = {k: tuple(float(x) for x in v.split(":")) for k, v in (r.split("=", 1) for r in args.range)}
    rng = np.random.default_rng(args.seed)
    arrays = {}
    for text in args.input:
        m = SPEC.match(text.replace(" ", ""))
        if not m:
            parser.error(f"--input {text}: expected NAME:DTYPE[N,...] with fixed sizes")
        name, dtype, dims = m.group(1), np.dtype(m.group(2)), [int(d) for d in m.group(3).split(",")]
        low, high = ranges.get(name, (0.0, 1.0))
        if dtype.kind in "iu":
            arrays[name] = rng.integers(int(low), int(high), size=dims).astype(dtype)
        else:
            arrays[name] = rng.uniform(low, high, size=dims).astype(dtype)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **arrays)
    print({k: [str(v.dtype), list(v.shape)] for k, v in arrays.items()})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
