"""What a newcomer's own models met before the search and the verifier's terms: a branch on a size the
sweep never reached, a traced data-dependent branch, inputs reaching torch.onnx.export by position, an
unseeded factory, detections returned as a tuple; and the reports saying how far each axis was taken,
what the search did and which terms came from where."""

from __future__ import annotations

import json

import pytest
from conftest import FIXTURES, needs_torch, run_cli, without_stages

M = FIXTURES / "verdict_models.py"


def _json(path):
    return json.loads(path.read_text())


@needs_torch
def test_a_branch_on_a_size_the_old_sweep_never_reached_fails(tmp_path):
    res = run_cli("export", f"{M}:size_branch", "-o", tmp_path / "b", "--json", tmp_path / "e.json", "--quiet")
    report = _json(tmp_path / "e.json")
    assert res.returncode != 0, res.stdout
    # every route wrote a graph wrong past length 16; the sweep reaches 17 and 64 (bridge's default largest)
    assert report["status"] in ("fail", "inconclusive")
    largest = report["plan"]["largest"]["seq"]
    assert largest["size"] >= 17 and "default" in largest["from"]
    assert not (tmp_path / "b").exists()  # nothing published


@needs_torch
def test_a_graph_traced_through_a_data_dependent_branch_never_passes(tmp_path):
    res = run_cli("export", f"{M}:value_branch", "-o", tmp_path / "b", "--json", tmp_path / "e.json", "--quiet")
    report = _json(tmp_path / "e.json")
    assert res.returncode in (1, 3), res.stdout + res.stderr
    text = json.dumps(report)
    # the search's shifted means reach both sides of `x.mean() > 0` (a failure), or the trace is named
    assert report["status"] == "fail" or "verdict_models.py" in report["reason"], report["reason"]
    assert "torch.onnx.torchscript" in text


@needs_torch
def test_inputs_reach_the_exporter_by_name(tmp_path):
    pytest.importorskip("transformers")
    res = run_cli("export", f"{M}:bert", "-o", tmp_path / "b", "--json", tmp_path / "e.json", "--quiet")
    assert res.returncode == 0, res.stdout + without_stages(res.stderr)
    report = _json(tmp_path / "e.json")
    assert report["exporter"]["settings"]["inputs_bound"] == "by name"
    # the position table bounds the sequence axis: the plan goes up to it
    assert report["plan"]["largest"]["seq"]["size"] == 64 and "position" in report["plan"]["largest"]["seq"]["from"]


@needs_torch
def test_an_unseeded_factory_is_stopped_with_what_to_do(tmp_path):
    res = run_cli("export", f"{FIXTURES / 'unseeded_models.py'}:unseeded", "-o", tmp_path / "b", "--quiet")
    assert res.returncode == 2, res.stdout + res.stderr
    err = without_stages(res.stderr)
    assert "different weights on each call" in err and "seed it" in err and "--weights" in err
    ok = run_cli("export", f"{FIXTURES / 'seeded_at_import.py'}:build", "-o", tmp_path / "s", "--quiet")
    assert ok.returncode == 0, ok.stdout + ok.stderr  # a module that seeds at import is deterministic


@needs_torch
def test_detections_returned_as_a_tuple_are_compared_as_sets(tmp_path):
    res = run_cli("export", f"{M}:tuple_detector", "-o", tmp_path / "b", "--json", tmp_path / "e.json", "--quiet")
    report = _json(tmp_path / "e.json")
    names = {o["name"] for o in report["outputs"]}
    assert "detections(output_0, output_1, output_2)" in names, names
    assert res.returncode in (0, 3), res.stdout  # tied scores: order-free comparison, never a rank failure


@needs_torch
def test_reports_state_the_search_and_where_terms_came_from(tmp_path):
    src = f"{M}:value_branch"
    bundle = tmp_path / "lin"
    res = run_cli(
        "export", f"{FIXTURES / 'seeded_at_import.py'}:build", "-o", bundle, "--quiet", "--input-range", "x=-1:1"
    )
    assert res.returncode == 0, res.stderr
    del src
    res = run_cli(
        "verify",
        bundle,
        "--source",
        f"{FIXTURES / 'seeded_at_import.py'}:build",
        "--json",
        tmp_path / "v.json",
        "--quiet",
        "--search",
        "64",
    )
    assert res.returncode == 0, res.stdout + res.stderr
    report = _json(tmp_path / "v.json")
    assert report["plan"]["search"]["rows"] == 64 and report["plan"]["search"]["budget"]["rows"] == 64
    assert any(c.get("search") for c in report["cases"])
    # the range was the export's: only the bundle declares it now, and the verdict line says so
    assert report["check"]["terms_from_artifact"] == ["the range of x (-1:1)"]
    assert "terms from the artifact under test" in res.stdout
    strict = run_cli(
        "verify",
        bundle,
        "--source",
        f"{FIXTURES / 'seeded_at_import.py'}:build",
        "--strict-terms",
        "--json",
        tmp_path / "s.json",
        "--quiet",
    )
    assert strict.returncode == 0, strict.stdout
    assert "terms_from_artifact" not in _json(tmp_path / "s.json")["check"]
    assert any("not used (strict terms" in n for n in _json(tmp_path / "s.json")["notes"])
