"""Who sets the terms of a test: under ``--source`` the verifier, never the artifact under test.

The native model is the truth and the bundle is the suspect, so the suspect may not decide its own
test. Each term of a verification (an input's range and kind, an axis's smallest and largest size)
comes from the verifier's side: the command line, the config, the API call, the source's own
declarations (BRIDGE_INPUT_RANGES and friends, a Keras or .pt2 signature) or bridge's defaults. What
the bundle's manifest declares is checked against that:

* where the verifier sets a term, the bundle's differing declaration is reported and not used (a
  narrower range would hide the inputs it leaves out);
* where the verifier says nothing, ``--strict-terms`` (bridge check's default) uses bridge's default
  and reports the bundle's declaration as unused; without it the bundle's declaration fills the gap
  for convenience, the verdict line says that this part of the test came from the artifact under
  test, and the search still draws outside that domain (bridge/verdict/search.py).

The tolerance and the reduced-precision row are settled elsewhere by the same rule (bridge/verifying.py:
the verifier's flags, policy file or defaults; a precision row only when the verifier asks for it).
Standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.types import TensorSpec

BUNDLE = "the bundle under test (its manifest)"


@dataclass
class Terms:
    specs: list[TensorSpec]  # structure and ranges decided (kinds are resolved later, from ``kinds``)
    range_from: dict  # input -> where its range came from
    kinds: dict  # input -> (kind, where it came from): the verifier's, and the bundle's where used
    dim_min: dict
    dim_max: dict
    notes: list = field(default_factory=list)
    from_artifact: list = field(default_factory=list)  # terms taken from the bundle under test
    widen: list = field(default_factory=list)  # inputs whose domain came from the bundle: searched beyond it
    pending: dict = field(default_factory=dict)  # input -> a range only the bundle declared, until settled

    def settle(self, inputs_table: list[dict], strict: bool) -> None:
        """After each input's semantics were decided, the ranges only the bundle declared: one the model's
        own table replaced (an embedding's size, found on the verifier's side) is no longer the artifact's
        term, and is reported only where it differs; one nothing on the verifier's side replaced is
        reported as unused (strict) or stays the artifact's term (lenient)."""
        for row in inputs_table:
            name = row.get("name")
            theirs = self.pending.get(name)
            if theirs is None:
                continue
            mine = tuple(row["range"]) if row.get("range") and row.get("range_from") != BUNDLE else None
            if mine is not None:
                if name in self.widen:
                    self.widen.remove(name)
                    self.from_artifact = [t for t in self.from_artifact if not t.startswith(f"the range of {name} ")]
                if tuple(theirs) != mine:
                    what = "narrower than" if _narrower(theirs, mine) else "different from"
                    self.notes.append(
                        f"the bundle declares {name} in {_fmt(theirs)}, {what} {_fmt(mine)} "
                        f"({row.get('range_from')}): not used"
                    )
            elif strict:
                self.notes.append(
                    f"the bundle declares {name} in {_fmt(theirs)}: not used (strict terms: the verifier's side "
                    "declares no range for it, so bridge's default domain applies; declare it with "
                    f"--input-range {name}=LOW:HIGH, a config key or the source)"
                )

    def to_json(self) -> dict:
        return {"from_artifact": list(self.from_artifact), "unused": [n for n in self.notes if "not used" in n]}


def _fmt(r) -> str:
    return f"{r[0]:g}:{r[1]:g}"


def _narrower(inner, outer) -> bool:
    return inner[0] >= outer[0] and inner[1] <= outer[1] and inner != outer


def decide(request, specs: list[TensorSpec], structure_from: str, bundle, strict: bool) -> Terms:
    """The terms of a verification against the source. ``specs``: the inputs' structure (names, dtypes,
    dims) as the verifier's side or, failing that, the bundle gave them, with no range yet; ``bundle``:
    the Bundle under test or None (a bare ONNX file declares nothing)."""
    from bridge.verdict.semantics import kind_by_name

    declared = {s.name: s for s in (bundle.inputs if bundle is not None else [])}
    bounds = _bundle_bounds(bundle)
    terms = Terms([], {}, {}, dict(request.dim_min), dict(request.dim_max))
    origin_text = {"command line": "--input-range"}
    for s in specs:
        mine = request.input_ranges.get(s.name) or s.value_range
        theirs = declared[s.name].value_range if s.name in declared else None
        rng = mine
        if mine is not None:
            origin = request.origin("input_ranges", s.name)
            terms.range_from[s.name] = origin_text.get(origin, origin) if origin != "default" else structure_from
            if theirs is not None and theirs != mine:
                what = "narrower than" if _narrower(theirs, mine) else "different from"
                terms.notes.append(
                    f"the bundle declares {s.name} in {_fmt(theirs)}, {what} the verifier's {_fmt(mine)} "
                    f"({terms.range_from[s.name]}): not used"
                )
        elif theirs is not None:
            terms.pending[s.name] = theirs  # settled once the model's own tables are known (``settle``)
            if not strict:
                rng = theirs
                terms.range_from[s.name] = BUNDLE
                terms.from_artifact.append(f"the range of {s.name} ({_fmt(theirs)})")
                terms.widen.append(s.name)
        terms.specs.append(s.with_range(rng))
        # kinds: the verifier's (declared or given), else the bundle's where it says more than the name does
        if s.name in request.input_kinds:
            origin = request.origin("input_kinds", s.name)
            terms.kinds[s.name] = (request.input_kinds[s.name], "--input-kind" if origin == "command line" else origin)
            theirs_kind = declared[s.name].kind if s.name in declared else None
            if theirs_kind and theirs_kind != request.input_kinds[s.name]:
                terms.notes.append(
                    f"the bundle declares {s.name} as {theirs_kind}, the verifier as "
                    f"{request.input_kinds[s.name]}: not used"
                )
        elif s.name in declared and declared[s.name].kind not in (None, kind_by_name(s) or "values"):
            kind = declared[s.name].kind
            if strict:
                terms.notes.append(
                    f"the bundle declares {s.name} as {kind}: not used (strict terms); declare it with "
                    f"--input-kind {s.name}={kind} if that is what it is"
                )
            else:
                terms.kinds[s.name] = (kind, BUNDLE)
                terms.from_artifact.append(f"the kind of {s.name} ({kind})")
    for key, table in (("dim_min", terms.dim_min), ("dim_max", terms.dim_max)):
        for axis, size in bounds.get(key, {}).items():
            if axis in table:
                if table[axis] != size:
                    terms.notes.append(f"the bundle declares {key} {axis}={size}, the verifier {table[axis]}: not used")
                continue
            if strict:
                terms.notes.append(
                    f"the bundle declares {key} {axis}={size}: not used (strict terms); declare "
                    f"--{key.replace('_', '-')} {axis}={size} if the model needs it"
                )
            else:
                table[axis] = size
                terms.from_artifact.append(f"{key} {axis}={size}")
    return terms


def _bundle_bounds(bundle) -> dict:
    """The sizes an export was told (manifest "request": dim_min, dim_max), validated: a hostile manifest
    can put anything there."""
    if bundle is None:
        return {}
    raw = bundle.manifest.get("request")
    out = {}
    if isinstance(raw, dict):
        for key in ("dim_min", "dim_max"):
            table = raw.get(key)
            if isinstance(table, dict):
                out[key] = {
                    str(k): int(v)
                    for k, v in table.items()
                    if isinstance(k, str)
                    and k.isidentifier()
                    and isinstance(v, int)
                    and not isinstance(v, bool)
                    and 1 <= v <= 2**31 - 1
                }
    return out
