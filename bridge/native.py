"""SOURCE -> a loaded native model and the input specs to feed it (framework-neutral orchestration)."""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.errors import InputError, UsageError
from bridge.frameworks import framework_module
from bridge.semantics import parse_kind
from bridge.sources import (SourceRef, call_factory, declared, declared_inputs, framework_of, load_user_module,
                            parse_source)
from bridge.spec import apply_ranges, check_unique, parse_dim_size, parse_input_spec, parse_range
from bridge.types import TensorSpec


@dataclass
class Loaded:
    ref: SourceRef
    framework: str
    model: object  # a NativeModel from bridge.frameworks.<framework>
    declared: list[TensorSpec] | None  # what the source says about its inputs, if anything
    kinds: dict = field(default_factory=dict)  # name -> (kind, where declared)
    dim_min: dict = field(default_factory=dict)  # axis -> smallest size, as the source declares
    dim_max: dict = field(default_factory=dict)


def load_native(source: str, *, weights: str | None = None, framework: str | None = None,
                trust_code: bool = False, threads: int | None = None, obj=None) -> Loaded:
    """Load SOURCE; or, with ``obj``, wrap a model object the caller holds (an nn.Module or a Keras
    model, run in this process: the caller already trusts it), ``source`` being its label."""
    if obj is not None:
        return _load_object(obj, source, weights, framework, threads)
    ref = parse_source(source)
    declared_specs: list[TensorSpec] | None = None
    kinds: dict = {}
    bounds: dict = {"dim_min": {}, "dim_max": {}}
    if ref.kind in ("pyfile", "module"):
        module = load_user_module(ref)
        decl, decl_ranges = declared_inputs(module, ref.attr)
        where = f"{ref.text} (declared)"
        kinds = {k: (parse_kind(f"{k}={v}")[1], where) for k, v in declared(module, ref.attr, "input_kinds").items()}
        for key in bounds:
            bounds[key] = dict(parse_dim_size(f"{k}={v}") for k, v in declared(module, ref.attr, key).items())
        obj = call_factory(ref, module)
        fw = _checked_framework(obj, framework, f"SOURCE {ref.text}: the factory returned",
                                f"--framework {framework} given, but SOURCE {ref.text} built")
        if decl:
            declared_specs = [parse_input_spec(s) for s in decl]
            declared_specs = apply_ranges(declared_specs, dict(parse_range(f"{k}={v}") for k, v in decl_ranges.items()))
    else:
        fw = ref.framework
        if framework and framework != fw:
            raise UsageError(f"--framework {framework} given, but SOURCE {ref.text} is a {fw} model")
        obj = None
    mod = framework_module(fw)
    if threads:
        mod.configure_threads(threads)  # before loading: TensorFlow fixes its pools when it starts
    model = mod.load(ref, obj, weights, trust=trust_code)
    return Loaded(ref, fw, model, declared_specs or model.input_specs(), kinds, bounds["dim_min"], bounds["dim_max"])


def _checked_framework(obj, framework: str | None, returned: str, given: str) -> str:
    """The framework of a model object, which must be torch or Keras and match ``framework`` if given;
    ``returned``/``given`` begin the two error messages."""
    fw = framework_of(obj)
    if fw is None:
        raise InputError(f"{returned} a {type(obj).__module__}.{type(obj).__name__}, expected a torch.nn.Module "
                         "or a Keras model")
    if framework and framework != fw:
        raise UsageError(f"{given} a {fw} model")
    return fw


def _load_object(obj, label: str, weights, framework, threads) -> Loaded:
    fw = _checked_framework(obj, framework, "the model object is",
                            f"framework={framework!r} given, but the model object is")
    mod = framework_module(fw)
    if threads:
        mod.configure_threads(threads)
    ref = SourceRef(label, "object", None, None, fw)
    model = mod.load(ref, obj, weights)
    declared_specs = None
    decl = getattr(obj, "bridge_inputs", None)
    if decl:
        declared_specs = [parse_input_spec(s) for s in decl]
    return Loaded(ref, fw, model, declared_specs or model.input_specs())


def object_label(obj) -> str:
    """How reports name a model object: its class."""
    return f"<{type(obj).__module__}.{type(obj).__name__} object>"


def resolve_specs(loaded: Loaded, input_args: list[str], range_args: list[str]) -> list[TensorSpec]:
    """Inputs from --input if given, else from the model or its module; then --input-range on top."""
    if input_args:
        specs = [parse_input_spec(s) for s in input_args]
        if loaded.declared:
            known = {s.name: s for s in loaded.declared}
            specs = [s.with_range(known[s.name].value_range) if s.name in known else s for s in specs]
    elif loaded.declared:
        specs = list(loaded.declared)
    else:
        raise UsageError(
            f"SOURCE {loaded.ref.text} does not declare its inputs",
            hint="pass --input NAME:DTYPE[DIMS] for each forward() argument in order, e.g. "
                 "--input x:float32[batch,3,224,224], or set BRIDGE_INPUTS in the factory's module",
        )
    check_unique(specs)
    return apply_ranges(specs, dict(parse_range(r) for r in range_args))


def in_model_order(specs: list[TensorSpec], names: list[str] | None) -> list[TensorSpec]:
    """Specs in the native model's own input order (forward()'s parameters, a Keras model's inputs)
    when their names are the model's; otherwise as given (bound by position)."""
    if not names or not {s.name for s in specs} <= set(names):
        return specs
    rank = {n: i for i, n in enumerate(names)}
    return sorted(specs, key=lambda s: rank[s.name])


def with_semantics(loaded: Loaded, specs: list[TensorSpec], cli_kinds: list[str], sizes: dict,
                   range_from: dict[str, str]) -> tuple[list[TensorSpec], list[dict]]:
    """Specs with each input's kind and range decided (bridge/semantics.py), and the table saying how.
    Integer inputs without a range are probed once: an input the model feeds to an embedding table is
    an index into it, drawn over the whole table."""
    from bridge.inputs import make_feeds
    from bridge.semantics import probe_feeds_kinds, resolve
    from bridge.types import Case

    kinds = dict(loaded.kinds)
    kinds.update({name: (kind, "--input-kind") for name, kind in (parse_kind(k) for k in cli_kinds)})
    first, _ = resolve(specs, kinds, range_from=range_from)
    open_ints = [s.name for s in first if s.dtype.startswith(("int", "uint")) and s.value_range is None
                 and s.kind in ("values", "index")]
    tables = {}
    if open_ints and hasattr(loaded.model, "index_ranges"):
        probe = make_feeds(probe_feeds_kinds(first), Case("probe", 0, dict(sizes)))
        try:
            tables = {k: v for k, v in loaded.model.index_ranges(probe).items() if k in open_ints}
        except Exception:  # noqa: BLE001 - a model that rejects the probe shows it in the real cases
            tables = {}
        for name in tables:
            if name not in kinds:
                kinds[name] = ("index", f"the table it feeds")
    return resolve(specs, kinds, tables, range_from)
