"""PyTorch: load an nn.Module (factory, state_dict, .pt2), run it in inference mode, export it.

Export tries torch.onnx's dynamo exporter first and falls back to the TorchScript exporter when
dynamo fails or pins an axis the user declared dynamic. The route taken is recorded.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import os
from pathlib import Path

import numpy as np
import torch
from torch.utils import _pytree as pytree

from bridge.errors import ConversionError, InputError, SecurityRefusal
from bridge.frameworks.base import EXACT_LIMIT_BYTES, ExportResult, Feeds, NativeModel, flat_names_from_path
from bridge.types import TensorSpec

# Above this many bytes of weights, exports keep them in external data (protobuf caps files at 2 GB).
LARGE_MODEL_BYTES = 1_800_000_000

_TORCH_DTYPES = {
    torch.float16: "float16",
    torch.float32: "float32",
    torch.float64: "float64",
    torch.bfloat16: "bfloat16",
    torch.int8: "int8",
    torch.int16: "int16",
    torch.int32: "int32",
    torch.int64: "int64",
    torch.uint8: "uint8",
    torch.bool: "bool",
}


def configure_threads(n: int) -> None:
    torch.set_num_threads(n)


def threads() -> int:
    return torch.get_num_threads()


def reseed() -> None:
    """Random generators as a new process finds them: seeded at random."""
    import random

    random.seed()
    np.random.seed(None)
    torch.seed()


def fingerprint(obj) -> str | None:
    """A digest of a model object's weights and buffers (None for anything but an nn.Module): two builds
    of a deterministic source have the same."""
    import hashlib

    if not isinstance(obj, torch.nn.Module):
        return None
    h = hashlib.sha256()
    for key, t in obj.state_dict().items():
        h.update(key.encode())
        if isinstance(t, torch.Tensor):
            h.update(_to_numpy(t).tobytes())
    return h.hexdigest()


def load(ref, obj=None, weights: str | None = None, trust: bool = False) -> "TorchModel":
    if ref.kind == "pt2":
        if weights:
            raise InputError("--weights does not apply to a .pt2 file: it carries its own weights")
        import zipfile

        from bridge.frameworks.pt_program import load_program

        if not zipfile.is_zipfile(ref.path):
            raise InputError(
                f"{ref.path} is not a torch.export program (.pt2 files are zip archives)",
                hint="write one with torch.export.save(torch.export.export(model, args), path)",
            )
        try:
            # Without --trust-code every pickle goes through a restricted unpickler and every string
            # torch would turn into code is checked (bridge/frameworks/pt_program.py).
            program = load_program(str(ref.path), trust=trust)
        except SecurityRefusal:
            raise
        except Exception as exc:
            raise InputError(f"cannot load {ref.path} as a torch.export program: {_one_line(exc)}") from None
        return TorchModel(ref.text, program.module(), program=program)
    if not isinstance(obj, torch.nn.Module):
        raise InputError(f"SOURCE {ref.text}: the factory returned {type(obj).__name__}, expected a torch.nn.Module")
    if weights:
        load_weights(obj, weights)
    return TorchModel(ref.text, obj)


def load_weights(model: torch.nn.Module, weights: str) -> None:
    path = Path(weights)
    if not path.is_file():
        raise InputError(f"weights file {weights} does not exist")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise InputError("reading .safetensors needs the safetensors package: pip install safetensors") from None
        try:
            state = load_file(str(path), device="cpu")
        except Exception as exc:
            raise InputError(f"cannot read {weights} as safetensors: {exc}") from None
    else:
        try:
            # weights_only=True explicitly: an environment variable cannot turn it off then.
            import warnings

            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # torch warns before refusing TorchScript archives
                state = torch.load(str(path), map_location="cpu", weights_only=True)
        except Exception as exc:
            text = str(exc)
            if "weights_only" in text or "Unsupported global" in text or "GLOBAL" in text:
                raise SecurityRefusal(
                    f"{weights} is not a plain state_dict: loading it would unpickle code "
                    f"({text.splitlines()[0][:200]})",
                    hint="save weights with torch.save(model.state_dict(), path) or as .safetensors",
                ) from None
            raise InputError(
                f"cannot read weights {weights}: {type(exc).__name__}: {text.splitlines()[0][:200]}"
            ) from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise InputError(f"weights file {weights} holds a {type(state).__name__}, expected a state_dict")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        hint = "\n".join(str(exc).splitlines()[1:4]).strip() or None
        own = set(model.state_dict())
        keys = [k for k in state if isinstance(k, str)]
        if keys and all(k.startswith("module.") for k in keys) and {k[len("module.") :] for k in keys} == own:
            hint = (
                "every key carries a 'module.' prefix, as DataParallel/DistributedDataParallel checkpoints do: "
                "save model.module.state_dict(), or strip the prefix from the keys"
            )
        raise InputError(f"weights {weights} do not fit the model: {str(exc).splitlines()[0]}", hint=hint) from None


def _dtype_name(dtype: torch.dtype) -> str:
    if dtype not in _TORCH_DTYPES:
        raise InputError(f"unsupported tensor dtype {dtype}")
    return _TORCH_DTYPES[dtype]


def _to_torch(arr: np.ndarray) -> torch.Tensor:
    if arr.dtype.name == "bfloat16":
        return (
            torch.from_numpy(np.ascontiguousarray(arr).view(np.uint16).astype(np.int32))
            .to(torch.int16)
            .view(torch.bfloat16)
        )
    return torch.from_numpy(np.ascontiguousarray(arr))


def _to_numpy(t: torch.Tensor) -> np.ndarray:
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        import ml_dtypes

        return t.view(torch.int16).numpy().view(ml_dtypes.bfloat16).copy()
    return t.numpy().copy()


def flatten_outputs(out) -> dict[str, "torch.Tensor"]:
    """Outputs by stable name: a tensor is 'output', tuple items 'output_i', dict items by key."""
    if isinstance(out, torch.Tensor):
        return {"output": out}
    leaves, _ = pytree.tree_flatten_with_path(out)
    root_is_sequence = isinstance(out, (tuple, list))
    named: dict[str, torch.Tensor] = {}
    for path, leaf in leaves:
        if leaf is None:
            continue
        if not isinstance(leaf, torch.Tensor):
            hint = None
            if type(leaf).__name__.endswith("Cache"):
                hint = (
                    "a Hugging Face model returns its key/value cache unless built with use_cache=False "
                    "(config.use_cache = False): export the model without it"
                )
            raise InputError(
                f"the model returned a {type(leaf).__name__} among its outputs; only tensors can be exported", hint=hint
            )
        keys = [getattr(k, "key", getattr(k, "idx", getattr(k, "name", k))) for k in path]
        named[flat_names_from_path(tuple(keys), root_is_sequence)] = leaf
    return named


class TorchModel(NativeModel):
    framework = "torch"

    def __init__(self, source: str, module: torch.nn.Module, program=None):
        self.source = source
        self.module = module
        self.program = program
        self.device = "cpu"
        self.notes: list[str] = []
        if program is None:
            from bridge.frameworks.pt_modes import eval_note, mode_dependent

            training = any(m.training for m in module.modules())
            module.eval()  # always: dropout off, BatchNorm on running statistics
            changed = mode_dependent(module) if training else []
            if changed:  # a note only where the switch changes what the model computes
                self.notes.append(eval_note(changed))
        self._names = self._forward_names()
        self._state = self._buffers()

    # -- inputs -------------------------------------------------------------------------------
    def input_specs(self) -> list[TensorSpec] | None:
        if self.program is None:
            return None
        specs = []
        for node in self.program.graph.nodes:
            if node.op != "placeholder" or node.name not in self.program.graph_signature.user_inputs:
                continue
            val = node.meta.get("val")
            if not isinstance(val, torch.Tensor):
                continue
            dims = tuple(int(d) if isinstance(d, int) or str(d).isdigit() else str(d) for d in val.shape)
            specs.append(TensorSpec(node.name, _dtype_name(val.dtype), dims))
        return specs

    def _forward_names(self) -> list[str] | None:
        if self.program is not None:
            specs = self.input_specs()
            return [s.name for s in specs] if specs else None
        try:
            params = list(inspect.signature(self.module.forward).parameters.values())
        except (TypeError, ValueError):
            return None
        if any(p.kind == p.VAR_POSITIONAL for p in params):
            return None
        return [p.name for p in params if p.kind != p.VAR_KEYWORD]

    def index_ranges(self, feeds: Feeds) -> dict[str, tuple[int, str]]:
        """Inputs the model passes straight to an embedding table, with the table's size: one run
        with hooks on every nn.Embedding / nn.EmbeddingBag, matching the tensors they receive to the
        feeds by storage."""
        tensors = self._tensors(feeds)
        owners = {
            t.untyped_storage().data_ptr(): name
            for name, t in tensors.items()
            if not t.is_floating_point() and t.numel()
        }
        found: dict[str, tuple[int, str]] = {}

        def hook_for(qualname, module):
            def hook(_module, args):
                if args and isinstance(args[0], torch.Tensor) and not args[0].is_floating_point() and args[0].numel():
                    name = owners.get(args[0].untyped_storage().data_ptr())
                    if name is not None and name not in found:
                        found[name] = (int(module.num_embeddings), f"{qualname}.num_embeddings={module.num_embeddings}")

            return hook

        handles = [
            m.register_forward_pre_hook(hook_for(q, m))
            for q, m in self.module.named_modules()
            if isinstance(m, (torch.nn.Embedding, torch.nn.EmbeddingBag))
        ]
        if not handles:
            return {}
        try:
            with torch.inference_mode():
                self._call(tensors)
        finally:
            for h in handles:
                h.remove()
        return found

    def axis_limits(self, feeds: Feeds, sizes: dict) -> dict[str, tuple[int, str]]:
        """Position tables: an nn.Embedding that the model feeds positions 0..n-1 it made itself (not an
        input) bounds the axis of size n by its number of rows."""
        tensors = self._tensors(feeds)
        given = {t.untyped_storage().data_ptr() for t in tensors.values() if t.numel()}
        unique = {size: axis for axis, size in sizes.items() if list(sizes.values()).count(size) == 1}
        found: dict[str, tuple[int, str]] = {}

        def hook_for(qualname, module):
            def hook(_module, args):
                x = args[0] if args else None
                if not isinstance(x, torch.Tensor) or x.is_floating_point() or x.ndim < 1 or x.shape[-1] < 2:
                    return
                if x.untyped_storage().data_ptr() in given or x.shape[-1] not in unique:
                    return
                if not bool(torch.all(x[..., 1:] - x[..., :-1] == 1)):
                    return  # not positions (token types, ids): no bound on an axis
                axis, rows = unique[x.shape[-1]], int(module.num_embeddings)
                if axis not in found or rows < found[axis][0]:
                    found[axis] = (rows, f"{qualname}.num_embeddings={rows}, a position table along {axis}")

            return hook

        handles = (
            [
                m.register_forward_pre_hook(hook_for(q, m))
                for q, m in self.module.named_modules()
                if isinstance(m, torch.nn.Embedding)
            ]
            if self.module is not None
            else []
        )
        if not handles:
            return {}
        try:
            with torch.inference_mode():
                self._call(tensors)
        except Exception:  # noqa: BLE001 - a model that rejects the probe states nothing here
            return {}
        finally:
            for h in handles:
                h.remove()
        return found

    def input_names(self) -> list[str] | None:
        """forward()'s parameter names in order (a .pt2 program's inputs): inputs named like them are
        bound to them by name. None when forward() takes *args: binding is by position then."""
        return self._names

    # -- running ------------------------------------------------------------------------------
    def set_tf32(self, enabled: bool) -> None:
        """TF32 math in cuDNN convolutions and CUDA matmuls (torch's defaults: convs on, matmuls off)."""
        torch.backends.cudnn.allow_tf32 = enabled
        torch.backends.cuda.matmul.allow_tf32 = enabled

    def to(self, device: str) -> str:
        """Move the model to 'cpu' or 'cuda'; returns the device it now runs on."""
        if device == "cuda":
            if not torch.cuda.is_available():
                from bridge.errors import EnvironmentProblem

                raise EnvironmentProblem(
                    "--device cuda: torch sees no CUDA device",
                    hint="run on a machine with an NVIDIA GPU and a CUDA build of torch",
                )
        self.module.to(device)
        self.device = device
        return device

    def _call(self, tensors: dict, module=None):
        """Inputs by name when forward() has parameters of these names (keyword-passable), else in order."""
        module = self.module if module is None else module
        names = self._names
        if self.program is None and names and set(tensors) <= set(names):
            return module(**tensors)
        return module(*tensors.values())

    def _tensors(self, feeds: Feeds) -> dict:
        return {k: _to_torch(a).to(self.device) for k, a in feeds.items()}

    def run(self, feeds: Feeds) -> Feeds:
        with torch.inference_mode():
            out = self._call(self._tensors(feeds))
        return {k: _to_numpy(v) for k, v in flatten_outputs(out).items()}

    def float64_twin(self):
        """A float64 copy of the module on the CPU (not of a .pt2 program)."""
        import copy

        if self.program is not None or self.module is None:
            return None
        tensors = [*self.module.parameters(), *self.module.buffers()]
        if sum(t.numel() for t in tensors if t.is_floating_point()) * 8 > EXACT_LIMIT_BYTES:
            return None
        return copy.deepcopy(self.module).to("cpu").double().eval()

    def run_twin(self, twin, feeds: Feeds) -> Feeds:
        with torch.inference_mode():
            out = self._call({k: _to_torch(a) for k, a in feeds.items()}, twin)
        return {k: _to_numpy(v) for k, v in flatten_outputs(out).items()}

    def capture_modules(self, feeds: Feeds, keep=None) -> list[tuple]:
        """One inference with forward hooks on every named submodule (the root included, as "").
        Returns one entry per finished module call, in the order the calls finished (children before
        their parents): ``(qualified name, call index, outputs, inputs)``, the call's tensor outputs and
        positional tensor arguments flattened (pytree order): numpy arrays when ``keep`` is None or holds
        ``(name, call index)``, else ``(shape tuple, dtype name)`` pairs, so that a first pass can learn
        the call order without holding every activation."""
        records: list[tuple] = []
        counts: dict[str, int] = {}

        def leaves_of(tree, as_arrays):
            tensors = [t for t in pytree.tree_leaves(tree) if isinstance(t, torch.Tensor)]
            if as_arrays:
                return [_to_numpy(t) for t in tensors]
            return [(tuple(int(d) for d in t.shape), _TORCH_DTYPES.get(t.dtype, str(t.dtype))) for t in tensors]

        pending: dict[str, list] = {}

        def pre_hook_for(name):
            def pre_hook(_module, args):
                call = counts.get(name, 0)
                counts[name] = call + 1
                # Inputs are read before forward: an in-place module (ReLU(inplace=True)) overwrites them.
                pending.setdefault(name, []).append((call, leaves_of(args, keep is None or (name, call) in keep)))

            return pre_hook

        def hook_for(name):
            def hook(_module, _args, output):
                call, inputs = pending[name].pop()
                records.append((name, call, leaves_of(output, keep is None or (name, call) in keep), inputs))

            return hook

        handles = []
        for name, m in self.module.named_modules():
            handles.append(m.register_forward_pre_hook(pre_hook_for(name)))
            handles.append(m.register_forward_hook(hook_for(name)))
        try:
            with torch.inference_mode():
                self._call(self._tensors(feeds))
        finally:
            for h in handles:
                h.remove()
        return records

    def _buffers(self) -> dict[str, np.ndarray]:
        return {k: _to_numpy(v) for k, v in self.module.named_buffers()}

    def check_state(self) -> str | None:
        """A description of any buffer the reference runs changed (BatchNorm statistics), or None."""
        now = self._buffers()
        changed = [
            k
            for k, v in self._state.items()
            if k not in now or v.shape != now[k].shape or not np.array_equal(v, now[k], equal_nan=True)
        ]
        return f"buffers changed by inference: {', '.join(changed[:5])}" if changed else None

    def synchronize(self) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()

    def versions(self) -> dict:
        from bridge.frameworks.base import distribution_versions

        # str(): a TorchVersion would drag torch into unpickling the report in the CLI process
        return {"torch": str(torch.__version__), **distribution_versions("onnxscript")}

    def precision(self) -> dict:
        return {
            "cudnn.allow_tf32": bool(torch.backends.cudnn.allow_tf32),
            "cuda.matmul.allow_tf32": bool(torch.backends.cuda.matmul.allow_tf32),
            "float32_matmul_precision": torch.get_float32_matmul_precision(),
        }

    def close(self) -> None:
        self.module = None
        self.program = None
        self._exact = False

    # -- export -------------------------------------------------------------------------------
    ROUTES = {"dynamo": "torch.onnx.dynamo", "torchscript": "torch.onnx.torchscript"}

    def export_routes(self, choice: str = "auto") -> list[str]:
        """Exporters to try in order: dynamo, then TorchScript (not for a .pt2 program); or the one pinned."""
        available = ["dynamo"] if self.program is not None else ["dynamo", "torchscript"]
        if choice in (None, "auto"):
            return available
        if choice not in available:
            from bridge.errors import UsageError

            raise UsageError(
                f"--exporter {choice} does not apply to {self.source}",
                hint=f"choose one of: auto, {', '.join(available)}",
            )
        return [choice]

    def export(
        self, path: str, specs: list[TensorSpec], feeds: Feeds, opset: int | None, route: str | None = "dynamo"
    ) -> ExportResult:
        """Write the ONNX file with one exporter; its failure is a ConversionError carrying the whole
        error text and, when the exporter names one, the user's file:line."""
        route = route or "dynamo"
        tensors = {s.name: _to_torch(feeds[s.name]) for s in specs}
        with torch.inference_mode():
            out = self._call(tensors)
        output_names = list(flatten_outputs(out))
        name = self.ROUTES[route]
        # Inputs reach forward() by name, as verify feeds them and a deployment binds them: by position,
        # a BERT's token_type_ids would land in the attention_mask slot.
        by_name = self.program is None and bool(self._names) and set(tensors) <= set(self._names)
        args, kwargs = ((), tensors) if by_name else (tuple(tensors.values()), None)
        try:
            if route == "dynamo":
                settings = self._export_dynamo(path, specs, args, kwargs, output_names, opset)
            else:
                settings = self._export_torchscript(path, specs, args, kwargs, output_names, opset)
            settings["inputs_bound"] = "by name" if by_name else "by position"
        except ConversionError:
            raise
        except Exception as exc:  # the exporter's own failure: its cause goes to the report
            _raise_if_disk(exc, path)
            detail = error_detail(exc)
            where = f" ({detail['where']})" if detail.get("where") else ""
            hint = (
                "a .pt2 program can only be exported by the dynamo exporter"
                if self.program is not None
                else "run with --debug for the full trace; check that forward() is traceable"
            )
            raise ConversionError(
                f"{name} failed on {self.source}{where}: {_one_line(exc)}", hint=hint, detail=detail
            ) from None
        return ExportResult(name, settings)

    def _export_dynamo(self, path, specs, args, kwargs, output_names, opset) -> dict:
        dims: dict[str, object] = {}
        dynamic_shapes = None
        if self.program is None and any(s.dynamic_axes for s in specs):
            per_input = [
                {axis: dims.setdefault(name, torch.export.Dim(name)) for axis, name in s.dynamic_axes.items()} or None
                for s in specs
            ]
            dynamic_shapes = {s.name: d for s, d in zip(specs, per_input)} if kwargs else tuple(per_input)
        log = io.StringIO()
        with contextlib.redirect_stdout(log), contextlib.redirect_stderr(log):
            program = torch.onnx.export(
                self.program if self.program is not None else self.module,
                args,
                None,
                dynamo=True,
                dynamic_shapes=dynamic_shapes,
                optimize=True,
                verbose=False,
                **_common(specs, kwargs, output_names, opset),
            )
        # Weights past protobuf's 2 GB limit go to one external data file next to model.onnx.
        large = self._weight_bytes() > LARGE_MODEL_BYTES
        program.save(path, external_data=large)
        import onnx

        pinned = _pinned_axes(onnx.load(path, load_external_data=False), specs)
        if pinned:
            for leftover in (path, path + ".data"):
                if os.path.exists(leftover):
                    os.unlink(leftover)
            raise ConversionError(f"the dynamo exporter fixed declared dynamic axes: {', '.join(pinned)}")
        return {"dynamo": True, "optimize": True, "opset_requested": opset, "dynamic_shapes": bool(dynamic_shapes)}

    def _weight_bytes(self) -> int:
        module = self.program.module() if self.program is not None else self.module
        tensors = {id(t): t for t in list(module.parameters()) + list(module.buffers())}
        return sum(t.numel() * t.element_size() for t in tensors.values())

    def _export_torchscript(self, path, specs, args, kwargs, output_names, opset) -> dict:
        import warnings

        dynamic_axes = {s.name: dict(s.dynamic_axes) for s in specs if s.dynamic_axes}
        opset = opset or 17
        log = io.StringIO()
        with (
            contextlib.redirect_stdout(log),
            contextlib.redirect_stderr(log),
            warnings.catch_warnings(record=True) as seen,
        ):
            warnings.simplefilter("always", torch.jit.TracerWarning)
            torch.onnx.export(
                self.module,
                args,
                path,
                dynamo=False,
                dynamic_axes=dynamic_axes or None,
                do_constant_folding=True,
                **_common(specs, kwargs, output_names, opset),
            )
        import onnx

        pinned = _pinned_axes(onnx.load(path, load_external_data=False), specs)
        if pinned:
            raise ConversionError(f"the TorchScript exporter fixed declared dynamic axes: {', '.join(pinned)}")
        settings = {"dynamo": False, "opset_requested": opset, "do_constant_folding": True}
        branches = traced_branches(seen)
        if branches:
            settings["traced_branches"] = branches
        return settings


def _common(specs, kwargs, output_names, opset) -> dict:
    """What both exporters are told alike: the inputs by name (keyword arguments when forward() names
    them), the outputs' names, the opset."""
    return {
        "kwargs": kwargs,
        "input_names": [s.name for s in specs],
        "output_names": output_names,
        "opset_version": opset,
    }


def traced_branches(caught) -> list[dict]:
    """The data-dependent branches a trace went through (TracerWarning: a tensor turned into a Python
    boolean), each with the user's file:line: the graph holds only the side the trace took."""
    out, seen = [], set()
    for w in caught:
        if not issubclass(w.category, torch.jit.TracerWarning) or "Python boolean" not in str(w.message):
            continue
        where = f"{w.filename}:{w.lineno}"
        if where not in seen and "site-packages" not in w.filename and "/bridge/" not in w.filename:
            seen.add(where)
            out.append({"where": where, "message": " ".join(str(w.message).split())[:300]})
    return out


def _pinned_axes(proto, specs: list[TensorSpec]) -> list[str]:
    by_name = {i.name: i for i in proto.graph.input}
    pinned = []
    for s in specs:
        inp = by_name.get(s.name)
        if inp is None:
            raise ConversionError(f"the exported graph has no input named {s.name!r} (inputs: {sorted(by_name)})")
        dims = inp.type.tensor_type.shape.dim
        for axis, name in s.dynamic_axes.items():
            if axis < len(dims) and not dims[axis].dim_param:
                pinned.append(f"{s.name}[{axis}] ({name}) became {dims[axis].dim_value}")
    return pinned


def _raise_if_disk(exc: BaseException, path: str) -> None:
    """A full disk or a file-size limit is the machine's problem, not the model's."""
    import errno

    seen = exc
    while seen is not None:
        if isinstance(seen, OSError) and seen.errno in (errno.ENOSPC, errno.EFBIG, errno.EDQUOT):
            from bridge.errors import EnvironmentProblem

            raise EnvironmentProblem(
                f"writing the ONNX file failed: {os.strerror(seen.errno)}",
                hint=f"free space or raise the file-size limit where {os.path.dirname(path)} lies",
            ) from None
        seen = seen.__cause__ or seen.__context__


def error_detail(exc: BaseException, limit: int = 20000) -> dict:
    """An exporter's whole error text, and the innermost frame it names in the user's own code."""
    import re
    import traceback

    from bridge.errors import strip_ansi

    text = strip_ansi("".join(traceback.format_exception_only(type(exc), exc)).strip())
    frames = re.findall(r'File "([^"]+)", line (\d+)', text)
    frames += [(f.filename, str(f.lineno)) for f in traceback.extract_tb(exc.__traceback__)]
    own = [
        f"{path}:{line}"
        for path, line in frames
        if "site-packages" not in path and "/bridge/" not in path and not path.startswith("<")
    ]
    return {"detail": text[:limit], "where": own[-1] if own else None}


def _one_line(exc: BaseException) -> str:
    from bridge.errors import exception_summary

    return exception_summary(exc)
