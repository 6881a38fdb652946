"""Builders of hostile SavedModels for tests/hostile/test_savedmodel_ops.py: ops outside bridge's
allowlist for untrusted SavedModels (bridge/frameworks/savedmodel_ops.py).

Runs in a subprocess (TensorFlow is never imported into pytest itself):

    python tests/hostile/build_savedmodel.py OUT_DIR MARKER_DIR

Every payload that would write or read a file names a path under MARKER_DIR, so a test asserts
"no side effect" as "MARKER_DIR holds no file of that name". The `live_*` models carry the same
payloads under other marker names: run with --trust-code, they show that the payloads do run.

Models built by tracing (tf.raw_ops inside tf.function or a resource initializer):
  sm_debugidentity     DebugIdentity in the serving function, debug_urls file://MARKER_DIR/sm_debugidentity
  sm_init_savev2       SaveV2 in a resource initializer that the loader runs, prefix MARKER_DIR/sm_init_savev2
  sm_decodeproto       DecodeProtoV2 whose descriptor_source is MARKER_DIR/sm_decodeproto.desc
  sm_encodeproto       EncodeProto, likewise
  sm_unlisted          Lgamma: harmless, but not an op tf2onnx converts
  sm_clean             variables (the saver has checkpoint ops): the control
  sm_table             a StaticHashTable, whose initializer the loader runs: passes the check
Models made by editing saved_model.pb of a clean one:
  pb_top_debugidentity DebugIdentity as a node of the top-level graph
  pb_call_writefile    a PartitionedCall whose function is the primitive op WriteFile
  pb_attr_debug_urls   an Identity carrying a `_debug_urls` attribute
  pb_init_runs_saver   the init op depends on the saver's save call (so its SaveV2 runs at load)
  pb_garbage           saved_model.pb that is not a protobuf
TF1-format (compat.v1, no object graph: the loader runs the saver's restore op):
  tf1_clean            simple_save of a variable and a table
  tf1_restore_foreign  its RestoreV2 reads from a constant prefix instead of the fed filename
  tf1_init_runs_save   its main op (a collection entry) depends on the saver's save tensor
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path


def _saved_model_pb(path: Path):
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString((path / "saved_model.pb").read_bytes())
    return sm


def _edited(src: Path, dest: Path, edit) -> None:
    shutil.copytree(src, dest)
    sm = _saved_model_pb(dest)
    edit(sm.meta_graphs[0])
    (dest / "saved_model.pb").write_bytes(sm.SerializeToString())


def _function(mg, prefix: str):
    return next(f for f in mg.graph_def.library.function if f.signature.name.startswith(prefix))


def build(out: Path, marks: Path) -> None:
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import tensorflow as tf
    from tensorflow.core.framework import attr_value_pb2

    spec = tf.TensorSpec([None, 4], tf.float32, name="x")

    def serving_model(name, body):
        class R(tf.Module):
            @tf.function(input_signature=[spec])
            def serve(self, x):
                return {"y": body(x)}

        r = R()
        tf.saved_model.save(r, str(out / name), signatures={"serving_default": r.serve})

    def debug_identity(marker):
        def body(x):
            return tf.raw_ops.DebugIdentity(input=x * 2.0, tensor_name="y:0", debug_urls=[f"file://{marks / marker}"])

        return body

    def decode_proto(x):
        sizes, _ = tf.raw_ops.DecodeProtoV2(
            bytes=tf.constant([b""]),
            message_type="bridge.Nothing",
            field_names=[],
            output_types=[],
            descriptor_source=str(marks / "sm_decodeproto.desc"),
        )
        return x + tf.cast(tf.reduce_sum(sizes), tf.float32)

    def encode_proto(x):
        blob = tf.raw_ops.EncodeProto(
            sizes=tf.ones([1, 1], tf.int32),
            values=[tf.zeros([1, 1], tf.int32)],
            field_names=["a"],
            message_type="bridge.Nothing",
            descriptor_source=str(marks / "sm_encodeproto.desc"),
        )
        return x + tf.cast(tf.strings.length(blob[0]), tf.float32)

    serving_model("sm_debugidentity", debug_identity("sm_debugidentity"))
    serving_model("live_sm_debugidentity", debug_identity("live_sm_debugidentity"))
    serving_model("sm_decodeproto", decode_proto)
    serving_model("sm_encodeproto", encode_proto)
    serving_model("sm_unlisted", lambda x: tf.math.lgamma(x + 3.0))

    # A resource whose initializer writes a checkpoint: TensorFlow's loader runs every resource
    # initializer while loading, though no signature reaches it.
    def init_savev2(name, marker):
        class Payload(tf.saved_model.experimental.TrackableResource):
            def _create_resource(self):
                return tf.raw_ops.VarHandleOp(dtype=tf.float32, shape=[], shared_name=f"payload_{marker}")

            def _initialize(self):
                save = tf.raw_ops.SaveV2(
                    prefix=str(marks / marker), tensor_names=["t"], shape_and_slices=[""], tensors=[tf.constant(1.0)]
                )
                with tf.control_dependencies([save]):
                    return tf.raw_ops.AssignVariableOp(resource=self.resource_handle, value=tf.constant(1.0))

        class R(tf.Module):
            def __init__(self):
                self.payload = Payload()

            @tf.function(input_signature=[spec])
            def serve(self, x):
                return {"y": x * 2.0}

        r = R()
        tf.saved_model.save(r, str(out / name), signatures={"serving_default": r.serve})

    init_savev2("sm_init_savev2", "sm_init_savev2")
    init_savev2("live_sm_init_savev2", "live_sm_init_savev2")

    # The control: variables, so that the saver has SaveV2, RestoreV2 and friends.
    class Clean(tf.Module):
        def __init__(self):
            self.w = tf.Variable(tf.reshape(tf.range(8, dtype=tf.float32), [4, 2]) / 8.0)
            self.b = tf.Variable([0.5, -0.5])

        @tf.function(input_signature=[spec])
        def serve(self, x):
            return {"y": x @ self.w + self.b}

    clean = Clean()
    tf.saved_model.save(clean, str(out / "sm_clean"), signatures={"serving_default": clean.serve})

    # A lookup table: a resource whose initializer the loader runs (tf2onnx leaks the table into
    # the graph's inputs, so this one passes the check but does not export).
    class Table(tf.Module):
        def __init__(self):
            self.table = tf.lookup.StaticHashTable(
                tf.lookup.KeyValueTensorInitializer(tf.constant([0, 1], tf.int64), tf.constant([1.0, 2.0])), 0.0
            )

        @tf.function(input_signature=[spec])
        def serve(self, x):
            return {"y": x * self.table.lookup(tf.constant(1, tf.int64))}

    table = Table()
    tf.saved_model.save(table, str(out / "sm_table"), signatures={"serving_default": table.serve})

    # -- edits of the clean model's saved_model.pb -------------------------------------------------------
    def top_debugidentity(mg):
        node = mg.graph_def.node.add(name="debug_dump", op="DebugIdentity", input=["saver_filename"])
        node.attr["T"].type = tf.string.as_datatype_enum
        node.attr["debug_urls"].list.s.append(f"file://{marks / 'pb_top_debugidentity'}".encode())

    def call_writefile(mg):
        fn = _function(mg, "__inference_serve")
        node = fn.node_def.add(name="payload_call", op="PartitionedCall")
        node.attr["f"].func.name = "WriteFile"
        node.attr["Tin"].list.type.extend([tf.string.as_datatype_enum] * 2)
        node.attr["Tout"].list.SetInParent()

    def attr_debug_urls(mg):
        fn = _function(mg, "__inference_serve")
        node = next(n for n in fn.node_def if n.op == "Identity")
        node.attr["_debug_urls"].CopyFrom(
            attr_value_pb2.AttrValue(
                list=attr_value_pb2.AttrValue.ListValue(s=[f"file://{marks / 'pb_attr_debug_urls'}".encode()])
            )
        )

    def init_runs_saver(mg):
        save_node = mg.saver_def.save_tensor_name.split(":")[0]
        init = next(
            n
            for n in mg.graph_def.node
            if n.name == mg.signature_def["__saved_model_init_op"].outputs["__saved_model_init_op"].name.split(":")[0]
        )
        init.input.append(f"^{save_node}")

    _edited(out / "sm_clean", out / "pb_top_debugidentity", top_debugidentity)
    _edited(out / "sm_clean", out / "pb_call_writefile", call_writefile)
    _edited(out / "sm_clean", out / "pb_attr_debug_urls", attr_debug_urls)
    _edited(out / "sm_clean", out / "pb_init_runs_saver", init_runs_saver)
    shutil.copytree(out / "sm_clean", out / "pb_garbage")
    (out / "pb_garbage" / "saved_model.pb").write_bytes(b"\xff\xfe not a protobuf " * 10)

    # -- TF1 format ------------------------------------------------------------------------------------
    tf1 = tf.compat.v1
    with tf.Graph().as_default():
        x = tf1.placeholder(tf.float32, [None, 4], name="x")
        w = tf1.get_variable("w", [4, 2], initializer=tf1.ones_initializer())
        y = tf.nn.relu(tf.matmul(x, w), name="y")
        tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(["a"], [1]), -1)
        with tf1.Session() as sess:
            sess.run(tf1.global_variables_initializer())
            tf1.saved_model.simple_save(
                sess, str(out / "tf1_clean"), inputs={"x": x}, outputs={"y": y}, legacy_init_op=tf1.tables_initializer()
            )

    def restore_foreign(mg):
        restore = next(n for n in mg.graph_def.node if n.op == "RestoreV2")
        mg.graph_def.node.add(name="foreign_prefix", op="Const").attr["dtype"].type = tf.string.as_datatype_enum
        prefix = mg.graph_def.node[-1]
        prefix.attr["value"].tensor.dtype = tf.string.as_datatype_enum
        prefix.attr["value"].tensor.string_val.append(str(marks / "tf1_restore_foreign").encode())
        restore.input[0] = "foreign_prefix"

    def init_runs_save(mg):
        mg.collection_def["saved_model_main_op"].node_list.value.append(mg.saver_def.save_tensor_name.split(":")[0])

    _edited(out / "tf1_clean", out / "tf1_restore_foreign", restore_foreign)
    _edited(out / "tf1_clean", out / "tf1_init_runs_save", init_runs_save)


if __name__ == "__main__":
    out_dir, marks_dir = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
    out_dir.mkdir(parents=True, exist_ok=True)
    build(out_dir, marks_dir)
