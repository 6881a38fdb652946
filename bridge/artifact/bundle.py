"""The bundle: model.onnx (+ external data), manifest.json, golden.npz. Hashes and atomic publishing.

A bundle is written into a staging directory next to the destination and renamed into place, so a
failed or killed export leaves either the old state or the complete new bundle. Readers check the
sha256 of every file against the manifest before anything else.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.artifact.staging import hold_staging, old_prefix, release, remove_stale_staging, staging_prefix
from bridge.errors import BundleError, UsageError
from bridge.spec import MAX_NAME_CHARS, MAX_RANK
from bridge.types import DTYPES, INPUT_KINDS, Case, TensorSpec

MAX_DIM = 2**31 - 1

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
MODEL = "model.onnx"
GOLDEN = "golden.npz"


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# -- golden cases -----------------------------------------------------------------------------------


def golden_arrays(cases: list[tuple[Case, dict, dict]]) -> dict[str, np.ndarray]:
    """Flat npz keys '<case>/in/<name>' and '<case>/out/<name>'."""
    flat: dict[str, np.ndarray] = {}
    for case, feeds, outputs in cases:
        for name, arr in feeds.items():
            flat[f"{case.label}/in/{name}"] = np.asarray(arr)
        for name, arr in outputs.items():
            flat[f"{case.label}/out/{name}"] = np.asarray(arr)
    return flat


def read_golden(path: Path, cases: list[Case], inputs: list[str], outputs: list[str]) -> list[tuple[Case, dict, dict]]:
    try:
        with np.load(path, allow_pickle=False) as data:
            flat = {k: data[k] for k in data.files}
    except Exception as exc:
        raise BundleError(f"cannot read {path}: {type(exc).__name__}: {exc}") from None
    out = []
    for case in cases:
        try:
            feeds = {n: flat[f"{case.label}/in/{n}"] for n in inputs}
            outs = {n: flat[f"{case.label}/out/{n}"] for n in outputs}
        except KeyError as exc:
            raise BundleError(f"{path} lacks array {exc.args[0]!r} that the manifest promises") from None
        out.append((case, feeds, outs))
    return out


# -- manifest ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    path: Path
    manifest: dict

    @property
    def model_path(self) -> Path:
        return self.path / self.manifest["model"]["file"]

    @property
    def inputs(self) -> list[TensorSpec]:
        return [TensorSpec.from_json(d) for d in self.manifest["inputs"]]

    @property
    def outputs(self) -> list[TensorSpec]:
        return [TensorSpec.from_json(d) for d in self.manifest["outputs"]]

    @property
    def cases(self) -> list[Case]:
        return [Case(c["label"], c.get("seed"), dict(c.get("sizes") or {})) for c in self.manifest["cases"]]

    def golden(self) -> list[tuple[Case, dict, dict]]:
        runs = read_golden(
            self.path / GOLDEN, self.cases, [s.name for s in self.inputs], [s.name for s in self.outputs]
        )
        check_golden(self, runs)
        return runs


def is_bundle(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


def open_bundle(path: str | Path) -> Bundle:
    """Read the manifest and check every file's sha256. Refuses symlinks and unlisted files."""
    path = Path(path)
    if path.is_symlink():
        raise BundleError(f"bundle {path} is a symlink; refusing to follow it")
    mpath = path / MANIFEST
    if not os.path.lexists(mpath):
        from bridge.artifact.formats import not_onnx

        raise not_onnx(path) or BundleError(
            f"{path} is not a bundle: it has no {MANIFEST}", hint="create one with 'bridge export'"
        )
    if mpath.is_symlink():
        raise BundleError(f"bundle file {MANIFEST} is a symlink; bundles hold regular files only")
    from bridge.artifact.files import MANIFEST_BYTES, read_bounded

    raw = read_bounded(mpath, MANIFEST_BYTES, "bundle manifest", BundleError)
    try:
        manifest = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise BundleError(f"cannot read {mpath}: {exc}", hint="the manifest is damaged; re-export the bundle") from None
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(
            f"{mpath} has schema_version {manifest.get('schema_version') if isinstance(manifest, dict) else None!r}, "
            f"this bridge reads {SCHEMA_VERSION}",
            hint="re-export the model with this version of bridge",
        )
    _validate_manifest(manifest, mpath)
    files = manifest["files"]
    present = set()
    for entry in sorted(path.rglob("*")):
        rel = entry.relative_to(path).as_posix()
        if entry.is_symlink():
            raise BundleError(f"bundle file {rel} is a symlink; bundles hold regular files only")
        if entry.is_file() and rel != MANIFEST:
            present.add(rel)
    unlisted = sorted(present - set(files))
    if unlisted:
        raise BundleError(
            f"bundle {path} holds files its manifest does not list: {', '.join(unlisted)}",
            hint="a bundle is only what bridge export wrote; remove the extra files or re-export",
        )
    for rel, info in files.items():
        fpath = path / rel
        if rel not in present:
            raise BundleError(f"bundle file {rel} is missing from {path}")
        digest = sha256_file(fpath)
        if digest != info.get("sha256"):
            raise BundleError(
                f"bundle file {rel} was changed: sha256 {digest[:16]}… does not match the manifest's "
                f"{str(info.get('sha256'))[:16]}…",
                hint="the file is not the one that was verified; re-export or restore it",
            )
    return Bundle(path, manifest)


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _validate_manifest(m: dict, mpath: Path) -> None:
    """Structure and types of every entry bridge reads, before anything is read from disk."""

    def bad(what: str) -> BundleError:
        return BundleError(f"{mpath}: {what}", hint="the manifest is damaged; re-export the bundle")

    for key in ("model", "inputs", "outputs", "cases", "files"):
        if key not in m:
            raise bad(f"lacks the {key!r} entry")
    files = m["files"]
    if not isinstance(files, dict) or not all(
        isinstance(v, dict) and isinstance(v.get("sha256"), str) for v in files.values()
    ):
        raise bad("'files' must map file names to {sha256: ...}")
    for rel in files:
        parts = Path(rel).parts
        if not rel or Path(rel).is_absolute() or ".." in parts or rel == MANIFEST:
            raise bad(f"file name {rel!r} points outside the bundle")
    model = m["model"]
    if not isinstance(model, dict) or not isinstance(model.get("file"), str) or model["file"] not in files:
        raise bad("'model.file' must name one of the bundle's listed files")
    for key in ("inputs", "outputs"):
        specs = m[key]
        if not isinstance(specs, list) or not specs or not all(_spec_ok(d) for d in specs):
            raise bad(
                f"'{key}' must be a non-empty list of {{name, dtype, dims[, range]}} with names of at most "
                f"{MAX_NAME_CHARS} characters, at most {MAX_RANK} dims, each a size in 0..{MAX_DIM} or a name, "
                "and a finite range LOW < HIGH"
            )
        names = [d["name"] for d in specs]
        if len(set(names)) != len(names):
            raise bad(f"'{key}' names a tensor twice")
    cases = m["cases"]
    if (
        not isinstance(cases, list)
        or not cases
        or not all(
            isinstance(c, dict)
            and isinstance(c.get("label"), str)
            and c["label"]
            and "/" not in c["label"]
            and isinstance(c.get("sizes", {}), dict)
            and all(
                isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_DIM
                for v in c.get("sizes", {}).values()
            )
            and (c.get("seed") is None or (isinstance(c["seed"], int) and not isinstance(c["seed"], bool)))
            for c in cases
        )
    ):
        raise bad("'cases' must be a non-empty list of {label, seed, sizes}")
    from bridge.precision.methods import check_manifest_entry

    check_manifest_entry(m.get("precision"), bad)  # a reduced-precision bundle: int8 / fp16 and how


def _spec_ok(d) -> bool:
    if not (
        isinstance(d, dict)
        and isinstance(d.get("name"), str)
        and 0 < len(d["name"]) <= MAX_NAME_CHARS
        and d.get("dtype") in DTYPES
        and isinstance(d.get("dims"), list)
        and len(d["dims"]) <= MAX_RANK
    ):
        return False
    for x in d["dims"]:
        if isinstance(x, bool) or not isinstance(x, (int, str)):
            return False
        if isinstance(x, int) and not 0 <= x <= MAX_DIM:
            return False
        if isinstance(x, str) and not 0 < len(x) <= MAX_NAME_CHARS:
            return False
    if d.get("kind") is not None and d["kind"] not in INPUT_KINDS:
        return False
    rng = d.get("range")
    if rng is None:
        return True
    return (
        isinstance(rng, list)
        and len(rng) == 2
        and all(isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) for x in rng)
        and rng[0] < rng[1]
    )


def check_against_graph(bundle: "Bundle", graph_inputs: list[TensorSpec]) -> str | None:
    """The manifest's inputs must be the graph's: dtypes, ranks, and every size the two both fix,
    input by input (exit 2 otherwise: the manifest does not describe the model). Returns a verdict-level
    problem when the names or their order differ (a graph that binds inputs differently from the model
    it was exported from), else None. A dynamic manifest axis that the graph fixed is a verdict too."""
    where = bundle.path / MANIFEST
    declared = bundle.inputs
    by_name = {s.name: s for s in graph_inputs}
    for d in declared:
        a = by_name.get(d.name)
        if a is None:
            continue
        if (
            d.dtype != a.dtype
            or len(d.dims) != len(a.dims)
            or any(isinstance(x, int) and isinstance(y, int) and x != y for x, y in zip(d.dims, a.dims))
        ):
            raise BundleError(
                f"{where}: input {d.to_text()} does not match the graph's {a.to_text()}",
                hint="the manifest does not describe the model; re-export",
            )
    names, graph_names = [s.name for s in declared], [s.name for s in graph_inputs]
    if names != graph_names:
        return (
            f"inputs: the ONNX graph takes {graph_names}, the model it was exported from {names}; "
            "deployments feed inputs by name, so they would reach the wrong tensors"
        )
    return None


def check_golden(bundle: "Bundle", runs: list[tuple[Case, dict, dict]]) -> None:
    """Golden arrays must have the manifest's dtypes and shapes (dynamic axes at the case's sizes)."""
    where = bundle.path / GOLDEN
    inputs, outputs = bundle.inputs, bundle.outputs
    for case, feeds, outs in runs:
        for is_input, specs, arrays in ((True, inputs, feeds), (False, outputs, outs)):
            for s in specs:
                arr = arrays[s.name]
                if not is_input:
                    # Output dims are the exporter's declaration (a GRU's may bake a sequence length
                    # the graph does not keep); the comparison judges the values. The dtype is the model's.
                    ok = arr.dtype.name == s.dtype
                else:
                    want = [d if isinstance(d, int) else case.sizes.get(d) for d in s.dims]
                    # every input axis size is known: fixed, or the case's size
                    ok = (
                        arr.dtype.name == s.dtype
                        and arr.ndim == len(s.dims)
                        and all(w is not None and w == n for w, n in zip(want, arr.shape))
                    )
                if not ok:
                    raise BundleError(
                        f"{where}: case {case.label} holds {s.name} as {arr.dtype}{list(arr.shape)}, "
                        f"the manifest says {s.to_text()} at {case.sizes or {}}",
                        hint="the golden data does not belong to this manifest; re-export",
                    )


# -- writing ----------------------------------------------------------------------------------------


def check_destination(dest: Path, force: bool) -> None:
    """Before any work: refuse symlinks, non-bundle directories, and existing bundles without --force."""
    if dest.is_symlink():
        raise UsageError(
            f"output {dest} is a symlink; refusing to write through it", hint="choose a real directory path"
        )
    if dest.exists():
        if not dest.is_dir():
            raise UsageError(f"output {dest} exists and is not a directory")
        if not is_bundle(dest):
            if any(dest.iterdir()):
                raise UsageError(
                    f"output {dest} is an existing directory that is not a bundle; refusing to replace it",
                    hint="choose a new path",
                )
        elif not force:
            raise UsageError(f"output {dest} already holds a bundle", hint="pass --force to replace it")
    from bridge.artifact.files import ensure_directory

    ensure_directory(dest.parent, f"output {dest}")


class Staging:
    """A temporary directory next to ``dest``; ``publish`` renames it into place atomically.

    Its name carries the writer's pid, so that staging left by a killed writer is removed by the
    next export to the same destination."""

    def __init__(self, dest: Path):
        # Absolute from the start: a step that changes the working directory (ONNX Runtime's quantizer
        # runs in a scratch one) must still find the staging directory and the destination.
        self.dest = dest = Path(dest).absolute()
        remove_stale_staging(dest)
        self.dir = Path(tempfile.mkdtemp(prefix=staging_prefix(dest), dir=dest.parent))
        self._lock = hold_staging(self.dir)

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, *exc) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)
        release(self._lock)
        self._lock = None

    def write_golden(self, arrays: dict[str, np.ndarray]) -> None:
        with open(self.dir / GOLDEN, "wb") as fh:
            np.savez(fh, **arrays)

    def write_manifest(self, manifest: dict) -> None:
        files = {}
        for entry in sorted(self.dir.rglob("*")):
            if entry.is_file() and entry.name != MANIFEST:
                rel = entry.relative_to(self.dir).as_posix()
                files[rel] = {"sha256": sha256_file(entry), "bytes": entry.stat().st_size}
        manifest = {**manifest, "files": files}
        (self.dir / MANIFEST).write_text(json.dumps(manifest, indent=2, sort_keys=False) + "\n")

    def publish(self, force: bool, dest: Path | None = None) -> None:
        """Rename the staging directory to ``dest`` (default: the destination it was staged for)."""
        umask = os.umask(0)
        os.umask(umask)
        for entry in self.dir.rglob("*"):
            if entry.is_file():
                with open(entry, "rb") as fh:
                    os.fsync(fh.fileno())
                os.chmod(entry, 0o666 & ~umask)  # writers such as onnx's external data use 0600
        os.chmod(self.dir, 0o777 & ~umask)
        dest = dest or self.dest
        check_destination(dest, force)
        if dest.exists():
            old = Path(tempfile.mkdtemp(prefix=old_prefix(dest), dir=dest.parent))  # collected if killed here
            os.rmdir(old)
            os.replace(dest, old)
            os.replace(self.dir, dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.dir, dest)
