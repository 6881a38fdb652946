"""TensorFlow/Keras: load .keras / .h5 / SavedModel / factory, run with training=False, export with tf2onnx.

Keras 3 models go through a tf.function with an explicit input signature: tf2onnx's from_keras
fails on Keras 3 (KeyError: 'keras_tensor_N'). Outputs are returned as a dict so that the ONNX
outputs carry stable names: a dict model's keys, 'output' for one tensor, 'output_i' for a list.
"""

from __future__ import annotations

import contextlib
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


@contextlib.contextmanager
def _quiet_native_stderr():
    """TensorFlow's C++ runtime logs banners to fd 2 at import, whatever TF_CPP_MIN_LOG_LEVEL says."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


with _quiet_native_stderr():
    import tensorflow as tf  # noqa: E402

import numpy as np  # noqa: E402

from bridge.errors import ConversionError, InputError, SecurityRefusal  # noqa: E402
from bridge.frameworks.base import EXACT_LIMIT_BYTES, ExportResult, Feeds, NativeModel, flat_names_from_path  # noqa: E402
from bridge.types import TensorSpec  # noqa: E402


def configure_threads(n: int) -> None:
    try:
        tf.config.threading.set_intra_op_parallelism_threads(n)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:
        pass  # the runtime already started: threads() reports what is in force


def threads() -> int:
    return tf.config.threading.get_intra_op_parallelism_threads()


def reseed() -> None:
    """Random generators as a new process finds them: seeded at random (Keras draws its default seeds
    from Python's generator)."""
    import random

    random.seed()
    np.random.seed(None)
    tf.random.set_seed(random.getrandbits(31))


def fingerprint(obj) -> str | None:
    """A digest of a Keras model's (or tf.Module's) variables: two builds of a deterministic source have
    the same."""
    import hashlib

    variables = getattr(obj, "weights", None) or getattr(obj, "variables", None)
    if variables is None:
        return None
    h = hashlib.sha256()
    for v in variables:
        h.update(np.asarray(v.numpy()).tobytes())
    return h.hexdigest()


def load(
    ref, obj=None, weights: str | None = None, trust: bool = False, custom_objects: dict | None = None
) -> "KerasModel | SavedModel":
    if weights:
        raise InputError("--weights applies to PyTorch sources only: Keras and SavedModel files carry their weights")
    if ref.kind in ("keras", "h5"):
        import keras

        if ref.kind == "keras" and not trust:
            code = keras_config_code(str(ref.path), allowed=set(custom_objects or ()))
            if code:
                from bridge.frameworks.tf_load import refusal_hint

                raise SecurityRefusal(f"{ref.path} holds code that runs when loaded: {code}", hint=refusal_hint(code))
        try:
            model = keras.models.load_model(
                str(ref.path), compile=False, safe_mode=not trust, custom_objects=custom_objects
            )
        except Exception as exc:
            from bridge.frameworks.tf_load import load_error

            missing = load_error(ref.path, exc, custom_objects)
            if missing is not None:
                raise missing from exc
            text = str(exc)
            low = text.lower()
            if "safe_mode" in text or "for security" in low or ("lambda" in low and "unsafe" in low):
                raise SecurityRefusal(
                    f"{ref.path} holds code (a Lambda layer or custom object) that runs when loaded",
                    hint="rebuild the model without Lambda layers, or pass --trust-code if you trust the file",
                ) from None
            raise InputError(
                f"cannot load {ref.path} as a Keras model: {type(exc).__name__}: {text.splitlines()[0][:300] if text else ''}"
            ) from None
        return KerasModel(ref.text, model)
    if ref.kind == "savedmodel":
        if not trust:
            from bridge.frameworks.savedmodel_ops import check_savedmodel

            check_savedmodel(str(ref.path))
        try:
            loaded = tf.saved_model.load(str(ref.path))
        except Exception as exc:
            raise InputError(
                f"cannot load SavedModel {ref.path}: {type(exc).__name__}: {str(exc).splitlines()[0][:300]}"
            ) from None
        return SavedModel(ref.text, loaded)
    if obj is None or not hasattr(obj, "__call__"):
        raise InputError(f"SOURCE {ref.text}: the factory returned {type(obj).__name__}, expected a Keras model")
    return KerasModel(ref.text, obj)


def keras_config_code(path: str, allowed: set = frozenset()) -> str | None:
    """What in a .keras file's config.json would run code on load: a Lambda layer, or an object whose
    class comes from a module outside Keras (unless ``allowed`` names it: a class the user supplies with
    --custom-objects is used instead of anything the file names). Read from the zip without deserializing
    anything."""
    import json
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            config = json.loads(zf.read("config.json"))
    except (OSError, KeyError, ValueError, zipfile.BadZipFile):
        return None  # not a readable .keras archive: keras.models.load_model reports why
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            cls, module = item.get("class_name"), item.get("module")
            if cls == "Lambda" or cls == "__lambda__":
                return "a Lambda layer (Python bytecode)"
            if (
                isinstance(cls, str)
                and isinstance(module, str)
                and module
                and not module.startswith(("keras", "builtins", "tensorflow", "numpy"))
                and cls not in allowed
            ):
                return f"an object of class {cls} from module {module}"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _dtype_name(dtype) -> str:
    name = tf.as_dtype(dtype).name
    if name not in ("float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64", "uint8", "bool"):
        raise InputError(f"unsupported input dtype {name}")
    return name


def _dims(shape, input_name: str) -> tuple:
    dims = []
    for axis, d in enumerate(shape):
        if d is None:
            dims.append("batch" if axis == 0 else f"{input_name}_d{axis}")
        else:
            dims.append(int(d))
    return tuple(dims)


def _named_outputs(out, names: list[str] | None = None) -> dict:
    """Outputs by name: a dict's keys; else the names the user gave the output layers, if any; else
    ``output`` / ``output_i``."""
    if names and not isinstance(out, dict):
        leaves = list(out) if isinstance(out, (list, tuple)) else [out]
        if len(leaves) == len(names):
            return dict(zip(names, leaves))
    if isinstance(out, dict):
        leaves = [((k,), v) for k, v in out.items()]
        root_seq = False
    elif isinstance(out, (list, tuple)):
        leaves = [((i,), v) for i, v in enumerate(out)]
        root_seq = True
    else:
        return {"output": out}
    return {flat_names_from_path(p, root_seq): v for p, v in leaves}


class _TfBase(NativeModel):
    framework = "tensorflow"

    def _specs_signature(self, specs: list[TensorSpec]):
        return [
            tf.TensorSpec([None if isinstance(d, str) else d for d in s.dims], tf.as_dtype(s.dtype), name=s.name)
            for s in specs
        ]

    def input_names(self) -> list[str] | None:
        """The model's own input names, in its order: feeds are bound to them by name."""
        specs = self.input_specs()
        return [s.name for s in specs] if specs else None

    def index_ranges(self, feeds: Feeds) -> dict[str, tuple[int, str]]:
        """Model inputs that feed a Keras Embedding layer directly, with its ``input_dim``."""
        model = getattr(self, "model", None)
        inputs = {id(t): (getattr(t, "name", "") or "").split(":")[0] for t in (getattr(model, "inputs", None) or [])}
        found: dict[str, tuple[int, str]] = {}
        for layer in getattr(model, "layers", []) or []:
            if type(layer).__name__ != "Embedding":
                continue
            try:
                source = layer.input
            except (AttributeError, ValueError):
                continue
            name = inputs.get(id(source))
            if name and name not in found:
                found[name] = (int(layer.input_dim), f"{layer.name}.input_dim={layer.input_dim}")
        return found

    def _ordered(self, feeds: Feeds) -> Feeds:
        names = self.input_names()
        if names and set(feeds) == set(names):
            return {n: feeds[n] for n in names}
        return feeds

    def _snapshot(self) -> list:
        """Every variable's value (BatchNorm moving statistics included)."""
        holder = getattr(self, "model", None) or getattr(self, "loaded", None)
        variables = getattr(holder, "weights", None) or getattr(holder, "variables", None) or []
        out = []
        for v in variables:
            try:
                out.append((getattr(v, "path", None) or getattr(v, "name", "?"), np.array(v.numpy(), copy=True)))
            except Exception:  # noqa: BLE001 - a variable that cannot be read is not part of the check
                continue
        return out

    def check_state(self) -> str | None:
        """A description of any variable the reference runs changed (a BatchNorm layer called with
        training=True inside the model updates its moving statistics), or None."""
        before = getattr(self, "_state", None)
        if not before:
            return None
        now = self._snapshot()
        changed = [
            name
            for (name, a), (_, b) in zip(before, now)
            if a.shape != b.shape or not np.array_equal(a, b, equal_nan=True)
        ]
        if len(now) != len(before):
            changed.append("(the set of variables changed)")
        return f"variables changed by inference: {', '.join(changed[:5])}" if changed else None

    def run(self, feeds: Feeds) -> Feeds:
        """Inference through a tf.function (graph mode, training=False), traced once per input layout."""
        feeds = self._ordered(feeds)
        key = tuple((k, v.dtype.name, v.ndim) for k, v in feeds.items())
        if getattr(self, "_fn_key", None) != key:
            specs = [TensorSpec(k, v.dtype.name, tuple(f"d{i}" for i in range(v.ndim))) for k, v in feeds.items()]
            self._fn, self._fn_key = self._make_function(specs), key
        out = self._fn(*[tf.constant(v) for v in feeds.values()])
        return {k: v.numpy() for k, v in out.items()}

    def to(self, device: str) -> str:
        """TensorFlow runs where it was placed at start; bridge compares it on the CPU."""
        return "cpu"

    def set_tf32(self, enabled: bool) -> None:
        tf.config.experimental.enable_tensor_float_32_execution(enabled)

    def synchronize(self) -> None:
        pass  # .numpy() on every output already waits for the device

    def versions(self) -> dict:
        from bridge.frameworks.base import distribution_versions

        return {"tensorflow": str(tf.__version__), **distribution_versions("keras", "tf2onnx")}

    def precision(self) -> dict:
        return {"tf32_execution": bool(tf.config.experimental.tensor_float_32_execution_enabled())}

    def close(self) -> None:
        self._fn = None

    def export(
        self, path: str, specs: list[TensorSpec], feeds: Feeds, opset: int | None, route: str | None = None
    ) -> ExportResult:
        from bridge.frameworks.onnx_names import tidy

        result = self._export(path, specs, feeds, opset, route)
        tidy(path, specs)  # the declared axis names (batch) in the graph instead of tf2onnx's unk__N
        return result

    def _export(
        self, path: str, specs: list[TensorSpec], feeds: Feeds, opset: int | None, route: str | None = None
    ) -> ExportResult:
        try:
            import tf2onnx
        except ImportError:
            from bridge.errors import EnvironmentProblem

            raise EnvironmentProblem("exporting TensorFlow models needs tf2onnx", hint="pip install tf2onnx") from None
        from bridge.frameworks.tf_convert import FROZEN_ROUTE, OptimizerFailed, checked, convert_frozen, run_tf2onnx
        from bridge.frameworks.tf_graph import NotFreezable
        from bridge.frameworks.tf_handlers import custom_op_handlers

        def _tf2onnx(convert, route):
            return run_tf2onnx(convert, self.source, route, path, quiet=_quiet_native_stderr)

        signature = self._specs_signature(specs)
        fn = self._make_function(specs)
        opset = opset or 17
        settings = {
            "opset_requested": opset,
            "tf2onnx": tf2onnx.__version__,
            "custom_op_handlers": sorted(custom_op_handlers()),
        }
        want = [s.name for s in specs]
        attempts = []
        for careful in (False, True):
            try:
                settings.update(_tf2onnx(lambda: convert_frozen(fn, want, opset, path, careful), FROZEN_ROUTE))
                return ExportResult(FROZEN_ROUTE, settings, attempts)
            except NotFreezable as exc:
                attempts.append({"exporter": FROZEN_ROUTE, "error": str(exc)})
                break
            except OptimizerFailed as exc:  # tf2onnx's guarded optimizer pass copies the graph per step
                attempts.append({"exporter": FROZEN_ROUTE, "error": f"tf2onnx optimizer failed: {exc}"})
        # Graphs the freezer does not rewrite (a variable read inside a control-flow body): tf2onnx's
        # own loaders, which copy the weights several times over.
        proto = _tf2onnx(
            lambda: checked(
                tf2onnx.convert.from_function(
                    fn, input_signature=signature, opset=opset, custom_op_handlers=custom_op_handlers()
                )[0]
            ),
            "tf2onnx.from_function",
        )
        got = [i.name for i in proto.graph.input]
        if sorted(got) == sorted(want):
            _save_onnx(proto, path)
            return ExportResult("tf2onnx.from_function", settings, attempts)
        # tf2onnx turns tensors the function captured (not variables: e.g. a Normalization layer's mean)
        # into graph inputs. Freezing the concrete function first makes them constants.
        attempts.append(
            {
                "exporter": "tf2onnx.from_function",
                "error": f"graph inputs {got}, expected {want} (captured tensors leaked into inputs)",
            }
        )
        del proto
        proto = _tf2onnx(lambda: checked(_from_frozen(fn, want, opset)), "tf2onnx.from_graph_def(frozen)")
        got = [i.name for i in proto.graph.input]
        if sorted(got) != sorted(want):
            raise ConversionError(
                f"tf2onnx wrote a graph with inputs {got}, expected {want}, even from the frozen function"
            )
        _save_onnx(proto, path)
        return ExportResult("tf2onnx.from_graph_def(frozen)", settings, attempts)


def _from_frozen(fn, input_names: list[str], opset: int):
    """Convert the function with every capture frozen to a constant; name I/O as from_function does."""
    import tf2onnx
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    from bridge.frameworks.tf_handlers import custom_op_handlers

    concrete = fn.get_concrete_function()
    frozen = convert_variables_to_constants_v2(concrete)
    output_names = [str(k) for k in sorted(concrete.structured_outputs)]  # tf.nest orders dict keys
    proto, _ = tf2onnx.convert.from_graph_def(
        frozen.graph.as_graph_def(),
        input_names=[t.name for t in frozen.inputs],
        output_names=[t.name for t in frozen.outputs],
        opset=opset,
        custom_op_handlers=custom_op_handlers(),
    )
    mapping = {t.name: n for t, n in zip(frozen.inputs, input_names)}
    mapping.update({t.name: n for t, n in zip(frozen.outputs, output_names)})
    _rename_values(proto.graph, mapping)
    return proto


def _rename_values(graph, mapping: dict) -> None:
    """Rename values everywhere in an ONNX graph (subgraphs of If/Loop included)."""
    for value in list(graph.input) + list(graph.output) + list(graph.value_info):
        value.name = mapping.get(value.name, value.name)
    for node in graph.node:
        node.input[:] = [mapping.get(n, n) for n in node.input]
        node.output[:] = [mapping.get(n, n) for n in node.output]
        for attr in node.attribute:
            if attr.HasField("g"):
                _rename_values(attr.g, mapping)
            for sub in attr.graphs:
                _rename_values(sub, mapping)


def _save_onnx(proto, path: str) -> None:
    import onnx

    onnx.save_model(proto, path)


class KerasModel(_TfBase):
    def __init__(self, source: str, model):
        from bridge.frameworks.tf_load import user_output_names

        self.source = source
        self.model = model
        self._output_names = user_output_names(model)  # Dense(4, name="probs") gives output "probs"
        self._fn = None
        self.notes: list[str] = []
        self._state = self._snapshot()

    def input_specs(self) -> list[TensorSpec] | None:
        try:
            inputs = self.model.inputs
        except (AttributeError, ValueError):
            return None
        if not inputs:
            return None
        specs = []
        for i in inputs:
            name = getattr(i, "name", None) or f"input_{len(specs)}"
            name = name.split(":")[0]
            if tf.as_dtype(i.dtype).name == "string":
                from bridge.frameworks.tf_load import unsupported_input

                raise unsupported_input(self.model, i, "string")
            specs.append(TensorSpec(name, _dtype_name(i.dtype), _dims(i.shape, name)))
        return specs

    def _make_function(self, specs):
        model, names = self.model, self._output_names
        signature = self._specs_signature(specs)

        @tf.function(input_signature=signature, autograph=False)
        def serving(*args):
            x = args[0] if len(args) == 1 else list(args)
            return _named_outputs(model(x, training=False), names)

        return serving

    def float64_twin(self):
        """The model cloned with every layer in float64 and the weights widened. A layer that cannot be
        rebuilt so (a class without a config, a Lambda under safe mode) raises: nothing is deserialized
        that loading did not allow."""
        import keras

        def widened(layer):
            config = layer.get_config()
            config["dtype"] = "float64"
            return layer.__class__.from_config(config)

        weights = self.model.get_weights()
        if sum(w.size for w in weights if w.dtype.kind == "f") * 8 > EXACT_LIMIT_BYTES:
            return None
        twin = keras.models.clone_model(self.model, clone_function=widened)
        twin.set_weights([w.astype(np.float64) if w.dtype.kind == "f" else w for w in weights])
        return twin

    def run_twin(self, twin, feeds: Feeds) -> Feeds:
        args = [tf.constant(v) for v in self._ordered(feeds).values()]
        out = twin(args[0] if len(args) == 1 else args, training=False)
        return {k: np.asarray(v.numpy()) for k, v in _named_outputs(out, self._output_names).items()}

    def close(self) -> None:
        self._fn = None
        self._exact = False

    def eager(self):
        return self._run_eager

    def _run_eager(self, feeds: Feeds) -> Feeds:
        args = [tf.constant(v) for v in self._ordered(feeds).values()]
        out = self.model(args[0] if len(args) == 1 else args, training=False)
        return {k: v.numpy() for k, v in _named_outputs(out, self._output_names).items()}


class SavedModel(_TfBase):
    def __init__(self, source: str, loaded):
        self.source = source
        self.loaded = loaded
        sigs = getattr(loaded, "signatures", {})
        if "serving_default" not in sigs:
            raise InputError(f"SavedModel {source} has no serving_default signature (has: {sorted(sigs)})")
        self.signature = sigs["serving_default"]
        self._fn = None
        self.notes: list[str] = []
        self._state = self._snapshot()

    def input_specs(self) -> list[TensorSpec]:
        _, kwargs = self.signature.structured_input_signature
        return [
            TensorSpec(name, _dtype_name(spec.dtype), _dims(spec.shape, name)) for name, spec in sorted(kwargs.items())
        ]

    def _make_function(self, specs):
        sig = self.signature
        names = [s.name for s in specs]
        signature = self._specs_signature(specs)

        @tf.function(input_signature=signature, autograph=False)
        def serving(*args):
            return dict(sig(**dict(zip(names, args))))

        return serving

    def eager(self):
        return self._run_eager

    def _run_eager(self, feeds: Feeds) -> Feeds:
        out = self.signature(**{k: tf.constant(v) for k, v in feeds.items()})
        return {k: v.numpy() for k, v in out.items()}
