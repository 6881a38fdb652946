"""Builders of hostile inputs for tests/hostile (the catalogue in /work/shared/RELIABILITY.md, section 6).

Two kinds of builders live here:

* Pure numpy/onnx builders (ONNX graphs, external data, bundles), imported by the tests directly.
* torch and TensorFlow/Keras builders, which run in a subprocess (torch and TensorFlow never share
  a test process, and neither is imported into pytest itself):

      python tests/hostile/build.py torch   OUT_DIR MARKER_DIR
      python tests/hostile/build.py keras   OUT_DIR MARKER_DIR
      python tests/hostile/build.py tf_loop OUT_DIR

  Every payload that would run code, write or read a file names a path under MARKER_DIR, so a test
  asserts "no side effect" as "MARKER_DIR is empty".

Nothing here uses bridge's own writers: a hostile bundle is written the way an attacker would, with
a manifest whose hashes are consistent with whatever the bundle holds (unless a test tampers on purpose).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

IR_VERSION = 8  # accepted by onnx 1.23's checker and by onnxruntime 1.31
OPSET = 17


# -- ONNX graphs --------------------------------------------------------------------------------------


def vi(name, elem=TensorProto.FLOAT, shape=(4,)):
    return helper.make_tensor_value_info(name, elem, shape)


def model(nodes, inputs, outputs, inits=(), opset=OPSET, extra_opsets=(), functions=(), ir_version=IR_VERSION):
    graph = helper.make_graph(list(nodes), "g", list(inputs), list(outputs), list(inits))
    m = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", opset), *extra_opsets], functions=list(functions)
    )
    m.ir_version = ir_version
    return m


def write_model(m, path) -> Path:
    """Raw write (no onnx-side validation, no external-data rewriting)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(m.SerializeToString() if not isinstance(m, (bytes, bytearray)) else bytes(m))
    return path


def identity(dtype=TensorProto.FLOAT, shape=("batch", 4), x="x", y="y"):
    return model([helper.make_node("Identity", [x], [y])], [vi(x, dtype, shape)], [vi(y, dtype, shape)])


def ext_tensor(name, location, dims=(4,), **kv):
    """An initializer whose bytes live in a side file (external data), keys as given."""
    t = TensorProto(name=name, data_type=TensorProto.FLOAT, dims=list(dims), data_location=TensorProto.EXTERNAL)
    for k, v in {"location": location, **kv}.items():
        e = t.external_data.add()
        e.key, e.value = k, str(v)
    return t


def add_model(w):
    """y = x + W with x:[4]."""
    return model([helper.make_node("Add", ["x", w.name], ["y"])], [vi("x")], [vi("y")], [w])


def linear_graph(weight: np.ndarray, bias: np.ndarray):
    """output = x @ weight.T + bias, x:[batch, in]: torch.nn.Linear as ONNX Gemm."""
    return model(
        [helper.make_node("Gemm", ["x", "W", "b"], ["output"], transB=1)],
        [vi("x", TensorProto.FLOAT, ("batch", weight.shape[1]))],
        [vi("output", TensorProto.FLOAT, ("batch", weight.shape[0]))],
        [
            numpy_helper.from_array(weight.astype(np.float32), "W"),
            numpy_helper.from_array(bias.astype(np.float32), "b"),
        ],
    )


def endless_loop():
    """A Loop with trip count 2**62 and a constant-true condition: ONNX Runtime runs it forever."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["cond_in"], ["cond_out"]), helper.make_node("Add", ["v_in", "one"], ["v_out"])],
        "body",
        [vi("i", TensorProto.INT64, []), vi("cond_in", TensorProto.BOOL, []), vi("v_in", shape=(4,))],
        [vi("cond_out", TensorProto.BOOL, []), vi("v_out", shape=(4,))],
        [helper.make_tensor("one", TensorProto.FLOAT, [], [1.0])],
    )
    return model(
        [helper.make_node("Loop", ["trips", "cond", "x"], ["y"], body=body)],
        [vi("x")],
        [vi("y")],
        [
            helper.make_tensor("trips", TensorProto.INT64, [], [2**62]),
            helper.make_tensor("cond", TensorProto.BOOL, [], [True]),
        ],
    )


def deep_if_bytes(depth: int = 40) -> bytes:
    """M02: `depth` nested If subgraphs, hand-encoded (protobuf's Python API refuses to build it)."""

    def varint(n):
        out = bytearray()
        while True:
            b = n & 0x7F
            n >>= 7
            out.append(b | 0x80 if n else b)
            if not n:
                return bytes(out)

    def fld(num, wt, payload):
        key = varint((num << 3) | wt)
        return key + (varint(len(payload)) + payload if wt == 2 else payload)

    def s(num, txt):
        return fld(num, 2, txt.encode())

    def vi_float(name):
        return s(1, name) + fld(2, 2, fld(1, 2, fld(1, 0, varint(1))))

    leaf = fld(1, 2, s(1, "x") + s(2, "leaf_o") + s(4, "Identity")) + s(2, "leaf") + fld(12, 2, vi_float("leaf_o"))

    def if_node(out, then_g):
        a1 = s(1, "then_branch") + fld(20, 0, varint(5)) + fld(6, 2, then_g)
        a2 = s(1, "else_branch") + fld(20, 0, varint(5)) + fld(6, 2, leaf)
        return s(1, "c") + s(2, out) + s(4, "If") + fld(5, 2, a1) + fld(5, 2, a2)

    g = leaf
    for d in range(1, depth + 1):
        g = fld(1, 2, if_node(f"o{d}", g)) + s(2, f"g{d}") + fld(12, 2, vi_float(f"o{d}"))
    c_vi = s(1, "c") + fld(2, 2, fld(1, 2, fld(1, 0, varint(9))))
    top = g + fld(11, 2, vi_float("x")) + fld(11, 2, c_vi)
    return fld(1, 0, varint(IR_VERSION)) + fld(7, 2, top) + fld(8, 2, fld(2, 0, varint(OPSET)))


def malformed_models() -> dict[str, bytes]:
    """M01, M03, M05, M06, M09, M10 and the non-tensor output of N11: name -> file bytes."""
    good = add_model(numpy_helper.from_array(np.ones(4, np.float32), "W")).SerializeToString()
    out = {
        "garbage": b"\x00garbage\xff" * 200,
        "truncated": good[: len(good) // 2],
        "empty": b"",
        "deep_nesting": deep_if_bytes(40),
    }
    future = model([helper.make_node("Relu", ["x"], ["y"])], [vi("x")], [vi("y")], opset=99, ir_version=99)
    out["future_opset_ir"] = future.SerializeToString()
    out["cycle"] = model(
        [helper.make_node("Add", ["x", "b"], ["a"]), helper.make_node("Relu", ["a"], ["b"])], [vi("x")], [vi("b")]
    ).SerializeToString()
    out["dangling_input"] = model(
        [helper.make_node("Add", ["x", "ghost"], ["y"])], [vi("x")], [vi("y")]
    ).SerializeToString()
    out["duplicate_output"] = model(
        [helper.make_node("Relu", ["x"], ["y"]), helper.make_node("Neg", ["x"], ["y"])], [vi("x")], [vi("y")]
    ).SerializeToString()
    out["unproduced_output"] = model(
        [helper.make_node("Relu", ["x"], ["y"])], [vi("x")], [vi("y"), vi("nobody")]
    ).SerializeToString()
    w = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[1000], raw_data=np.ones(2, np.float32).tobytes())
    out["raw_data_size_mismatch"] = model(
        [helper.make_node("Add", ["x", "W"], ["y"])], [vi("x", shape=(1000,))], [vi("y", shape=(1000,))], [w]
    ).SerializeToString()
    # huge declared initializer dims with no data at all: a reader that trusts dims allocates 2**62 floats
    huge = TensorProto(name="W", data_type=TensorProto.FLOAT, dims=[2**31, 2**31])
    out["huge_initializer_dims"] = model(
        [helper.make_node("Add", ["x", "W"], ["y"])], [vi("x")], [vi("y")], [huge]
    ).SerializeToString()
    fn = helper.make_function(
        "local",
        "F",
        ["a"],
        ["b"],
        [helper.make_node("F", ["a"], ["b"], domain="local")],
        [helper.make_opsetid("", OPSET), helper.make_opsetid("local", 1)],
    )
    out["recursive_function"] = model(
        [helper.make_node("F", ["x"], ["y"], domain="local")],
        [vi("x")],
        [vi("y")],
        extra_opsets=[helper.make_opsetid("local", 1)],
        functions=[fn],
    ).SerializeToString()
    dup = add_model(numpy_helper.from_array(np.ones(4, np.float32), "W"))
    for key, value in (("k", "1"), ("k", "2")):
        p = dup.metadata_props.add()
        p.key, p.value = key, value
    out["duplicate_metadata_keys"] = dup.SerializeToString()
    seq = model(
        [helper.make_node("SequenceConstruct", ["x"], ["y"])],
        [vi("x")],
        [helper.make_tensor_sequence_value_info("y", TensorProto.FLOAT, (4,))],
    )
    out["sequence_output"] = seq.SerializeToString()
    return out


# -- bundles --------------------------------------------------------------------------------------------


def sha256(path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def spec(name, dtype, dims):
    return {"name": name, "dtype": dtype, "dims": list(dims)}


def write_bundle(
    dest,
    onnx_model,
    golden: dict,
    inputs: list[dict],
    outputs: list[dict],
    cases: list[dict] | None = None,
    extra_files: dict | None = None,
    manifest_patch: dict | None = None,
    hash_files: bool = True,
) -> Path:
    """A bundle as an attacker (or a faithful exporter) would write it: model.onnx, golden.npz with
    '<case>/in|out/<name>' keys, any extra files, and a manifest listing every file with its sha256."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=False)
    write_model(onnx_model, dest / "model.onnx")
    with open(dest / "golden.npz", "wb") as fh:
        np.savez(fh, **golden)
    for rel, data in (extra_files or {}).items():
        (dest / rel).parent.mkdir(parents=True, exist_ok=True)
        (dest / rel).write_bytes(data)
    files = {}
    if hash_files:
        for entry in sorted(dest.rglob("*")):
            if entry.is_file() and not entry.is_symlink():
                rel = entry.relative_to(dest).as_posix()
                files[rel] = {"sha256": sha256(entry), "bytes": entry.stat().st_size}
    manifest = {
        "schema_version": 1,
        "created": "2026-01-01T00:00:00+00:00",
        "source": {"text": "hostile", "kind": "pyfile", "framework": "torch", "weights": None},
        "exporter": {"name": "hand-written", "settings": {}, "failed_first": []},
        "model": {"file": "model.onnx"},
        "inputs": inputs,
        "outputs": outputs,
        "cases": cases or [{"label": "draw0", "seed": 0, "sizes": {}}],
        "seed": 0,
        "policy": {},
        "versions": {},
        "verification": {"status": "pass", "reason": "", "device": "cpu", "at": "2026-01-01T00:00:00+00:00"},
        "files": files,
    }
    for key, value in (manifest_patch or {}).items():
        if value is _DELETE:
            manifest.pop(key, None)
        else:
            manifest[key] = value
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))
    return dest


_DELETE = object()
DELETE = _DELETE


def rehash(dest) -> None:
    """Recompute the manifest's file list after a test changed the bundle (a consistent attacker)."""
    dest = Path(dest)
    manifest = json.loads((dest / "manifest.json").read_text())
    manifest["files"] = {
        e.relative_to(dest).as_posix(): {"sha256": sha256(e), "bytes": e.stat().st_size}
        for e in sorted(dest.rglob("*"))
        if e.is_file() and not e.is_symlink() and e.name != "manifest.json"
    }
    (dest / "manifest.json").write_text(json.dumps(manifest, indent=2))


def _elem(dtype) -> int:
    return helper.np_dtype_to_tensor_dtype(np.dtype(dtype))


def pair_bundle(dest, reference: dict[str, np.ndarray], candidate: dict[str, np.ndarray], **kw) -> Path:
    """A bundle whose graph outputs ``candidate`` (constants, independent of the input) while the
    golden file says the reference produced ``reference``: the comparator then sees exactly these
    pairs, with their own shapes and dtypes. One float input 'x' of shape [1] is fed and ignored."""
    nodes, outs, inits = [], [], []
    for name, arr in candidate.items():
        arr = np.asarray(arr)
        inits.append(numpy_helper.from_array(arr, f"c_{name}"))
        nodes.append(helper.make_node("Identity", [f"c_{name}"], [name]))
        outs.append(vi(name, _elem(arr.dtype), arr.shape))
    m = model(nodes, [vi("x", TensorProto.FLOAT, (1,))], outs, inits)
    golden = {"draw0/in/x": np.zeros(1, np.float32)}
    golden.update({f"draw0/out/{k}": np.asarray(v) for k, v in reference.items()})
    return write_bundle(
        dest,
        m,
        golden,
        [spec("x", "float32", [1])],
        [spec(k, np.asarray(v).dtype.name, np.asarray(v).shape) for k, v in reference.items()],
        **kw,
    )


def graph_bundle(
    dest, m, feeds: dict[str, np.ndarray], reference: dict[str, np.ndarray], inputs: list[dict] | None = None, **kw
) -> Path:
    """A bundle around graph ``m`` with one golden case: ``feeds`` in, ``reference`` claimed out."""
    golden = {f"draw0/in/{k}": v for k, v in feeds.items()}
    golden.update({f"draw0/out/{k}": np.asarray(v) for k, v in reference.items()})
    if inputs is None:
        inputs = [spec(k, v.dtype.name, v.shape) for k, v in feeds.items()]
    outputs = [spec(k, np.asarray(v).dtype.name, np.asarray(v).shape) for k, v in reference.items()]
    return write_bundle(dest, m, golden, inputs, outputs, **kw)


def object_array_npz(path, marker) -> Path:
    """An .npz whose array is a pickled object: loading it with allow_pickle=True runs os.system."""
    arr = np.empty(1, object)
    arr[0] = _Evil(f"touch {marker}")
    with open(path, "wb") as fh:
        np.savez(fh, x=arr, allow_pickle=True)
    return Path(path)


def pickled_golden(bundle, marker) -> None:
    """Replace a bundle's golden.npz with one whose arrays are pickled objects (os.system on load), and
    rehash the manifest: a consistent attacker."""
    arr = np.empty(1, object)
    arr[0] = _Evil(f"touch {marker}")
    with open(Path(bundle) / "golden.npz", "wb") as fh:
        np.savez(fh, **{"draw0/in/x": arr, "draw0/out/y": arr}, allow_pickle=True)
    rehash(bundle)


class _Evil:
    def __init__(self, cmd):
        self.cmd = cmd

    def __reduce__(self):
        return (os.system, (self.cmd,))


def zip_bomb_keras(path, gib: float) -> Path:
    """S13: a .keras archive whose config.json inflates to ``gib`` GiB of spaces (a few MiB on disk).
    Streamed, so building it never holds the inflated member in memory."""
    import zipfile

    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as z:
        with z.open("config.json", "w", force_zip64=True) as f:
            block = b" " * (1 << 20)
            for _ in range(int(gib * 1024)):
                f.write(block)
        z.writestr("metadata.json", json.dumps({"keras_version": "3.15.1"}))
    return Path(path)


# -- torch (subprocess) ---------------------------------------------------------------------------------


def build_torch(out: Path, marks: Path) -> None:
    import io
    import zipfile

    import torch

    class Evil:
        def __init__(self, cmd):
            self.cmd = cmd

        def __reduce__(self):
            return (os.system, (self.cmd,))

    torch.manual_seed(0)
    lin = torch.nn.Linear(4, 4)
    # S01/S02: a state_dict with a pickle payload riding along
    torch.save({"state_dict": lin.state_dict(), "meta": Evil(f"touch {marks / 'pt_pickle'}")}, out / "evil.pt")
    # the payload as the tensor storage itself: a plain dict of "weights"
    torch.save({"weight": Evil(f"touch {marks / 'pt_pickle_value'}"), "bias": lin.bias}, out / "evil_value.pt")
    # S03: a whole pickled module
    torch.save(lin, out / "module.pt")
    # S04: a TorchScript archive passed as weights
    torch.jit.save(torch.jit.script(lin), out / "torchscript.pt")
    # a legitimate state_dict (control), and its values for a hand-written ONNX Gemm
    torch.save(lin.state_dict(), out / "good.pt")
    np.savez(out / "good_linear.npz", weight=lin.weight.detach().numpy(), bias=lin.bias.detach().numpy())

    # .pt2 programs whose archive carries a pickle payload (torch.export.load unpickles with
    # weights_only=False: the sample inputs after a weights_only=True attempt, pickled weights always)
    class Lin(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(4, 4)

        def forward(self, x):
            return self.lin(x)

    program = torch.export.export(Lin().eval(), (torch.randn(2, 4),))
    torch.export.save(program, out / "good.pt2")
    for kind in ("sample_inputs", "pickled_weight"):
        buf = io.BytesIO()
        torch.save({"x": Evil(f"touch {marks / ('pt2_' + kind)}")}, buf)
        payload = buf.getvalue()
        src = zipfile.ZipFile(out / "good.pt2")
        with zipfile.ZipFile(out / f"evil_{kind}.pt2", "w") as z:
            for name in src.namelist():
                data = src.read(name)
                if kind == "sample_inputs" and name.endswith("sample_inputs/model.pt"):
                    data = payload
                if kind == "pickled_weight":
                    if name.endswith("model_weights_config.json"):
                        cfg = json.loads(data)
                        cfg["config"]["lin.bias"]["use_pickle"] = True
                        data = json.dumps(cfg).encode()
                    elif name.endswith("weights/weight_1"):
                        data = payload
                z.writestr(src.getinfo(name), data)


# -- Keras and TensorFlow (subprocess) --------------------------------------------------------------------


def build_keras(out: Path, marks: Path) -> None:
    import shutil
    import zipfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import h5py
    import keras
    import tensorflow as tf

    os.environ["HOSTILE_BUILD"] = "1"  # the lambda below is called while the model is built: stay quiet then

    # S07/S08: a Python lambda (marshalled bytecode) that creates a marker file when it runs
    def lam_model(marker):
        payload = eval(
            f"lambda t: (None if __import__('os').environ.get('HOSTILE_BUILD') "
            f"else open({str(marks / marker)!r}, 'w'), t)[1] * 2.0"
        )
        x = keras.Input((4,), name="x")
        return keras.Model(x, keras.layers.Lambda(payload)(x))

    lam_model("keras_lambda_keras").save(out / "lambda.keras")
    lam_model("keras_lambda_h5").save(out / "lambda.h5")

    # S09/S10: a Lambda whose function names an importable callable in config.json
    x = keras.Input((4,), name="x")
    keras.Model(x, keras.layers.Lambda(keras.activations.relu)(x)).save(out / "base_lambda.keras")
    with zipfile.ZipFile(out / "base_lambda.keras") as z:
        files = {n: z.read(n) for n in z.namelist()}

    def rewrite(name, function):
        cfg = json.loads(files["config.json"])
        layer = next(item for item in cfg["config"]["layers"] if item["class_name"] == "Lambda")
        layer["config"]["function"] = function
        with zipfile.ZipFile(out / name, "w") as z:
            for n, b in files.items():
                z.writestr(n, json.dumps(cfg).encode() if n == "config.json" else b)

    rewrite(
        "lambda_os_system.keras",
        {"module": "os", "class_name": "function", "config": "system", "registered_name": "function"},
    )
    rewrite(
        "lambda_gadget.keras",
        {
            "module": "keras.config",
            "class_name": "function",
            "config": "enable_unsafe_deserialization",
            "registered_name": "function",
        },
    )

    # S11: a StringLookup whose vocabulary becomes a file path
    secret = marks.parent / "secret_vocab.txt"
    secret.write_text("alpha\nbeta\n")
    s = keras.Input((1,), dtype="string", name="s")
    m = keras.Model(s, keras.layers.StringLookup(vocabulary=["a", "b"], name="lk")(s))
    m.save(out / "base_lookup.keras")
    with zipfile.ZipFile(out / "base_lookup.keras") as z:
        files = {n: z.read(n) for n in z.namelist()}
    cfg = json.loads(files["config.json"])
    for layer in cfg["config"]["layers"]:
        if layer["class_name"] == "StringLookup":
            layer["config"]["vocabulary"] = str(secret)
    with zipfile.ZipFile(out / "vocab_file.keras", "w") as z:
        for n, b in files.items():
            z.writestr(n, json.dumps(cfg).encode() if n == "config.json" else b)

    # a plain model (control), saved both ways
    keras.utils.set_random_seed(0)
    x = keras.Input((4,), name="x")
    plain = keras.Model(x, keras.layers.Dense(3, name="dense")(x))
    plain.save(out / "plain.keras")
    plain.save(out / "plain.h5")

    # S12: a legacy .h5 model whose Dense kernel is stored in an outside raw file (HDF5 external
    # storage) or linked to an outside HDF5 file: loading it reads bytes from outside the model
    outside_raw = marks.parent / "outside_secret.bin"
    outside_raw.write_bytes(np.arange(12, dtype=np.float32).tobytes())
    outside_h5 = marks.parent / "outside_weights.h5"
    with h5py.File(outside_h5, "w") as f:
        f["kernel"] = np.full((4, 3), 7.0, np.float32)
    for kind in ("external_storage", "external_link"):
        shutil.copy(out / "plain.h5", out / f"h5_{kind}.h5")
        with h5py.File(out / f"h5_{kind}.h5", "a") as f:
            names = []
            f["model_weights"].visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            kernel = next(n for n in names if n.endswith("kernel") or n.endswith("kernel:0"))
            grp = f["model_weights"][kernel.rsplit("/", 1)[0]]
            leaf = kernel.rsplit("/", 1)[1]
            del grp[leaf]
            if kind == "external_storage":
                grp.create_dataset(leaf, shape=(4, 3), dtype="f4", external=[(str(outside_raw), 0, 48)])
            else:
                grp[leaf] = h5py.ExternalLink(str(outside_h5), "/kernel")

    # S14: a .keras archive with a traversal member and an absolute member
    with zipfile.ZipFile(out / "plain.keras") as z:
        files = {n: z.read(n) for n in z.namelist()}
    with zipfile.ZipFile(out / "zip_traversal.keras", "w") as z:
        for n, b in files.items():
            z.writestr(n, b)
        z.writestr("../../../zip_escape.txt", b"escaped")
        z.writestr("assets/../../zip_escape2.txt", b"escaped")

    # S15: SavedModels whose serving function touches files
    def savedmodel(name, body):
        class R(tf.Module):
            @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
            def serve(self, x):
                return {"y": body(x)}

        r = R()
        tf.saved_model.save(r, str(out / name), signatures={"serving_default": r.serve})

    read_target = marks.parent / "outside_secret.bin"
    savedmodel("sm_readfile", lambda x: x + tf.cast(tf.strings.length(tf.io.read_file(str(read_target))), tf.float32))
    savedmodel("sm_writefile", lambda x: (tf.io.write_file(str(marks / "sm_writefile"), "pwned"), x * 2.0)[1])

    def savev2(x):
        op = tf.raw_ops.SaveV2(prefix=str(marks / "sm_savev2"), tensor_names=["x"], shape_and_slices=[""], tensors=[x])
        with tf.control_dependencies([op]):
            return tf.identity(x * 2.0)

    savedmodel("sm_savev2", savev2)

    def whole_file_reader(x):
        queue = tf.raw_ops.FIFOQueueV2(component_types=[tf.string], capacity=1)
        enq = tf.raw_ops.QueueEnqueueV2(handle=queue, components=[tf.constant(str(read_target))])
        reader = tf.raw_ops.WholeFileReaderV2()
        with tf.control_dependencies([enq]):
            _, value = tf.raw_ops.ReaderReadV2(reader_handle=reader, queue_handle=queue)
        return x + tf.cast(tf.strings.length(value), tf.float32)

    savedmodel("sm_wholefilereader", whole_file_reader)
    savedmodel("sm_plain", lambda x: x * 2.0 + 1.0)


def build_tf_loop(out: Path) -> None:
    """S16: a SavedModel whose serving function never terminates."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf

    class R(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 4], tf.float32, name="x")])
        def serve(self, x):
            i = tf.while_loop(lambda i: tf.constant(True), lambda i: i + 1, [tf.constant(0)])
            return {"y": x + tf.cast(i, tf.float32)}

    r = R()
    tf.saved_model.save(r, str(out / "sm_endless"), signatures={"serving_default": r.serve})


if __name__ == "__main__":
    what, out_dir = sys.argv[1], Path(sys.argv[2]).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    if what == "torch":
        build_torch(out_dir, Path(sys.argv[3]).resolve())
    elif what == "keras":
        build_keras(out_dir, Path(sys.argv[3]).resolve())
    elif what == "tf_loop":
        build_tf_loop(out_dir)
    else:
        raise SystemExit(f"unknown builder {what}")
