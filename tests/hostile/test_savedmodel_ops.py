"""Untrusted SavedModels hold only allowlisted ops (bridge/frameworks/savedmodel_ops.py).

Each hostile SavedModel of build_savedmodel.py goes through the real CLI: exit 6, one line naming
the op and where it is, no payload side effect, nothing written; a clean one exports. The check
function itself runs in a subprocess (TensorFlow is never imported into pytest) over every built
model, and the same subprocess shows that the `live_*` payloads do write their files when
TensorFlow loads or runs them: the refusals are about payloads that work.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, needs_tf

from hostile.common import (
    Call,
    assert_empty,
    assert_exit,
    assert_no_marker,
    assert_verdict,
    case_dirs,
    run_many,
    snapshot,
)

BUILD = Path(__file__).resolve().parent / "build_savedmodel.py"

REFUSED = {  # case -> (model, op the message names, where the message says it is)
    "debugidentity_file_url": ("sm_debugidentity", "DebugIdentity", "function __inference_serve"),
    "savev2_in_resource_initializer": ("sm_init_savev2", "SaveV2", "function __inference__initializer"),
    "decodeproto_descriptor_source": ("sm_decodeproto", "DecodeProtoV2", "function __inference_serve"),
    "harmless_op_not_on_allowlist": ("sm_unlisted", "Lgamma", "function __inference_serve"),
}
CONTROL = "sm_clean"

CHECKPOINT = {"SaveV2", "MergeV2Checkpoints", "ShardedFilename", "StringJoin", "StaticRegexFullMatch"}
FINDINGS = {  # model -> {op: where it must be found (a prefix)}
    "sm_debugidentity": {"DebugIdentity": "function __inference_serve"},
    "sm_init_savev2": {"SaveV2": "function __inference__initializer"},
    "sm_decodeproto": {"DecodeProtoV2": "function __inference_serve"},
    "sm_encodeproto": {"EncodeProto": "function __inference_serve", "StringLength": "function __inference_serve"},
    "sm_unlisted": {"Lgamma": "function __inference_serve"},
    "pb_top_debugidentity": {"DebugIdentity": "top-level graph"},
    "pb_call_writefile": {"WriteFile": "function __inference_serve"},
    "pb_attr_debug_urls": {"Identity[_debug_urls]": "function __inference_serve"},
    "pb_init_runs_saver": {op: "function __inference__traced_save" for op in CHECKPOINT | {"DisableCopyOnRead"}},
    "tf1_restore_foreign": {"RestoreV2": "top-level graph"},
    "tf1_init_runs_save": {op: "top-level graph" for op in CHECKPOINT},
    "sm_clean": {},
    "sm_table": {},
    "tf1_clean": {},
}

# Runs in a subprocess: the check over every built model, facts about the allowlist, and the
# payloads of the live_* models run by TensorFlow itself.
CHECK = r"""
import json, os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from bridge.errors import BridgeError
from bridge.frameworks import savedmodel_ops as so

files, marks = sys.argv[1], sys.argv[2]
out = {"models": {}}
for name in sorted(os.listdir(files)):
    try:
        found = so.savedmodel_findings(so.read_savedmodel(os.path.join(files, name)))
        out["models"][name] = {"findings": {op: sorted(w) for op, w in found.items()}}
    except BridgeError as exc:
        out["models"][name] = {"error": type(exc).__name__, "message": str(exc)}
    try:
        so.check_savedmodel(os.path.join(files, name))
        out["models"][name]["refusal"] = None
    except BridgeError as exc:
        out["models"][name]["refusal"] = [type(exc).__name__, exc.exit_code, str(exc)]
allowed = so.allowed_ops()
out["allowed"] = sorted(allowed)
out["loading"] = sorted(so.LOADING_OPS)
out["checkpoint"] = sorted(so.CHECKPOINT_OPS)
out["io"] = sorted(so.IO_OPS)
import tensorflow as tf
tf.saved_model.load(os.path.join(files, "live_sm_init_savev2"))
out["after_load"] = sorted(os.listdir(marks))
live = tf.saved_model.load(os.path.join(files, "live_sm_debugidentity"))
live.signatures["serving_default"](x=tf.ones([2, 4]))
out["after_run"] = sorted(os.listdir(marks))
print(json.dumps(out))
"""


def _env():
    return {**os.environ, "PYTHONPATH": str(ROOT), "TF_CPP_MIN_LOG_LEVEL": "3"}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("savedmodel_ops")
    files, marks = base / "files", base / "marks"
    marks.mkdir()
    res = subprocess.run(
        [sys.executable, str(BUILD), str(files), str(marks)],
        cwd=base,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert list(marks.iterdir()) == [], "a payload ran while it was built"
    return base, files, marks


@pytest.fixture(scope="module")
def runs(built):
    """The CLI calls and the check subprocess, run side by side."""
    base, files, marks = built
    before = snapshot(files)
    check = subprocess.Popen(
        [sys.executable, "-c", CHECK, str(files), str(marks)],
        cwd=base,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    calls, dirs = {}, {}
    for name, (model, _, _) in {**REFUSED, "control": (CONTROL, None, None)}.items():
        out, cwd = dirs[name] = case_dirs(base / "cli", name)
        calls[name] = Call(("export", files / model, "-o", out / "bundle"), cwd)
    results = run_many(calls)
    stdout, stderr = check.communicate(timeout=300)
    assert check.returncode == 0, stdout[-3000:] + stderr[-3000:]
    return results, dirs, before, json.loads(stdout.strip().splitlines()[-1])


# -- through the CLI ---------------------------------------------------------------------------------------


@needs_tf
@pytest.mark.parametrize("name", sorted(REFUSED))
def test_hostile_savedmodel_is_refused(built, runs, name):
    _, files, marks = built
    results, dirs, before, _ = runs
    model, op, where = REFUSED[name]
    assert_no_marker(marks, model)
    assert_exit(results[name], 6, "refused", op, where)
    assert "  hint: " in results[name].stderr and "--trust-code" in results[name].stderr
    assert_empty(*dirs[name])
    assert snapshot(files) == before  # the hostile files themselves are left as they were


@needs_tf
def test_clean_savedmodel_exports(runs):
    """Its saver holds SaveV2, RestoreV2, MergeV2Checkpoints: allowed there, so it exports."""
    results, dirs, _, _ = runs
    assert_verdict(results["control"], 0)
    out, cwd = dirs["control"]
    assert sorted(p.name for p in (out / "bundle").iterdir()) == ["golden.npz", "manifest.json", "model.onnx"]
    assert_empty(cwd)


# -- the check function ------------------------------------------------------------------------------------


@needs_tf
@pytest.mark.parametrize("model", sorted(FINDINGS))
def test_check_finds_exactly_the_ops_outside_the_allowlist(runs, model):
    checked = runs[3]["models"][model]
    found = checked["findings"]
    assert sorted(found) == sorted(FINDINGS[model]), found
    for op, where in FINDINGS[model].items():
        assert any(w.startswith(where) for w in found[op]), (op, found[op])
    if FINDINGS[model]:
        kind, code, message = checked["refusal"]
        assert (kind, code) == ("SecurityRefusal", 6)
        assert "\n" not in message and all(op.split("[")[0] in message for op in FINDINGS[model]), message
    else:
        assert checked["refusal"] is None


@needs_tf
def test_unparseable_saved_model_pb_is_bad_input(runs):
    checked = runs[3]["models"]["pb_garbage"]
    assert checked["error"] == "InputError" and "saved_model.pb" in checked["message"], checked
    assert checked["refusal"][:2] == ["InputError", 2]


@needs_tf
def test_allowlist_is_derived_and_excludes_io(runs):
    facts = runs[3]
    allowed = set(facts["allowed"])
    assert len(allowed) > 200  # tf2onnx's registry, not a hand list
    assert {"Conv2D", "MatMul", "Relu", "FusedBatchNormV3", "DepthwiseConv2dNative"} <= allowed
    assert set(facts["loading"]) <= allowed  # none of the loading ops was filtered out
    assert not allowed & set(facts["checkpoint"])
    assert not allowed & set(facts["io"])
    assert not {op for op in allowed if any(w in op for w in ("File", "Debug", "Print", "Proto", "Dataset", "Py"))}


@needs_tf
def test_payloads_are_live_when_tensorflow_runs_them(runs):
    """Without bridge's check, loading writes the initializer's checkpoint and running writes the debug dump."""
    facts = runs[3]
    assert any(n.startswith("live_sm_init_savev2") for n in facts["after_load"]), facts["after_load"]
    assert "live_sm_debugidentity" in facts["after_run"], facts["after_run"]
