"""The request: every option of export, verify and bench declared once, and the typed values built from it.

One ``Option`` per option holds its flag, its ``bridge.toml`` key, its API keyword (the option's name),
its default, its parser and validation (its ``Kind``), which commands take it, whether a source may
declare it (``BRIDGE_<NAME>`` in the factory's module, ``bridge_<name>`` on the factory), and what it
names on disk (``role``: a file the command reads, or one it writes). From that one table come:

* the argparse parsers of ``export``, ``verify`` and ``bench`` (bridge/commands/parser.py);
* ``Request`` values from a command line, from a ``[[models]]`` table of ``bridge.toml``, from API
  keywords and from a source's declarations, each value parsed once, here;
* a command line again (``Request.to_argv``), which ``bridge check`` runs, and which parses back to an
  equal request;
* where each term came from (``Request.origins``: "command line", "bridge.toml", "API", "default",
  or a source's declaration), which reports print and the verdict rules read.

A bad value fails alike from every surface: exit 2 (UsageError) with the same problem text, placed as
``--min-top1 5: ...``, ``bridge.toml: model 'm': key 'min_top1' = 5: ...`` or ``min_top1=5: ...``.

Standard library only (``bridge --help`` imports this): values are plain data (``TensorSpec``, dicts,
tuples, ``TolSpec``) that pickle into the worker process.
"""

from __future__ import annotations

import difflib
import math
import os
from dataclasses import dataclass, field, fields, make_dataclass
from dataclasses import replace as _replace
from typing import Any

from bridge.errors import SpecError, UsageError
from bridge.types import INPUT_KINDS, TensorSpec

COMMANDS = ("export", "verify", "bench")
CLI, CONFIG, API, DEFAULT = "command line", "bridge.toml", "API", "default"


class Invalid(Exception):
    """A value's problem, before it is placed on a surface (a flag, a config key, an API keyword);
    ``key``: the entry of a table option (an input or output name) it is about."""

    def __init__(self, message: str, key: str | None = None, item: str | None = None):
        super().__init__(message)
        self.key = key  # the table entry (an input, axis or output name) the problem is about
        self.item = item  # that entry as the command line spells it (NAME=VALUE)


# -- kinds: how one option's values are parsed, validated and written back ----------------------------


class Kind:
    """Parses an option's values. ``from_text`` takes what argparse collected for the flag (a string,
    or a list of strings for repeated or multi-token flags); ``from_value`` takes a Python value (TOML,
    API keywords, source declarations); ``to_text`` gives the flag's tokens back, one list per
    occurrence; ``to_value`` a plain TOML/JSON value."""

    repeated = False  # the flag may be given several times (argparse action="append")
    nargs: str | None = None
    is_flag = False  # a switch without a value (store_true)
    choices: tuple | None = None
    empty: Any = None  # the value when the option is not given and has no other default
    words = "a value"
    spec = False  # a problem with it is a bad spec (SpecError, "bridge: bad spec: ...")

    def from_text(self, raw):
        return self.check(raw)

    def from_value(self, raw):
        return self.check(raw)

    def check(self, value):
        return value

    def to_text(self, value) -> list[list[str]]:
        return [[str(value)]]

    def to_value(self, value):
        return value

    def describe(self) -> str:
        return self.words


class Text(Kind):
    words = "a string"

    def __init__(self, choices: tuple | None = None):
        self.choices = choices

    def check(self, value):
        if isinstance(value, os.PathLike):
            value = os.fspath(value)
        if not isinstance(value, str) or not value.strip():
            raise Invalid(f"expected {self.describe()}")
        if self.choices and value not in self.choices:
            close = difflib.get_close_matches(value, self.choices, n=1)
            raise Invalid(
                f"expected one of {', '.join(self.choices)}" + (f" (did you mean {close[0]}?)" if close else "")
            )
        if "\0" in value:
            raise Invalid("holds a NUL character")
        return value

    def describe(self) -> str:
        return "one of " + ", ".join(self.choices) if self.choices else self.words


class PathText(Text):
    """A file or directory path; a config resolves it against the config file's directory."""

    words = "a path"


class CodeText(PathText):
    """A Python file (FILE.py) or a package.module name: a config makes a file absolute and leaves a module
    name as it is."""

    words = "a FILE.py or a package.module name"


class SourceText(Text):
    """A SOURCE: file.py:factory, package.module:factory or a model file; a config makes its file part
    absolute (package.module:factory stays as it is, imported with the config's directory as cwd)."""

    words = "a SOURCE (file.py:factory, package.module:factory, a .keras/.h5/.pt2 file or a SavedModel directory)"


class Number(Kind):
    def __init__(
        self,
        integer: bool = False,
        minimum: float | None = None,
        maximum: float | None = None,
        above: float | None = None,
        words: str | None = None,
    ):
        self.integer, self.minimum, self.maximum, self.above = integer, minimum, maximum, above
        self.words = words or ("an integer" if integer else "a number")

    def from_text(self, raw):
        try:
            value = int(raw) if self.integer else float(raw)
        except (TypeError, ValueError):
            raise Invalid(f"expected {self.words}") from None
        return self.check(value)

    def check(self, value):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(f"expected {self.words}")
        if self.integer:
            if isinstance(value, float):
                if not value.is_integer():
                    raise Invalid(f"expected {self.words}")
                value = int(value)
        else:
            value = float(value)
            if not math.isfinite(value):
                raise Invalid(f"expected {self.words} (finite)")
        if (
            (self.minimum is not None and value < self.minimum)
            or (self.maximum is not None and value > self.maximum)
            or (self.above is not None and value <= self.above)
        ):
            raise Invalid(f"expected {self.words}")
        return value

    def to_text(self, value):
        return [[str(value) if self.integer else repr(float(value))]]


class Switch(Kind):
    is_flag = True
    empty = False
    words = "true or false"

    def check(self, value):
        if not isinstance(value, bool):
            raise Invalid("expected true or false")
        return value

    def to_text(self, value):
        return [[]] if value else []


class SpecList(Kind):
    """Input specs NAME:DTYPE[DIMS], in forward() order: a tuple of TensorSpec."""

    repeated = True
    spec = True
    empty = ()
    words = "input specs like x:float32[batch,3,224,224]"

    def from_text(self, raw):
        return self._parse(list(raw))

    def from_value(self, raw):
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, (list, tuple)) or not all(isinstance(s, (str, TensorSpec)) for s in raw):
            raise Invalid(f"expected a list of {self.words}")
        return self._parse(raw)

    def _parse(self, items):
        from bridge.spec import check_unique, parse_input_spec

        try:
            specs = tuple(s if isinstance(s, TensorSpec) else parse_input_spec(s) for s in items)
            check_unique(list(specs))
        except SpecError as exc:
            raise Invalid(exc.message) from None
        return specs

    def to_text(self, value):
        return [[s.to_text()] for s in value]

    def to_value(self, value):
        return [s.to_text() for s in value]


class NamedValues(Kind):
    """NAME=VALUE pairs (``--input-range ids=0:1000`` repeated), a table in a config ({ids = "0:1000"}),
    a dict or a list of NAME=VALUE strings in the API: an ordered dict name -> value."""

    repeated = True
    spec = True

    def __init__(self, what: str, example: str, item_from_text, item_from_value, item_to_text, item_to_value=None):
        self.what, self.example = what, example
        self.item_from_text, self.item_from_value = item_from_text, item_from_value
        self.item_to_text, self.item_to_value = item_to_text, item_to_value or item_to_text
        self.words = f"NAME={what}, e.g. {example}"

    @property
    def empty(self):
        return {}

    def from_text(self, raw):
        out = {}
        for token in raw:
            name, sep, text = str(token).partition("=")
            name = name.strip()
            if not sep or not name:
                raise Invalid(f"cannot parse {token!r}: expected {self.words}", item=str(token))
            out[name] = self._item(name, lambda: self.item_from_text(text.strip()), str(token))
        return out

    def from_value(self, raw):
        if isinstance(raw, (list, tuple)) and all(isinstance(t, str) for t in raw):
            return self.from_text(raw)
        if isinstance(raw, str):
            return self.from_text([raw])
        if not isinstance(raw, dict):
            raise Invalid(f"expected a table of input or axis name -> {self.what}, e.g. {self.example}")
        return {str(k): self._item(str(k), lambda v=v: self.item_from_value(v), f"{k}={v}") for k, v in raw.items()}

    def _item(self, name, parse, item):
        try:
            return parse()
        except Invalid as exc:
            raise Invalid(str(exc), key=name, item=item) from None

    def to_text(self, value):
        return [[f"{k}={self.item_to_text(v)}"] for k, v in value.items()]

    def to_value(self, value):
        return {k: self.item_to_value(v) for k, v in value.items()}


def _range_text(text: str):
    low, sep, high = text.partition(":")
    if not sep:
        raise Invalid("cannot parse input range: expected NAME=LOW:HIGH, e.g. ids=0:1000")
    return _range_pair(low.strip(), high.strip())


def _range_value(value):
    if isinstance(value, str):
        return _range_text(value)
    if isinstance(value, (list, tuple)) and len(value) == 2:
        return _range_pair(*value)
    raise Invalid('cannot parse input range: expected "LOW:HIGH" or [LOW, HIGH]')


def _range_pair(low, high):
    try:
        lo, hi = float(low), float(high)
    except (TypeError, ValueError):
        raise Invalid(f"bad number in input range {low}:{high}: expected LOW:HIGH, e.g. 0:1000") from None
    if isinstance(low, bool) or isinstance(high, bool) or not (math.isfinite(lo) and math.isfinite(hi)):
        raise Invalid(f"input range {low}:{high} is not finite")
    if not lo < hi:
        raise Invalid(f"empty input range {low}:{high}: LOW must be below HIGH")
    return (lo, hi)


def _fmt_number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() and abs(x) < 2**53 else repr(float(x))


_SIZE = "cannot parse dimension size: expected an integer >= 1 (NAME=SIZE, e.g. batch=4)"


def _size(value):
    if isinstance(value, str):
        value = value.strip()
        if not value.isdigit():
            raise Invalid(_SIZE)
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise Invalid(_SIZE)
    return value


def _axis_name(name: str) -> None:
    if not name.isidentifier():
        raise Invalid(f"cannot parse dimension size: axis name {name!r} is not an identifier")


def _size_value(value):
    if isinstance(value, str):
        raise Invalid(_SIZE)  # a config's or the API's size is a number, not text
    return _size(value)


class Sizes(NamedValues):
    def __init__(self):
        super().__init__("SIZE", "batch=4", _size, _size_value, str, int)

    def _item(self, name, parse, item):
        try:
            _axis_name(name)
        except Invalid as exc:
            raise Invalid(str(exc), key=name, item=item) from None
        return super()._item(name, parse, item)


def _kind(value):
    if value not in INPUT_KINDS:
        raise Invalid(
            f"cannot parse input kind {value!r}: expected one of {', '.join(INPUT_KINDS)} "
            "(NAME=KIND, e.g. attention_mask=mask)"
        )
    return value


@dataclass(frozen=True)
class TolSpec:
    """A tolerance option: one value for every output and/or values per output (Polygraphy's
    ``--atol 1e-5 logits:1e-4``)."""

    value: float | None = None
    outputs: dict = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.value is not None or bool(self.outputs)


def tolerance_number(raw) -> float:
    """A tolerance value: a finite number >= 0 (Invalid otherwise)."""
    if isinstance(raw, bool):
        raise Invalid("expected a finite number >= 0")
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise Invalid(f"{raw!r} is not a number") from None
    if not math.isfinite(value) or value < 0:
        raise Invalid(f"{raw!r}: expected a finite number >= 0")
    return value


class Tolerances(Kind):
    nargs = "+"
    empty = TolSpec()
    words = "a number for every output and/or NAME:NUMBER per output"

    def from_text(self, raw):
        value, outputs = None, {}
        for token in raw:
            name, sep, number = str(token).rpartition(":")
            if sep and name:
                outputs[name] = tolerance_number(number)
            else:
                value = tolerance_number(token)
        return TolSpec(value, outputs)

    def from_value(self, raw):
        if isinstance(raw, TolSpec):
            return raw
        if isinstance(raw, dict):
            if not raw:
                raise Invalid("expected a number >= 0 or a non-empty table of output name -> number")
            outputs = {}
            for k, v in raw.items():
                try:
                    outputs[str(k)] = tolerance_number(v)
                except Invalid as exc:
                    raise Invalid(str(exc), key=str(k), item=f"{k}:{v}") from None
            return TolSpec(None, outputs)
        if isinstance(raw, str):
            return self.from_text(raw.split())
        if isinstance(raw, (list, tuple)):
            return self.from_text([str(v) if isinstance(v, str) else repr(v) for v in raw])
        return TolSpec(tolerance_number(raw), {})

    def to_text(self, value):
        tokens = ([repr(value.value)] if value.value is not None else []) + [
            f"{k}:{v!r}" for k, v in value.outputs.items()
        ]
        return [tokens] if tokens else []

    def to_value(self, value):
        if value.outputs and value.value is not None:
            return self.to_text(value)[0]  # both: the command line's tokens, ["1e-05", "logits:0.0001"]
        return dict(value.outputs) if value.outputs else value.value


CANDIDATES = ("fp32", "fused", "int8", "fp16")  # --precision auto's artifacts (bridge/precision/auto.py)


class Choices(Kind):
    """Distinct names from a fixed set, in the order given (``--candidates fp32 int8``, a config list)."""

    nargs = "+"
    empty = ()

    def __init__(self, choices: tuple):
        self.choices = choices
        self.words = "names from " + ", ".join(choices)

    def from_text(self, raw):
        return self.from_value(list(raw))

    def from_value(self, raw):
        if isinstance(raw, str):
            raw = raw.replace(",", " ").split()
        if not isinstance(raw, (list, tuple)) or not raw or not all(isinstance(v, str) for v in raw):
            raise Invalid(f"expected a non-empty list of {self.words}")
        for v in raw:
            if v not in self.choices:
                close = difflib.get_close_matches(v, self.choices, n=1)
                raise Invalid(
                    f"{v!r} is not one of {', '.join(self.choices)}" + (f" (did you mean {close[0]}?)" if close else "")
                )
        if len(set(raw)) != len(raw):
            raise Invalid("a name is given twice")
        return tuple(raw)

    def to_text(self, value):
        return [list(value)] if value else []

    def to_value(self, value):
        return list(value)


class Devices(Kind):
    """ONNX Runtime devices: the execution providers of bridge/frameworks/providers (one module each)."""

    repeated = True
    empty = ("cpu",)

    @property
    def choices(self) -> tuple:
        from bridge.frameworks.providers import PROVIDERS

        return tuple(PROVIDERS)

    @property
    def words(self) -> str:
        return "devices from " + ", ".join(self.choices)

    def from_text(self, raw):
        return self.from_value(list(raw))

    def from_value(self, raw):
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, (list, tuple)) or not raw or not all(d in self.choices for d in raw):
            raise Invalid(f"expected a non-empty list of distinct {self.words}")
        if len(set(raw)) != len(raw):
            raise Invalid("a device is named twice")
        return tuple(raw)

    def to_text(self, value):
        return [[d] for d in value]

    def to_value(self, value):
        return list(value)


# -- the table ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Option:
    name: str  # the request field, the API keyword and (where it is one) the bridge.toml key
    kind: Kind
    commands: tuple  # of "export", "verify", "bench"
    help: str | dict  # or command -> help
    default: Any = None  # or command -> default
    flag: str | None = ""  # "" : "--" + name with "-" for "_"; None: no flag (reason in `why`)
    aliases: tuple = ()  # further flags
    short: str | None = None
    metavar: str | None = None
    positional: tuple = ()  # commands where it is a positional argument instead of a flag
    required: bool = False
    key: bool = True  # a bridge.toml key (else the reason is in `why`)
    api: bool = True  # an API keyword (else the reason is in `why`)
    declarable: bool = False  # a source may declare it (BRIDGE_<NAME>, factory.bridge_<name>)
    role: str | None = None  # "input": a file the command reads; "output": one it writes; "bundle"
    worker: bool = True  # the worker reads it (else only the command process does)
    why: str = ""  # why the option lacks a flag, a key or an API keyword

    @property
    def cli_flag(self) -> str | None:
        if self.flag is None:
            return None
        return self.flag or "--" + self.name.replace("_", "-")

    def is_positional(self, command: str) -> bool:
        return command in self.positional

    def default_for(self, command: str):
        value = self.default.get(command) if isinstance(self.default, dict) else self.default
        if value is None and not isinstance(self.default, dict):
            value = self.kind.empty
        return value() if callable(value) else value

    def help_for(self, command: str) -> str:
        return self.help.get(command, "") if isinstance(self.help, dict) else self.help


RANGES = NamedValues(
    "LOW:HIGH", "ids=0:1000", _range_text, _range_value, lambda r: f"{_fmt_number(r[0])}:{_fmt_number(r[1])}"
)
KINDS = NamedValues("KIND", "attention_mask=mask", _kind, _kind, str)
EV, VB, EVB = ("export", "verify"), ("verify", "bench"), ("export", "verify", "bench")
_PROCESS = "a setting of the command's own process, not of the request (bridge check has its own)"

OPTIONS: tuple[Option, ...] = (
    # what to run on
    Option(
        "source",
        SourceText(),
        EVB,
        {
            "export": "file.py:factory, package.module:factory, model.keras, model.h5, SavedModel dir, program.pt2",
            "verify": "the native model to compare against (fresh inputs)",
            "bench": "the native model to time beside ONNX Runtime",
        },
        positional=("export",),
        metavar="SOURCE",
        role="input",
        api=False,
        why="the API takes the model (an object or a SOURCE string) as its first argument",
    ),
    Option(
        "target",
        PathText(),
        VB,
        "a bundle directory or a .onnx file",
        positional=VB,
        metavar="TARGET",
        role="bundle",
        key=False,
        api=False,
        why="bridge check verifies the bundle it exports; the API takes TARGET as its first argument",
    ),
    Option(
        "output",
        PathText(),
        ("export",),
        "bundle directory to create",
        short="-o",
        metavar="BUNDLE_DIR",
        required=True,
        role="bundle",
        key=False,
        api=False,
        why="bridge check writes each bundle into its workdir; the API takes it as its second argument",
    ),
    Option(
        "weights",
        PathText(),
        EVB,
        "PyTorch state_dict (.pt, loaded with weights_only=True) or .safetensors",
        metavar="FILE",
        role="input",
    ),
    Option("framework", Text(("torch", "tensorflow")), EVB, "expected framework of SOURCE"),
    Option(
        "custom_objects",
        CodeText(),
        EVB,
        "Keras: a FILE.py or package.module defining the custom layers (classes, functions) a .keras/.h5 SOURCE "
        "uses; imported (it runs, as your code) and passed to keras.models.load_model as custom_objects",
        metavar="FILE.py",
        role="input",
    ),
    Option(
        "inputs",
        SpecList(),
        EVB,
        {
            "export": "model input, in forward() order; integer dims fixed, named dims dynamic",
            "verify": "input spec, overriding the bundle's or the source's (e.g. another dynamic axis)",
            "bench": "input spec, overriding the bundle's or the source's",
        },
        flag="--input",
        metavar="NAME:DTYPE[DIMS]",
        declarable=True,
    ),
    Option(
        "input_ranges",
        RANGES,
        EVB,
        "value range of an input (integers: LOW inclusive, HIGH exclusive)",
        flag="--input-range",
        metavar="NAME=LOW:HIGH",
        declarable=True,
    ),
    Option(
        "input_kinds",
        KINDS,
        EVB,
        "what an input's values mean: values, index (ids into a table), mask (0/1 attention mask, every row "
        "attends somewhere) or positions (0..n-1); default from the name (attention_mask, input_ids, ...), "
        "always listed in the report",
        flag="--input-kind",
        metavar="NAME=KIND",
        declarable=True,
    ),
    Option(
        "dims",
        Sizes(),
        EVB,
        "size of a dynamic axis in generated inputs (default 2; the plan sweeps around it)",
        flag="--dim",
        metavar="NAME=SIZE",
        declarable=True,
    ),
    Option(
        "dim_min",
        Sizes(),
        EVB,
        "smallest size the plan may give a dynamic axis (e.g. samples=400 for a "
        "model whose first convolution needs that many)",
        metavar="NAME=SIZE",
        declarable=True,
    ),
    Option(
        "dim_max",
        Sizes(),
        EVB,
        "largest size the plan may give a dynamic axis, the largest the model is deployed at (the plan goes up to it)",
        metavar="NAME=SIZE",
        declarable=True,
    ),
    # export
    Option(
        "opset",
        Number(integer=True, minimum=7, words="an opset version >= 7"),
        ("export",),
        "ONNX opset (default: the exporter's)",
        metavar="N",
    ),
    Option(
        "exporter",
        Text(("auto", "dynamo", "torchscript")),
        ("export",),
        "auto (default): torch models try the dynamo exporter, then TorchScript, and keep the first artifact "
        "that passes; a pinned route never falls back (TensorFlow has one route: tf2onnx)",
        default="auto",
    ),
    Option(
        "force",
        Switch(),
        ("export",),
        "replace an existing bundle at BUNDLE_DIR",
        key=False,
        why="bridge check always replaces the bundles in its workdir",
    ),
    Option(
        "publish_failed",
        Switch(),
        ("export",),
        "publish the bundle at BUNDLE_DIR even when its verification fails or is inconclusive (default: it is "
        "kept at BUNDLE_DIR.failed or BUNDLE_DIR.inconclusive)",
        key=False,
        why="bridge check publishes every bundle: its own verify step judges it",
    ),
    Option(
        "optimize",
        Text(("none", "ort", "transformer")),
        ("export",),
        "graph optimization saved into the bundle, verified like any export: none (default), ort (ONNX "
        "Runtime's offline fusions), transformer (onnxscript's ONNX Runtime fusions: attention, skip and RMS "
        "normalization, bias-GELU, rotary embeddings, grouped-query attention)",
        default="none",
        metavar="LEVEL",
    ),
    Option(
        "precision",
        Text(("fp32", "fp16", "int8", "auto")),
        EVB,
        {
            "export": "fp32 (default), or a graph derived from the verified fp32 export and verified again under its "
            "own policy row: fp16, int8 (static with --calibrate, else dynamic MatMul/LSTM weights); auto: build "
            "the --candidates, verify each, time the passing ones with the native model in one bench, and publish "
            "the fastest that passes (bridge/precision/auto.py)",
            "verify": "the policy row to judge the graph by: fp32 (default: strict, whatever the bundle says), or the "
            "reduced-precision row you accept for an fp16 / int8 bundle; auto: the row of the graph's precision",
            "bench": "the policy row for the bundle's graph (as verify)",
        },
        default="fp32",
    ),
    Option(
        "calibrate",
        PathText(),
        ("export", "verify"),
        {
            "export": "real samples (one array per input) to calibrate --precision int8 on: static QDQ quantization",
            "verify": "the calibration samples a static int8 bundle names but does not store (too large to keep): "
            "its derivation is checked with them",
        },
        metavar="FILE.npz",
        role="input",
    ),
    Option(
        "candidates",
        Choices(CANDIDATES),
        ("export",),
        "with --precision auto, the artifacts to build, verify and time: fp32 (the export), fused (--optimize "
        "transformer), int8 (dynamic for GEMM-bound graphs, static QDQ on --calibrate samples for convolutional "
        "ones; after fusion where fusion applies), fp16 (default: fp32 fused int8, and fp16 on cuda)",
        metavar="NAME",
    ),
    # verify
    Option(
        "devices",
        Devices(),
        EVB,
        {
            "export": "with --precision auto, where the candidates are timed and chosen (the first device; export "
            "verifies on the CPU)",
            "verify": "ONNX Runtime device (repeatable)",
            "bench": "ONNX Runtime device (repeatable)",
        },
        flag="--device",
    ),
    Option(
        "samples",
        PathText(),
        EV,
        {
            "export": "with --precision auto, real samples every candidate is judged on as well (top-1 agreement; "
            "with --labels, accuracy against the native model's), one array per input",
            "verify": "real samples to verify on as well, one array per input (needs --source)",
        },
        aliases=("--inputs",),
        metavar="FILE.npz",
        role="input",
    ),
    Option(
        "labels",
        PathText(),
        EV,
        "class labels of the --samples: accuracy on both sides",
        metavar="FILE.npy",
        role="input",
    ),
    Option("policy", PathText(), ("verify",), "tolerance policy file (.toml or .json)", metavar="FILE", role="input"),
    Option("allow_nonfinite", Switch(), ("verify",), "NaN/Inf pass when both sides agree on them"),
    Option(
        "min_top1",
        Number(minimum=0.0, maximum=1.0, words="a fraction between 0 and 1 (e.g. 1.0)"),
        ("verify",),
        "fail a classifier output whose argmax agrees on fewer rows of the real samples (needs --samples)",
        metavar="FRACTION",
    ),
    Option(
        "localize",
        PathText(),
        ("verify",),
        "on a parity failure, find the first diverging node and write a reproduction to DIR",
        metavar="DIR",
        role="output-dir",
        key=False,
        why="bridge check keeps each model's reports in its workdir",
    ),
    Option(
        "latency_runs",
        Number(integer=True, minimum=0, words="an integer >= 0"),
        EVB,
        {
            "export": "with --precision auto, timed runs per side of the bench that picks the candidate (default 30)",
            "verify": "timed runs per side, 0 to skip (default 0)",
            "bench": "timed runs per side (default 100)",
        },
        default={"export": 30, "verify": 0, "bench": 100},
        key=False,
        why="set by the model's latency table (latency.runs)",
    ),
    Option(
        "latency_seconds",
        Number(above=0.0, words="a number of seconds > 0"),
        VB,
        "time budget of the timed runs, every side together, where --latency-runs is not given: a slow model gets "
        "the runs that fit (at least 5 per side) and the report says so (default 60)",
        default=60.0,
        metavar="SECONDS",
    ),
    Option(
        "latency_dims",
        Sizes(),
        ("export",),
        "with --precision auto, the size of a dynamic axis the candidates are timed at (e.g. batch=1), when it "
        "differs from the export size (the default); the timed inputs are compared like any other case",
        flag="--latency-dim",
        metavar="NAME=SIZE",
    ),
    Option(
        "ort_spinning",
        Text(("on", "off")),
        VB,
        "ONNX Runtime's idle threads spin like torch's OpenMP threads do (default on)",
        default="on",
    ),
    Option(
        "tf32",
        Switch(),
        EVB,
        "CUDA: keep TF32 math on (ORT's and cuDNN's default) instead of verifying in strict fp32 (export: with "
        "--precision auto, a TF32 candidate beside strict fp32)",
    ),
    Option(
        "strict_terms",
        Switch(),
        ("verify",),
        "with --source, take no term of the test from the bundle under test: an input's range, kind or size "
        "bounds come only from you (flags, config, API) or the source's declarations, else bridge's defaults "
        "(default for bridge check; without it, what the bundle declares fills what you leave unsaid, and the "
        "verdict says so)",
    ),
    # both
    Option(
        "search",
        Number(integer=True, minimum=0, words="an integer >= 0 (rows)"),
        EVB,
        "random rows the search draws beyond the named cases, over each input's domain, each row from a family "
        "of its own (default 512; 0: none; raise it for CI)",
        default=512,
        metavar="ROWS",
    ),
    Option(
        "search_seconds",
        Number(above=0.0, words="a number of seconds > 0"),
        EVB,
        "time the search may take per device, both sides, estimated from the native model's cost per row (default 20)",
        default=20.0,
        metavar="SECONDS",
    ),
    Option(
        "seed",
        Number(integer=True, minimum=0, words="an integer >= 0"),
        EVB,
        metavar="N",
        help={
            "export": "seed of the golden inputs (default 0)",
            "verify": "seed of fresh inputs with --source (default 1)",
            "bench": "seed of the inputs (default 1)",
        },
        default={"export": 0, "verify": 1, "bench": 1},
    ),
    Option(
        "threads",
        Number(integer=True, minimum=1, words="an integer >= 1"),
        EVB,
        metavar="N",
        help="intra-op threads for every runtime, set equal on all sides (default: CPU count)",
    ),
    Option(
        "trust_code",
        Switch(),
        EVB,
        "allow model files that run code when loaded (Keras Lambda layers, SavedModel file ops, pickles)",
    ),
    Option(
        "atol",
        Tolerances(),
        EVB,
        "absolute tolerance: a number for every output and/or NAME:TOL per output",
        metavar="TOL",
    ),
    Option("rtol", Tolerances(), EVB, "relative tolerance, same forms as --atol", metavar="TOL"),
    Option(
        "scale_atol",
        Tolerances(),
        EVB,
        "extra atol as a fraction of the output's largest |value| (CUDA default 5e-4), same forms",
        metavar="TOL",
    ),
    # the command's process
    Option(
        "json",
        PathText(),
        EVB,
        "write the report as JSON (schema in docs/reports.md)",
        metavar="PATH",
        role="output",
        worker=False,
        key=False,
        api=False,
        why="bridge check writes every report into its workdir; the API returns the Report (report.to_json())",
    ),
    Option(
        "junit",
        PathText(),
        EVB,
        "write a JUnit XML report (one testcase per output, case and device)",
        metavar="PATH",
        role="output",
        worker=False,
        key=False,
        api=False,
        why="bridge check writes one JUnit file for every model (--junit)",
    ),
    Option(
        "markdown",
        PathText(),
        EVB,
        "write a Markdown summary (CI step summary, PR comment)",
        metavar="PATH",
        role="output",
        worker=False,
        key=False,
        api=False,
        why="bridge check writes one summary (--markdown)",
    ),
    Option(
        "html",
        PathText(),
        EVB,
        "write a self-contained HTML report with plots",
        metavar="PATH",
        role="output",
        worker=False,
        key=False,
        api=False,
        why="bridge check keeps each model's JSON report in its workdir",
    ),
    Option(
        "debug", Switch(), EVB, "show tracebacks (the worker's too)", worker=False, key=False, api=False, why=_PROCESS
    ),
    Option(
        "quiet",
        Switch(),
        EVB,
        "no progress lines on stderr (the report still prints)",
        worker=False,
        key=False,
        api=False,
        why=_PROCESS,
    ),
    Option(
        "timeout",
        Number(minimum=0.0, words="a number of seconds >= 0"),
        EVB,
        "stop loading, conversion and execution after this long (default 3600; 0: none)",
        default=3600.0,
        metavar="SECONDS",
        worker=False,
        api=False,
        why="the API runs in the caller's process, without limits",
    ),
    Option(
        "memory_limit",
        Number(above=0.0, words="a number of GB > 0"),
        EVB,
        "stop the worker past this resident memory (default: 80% of the machine's memory)",
        metavar="GB",
        worker=False,
        api=False,
        why="the API runs in the caller's process, without limits",
    ),
    Option(
        "no_contain",
        Switch(),
        EVB,
        "run in this process instead of a contained worker process (debugging)",
        worker=False,
        key=False,
        api=False,
        why=_PROCESS,
    ),
)

BY_NAME = {o.name: o for o in OPTIONS}


def options_for(command: str) -> list[Option]:
    return [o for o in OPTIONS if command in o.commands]


# -- requests --------------------------------------------------------------------------------------------


class _RequestBase:
    """Methods of every request class (the fields come from the table)."""

    command: str
    origins: dict

    def replace(self, *, origin: str | None = None, **changes):
        """A copy with ``changes`` (parsed values), each recorded as set by ``origin``."""
        origins = dict(self.origins)
        if origin:
            origins.update({k: origin for k in changes})
        return _replace(self, origins=origins, **changes)

    def origin(self, name: str, key: str | None = None) -> str:
        """Where a term came from: the option's origin, or (for tables such as input_ranges) the key's."""
        if key is not None and f"{name}.{key}" in self.origins:
            return self.origins[f"{name}.{key}"]
        return self.origins.get(name, DEFAULT)

    def given(self, name: str) -> bool:
        return self.origin(name) != DEFAULT

    def values(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("command", "origins")}

    def to_argv(self) -> list[str]:
        """The command line that parses back to this request (values that differ from the defaults)."""
        argv = [self.command]
        for o in options_for(self.command):
            value = getattr(self, o.name)
            if o.is_positional(self.command):
                if value is not None:
                    argv.append(str(value))
                continue
            if value == o.default_for(self.command) and not o.required:
                continue
            for tokens in o.kind.to_text(value):
                argv += [o.cli_flag, *tokens]
        return argv

    def to_config(self) -> dict:
        """The [[models]] keys that set this request's non-default values (bridge check's form)."""
        return {
            o.name: o.kind.to_value(getattr(self, o.name))
            for o in options_for(self.command)
            if o.key and getattr(self, o.name) != o.default_for(self.command)
        }


def _request_class(name: str, command: str, commands: tuple):
    opts = [o for o in OPTIONS if any(c in o.commands for c in commands)]
    specs = [(o.name, object, field(default=None)) for o in opts]
    specs += [
        ("command", str, field(default=command)),
        ("origins", dict, field(default_factory=dict, compare=False, repr=False)),
    ]
    cls = make_dataclass(
        name,
        specs,
        bases=(_RequestBase,),
        frozen=True,
        namespace={"__doc__": f"A parsed `bridge {'/'.join(commands)}` request (bridge/request.py)."},
    )
    cls.__module__ = __name__  # pickled by reference into the worker: bridge.request.<name>
    return cls


ExportRequest = _request_class("ExportRequest", "export", ("export",))
VerifyRequest = _request_class("VerifyRequest", "verify", ("verify", "bench"))
REQUEST_CLASS = {"export": ExportRequest, "verify": VerifyRequest, "bench": VerifyRequest}


def _place(surface: str, option: Option, raw, where: str = "", problem: Invalid | None = None) -> str:
    """How a problem with ``raw`` is located on each surface (the problem text itself is the same): the
    flag and the offending token, the config key (``atol.logits`` for a table's entry), the keyword."""
    key, item = (problem.key, problem.item) if problem is not None else (None, None)
    if surface == CLI:
        shown = item or (
            " ".join(map(str, raw)) if isinstance(raw, (list, tuple)) else ("" if raw is True else str(raw))
        )
        return f"{option.cli_flag or option.metavar or option.name} {shown}".rstrip()
    if surface == API:
        return f"{option.name}={raw!r}" + (f" ({item})" if item else "")
    if key is not None and isinstance(raw, dict) and key in raw:
        return f"{where}key '{option.name}.{key}' = {raw[key]!r}"
    return f"{where}key {option.name!r} = {raw!r}"


def _parse(option: Option, raw, surface: str, where: str = ""):
    try:
        return option.kind.from_text(raw) if surface == CLI else option.kind.from_value(raw)
    except Invalid as exc:
        hint = None
        if option.kind.choices:
            hint = f"{option.name}: one of {', '.join(option.kind.choices)}"
        error = SpecError if option.kind.spec else UsageError
        raise error(f"{_place(surface, option, raw, where, exc)}: {exc}", hint=hint) from None


def build(
    command: str, given: dict, surface: str, *, origin: str | None = None, where: str = "", fixed: dict | None = None
):
    """A request for ``command`` from raw values by option name (``given``), parsed by each option's kind
    as ``surface`` delivers them (CLI: argparse's strings; otherwise Python values). ``fixed``: values
    already parsed (an API call's TARGET, say). Every option not given takes its default."""
    cls = REQUEST_CLASS[command]
    allowed = {o.name: o for o in options_for(command)}
    values, origins = {}, {}
    for name, raw in given.items():
        option = allowed.get(name)
        if option is None:
            raise unknown_keyword(name, command, surface, where)
        if raw is None:
            continue
        values[name] = _parse(option, raw, surface, where)
        origins[name] = origin or surface
        if isinstance(values[name], dict):
            origins.update({f"{name}.{k}": origin or surface for k in values[name]})
    for name, value in (fixed or {}).items():
        values[name] = value
        origins[name] = origin or surface
    for name, option in allowed.items():
        if name not in values:
            values[name] = option.default_for(command)
    check_combination(command, values, surface, where)
    return cls(command=command, origins=origins, **{k: v for k, v in values.items() if k in _field_names(cls)})


def _field_names(cls) -> set:
    return {f.name for f in fields(cls)}


def unknown_keyword(name: str, command: str, surface: str, where: str = "") -> UsageError:
    names = [o.name for o in options_for(command) if (o.api if surface == API else o.key)]
    close = difflib.get_close_matches(name, names, n=1)
    what = "keyword argument" if surface == API else "key"
    return UsageError(
        f"{where}unknown {what} {name!r} for {command}" + (f" (did you mean {close[0]!r}?)" if close else ""),
        hint="accepted: " + ", ".join(names),
    )


def check_combination(command: str, values: dict, surface: str, where: str = "") -> None:
    """Rules between options, the same from every surface."""

    def name(option: str) -> str:
        o = BY_NAME[option]
        return o.cli_flag if surface == CLI else f"{where}{o.name}"

    def entry(option: str, key: str, value) -> str:
        if surface == CLI:
            return f"{BY_NAME[option].cli_flag} {key}={value}"
        return f"{where}key '{option}.{key}' = {value}" if surface == CONFIG else f"{option}[{key!r}]={value}"

    for axis in set(values.get("dim_min") or {}) & set(values.get("dim_max") or {}):
        if values["dim_min"][axis] > values["dim_max"][axis]:
            raise SpecError(
                f"{entry('dim_min', axis, values['dim_min'][axis])}: above "
                f"{entry('dim_max', axis, values['dim_max'][axis])}"
            )
    if command == "export" and values.get("calibrate") and values.get("precision") not in ("int8", "auto"):
        raise UsageError(
            f"{name('calibrate')} applies to precision int8 (static quantization) or auto, not "
            f"{values.get('precision')}",
            hint="drop it, or export with precision int8",
        )
    if command == "export" and values.get("candidates") and values.get("precision") != "auto":
        raise UsageError(
            f"{name('candidates')} applies to precision auto, not {values.get('precision')}",
            hint="drop it, or export with precision auto",
        )
    if command == "export" and values.get("labels") and not values.get("samples"):
        raise UsageError(f"{name('labels')} needs {name('samples')}: labels belong to the real samples they describe")
    if command == "verify":
        if values.get("labels") and not values.get("samples"):
            raise UsageError(
                f"{name('labels')} needs {name('samples')}: labels belong to the real samples they describe"
            )
        if values.get("min_top1") is not None and not values.get("samples"):
            raise UsageError(
                f"{name('min_top1')} judges argmax agreement on real samples and needs {name('samples')}",
                hint="give real samples (an .npz, one array per input)",
            )
    if command == "bench" and values.get("latency_runs", 1) < 1:
        raise UsageError(f"{name('latency_runs')} {values['latency_runs']}: bench needs at least 1 timed run per side")
    if command in ("verify", "bench") and not values.get("source"):
        for option in ("samples", "labels"):
            if values.get(option):
                raise UsageError(
                    f"{name(option)} needs {name('source')}: without it there is no reference for new inputs"
                )


# -- source declarations ----------------------------------------------------------------------------------

DECLARABLE = tuple(o for o in OPTIONS if o.declarable)


def declarations(label: str, *, factory=None, module=None) -> dict:
    """What a source declares, parsed like API values, by option name: ``factory.bridge_<name>`` (a
    factory function, or a model object the API was given) first, else ``module.BRIDGE_<NAME>``.
    ``label`` names the source in errors."""
    values = {}
    for o in DECLARABLE:
        raw, shown = getattr(factory, f"bridge_{o.name}", None), f"bridge_{o.name}"
        if raw is None:
            raw, shown = getattr(module, f"BRIDGE_{o.name.upper()}", None), f"BRIDGE_{o.name.upper()}"
        if raw is None:
            continue
        try:
            values[o.name] = o.kind.from_value(raw)
        except Invalid as exc:
            raise UsageError(f"{label}: {shown} = {raw!r}: {exc}") from None
    return values


def with_declarations(request, values: dict, origin: str):
    """The request with what a source declares filled in where the request itself says nothing; for
    tables (ranges, kinds, sizes), key by key: the request's own keys win."""
    changes, origins = {}, dict(request.origins)
    for name, declared in values.items():
        if not hasattr(request, name):
            continue
        mine = getattr(request, name)
        if isinstance(declared, dict):
            merged = {**declared, **mine}
            if merged != mine:
                changes[name] = merged
                for k in declared:
                    if k not in mine:
                        origins[f"{name}.{k}"] = origin
                origins.setdefault(name, origin)
        elif not request.given(name) or mine in ((), [], None):
            changes[name] = declared
            origins[name] = origin
    return _replace(request, origins=origins, **changes) if changes or origins != request.origins else request


# -- the API ---------------------------------------------------------------------------------------------


def from_api(command: str, keywords: dict, fixed: dict):
    """A request from API keywords (option names, Python values: ``atol=1e-5``, ``input_ranges={"ids":
    (0, 1000)}``, ``dims={"batch": 4}``). An unknown keyword or a bad value raises UsageError (exit 2), as
    the command line would."""
    for name in keywords:
        option = BY_NAME.get(name)
        if option is None or command not in option.commands or not option.api:
            raise unknown_keyword(name, command, API)
    return build(command, keywords, API, fixed=fixed)
