"""What an input's values mean, so that generated inputs are ones the model is built for.

Random numbers of the right dtype are not always valid inputs. A Hugging Face encoder fed an
attention mask with a row of zeros attends over nothing, which eager torch and the exported graph
resolve differently, so a correct export fails; token ids drawn from 0..9 barely exercise a
30,000-word vocabulary. Each input gets a kind (``TensorSpec.kind``):

* ``values``: any number (in the declared range, if any); the default;
* ``index``: integer ids into a table, drawn in [0, N): N from a declared range, else from the
  embedding the input feeds when the framework can find it (torch ``nn.Embedding.num_embeddings``,
  Keras ``Embedding.input_dim``), else 0..9 with a note;
* ``mask``: a 0/1 attention mask along the last axis; every row attends to at least one position
  (suffix padding by default; the plan adds prefix padding, no padding and one position per row);
* ``positions``: 0..n-1 along the last axis, as a tokenizer pipeline makes them.

A kind comes from the user (``--input-kind``, a factory's ``bridge_input_kinds`` or module
``BRIDGE_INPUT_KINDS``, a bundle's manifest), else from the input's name (``attention_mask``, ``*_mask``,
``position_ids``, ``input_ids``, ``token_type_ids``, ``*_ids``), which is a default, never a silent rule:
every report lists each input's kind and range with where each came from. Standard library only.
"""

from __future__ import annotations

from bridge.errors import SpecError
from bridge.types import INPUT_KINDS, TensorSpec

DEFAULT_INDEX_RANGE = (0, 10)


def parse_kind(text: str) -> tuple[str, str]:
    name, sep, kind = text.partition("=")
    name, kind = name.strip(), kind.strip()
    if not sep or not name or kind not in INPUT_KINDS:
        raise SpecError(
            f"cannot parse input kind {text!r}: expected NAME=KIND with KIND one of "
            f"{', '.join(INPUT_KINDS)}, e.g. attention_mask=mask"
        )
    return name, kind


def kind_by_name(spec: TensorSpec) -> str | None:
    """The kind an input's name suggests, or None."""
    name = spec.name.lower().rsplit(".", 1)[-1]
    integer = spec.dtype.startswith(("int", "uint"))
    if name == "attention_mask" or name == "mask" or name.endswith("_mask"):
        if spec.dims:
            return "mask"
    if name in ("position_ids", "positions") and integer and spec.dims:
        return "positions"
    if integer and (name in ("input_ids", "ids", "token_type_ids") or name.endswith("_ids")):
        return "index"
    return None


def resolve(
    specs: list[TensorSpec],
    kinds: dict[str, tuple[str, str]] | None = None,
    index_ranges: dict[str, tuple[int, str]] | None = None,
    range_from: dict[str, str] | None = None,
) -> tuple[list[TensorSpec], list[dict]]:
    """Specs with their kinds and index ranges filled in, and a table of what was decided and why.

    ``kinds``: name -> (kind, where it was declared), the user's choices. ``index_ranges``: name ->
    (table size, which table), found in the model. ``range_from``: name -> where a declared range
    came from (for the table)."""
    kinds, index_ranges, range_from = dict(kinds or {}), dict(index_ranges or {}), dict(range_from or {})
    unknown = sorted(set(kinds) - {s.name for s in specs})
    if unknown:
        raise SpecError(
            f"--input-kind names {', '.join(unknown)}, which is not an input",
            hint=f"inputs are: {', '.join(s.name for s in specs)}",
        )
    out, table = [], []
    for s in specs:
        if s.name in kinds:
            kind, kind_from = kinds[s.name]
        elif s.kind is not None:
            kind, kind_from = s.kind, range_from.get(f"kind:{s.name}", "the bundle's manifest")
        else:
            kind = kind_by_name(s)
            kind_from = "its name" if kind else "default"
            kind = kind or "values"
        if kind in ("index", "mask", "positions") and not s.dims and kind != "index":
            raise SpecError(f"input {s.name!r} is a scalar; kind {kind!r} needs a last axis")
        if kind == "index" and not s.dtype.startswith(("int", "uint")):
            raise SpecError(f"input {s.name!r} is {s.dtype}; kind 'index' needs an integer dtype")
        rng, rng_from = s.value_range, range_from.get(s.name, "declared") if s.value_range else None
        if kind == "index" and rng is None:
            if s.name in index_ranges:
                size, where = index_ranges[s.name]
                rng, rng_from = (0.0, float(size)), where
            else:
                rng_from = "bridge's default 0..9 (no table found)"
        if kind == "mask":
            rng, rng_from = None, "0/1, every row attends somewhere"
        if kind == "positions":
            rng, rng_from = None, "0..n-1 along the last axis"
        if kind == "values" and rng is None:
            rng_from = (
                "bridge's default 0..9"
                if s.dtype.startswith(("int", "uint"))
                else "standard normal"
                if s.dtype != "bool"
                else "fair coin"
            )
        spec = s.with_kind(kind).with_range(rng)
        out.append(spec)
        table.append(
            {
                "name": s.name,
                "dtype": s.dtype,
                "kind": kind,
                "kind_from": kind_from,
                "range": list(rng) if rng is not None else None,
                "range_from": rng_from,
            }
        )
    return out, table


def describe(row: dict) -> str:
    """One input of the table, as a reader wants it."""
    rng = row.get("range")
    span = f" {rng[0]:g}:{rng[1]:g}" if rng else ""
    where = row.get("range_from") or row["kind_from"]
    kind_note = (
        f"; kind from {row['kind_from']}"
        if row.get("range_from")
        and row["kind"] != "values"
        and row["kind_from"] not in ("default", row.get("range_from"))
        else ""
    )
    return f"{row['name']} {row['kind']}{span} ({where}{kind_note})"


def probe_feeds_kinds(specs: list[TensorSpec]) -> list[TensorSpec]:
    """Specs for one safe probe run (finding the tables index inputs feed): integer inputs without a
    range as index 0..1, so that any table accepts them."""
    return [
        s.with_range((0.0, 1.0))
        if s.dtype.startswith(("int", "uint")) and s.value_range is None and (s.kind or "values") in ("values", "index")
        else s
        for s in specs
    ]
