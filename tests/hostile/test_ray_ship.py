"""Security III, beyond one machine: what ``bridge check --executor ray --ray-address`` ships.

The config's directory goes to the cluster as Ray's ``working_dir``, and Ray's packer follows symbolic
links: a link to an outside directory, or ``loop -> .``, would be packed and shipped. bridge walks the
tree first (bridge/check/ship.py) and refuses, before ``ray.init`` (exit 2, naming the link), any link
that leaves the tree or loops, and a package over Ray's limit. Tried against a real Ray cluster this
module starts (``ray start --head`` on a free port, with its own temp dir, stopped at the end), not
only Ray's in-process local mode: a tree with links that stay inside, and a link out of it that
.rayignore leaves out, still runs there.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from conftest import run_cli
from ray_head import RAY_ENV, ray_head

from bridge.check.ship import check_shipped_tree
from bridge.errors import UsageError
from hostile.common import assert_exit

HAS_RAY = importlib.util.find_spec("ray") is not None
pytestmark = pytest.mark.skipif(not HAS_RAY, reason="ray is not installed (pip install 'bridge-onnx[ray]')")
CONFIG = 'workdir = "work"\n\n[[models]]\nname = "bad"\nsource = "notmodel.py:build"\n'


@pytest.fixture(scope="module")
def cluster():
    """A one-node cluster, as `ray start --head` makes it, with its own (short: Ray's sockets live there)
    temp dir; its address. Stopped, and its temp dir removed, at the end."""
    temp = tempfile.mkdtemp(prefix="br", dir="/tmp")
    try:
        with ray_head(Path(temp) / "head.log", temp) as address:
            yield address
    finally:
        shutil.rmtree(temp, ignore_errors=True)


def _project(tmp_path: Path) -> Path:
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "notmodel.py").write_text("def build():\n    return 42\n")
    (proj / "bridge.toml").write_text(CONFIG)
    (proj / "data").mkdir()
    (proj / "data" / "a.bin").write_bytes(b"a" * 100)
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("not for the cluster\n")
    return proj


def _check(proj: Path, address: str, env: dict | None = None):
    return run_cli(
        "check",
        "--config",
        proj / "bridge.toml",
        "--executor",
        "ray",
        "--ray-address",
        address,
        "--no-progress",
        env={**RAY_ENV, **(env or {})},
        timeout=300,
    )


@pytest.mark.parametrize(
    "link,target,named",
    [
        ("data/escape", "../../outside", "leads outside it"),  # a directory outside the tree
        ("secret", "../outside/secret.txt", "leads outside it"),  # a file outside the tree
        ("loop", ".", "loops back to the top of the tree"),
        ("data/up", "..", "loops back to the top of the tree"),
        ("data/self", ".", "loops back to data"),
    ],
)
def test_links_out_of_the_tree_or_looping_are_refused_before_ray_starts(tmp_path, cluster, link, target, named):
    proj = _project(tmp_path)
    os.symlink(target, proj / link)
    start = time.monotonic()
    res = _check(proj, cluster)
    line = assert_exit(res, 2, "usage", f"cannot ship {proj} to the Ray workers", f"symbolic link {link}", named)
    assert "--ray-shared-fs" in res.stderr and ".rayignore" in res.stderr, res.stderr
    assert time.monotonic() - start < 60, line  # refused before anything was packed or sent
    assert not (proj / "work").exists() or list((proj / "work").iterdir()) == []  # no model ran


def test_indirect_loop_is_refused(tmp_path):
    proj = _project(tmp_path)
    (proj / "b").mkdir()
    os.symlink("../b", proj / "data" / "to_b")
    os.symlink("../data", proj / "b" / "to_data")
    with pytest.raises(UsageError, match="loops back to"):
        check_shipped_tree(proj)


def test_a_package_over_rays_limit_is_refused_with_the_largest_files(tmp_path, cluster):
    proj = _project(tmp_path)
    (proj / "data" / "big.bin").write_bytes(os.urandom(3_000_000))
    res = _check(proj, cluster, env={"RAY_max_grpc_message_size": "2500000"})  # Ray's 512 MiB limit, made small
    assert_exit(res, 2, "usage", f"cannot ship {proj} to the Ray workers", "exceeds its limit", "data/big.bin")
    os.symlink("big.bin", proj / "data" / "again.bin")  # a link inside the tree is packed twice: counted twice
    (proj / "data" / "big.bin").write_bytes(os.urandom(1_500_000))
    res = _check(proj, cluster, env={"RAY_max_grpc_message_size": "2500000"})
    assert_exit(res, 2, "usage", "exceeds its limit")


def test_links_inside_the_tree_and_ignored_links_still_run_on_the_cluster(tmp_path, cluster):
    proj = _project(tmp_path)
    os.symlink("data", proj / "data_again")  # a sibling directory: stays inside
    os.symlink("notmodel.py", proj / "alias.py")
    os.symlink("../outside", proj / "ignored_escape")
    (proj / ".rayignore").write_text("ignored_escape\n")  # Ray leaves it out, so bridge does too
    shipped = check_shipped_tree(proj, ["/work"])
    assert sorted(shipped.links) == ["alias.py", "data_again"] and shipped.bytes >= 200
    res = _check(proj, cluster)
    assert res.returncode == 1, res.stdout + res.stderr  # the model fails on the cluster, as it is written to
    assert "bad: FAIL" in res.stdout and "cannot ship" not in res.stderr, res.stdout + res.stderr
    assert (proj / "work" / "bad.export.log").is_file()  # its log came back from the node
