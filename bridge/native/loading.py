"""SOURCE -> a loaded native model, the request completed by what the source declares, and the input
specs to feed it (framework-neutral orchestration)."""

from __future__ import annotations

from dataclasses import dataclass

from bridge.errors import InputError, UsageError
from bridge.frameworks import framework_module
from bridge.native.sources import SourceRef, call_factory, framework_of, load_user_module, parse_source
from bridge.request import declarations, with_declarations
from bridge.spec import apply_ranges, check_unique
from bridge.types import TensorSpec


@dataclass
class Loaded:
    ref: SourceRef
    framework: str
    model: object  # a NativeModel from bridge.frameworks.<framework>
    request: object  # the request, with what the source declares where the request says nothing
    signature: list[TensorSpec] | None  # the inputs the model states itself (Keras, .pt2), if any


def load_native(request, obj=None) -> Loaded:
    """Load ``request.source``; or, with ``obj``, wrap a model object the caller holds (an nn.Module or a
    Keras model, run in this process: the caller already trusts it), ``request.source`` being its label.
    A factory's module may declare options (BRIDGE_INPUTS, BRIDGE_INPUT_RANGES, ...; bridge/request.py):
    they fill what the request leaves unset, with the source named as their origin."""
    if obj is not None:
        return _load_object(obj, request)
    ref = parse_source(request.source)
    if ref.kind in ("pyfile", "module"):
        module = load_user_module(ref)
        values = declarations(ref.text, factory=getattr(module, ref.attr or "", None), module=module)
        request = with_declarations(request, values, f"{ref.text} (declared)")
        obj = call_factory(ref, module)
        fw = _checked_framework(
            obj,
            request.framework,
            f"SOURCE {ref.text}: the factory returned",
            f"--framework {request.framework} given, but SOURCE {ref.text} built",
        )
        if not request.weights:
            _same_every_call(ref, module, obj, framework_module(fw))
    else:
        fw = ref.framework
        if request.framework and request.framework != fw:
            raise UsageError(f"--framework {request.framework} given, but SOURCE {ref.text} is a {fw} model")
        obj = None
    mod = framework_module(fw)
    if request.threads:
        mod.configure_threads(request.threads)  # before loading: TensorFlow fixes its pools when it starts
    from bridge.native.custom import custom_objects  # --custom-objects: the user's Keras classes

    model = mod.load(ref, obj, request.weights, trust=request.trust_code, **custom_objects(request, ref))
    return Loaded(ref, fw, model, request, model.input_specs())


def _same_every_call(ref, module, obj, mod) -> None:
    """A factory must build the same model in every process: export and every later verify run it in a
    process of their own. One that draws random weights without a seed passes its export, then fails
    every verify with every element off. Here the module is run again and the factory called again
    after the random generators were reseeded at random, as a new process would find them; the two
    builds' weights must agree (a module that seeds at import, or a factory that seeds itself, agrees)."""
    first = mod.fingerprint(obj)
    if first is None:
        return
    mod.reseed()
    second = call_factory(ref, load_user_module(ref, again=True))
    again = mod.fingerprint(second)
    del second
    if again != first:
        raise UsageError(
            f"SOURCE {ref.text}: the source returns different weights on each call (in a new process "
            f"{ref.attr}() builds another model), so a bundle exported from it can never be verified against it",
            hint="seed it (torch.manual_seed(0) / keras.utils.set_random_seed(0) in the factory or at the top of "
            "its module) or pass --weights FILE with trained weights; a source must be deterministic",
        )


def _checked_framework(obj, framework: str | None, returned: str, given: str) -> str:
    """The framework of a model object, which must be torch or Keras and match ``framework`` if given;
    ``returned``/``given`` begin the two error messages."""
    fw = framework_of(obj)
    if fw is None:
        raise InputError(
            f"{returned} a {type(obj).__module__}.{type(obj).__name__}, expected a torch.nn.Module or a Keras model"
        )
    if framework and framework != fw:
        raise UsageError(f"{given} a {fw} model")
    return fw


def _load_object(obj, request) -> Loaded:
    fw = _checked_framework(
        obj, request.framework, "the model object is", f"framework={request.framework!r} given, but the model object is"
    )
    mod = framework_module(fw)
    if request.threads:
        mod.configure_threads(request.threads)
    ref = SourceRef(request.source, "object", None, None, fw)
    # An object declares like a factory does: bridge_inputs = [...] on the instance or its class.
    request = with_declarations(request, declarations(request.source, factory=obj), f"{request.source} (declared)")
    model = mod.load(ref, obj, request.weights)
    return Loaded(ref, fw, model, request, model.input_specs())


def object_label(obj) -> str:
    """How reports name a model object: its class."""
    return f"<{type(obj).__module__}.{type(obj).__name__} object>"


def resolve_specs(loaded: Loaded) -> list[TensorSpec]:
    """The inputs: the request's (the command line's, the config's, the API's or the source's declared
    ones), else the model's own signature; then the ranges on top. Specs named in the request keep a
    range or kind the signature gave them."""
    request = loaded.request
    if request.inputs:
        specs = list(request.inputs)
        if loaded.signature:
            known = {s.name: s for s in loaded.signature}
            specs = [
                s.with_range(known[s.name].value_range) if s.name in known and s.value_range is None else s
                for s in specs
            ]
    elif loaded.signature:
        specs = list(loaded.signature)
    else:
        raise UsageError(
            f"SOURCE {loaded.ref.text} does not declare its inputs",
            hint="pass --input NAME:DTYPE[DIMS] for each forward() argument in order, e.g. "
            "--input x:float32[batch,3,224,224], or set BRIDGE_INPUTS in the factory's module",
        )
    check_unique(specs)
    return apply_ranges(specs, request.input_ranges)


def range_origins(request, specs: list[TensorSpec], default: str) -> dict[str, str]:
    """Where each input's range came from, for the report: the request's origin of that range (the
    command line, a config, the API, the source's declaration), else ``default``."""
    out = {}
    for s in specs:
        if s.value_range is None:
            continue
        origin = request.origin("input_ranges", s.name)
        out[s.name] = {"command line": "--input-range"}.get(origin, origin) if origin != "default" else default
    return out


def in_model_order(specs: list[TensorSpec], names: list[str] | None) -> list[TensorSpec]:
    """Specs in the native model's own input order (forward()'s parameters, a Keras model's inputs)
    when their names are the model's; otherwise as given (bound by position)."""
    if not names or not {s.name for s in specs} <= set(names):
        return specs
    rank = {n: i for i, n in enumerate(names)}
    return sorted(specs, key=lambda s: rank[s.name])


def with_semantics(
    loaded: Loaded,
    specs: list[TensorSpec],
    sizes: dict,
    range_from: dict[str, str],
    kinds: dict | None = None,
    weak: tuple = (),
) -> tuple[list[TensorSpec], list[dict]]:
    """Specs with each input's kind and range decided (bridge/verdict/semantics.py), and the table
    saying how. Integer inputs without a range are probed once: an input the model feeds to an
    embedding table is an index into it, drawn over the whole table. ``weak``: inputs whose range came
    from the artifact under test: a table the model states replaces it."""
    from bridge.types import Case
    from bridge.verdict.inputs import make_feeds
    from bridge.verdict.semantics import probe_feeds_kinds, resolve

    request = loaded.request
    if kinds is None:  # the request's own (the verifier's, or the source's declaration)
        kinds = {
            name: (kind, _kind_origin(request.origin("input_kinds", name)))
            for name, kind in request.input_kinds.items()
        }
    kinds = dict(kinds)
    first, _ = resolve(specs, kinds, range_from=range_from)
    open_ints = [
        s.name
        for s in first
        if s.dtype.startswith(("int", "uint"))
        and (s.value_range is None or s.name in weak)
        and s.kind in ("values", "index")
    ]
    tables = {}
    if open_ints:
        probe = make_feeds(probe_feeds_kinds(first), Case("probe", 0, dict(sizes)))
        try:
            tables = {k: v for k, v in loaded.model.index_ranges(probe).items() if k in open_ints}
        except Exception:  # noqa: BLE001 - a model that rejects the probe shows it in the real cases
            tables = {}
        for name in tables:
            if name not in kinds:
                kinds[name] = ("index", "the table it feeds")
    if tables:  # the model's own table, not the artifact's declaration, bounds these inputs
        specs = [s.with_range(None) if s.name in tables and s.name in weak else s for s in specs]
        range_from = {k: v for k, v in range_from.items() if not (k in tables and k in weak)}
    return resolve(specs, kinds, tables, range_from)


def _kind_origin(origin: str) -> str:
    return "--input-kind" if origin == "command line" else origin


def stated_limits(loaded: Loaded, specs: list[TensorSpec], sizes: dict) -> dict[str, tuple[int, str]]:
    """The largest sizes the model states for its dynamic axes (a position table), from one run with
    every dynamic axis at a distinct size. {} when it states none or rejects the probe."""
    from bridge.types import Case
    from bridge.verdict.inputs import make_feeds
    from bridge.verdict.plan import dynamic_axes
    from bridge.verdict.semantics import probe_feeds_kinds

    axes = dynamic_axes(specs)
    if not axes:
        return {}
    probe = {a: int(sizes.get(a, 2)) + 3 + 2 * i for i, a in enumerate(axes)}
    try:
        feeds = make_feeds(probe_feeds_kinds(specs), Case("probe", 0, probe))
        return loaded.model.axis_limits(feeds, probe)
    except Exception:  # noqa: BLE001 - a model that rejects the probe states nothing here
        return {}
