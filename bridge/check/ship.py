"""What ``bridge check --executor ray --ray-address ADDR`` ships to the cluster, checked before ``ray.init``.

Without ``--ray-shared-fs`` the config's directory goes to the workers as Ray's ``working_dir``. Ray's
packer walks it following symbolic links: a link to a directory outside the tree (``data ->
/home/me``) packs and ships that directory to every node of the cluster, and a link that loops
(``loop -> .``) is followed until the path is too long. The tree is walked here first, the way Ray
walks it (its default excludes, ``.gitignore`` unless ``RAY_RUNTIME_ENV_IGNORE_GITIGNORE=1``,
``.rayignore``, the excludes bridge adds) but without following any link, and refused (exit 2, naming
the link) when:

- a symbolic link leads outside the tree, or to something that does not exist inside it only by a
  path outside it (its resolved target is what counts);
- a link to a directory leads to that directory itself or to one of its parents (a loop, however
  indirect: every directory entered is checked against those it was entered from);
- what would be packed exceeds Ray's limit on a package (512 MiB unless ``RAY_max_grpc_message_size``
  sets another), counting each file as many times as links make Ray pack it, or the walk meets more
  than ``MAX_ENTRIES`` entries (a tree that large is not a project directory).

Links that stay inside the tree (a file link, a link to a sibling directory) are allowed: Ray packs
their target's contents, which the size counts. A dangling link is skipped, as Ray skips it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

from bridge.errors import UsageError

MAX_ENTRIES = 200_000
DEFAULT_LIMIT = 512 << 20  # Ray's GCS_STORAGE_MAX_SIZE without RAY_max_grpc_message_size
SHIP_HINT = (
    "list what the workers do not need in .rayignore (or .gitignore) and let prepare commands make it on the "
    "nodes, or put the directory on a filesystem every node mounts and pass --ray-shared-fs (docs/ci.md)"
)


@dataclass
class Shipped:
    """What Ray would pack: bytes, files, and the links followed (all inside the tree)."""

    root: Path
    bytes: int = 0
    files: int = 0
    entries: int = 0
    links: list = field(default_factory=list)
    largest: list = field(default_factory=list)  # (bytes, relative path), the few largest


def limit() -> int:
    """Ray's limit on one package, as Ray reads it."""
    try:
        return int(os.environ.get("RAY_max_grpc_message_size", DEFAULT_LIMIT))
    except ValueError:
        return DEFAULT_LIMIT


def _ray_matchers(root: Path, excludes: list[str]):
    """Ray's own exclusion functions: (the root's excludes, per-directory .gitignore/.rayignore reader),
    or a plain fallback when Ray's internals are not where this version of bridge expects them."""
    include_gitignore = os.environ.get("RAY_RUNTIME_ENV_IGNORE_GITIGNORE", "0") != "1"
    try:
        import logging

        from ray._private import ray_constants
        from ray._private.runtime_env.packaging import _get_excludes, get_excludes_from_ignore_files

        quiet = logging.getLogger("bridge.check.ship")  # Ray logs each ignore file it reads at INFO
        quiet.setLevel(logging.WARNING)
        defaults = list(ray_constants.get_runtime_env_default_excludes())
        base = [_get_excludes(root, defaults + list(excludes))]

        def per_dir(path: Path):
            return get_excludes_from_ignore_files(path, include_gitignore=include_gitignore, logger=quiet)

        return base, per_dir
    except Exception:  # noqa: BLE001 - Ray moved its helpers: exclude nothing but bridge's own (stricter)
        names = {e.strip("/") for e in excludes}

        def match(p: Path) -> bool:
            try:
                return p.absolute().relative_to(root).as_posix() in names
            except ValueError:
                return False

        return [match], lambda path: []


def check_shipped_tree(root: str | Path, excludes: list[str] | None = None) -> Shipped:
    """Walk ``root`` as Ray's packer would and refuse it (UsageError) for the reasons in the module's doc."""
    root = Path(root).absolute()
    real_root = root.resolve()
    excluded, per_dir = _ray_matchers(root, excludes or [])
    shipped = Shipped(root)
    cap = limit()

    def rel(p: Path) -> str:
        try:
            return p.relative_to(root).as_posix()
        except ValueError:
            return str(p)

    def refuse_link(link: Path, why: str) -> None:
        raise UsageError(
            f"cannot ship {root} to the Ray workers: the symbolic link {rel(link)} {why}; Ray's packer follows "
            "links and would pack it",
            hint="remove the link or list it in .rayignore; to share a directory outside the config's, put both on "
            "a filesystem every node mounts and pass --ray-shared-fs",
        )

    def walk(path: Path, chain: tuple, matchers: list) -> None:
        """``path``: as Ray names it (under root, through links); ``chain``: the real directories the walk
        entered to reach it, outermost first; ``matchers``: the exclusion functions in force."""
        shipped.entries += 1
        if shipped.entries > MAX_ENTRIES:
            raise UsageError(
                f"cannot ship {root} to the Ray workers: it holds more than {MAX_ENTRIES} files and directories",
                hint=SHIP_HINT,
            )
        try:
            st = os.lstat(path)
        except OSError:
            return
        active = matchers + (list(per_dir(path)) if stat.S_ISDIR(st.st_mode) else [])
        if any(m(path) for m in active):
            return
        if stat.S_ISLNK(st.st_mode):
            target = Path(os.path.realpath(path))
            if target != real_root and real_root not in target.parents:
                refuse_link(path, f"leads outside it (to {target})")
            try:
                st = os.stat(path)
            except OSError:
                return  # dangling inside the tree: Ray skips it
            if stat.S_ISDIR(st.st_mode) and target in chain:
                where = "the top of the tree" if target == real_root else rel(root / target.relative_to(real_root))
                refuse_link(path, f"loops back to {where}, which contains it")
            shipped.links.append(rel(path))
            if stat.S_ISDIR(st.st_mode):
                active = matchers + list(per_dir(path))
        if stat.S_ISDIR(st.st_mode):
            real = Path(os.path.realpath(path))
            try:
                children = sorted(os.listdir(path))
            except OSError:
                return
            for name in children:
                walk(path / name, chain + (real,), active)
        elif stat.S_ISREG(st.st_mode):
            shipped.files += 1
            shipped.bytes += st.st_size
            shipped.largest = sorted([*shipped.largest, (st.st_size, rel(path))], reverse=True)[:3]
            if shipped.bytes >= cap:
                largest = ", ".join(f"{p} ({size / 2**20:.1f} MiB)" for size, p in shipped.largest)
                raise UsageError(
                    f"cannot ship {root} to the Ray workers: what Ray would pack exceeds its limit of "
                    f"{cap / 2**20:.0f} MiB per package (largest files: {largest})",
                    hint=SHIP_HINT,
                )

    walk(root, (), excluded)
    return shipped
