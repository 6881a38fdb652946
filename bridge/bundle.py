"""The bundle: model.onnx (+ external data), manifest.json, golden.npz. Hashes and atomic publishing.

A bundle is written into a staging directory next to the destination and renamed into place, so a
failed or killed export leaves either the old state or the complete new bundle. Readers check the
sha256 of every file against the manifest before anything else.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge.errors import BundleError, UsageError
from bridge.types import DTYPES, Case, TensorSpec

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
        return read_golden(self.path / GOLDEN, self.cases, [s.name for s in self.inputs], [s.name for s in self.outputs])


def is_bundle(path: Path) -> bool:
    return path.is_dir() and (path / MANIFEST).is_file()


def open_bundle(path: str | Path) -> Bundle:
    """Read the manifest and check every file's sha256. Refuses symlinks and unlisted files."""
    path = Path(path)
    if path.is_symlink():
        raise BundleError(f"bundle {path} is a symlink; refusing to follow it")
    mpath = path / MANIFEST
    try:
        manifest = json.loads(mpath.read_text())
    except FileNotFoundError:
        raise BundleError(f"{path} is not a bundle: it has no {MANIFEST}", hint="create one with 'bridge export'") from None
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot read {mpath}: {exc}") from None
    if not isinstance(manifest, dict) or manifest.get("schema_version") != SCHEMA_VERSION:
        raise BundleError(
            f"{mpath} has schema_version {manifest.get('schema_version') if isinstance(manifest, dict) else None!r}, "
            f"this bridge reads {SCHEMA_VERSION}", hint="re-export the model with this version of bridge")
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
        raise BundleError(f"bundle {path} holds files its manifest does not list: {', '.join(unlisted)}",
                          hint="a bundle is only what bridge export wrote; remove the extra files or re-export")
    for rel, info in files.items():
        fpath = path / rel
        if rel not in present:
            raise BundleError(f"bundle file {rel} is missing from {path}")
        digest = sha256_file(fpath)
        if digest != info.get("sha256"):
            raise BundleError(
                f"bundle file {rel} was changed: sha256 {digest[:16]}… does not match the manifest's "
                f"{str(info.get('sha256'))[:16]}…",
                hint="the file is not the one that was verified; re-export or restore it")
    return Bundle(path, manifest)


def _validate_manifest(m: dict, mpath: Path) -> None:
    """Structure and types of every entry bridge reads, before anything is read from disk."""
    def bad(what: str) -> BundleError:
        return BundleError(f"{mpath}: {what}", hint="the manifest is damaged; re-export the bundle")

    for key in ("model", "inputs", "outputs", "cases", "files"):
        if key not in m:
            raise bad(f"lacks the {key!r} entry")
    files = m["files"]
    if not isinstance(files, dict) or not all(isinstance(v, dict) and isinstance(v.get("sha256"), str)
                                              for v in files.values()):
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
        if not isinstance(specs, list) or not all(
                isinstance(d, dict) and isinstance(d.get("name"), str) and d.get("dtype") in DTYPES
                and isinstance(d.get("dims"), list) and all(isinstance(x, (int, str)) and not isinstance(x, bool)
                                                            for x in d["dims"])
                and (d.get("range") is None or (isinstance(d["range"], list) and len(d["range"]) == 2
                                                and all(isinstance(x, (int, float)) for x in d["range"])))
                for d in specs):
            raise bad(f"'{key}' must be a list of {{name, dtype, dims[, range]}}")
    cases = m["cases"]
    if not isinstance(cases, list) or not cases or not all(
            isinstance(c, dict) and isinstance(c.get("label"), str) and c["label"] and "/" not in c["label"]
            and isinstance(c.get("sizes", {}), dict)
            and all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in c.get("sizes", {}).values())
            and (c.get("seed") is None or (isinstance(c["seed"], int) and not isinstance(c["seed"], bool)))
            for c in cases):
        raise bad("'cases' must be a non-empty list of {label, seed, sizes}")


# -- writing ----------------------------------------------------------------------------------------

def check_destination(dest: Path, force: bool) -> None:
    """Before any work: refuse symlinks, non-bundle directories, and existing bundles without --force."""
    if dest.is_symlink():
        raise UsageError(f"output {dest} is a symlink; refusing to write through it", hint="choose a real directory path")
    if dest.exists():
        if not dest.is_dir():
            raise UsageError(f"output {dest} exists and is not a directory")
        if not is_bundle(dest):
            if any(dest.iterdir()):
                raise UsageError(f"output {dest} is an existing directory that is not a bundle; refusing to replace it",
                                 hint="choose a new path")
        elif not force:
            raise UsageError(f"output {dest} already holds a bundle", hint="pass --force to replace it")
    if not dest.parent.exists():
        raise UsageError(f"the parent directory of {dest} does not exist")


def _remove_stale_staging(dest: Path) -> None:
    prefix = f".{dest.name}.staging-"
    try:
        entries = list(dest.parent.iterdir())
    except OSError:
        return
    for entry in entries:
        if not entry.name.startswith(prefix) or entry.is_symlink() or not entry.is_dir():
            continue
        pid = entry.name[len(prefix):].split("-", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(entry, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Staging:
    """A temporary directory next to ``dest``; ``publish`` renames it into place atomically.

    Its name carries the writer's pid, so that staging left by a killed writer is removed by the
    next export to the same destination."""

    def __init__(self, dest: Path):
        self.dest = dest
        _remove_stale_staging(dest)
        self.dir = Path(tempfile.mkdtemp(prefix=f".{dest.name}.staging-{os.getpid()}-", dir=dest.parent))

    def __enter__(self) -> "Staging":
        return self

    def __exit__(self, *exc) -> None:
        if self.dir.exists():
            shutil.rmtree(self.dir, ignore_errors=True)

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

    def publish(self, force: bool) -> None:
        umask = os.umask(0)
        os.umask(umask)
        for entry in self.dir.rglob("*"):
            if entry.is_file():
                with open(entry, "rb") as fh:
                    os.fsync(fh.fileno())
                os.chmod(entry, 0o666 & ~umask)  # writers such as onnx's external data use 0600
        os.chmod(self.dir, 0o777 & ~umask)
        check_destination(self.dest, force)
        if self.dest.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{self.dest.name}.old-", dir=self.dest.parent))
            os.rmdir(old)
            os.replace(self.dest, old)
            os.replace(self.dir, self.dest)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(self.dir, self.dest)
