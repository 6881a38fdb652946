"""The command line as a new user meets it: no option eats the TARGET, no prefix is another option,
bench has its own help, inspect reads like text, usage errors come before any work."""

import json

import numpy as np
import pytest
from conftest import run_cli
from hostile.build import pair_bundle


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    base = tmp_path_factory.mktemp("cli_args")
    return pair_bundle(
        base / "bundle", {"y": np.array([1.0, 2.0], np.float32)}, {"y": np.array([1.0, 2.0], np.float32)}
    )


def test_a_tolerance_before_the_target_does_not_eat_it(bundle, tmp_path):
    res = run_cli("verify", "--atol", "1e-5", "y:1e-4", bundle, "--json", tmp_path / "r.json")
    assert res.returncode == 0, res.stdout + res.stderr
    policy = json.loads((tmp_path / "r.json").read_text())["policy"]
    assert policy["atol"] == 1e-5 and policy["outputs"] == {"y": {"atol": 1e-4}}


def test_no_option_is_taken_by_its_prefix(bundle):
    res = run_cli("verify", bundle, "--inp", "x.npz")
    assert res.returncode == 2 and "unrecognized arguments: --inp" in res.stderr


def test_bench_has_its_own_help():
    res = run_cli("bench", "--help")
    assert res.returncode == 0
    assert "--latency-runs" in res.stdout and "--localize" not in res.stdout and "--labels" not in res.stdout


@pytest.mark.parametrize(
    "args, fragment",
    [
        (("--input", "x:float32[batch,"), "cannot parse input spec"),
        (("--input-range", "x=1:0"), "empty input range"),
        (("--dim", "batch=0"), "dimension size"),
        (("--input-kind", "x=mask2"), "input kind"),
        (("--atol", "fast"), "not a number"),
    ],
)
def test_malformed_options_are_usage_errors_before_any_work(bundle, args, fragment):
    res = run_cli("verify", bundle, "--source", "nowhere.py:build", *args)
    assert res.returncode == 2, res.stderr
    assert fragment in res.stderr and res.stdout == ""


def test_inspect_reads_as_text_and_writes_json(bundle, tmp_path):
    res = run_cli("inspect", bundle, "--json", tmp_path / "i.json")
    assert res.returncode == 0, res.stderr
    assert "inputs:    x:float32[1]" in res.stdout and "{'" not in res.stdout and "None" not in res.stdout
    assert json.loads((tmp_path / "i.json").read_text())["inputs"][0]["name"] == "x"


def test_missing_output_directories_are_created(bundle, tmp_path):
    report = tmp_path / "reports" / "deep" / "r.json"
    res = run_cli("verify", bundle, "--json", report, "--markdown", tmp_path / "md" / "r.md")
    assert res.returncode == 0, res.stderr
    assert json.loads(report.read_text())["passed"] and (tmp_path / "md" / "r.md").is_file()
