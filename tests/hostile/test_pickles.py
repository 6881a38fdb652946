"""Untrusted .pt2 files run no code: pickles go only through restricted unpicklers, and the strings
of the JSON program that torch would turn into code are checked (bridge/frameworks/pt_pickle.py,
bridge/frameworks/pt_program.py).

* The five pickle bypasses of the former static scan (tests/hostile/build_pickles.py, a-e) through
  the real CLI: exit 6, one line naming the global, no marker, nothing written; --trust-code runs
  the payload (the marker appears), and a legitimate program still exports.
* The program-string cases (symbolic expressions, fx source text, guards, tree specs, opaque and
  torchbind constants, AOTInductor packages), and a hypothesis property over generated pickles, run
  in one subprocess (torch stays out of the pytest process): ``python test_pickles.py check ...``.
"""

from __future__ import annotations

import io
import json
import os
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from conftest import ROOT, needs_torch

from hostile.build_pickles import (
    MARK,
    MEMOIZE,
    NEWOBJ,
    OBJ,
    POP,
    POP_MARK,
    REDUCE,
    STACK_GLOBAL,
    STOP,
    TUPLE,
    global_op,
    inst_op,
    pickle_spans,
    proto,
    replace_zip_member,
    splice_in_front,
    string,
)
from hostile.common import Call, assert_empty, assert_exit, assert_no_marker, assert_verdict, case_dirs, run_many

HERE = Path(__file__).resolve().parent
BUILDER = HERE / "build_pickles.py"

PICKLE_CASES = {  # case -> (file, global named in the refusal, archive member named in the refusal)
    "a_protocol0_pickled_weight": ("a_protocol0_pickled_weight.pt2", "os.system", "data/weights/weight_1"),
    "b_decoy_global_pickled_constant": ("b_decoy_global_pickled_constant.pt2", "os.system", "data/constants/tensor_0"),
    "c_junk_after_reduce": ("c_junk_after_reduce.pt2", "os.system", "data/weights/weight_0"),
    "d_legacy_weights_file": ("d_legacy_weights_file.pt2", "builtins.exec", "data/weights/model.pt"),
    "e_decoy_global_sample_inputs": (
        "e_decoy_global_sample_inputs.pt2",
        "builtins.exec",
        "data/sample_inputs/model.pt",
    ),
}
PROGRAM_CASES = {  # case -> fragment of the refusal (None: loads, and the program's code is not run)
    "p_sympy_expression": "symbolic expression",
    "p_placeholder_name": "input name",
    "p_getattr_target": "attribute target",
    "p_state_name": "state name",
    "p_guards_code": None,
    "p_treespec_import": "tree spec names this:x",
    "p_opaque_object": "opaque_obj_0: pickle names",
    "p_torchbind_object": "torchbind",
    "p_aoti_package": "AOTInductor",
}
EXAMPLES = int(os.environ.get("BRIDGE_PICKLE_EXAMPLES", "150"))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    base = tmp_path_factory.mktemp("pickles")
    files, marks = base / "files", base / "marks"
    marks.mkdir()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run(
        [sys.executable, str(BUILDER), str(files), str(marks)],
        cwd=base,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert list(marks.iterdir()) == [], "a payload ran while it was built"
    return base, files, marks


@pytest.fixture(scope="module")
def cli_runs(built):
    base, files, marks = built
    calls, dirs = {}, {}
    for name, (pt2, _, _) in PICKLE_CASES.items():
        out, cwd = dirs[name] = case_dirs(base, name)
        # the environment variable that flips torch.load's default must not lift the restriction
        env = {"TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD": "1"} if name.startswith("b_") else {}
        calls[name] = Call(("export", files / pt2, "-o", out / "bundle"), cwd, env)
    out, cwd = dirs["trusted"] = case_dirs(base, "trusted")
    calls["trusted"] = Call(
        ("export", files / "t_trusted_sample_inputs.pt2", "-o", out / "bundle", "--trust-code"), cwd
    )
    out, cwd = dirs["legit"] = case_dirs(base, "legit")
    calls["legit"] = Call(("export", files / "good.pt2", "-o", out / "bundle"), cwd)
    return dirs, run_many(calls)


@pytest.fixture(scope="module")
def checked(built):
    """The in-process checks, run once in a subprocess that imports torch."""
    base, files, marks = built
    report = base / "check.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "tests")])}
    res = subprocess.run(
        [sys.executable, __file__, "check", str(files), str(marks), str(report), str(EXAMPLES)],
        cwd=base,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-4000:]
    return json.loads(report.read_text()), marks


@needs_torch
@pytest.mark.parametrize("name", sorted(PICKLE_CASES))
def test_pickle_bypass_is_refused(built, cli_runs, name):
    _, _, marks = built
    dirs, results = cli_runs
    _, global_name, member = PICKLE_CASES[name]
    assert_no_marker(marks, "pickles_" + name[0])
    assert_exit(results[name], 6, "refused", global_name, member)
    assert_empty(*dirs[name])


@needs_torch
def test_trust_code_runs_the_payload(built, cli_runs):
    """--trust-code means the user trusts the file: the archive loads and its payload runs."""
    _, _, marks = built
    _, results = cli_runs
    assert_verdict(results["trusted"], 0)
    assert (marks / "pickles_trusted").exists()


@needs_torch
def test_legitimate_program_still_exports(cli_runs):
    dirs, results = cli_runs
    assert_verdict(results["legit"], 0)
    assert (dirs["legit"][0] / "bundle" / "model.onnx").is_file()


@needs_torch
@pytest.mark.parametrize("name", sorted(PROGRAM_CASES))
def test_program_strings_do_not_run(checked, name):
    report, marks = checked
    result = report["programs"][name]
    assert result["markers"] == [], result
    assert result["imported_this"] is False, result
    if PROGRAM_CASES[name] is None:
        assert result["outcome"] == "ran", result
    else:
        assert result["outcome"] == "refused", result
        assert PROGRAM_CASES[name].lower() in result["message"].lower(), result
        assert "\n" not in result["message"]


@needs_torch
def test_legitimate_programs_load(checked):
    """Plain, buffer-and-constant and torch.cond programs load, unlift and run untrusted."""
    report, _ = checked
    for name in ("good", "good_cond"):
        assert report["programs"][name]["outcome"] == "ran", report["programs"][name]


@needs_torch
def test_callable_graph_arguments_are_refused(checked):
    report, _ = checked
    assert "not a torch operator" in report["operator_args"], report["operator_args"]


@needs_torch
def test_generated_pickles_never_run(checked):
    """Hypothesis property: pickles of protocols 0-5 that reach a marker-writing callable through
    GLOBAL / STACK_GLOBAL / INST / OBJ / REDUCE / NEWOBJ / BUILD, behind memo and decoy tricks, with
    junk after the call or several pickles in a row, raw or inside torch.save zips, legacy streams and
    .pt2 archives, never run through the guarded entry points (while most of them do run unguarded)."""
    report, marks = checked
    prop = report["property"]
    assert prop["failures"] == [], prop["failures"][:5]
    assert prop["cases"] >= EXAMPLES
    assert prop["live"] >= prop["cases"] // 2, prop  # the generator makes working payloads
    assert prop["guarded_markers"] == [], prop


# -- the subprocess: generated pickles and program cases ----------------------------------------------

PAYLOADS = [  # (module, name, kind)
    ("os", "system", "shell"),
    ("posix", "system", "shell"),
    ("builtins", "exec", "python"),
    ("builtins", "eval", "python"),
    ("subprocess", "check_call", "argv"),
    ("__main__", "Touch", "class"),
]
DECOYS = [
    ("torch._utils", "_rebuild_tensor_v2"),
    ("collections", "OrderedDict"),
    ("torch", "Size"),
    ("torch", "FloatStorage"),
]
ENTRIES = [
    "pickle.loads",
    "pickle.load",
    "pickle.Unpickler",
    "pickle._loads",
    "_pickle.loads",
    "bound loads",
    "bound Unpickler",  # bound at import time, before any patch: the audit hook
    "torch.load",
    "torch.load(pickle_module)",
    "torch.serialization.load",
    "bound torch.load",
]
TORCH_ENTRIES = ENTRIES[7:]
_BOUND_LOADS, _BOUND_UNPICKLER = pickle.loads, pickle.Unpickler
_BOUND_TORCH_LOAD: list = []  # torch.load as bound before any patch, set in the subprocess


def payload_args(kind: str, tag: str, p: int) -> bytes:
    """The argument tuple's items (after a MARK) for a callable of ``kind`` writing marker ``tag``."""
    if kind == "shell":
        return string(f'touch "$BRIDGE_PICKLE_MARKS/{tag}"', p)
    if kind == "python":
        return string(f"open(__import__('os').environ['BRIDGE_PICKLE_MARKS'] + '/{tag}', 'w').close()", p)
    if kind == "argv":
        return MARK + b"".join(string(s, p) for s in ("sh", "-c", f'touch "$BRIDGE_PICKLE_MARKS/{tag}"')) + b"l"
    return string(tag, p)


def memo_ops(i: int, p: int, get: bool) -> bytes:
    if p == 0:
        return (b"g" if get else b"p") + str(i).encode() + b"\n"
    return (b"h" if get else b"q") + bytes([i])


def callable_ref(module: str, name: str, p: int, how: str, decoys: list, memo_index: int) -> bytes:
    """Ops that push module.name: GLOBAL, STACK_GLOBAL behind decoys, or names kept in the memo."""
    if how == "global" or p < 2:
        return global_op(module, name)
    decoy_ops = b"".join(string(m, p) + string(n, p) + POP + POP for m, n in decoys)
    marked = MARK + b"".join(string(m, p) + string(n, p) for m, n in decoys) + POP_MARK if decoys else b""
    if how == "stack_global":
        return string(module, p) + string(name, p) + decoy_ops + marked + STACK_GLOBAL
    # memo: store both names (PUT, or MEMOIZE from protocol 4 on), drop them, push decoys, fetch them back
    first, second = (0, 1) if p >= 4 else (memo_index, memo_index + 1)
    store = (lambda i: MEMOIZE) if p >= 4 else (lambda i: memo_ops(i, p, False))
    return (
        string(module, p)
        + store(first)
        + POP
        + string(name, p)
        + store(second)
        + POP
        + decoy_ops
        + marked
        + memo_ops(first, p, True)
        + memo_ops(second, p, True)
        + STACK_GLOBAL
    )


def call_ops(payload, p: int, style: str, how: str, decoys: list, tag: str) -> bytes:
    """Ops that call the payload once and leave one value on the stack."""
    module, name, kind = payload
    args = payload_args(kind, tag, p)
    ref = callable_ref(module, name, p, how, decoys, memo_index=7)
    if style == "inst":
        return MARK + args + inst_op(module, name)
    if style == "obj":
        return MARK + ref + args + OBJ
    if style in ("newobj", "build") and kind == "class" and p >= 2:
        ops = ref + MARK + args + TUPLE + NEWOBJ
        return ops + (b"}" + string("x", p) + string("y", p) + b"s" + b"b" if style == "build" else b"")
    return ref + MARK + args + TUPLE + REDUCE


def strategies():
    from hypothesis import strategies as st

    @st.composite
    def evil(draw):
        p = draw(st.integers(0, 5))
        payload = draw(st.sampled_from(PAYLOADS))
        style = draw(st.sampled_from(["reduce", "inst", "obj", "newobj", "build"]))
        how = draw(st.sampled_from(["global", "stack_global", "memo"]))
        decoys = draw(st.lists(st.sampled_from(DECOYS), max_size=3))
        tail = draw(st.sampled_from(["stop", "junk", "value"]))
        before = draw(st.lists(st.sampled_from([0, 1, 2, 3, 4, 5]), max_size=2))  # clean pickles first
        tag = "g" + str(draw(st.integers(0, 10**9)))
        ops = call_ops(payload, p, style, how, decoys, tag)
        body = proto(p) + ops
        if tail == "stop":
            body += STOP
        elif tail == "junk":
            body += draw(st.binary(min_size=1, max_size=12).filter(lambda b: b[:1] not in (b".", b"0")))
        else:
            body += POP + string("fine", p) + STOP
        stream = b"".join(pickle.dumps(n, protocol=n) for n in before) + body
        container = draw(st.sampled_from(["raw", "raw", "zip", "legacy"]))
        entry = draw(st.sampled_from(ENTRIES if container == "raw" else TORCH_ENTRIES))
        where = draw(st.integers(0, 4))
        return {
            "tag": tag,
            "ops": ops,
            "stream": stream,
            "container": container,
            "entry": entry,
            "where": where,
            "desc": f"p{p} {payload[0]}.{payload[1]} {style}/{how} decoys={len(decoys)} tail={tail} "
            f"before={before} {container}@{where} via {entry}",
        }

    @st.composite
    def archive(draw):
        payload = draw(st.sampled_from(PAYLOADS[:4]))
        how = draw(st.sampled_from(["global", "stack_global", "memo"]))
        decoys = draw(st.lists(st.sampled_from(DECOYS), max_size=2))
        p = draw(st.integers(2, 5))
        tag = "a" + str(draw(st.integers(0, 10**9)))
        place = draw(
            st.sampled_from(
                ["weight_legacy", "weight_zip", "constant_zip", "sample_inputs", "legacy_weights_file", "opaque"]
            )
        )
        ops = call_ops(payload, p, "reduce", how, decoys, tag)
        return {
            "tag": tag,
            "ops": ops,
            "place": place,
            "p": p,
            "desc": f"p{p} {payload[0]}.{payload[1]} {how} decoys={len(decoys)} in {place}",
        }

    return evil(), archive()


class Touch:
    """A class whose construction or state writes a marker (the callable of the 'class' payloads)."""

    @staticmethod
    def _mark(tag):
        open(os.path.join(os.environ["BRIDGE_PICKLE_MARKS"], str(tag)), "w").close()

    def __new__(cls, tag="new", *args):
        cls._mark(tag)
        return super().__new__(cls)

    def __init__(self, tag="init", *args):
        self._mark(tag)

    def __setstate__(self, state):
        self._mark("state")


def _containers(torch):
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf, _use_new_zipfile_serialization=False)
    legacy = buf.getvalue()
    buf = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buf)
    return legacy, buf.getvalue()


def _wrap(case, legacy: bytes, zipped: bytes) -> bytes:
    if case["container"] == "zip":
        return replace_zip_member(
            zipped, "data.pkl", lambda pkl: splice_in_front(pkl, case["ops"]) if case["where"] % 2 else case["stream"]
        )
    if case["container"] == "legacy":
        spans = pickle_spans(legacy)
        start, end = spans[min(case["where"], len(spans) - 1)]
        return legacy[:start] + splice_in_front(legacy[start:end], case["ops"]) + legacy[end:]
    return case["stream"]


def _enter(entry: str, data: bytes, torch):
    import _pickle

    f = io.BytesIO(data)
    if entry == "pickle.loads":
        return pickle.loads(data)
    if entry == "pickle.load":
        return pickle.load(f)
    if entry == "pickle.Unpickler":
        return pickle.Unpickler(f).load()
    if entry == "pickle._loads":
        return pickle._loads(data)
    if entry == "_pickle.loads":
        return _pickle.loads(data)
    if entry == "bound loads":
        return _BOUND_LOADS(data)
    if entry == "bound Unpickler":
        return _BOUND_UNPICKLER(f).load()
    if entry == "torch.load":
        return torch.load(f, weights_only=False)
    if entry == "torch.load(pickle_module)":
        return torch.load(f, pickle_module=pickle, weights_only=False)
    if entry == "bound torch.load":
        return _BOUND_TORCH_LOAD[0](f, weights_only=False)
    return torch.serialization.load(f, weights_only=False)


def _archive(case, good: Path, dest: Path, legacy_state: bytes, torch) -> Path:
    """The legitimate program ``good`` with the payload spliced into one of the pickles torch reads."""
    from hostile.build_pickles import edit_json, rewrite_archive, set_use_pickle

    ops = case["ops"]
    with zipfile.ZipFile(good) as z:
        root = z.namelist()[0].split("/", 1)[0]
        sample = torch.load(io.BytesIO(z.read(f"{root}/data/sample_inputs/model.pt")), weights_only=True)
    place = case["place"]
    buf = io.BytesIO()
    if place == "weight_legacy":
        torch.save(torch.nn.Parameter(torch.zeros(4)), buf, _use_new_zipfile_serialization=False)
        data = buf.getvalue()
        start, end = pickle_spans(data)[3]
        blob = data[:start] + splice_in_front(data[start:end], ops) + data[end:]
        return rewrite_archive(
            good,
            dest,
            {
                "data/weights/model_weights_config.json": set_use_pickle("lin.bias"),
                "data/weights/weight_1": lambda _: blob,
            },
        )
    if place == "weight_zip":
        torch.save(torch.nn.Parameter(torch.zeros(4)), buf)
        blob = replace_zip_member(buf.getvalue(), "data.pkl", lambda pkl: splice_in_front(pkl, ops))
        return rewrite_archive(
            good,
            dest,
            {
                "data/weights/model_weights_config.json": set_use_pickle("lin.bias"),
                "data/weights/weight_1": lambda _: blob,
            },
        )
    if place == "constant_zip":
        torch.save(torch.arange(4.0), buf)
        blob = replace_zip_member(buf.getvalue(), "data.pkl", lambda pkl: splice_in_front(pkl, ops))
        return rewrite_archive(
            good,
            dest,
            {
                "data/constants/model_constants_config.json": set_use_pickle("c"),
                "data/constants/tensor_0": lambda _: blob,
            },
        )
    if place == "sample_inputs":
        torch.save(sample, buf)
        blob = replace_zip_member(buf.getvalue(), "data.pkl", lambda pkl: splice_in_front(pkl, ops))
        return rewrite_archive(good, dest, {"data/sample_inputs/model.pt": lambda _: blob})
    if place == "legacy_weights_file":
        start, end = pickle_spans(legacy_state)[3]
        blob = legacy_state[:start] + splice_in_front(legacy_state[start:end], ops) + legacy_state[end:]
        return rewrite_archive(good, dest, {}, add={"data/weights/model.pt": blob})

    def opaque(doc):
        doc["config"]["c"] = {"path_name": "opaque_obj_0", "is_param": False, "use_pickle": True, "tensor_meta": None}

    raw = proto(case["p"]) + ops + STOP
    return rewrite_archive(
        good,
        dest,
        {"data/constants/model_constants_config.json": edit_json(opaque)},
        add={"data/constants/opaque_obj_0": raw},
    )


def _run_property(files: Path, work: Path, examples: int) -> dict:
    import logging

    import torch
    from hypothesis import HealthCheck, given, settings

    from bridge.errors import SecurityRefusal
    from bridge.frameworks.pt_pickle import restricted_unpickling
    from bridge.frameworks.pt_program import load_program

    logging.getLogger("torch").setLevel(logging.ERROR)  # unguarded loads log their fallbacks
    _BOUND_TORCH_LOAD.append(torch.load)
    live_dir, guarded_dir = work / "live", work / "guarded"
    live_dir.mkdir()
    guarded_dir.mkdir()
    legacy, zipped = _containers(torch)
    good = files / "good.pt2"
    buf = io.BytesIO()
    torch.save(dict(torch.export.load(good).state_dict), buf, _use_new_zipfile_serialization=False)
    legacy_state = buf.getvalue()
    stats = {"cases": 0, "live": 0, "failures": [], "guarded_markers": [], "not_live": []}

    def marked(directory: Path, tag: str) -> bool:
        found = [p for p in directory.iterdir() if p.name.startswith(tag) or p.name in ("new", "init", "state")]
        for p in found:
            p.unlink()
        return bool(found)

    def check(case, unguarded, guarded):
        os.environ["BRIDGE_PICKLE_MARKS"] = str(live_dir)
        try:
            unguarded()
        except BaseException:
            pass
        live = marked(live_dir, case["tag"])
        os.environ["BRIDGE_PICKLE_MARKS"] = str(guarded_dir)
        outcome = guarded()
        ran = marked(guarded_dir, case["tag"])
        stats["cases"] += 1
        stats["live"] += live
        if not live and len(stats["not_live"]) < 40:
            stats["not_live"].append(case["desc"])
        if ran:
            stats["guarded_markers"].append(case["desc"])
        if ran or (live and outcome == "returned"):
            stats["failures"].append(f"{case['desc']}: live={live} guarded={outcome} ran={ran}")

    evil, archive = strategies()
    common = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))

    @settings(max_examples=examples, **common)
    @given(evil)
    def raw_and_torch_load(case):
        data = _wrap(case, legacy, zipped)

        def guarded():
            with restricted_unpickling(None) as guard:
                try:
                    _enter(case["entry"], data, torch)
                except BaseException:
                    return "raised"
            return "refused" if guard.refused else "returned"

        check(case, lambda: _enter(case["entry"], data, torch), guarded)

    @settings(max_examples=max(10, examples // 10), **common)
    @given(archive)
    def in_archives(case):
        path = _archive(case, good, work / f"{case['tag']}.pt2", legacy_state, torch)

        def unguarded():
            torch.export.load(str(path)).module()(torch.randn(2, 4))

        def guarded():
            try:
                load_program(str(path)).module()(torch.randn(2, 4))
            except SecurityRefusal:
                return "refused"
            except BaseException:
                return "raised"
            return "returned"

        check(case, unguarded, guarded)
        path.unlink()

    raw_and_torch_load()
    in_archives()
    return stats


def _run_programs(files: Path, marks: Path) -> dict:
    import contextlib

    import torch

    from bridge.errors import SecurityRefusal
    from bridge.frameworks.pt_program import load_program

    results = {}
    for name in ["good", "good_cond", *PROGRAM_CASES]:
        before = set(os.listdir(marks))
        out = io.StringIO()
        try:
            with contextlib.redirect_stdout(out):
                load_program(str(files / f"{name}.pt2")).module()(torch.randn(2, 4))
            outcome, message = "ran", ""
        except SecurityRefusal as exc:
            outcome, message = "refused", str(exc)
        except Exception as exc:
            outcome, message = "failed", f"{type(exc).__name__}: {exc}"[:500]
        results[name] = {
            "outcome": outcome,
            "message": message,
            "markers": sorted(set(os.listdir(marks)) - before),
            "imported_this": "this" in sys.modules or "Zen of Python" in out.getvalue(),
        }
    return results


def _run_operator_args() -> str:
    import torch

    from bridge.frameworks import pt_program

    graph = torch.fx.Graph()
    x = graph.placeholder("x")
    graph.output(graph.call_function(torch.ops.higher_order.cond, (True, os.system, os.system, (x,))))
    holder = torch.nn.Module()  # not a GraphModule: the graph is checked, never compiled
    holder.graph = graph
    return pt_program._operator_args(holder) or "accepted"


def main(argv: list[str]) -> None:
    files, marks, report, examples = Path(argv[1]), Path(argv[2]), Path(argv[3]), int(argv[4])
    work = report.parent / "property"
    work.mkdir()
    out = {"programs": _run_programs(files, marks), "operator_args": _run_operator_args()}
    out["property"] = _run_property(files, work, examples)
    report.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main(sys.argv[1:])
