"""Bad input gets one clear line, a documented exit code, and leaves nothing behind."""

import os

import pytest
from conftest import FIXTURES, needs_torch, run_cli


def _one_line_error(res):
    from bridge.progress import is_stage_line

    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not is_stage_line(ln)]
    assert lines and lines[0].startswith("bridge: "), res.stderr
    assert "Traceback" not in res.stderr
    return lines[0]


def test_random_bytes_source_exit_2_no_bundle(tmp_path):
    for name in ("garbage.bin", "garbage.keras", "garbage.pt2"):
        src = tmp_path / name
        src.write_bytes(os.urandom(4096))
        res = run_cli("export", src, "-o", tmp_path / f"out_{name}")
        assert res.returncode == 2, (name, res.stdout, res.stderr)
        _one_line_error(res)
        assert not (tmp_path / f"out_{name}").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["garbage.bin", "garbage.keras", "garbage.pt2"]


def test_random_bytes_onnx_target_exit_2(tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(os.urandom(2048))
    res = run_cli("verify", bad, "--source", f"{FIXTURES / 'torch_models.py'}:zeros")
    assert res.returncode == 2
    assert "onnx" in _one_line_error(res).lower()


def test_missing_source_and_target(tmp_path):
    res = run_cli("export", tmp_path / "nope.py:build", "-o", tmp_path / "o")
    assert res.returncode == 2 and "does not exist" in _one_line_error(res)
    res = run_cli("verify", tmp_path / "nope")
    assert res.returncode == 2


def test_bad_input_spec_exit_2(tmp_path):
    res = run_cli("export", f"{FIXTURES / 'torch_models.py'}:zeros", "-o", tmp_path / "o", "--input", "x:float99[2]")
    assert res.returncode == 2 and "dtype" in _one_line_error(res)


def test_existing_non_bundle_directory_is_not_touched(tmp_path):
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    res = run_cli(
        "export", f"{FIXTURES / 'torch_models.py'}:zeros", "-o", dest, "--input", "x:float32[batch,4]", "--force"
    )
    assert res.returncode == 2 and "not a bundle" in _one_line_error(res)
    assert (dest / "keep.txt").read_text() == "mine"


@needs_torch
def test_cuda_without_gpu_is_environment_error(tmp_path):
    if os.path.exists("/dev/nvidia0"):
        pytest.skip("a GPU is present")
    out = tmp_path / "b"
    src = f"{FIXTURES / 'torch_models.py'}:tuple_outputs"
    assert run_cli("export", src, "-o", out, "--input", "x:float32[batch,4]").returncode == 0
    res = run_cli("verify", out, "--device", "cuda")
    assert res.returncode == 4, res.stdout + res.stderr
    assert "cuda" in _one_line_error(res).lower()
