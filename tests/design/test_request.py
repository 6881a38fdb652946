"""The request model holds the design: each option declared once (bridge/request.py), parsed the same way
from the command line, bridge.toml and the API, round-tripping through argv and config, and a usage
error never starting a worker."""

from __future__ import annotations

import argparse

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.commands import build_parser
from bridge.commands.parser import request_from_args
from bridge.errors import UsageError
from bridge.request import (
    API,
    CLI,
    CONFIG,
    OPTIONS,
    Choices,
    Devices,
    NamedValues,
    Number,
    PathText,
    SourceText,
    SpecList,
    Switch,
    Text,
    Tolerances,
    TolSpec,
    build,
    options_for,
)
from bridge.types import TensorSpec


def parse_argv(argv: list[str]):
    args = build_parser(argv).parse_args(argv)
    return request_from_args(args.command, args)


# -- every option on every surface, or a reason ----------------------------------------------------------


def test_every_option_has_a_flag_a_key_and_a_keyword_or_a_reason():
    for o in OPTIONS:
        missing = [
            what for what, has in (("flag", o.cli_flag or o.positional), ("key", o.key), ("keyword", o.api)) if not has
        ]
        assert not missing or o.why, f"{o.name} has no {', '.join(missing)} and no reason"
        assert o.commands and set(o.commands) <= {"export", "verify", "bench"}, o.name
        assert o.help_for(o.commands[0]), f"{o.name} has no help"


def test_the_check_config_takes_every_export_and_verify_key():
    from bridge.check.config import OWN_MODEL_KEYS, model_keys

    keys = set(model_keys())
    for command in ("export", "verify"):
        assert {o.name for o in options_for(command) if o.key} <= keys
    assert set(OWN_MODEL_KEYS) == {"name", "source", "latency", "baseline", "skip", "prepare"}


def test_flags_are_unique_per_command():
    for command in ("export", "verify", "bench"):
        flags = [f for o in options_for(command) for f in (o.cli_flag, o.short, *o.aliases) if f]
        assert len(flags) == len(set(flags)), command


# -- round trips ---------------------------------------------------------------------------------------------

NAMES = st.from_regex(r"[a-z][a-z0-9_]{0,6}", fullmatch=True)


def _values(option, command):
    kind = option.kind
    if isinstance(kind, Switch):
        return st.booleans()
    if isinstance(kind, Devices):
        return st.sampled_from([("cpu",), ("cuda",), ("cpu", "cuda")])
    if isinstance(kind, Choices):
        return st.lists(st.sampled_from(kind.choices), min_size=1, unique=True).map(tuple)
    if isinstance(kind, Tolerances):
        number = st.floats(0, 1, allow_nan=False).map(lambda x: float(f"{x:.6g}"))
        return st.builds(TolSpec, st.one_of(st.none(), number), st.dictionaries(NAMES, number, max_size=2))
    if isinstance(kind, SpecList):
        dims = st.lists(st.one_of(st.integers(1, 9), st.sampled_from(["batch", "seq"])), max_size=3).map(tuple)
        spec = st.builds(TensorSpec, NAMES, st.sampled_from(["float32", "int64", "bool"]), dims)
        return st.lists(spec, max_size=3, unique_by=lambda s: s.name).map(tuple)
    if isinstance(kind, NamedValues):
        if option.name == "input_ranges":
            pair = st.tuples(st.integers(-5, 5), st.integers(1, 9)).map(lambda t: (float(t[0]), float(t[0] + t[1])))
            return st.dictionaries(NAMES, pair, max_size=2)
        if option.name == "input_kinds":
            return st.dictionaries(NAMES, st.sampled_from(["values", "index", "mask", "positions"]), max_size=2)
        return st.dictionaries(st.sampled_from(["batch", "seq"]), st.integers(1, 64), max_size=2)
    if isinstance(kind, Number):
        low = kind.minimum if kind.minimum is not None else 1
        if kind.integer:
            return st.integers(int(low), int(low) + 50)
        high = kind.maximum if kind.maximum is not None else 100.0
        return st.floats(max(low, 0.5 if kind.above is not None else low), high, allow_nan=False).map(
            lambda x: float(f"{x:.6g}")
        )
    if isinstance(kind, Text) and kind.choices:
        return st.sampled_from(kind.choices)
    if isinstance(kind, (PathText, SourceText)):
        return st.from_regex(r"/[a-z]{1,8}/[a-z]{1,8}\.(npz|npy|toml|pt)", fullmatch=True)
    return st.from_regex(r"[a-z]{1,8}", fullmatch=True)


def _requests(command):
    def make(draw):
        values = {}
        for o in options_for(command):
            if o.name in ("source", "target", "output"):
                continue
            if draw(st.booleans()):
                values[o.name] = draw(_values(o, command))
        values.update(source="/m/net.py:build", output="/o/bundle") if command == "export" else values.update(
            target="/o/bundle", source="/m/net.py:build"
        )
        if command == "export" and values.get("precision") not in ("int8", "auto"):
            values.pop("calibrate", None)
        if command == "export" and values.get("precision") != "auto":
            values.pop("candidates", None)
        if command == "export" and not values.get("samples"):
            values.pop("labels", None)
        if command == "verify":
            values.pop("labels", None) if not values.get("samples") else None
            values.pop("min_top1", None) if not values.get("samples") else None
        if command == "bench":
            values["latency_runs"] = max(1, values.get("latency_runs", 1))
        for axis in set(values.get("dim_min", {})) & set(values.get("dim_max", {})):
            values["dim_max"][axis] = max(values["dim_max"][axis], values["dim_min"][axis])
        return build(command, values, API)

    return st.composite(lambda draw: make(draw))()


@pytest.mark.parametrize("command", ["export", "verify", "bench"])
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_a_request_round_trips_through_argv_and_config(command, data):
    request = data.draw(_requests(command))
    again = parse_argv(request.to_argv())
    assert again == request
    fixed = {"source": request.source} | (
        {"output": request.output} if command == "export" else {"target": request.target}
    )
    from_config = build(command, {**request.to_config(), **fixed}, CONFIG)
    worker_only = {o.name for o in options_for(command) if o.key}
    assert {k: v for k, v in from_config.values().items() if k in worker_only} == {
        k: v for k, v in request.values().items() if k in worker_only
    }


def test_origins_say_who_set_each_term():
    request = parse_argv(["verify", "b", "--source", "m.py:f", "--input-range", "x=0:1", "--atol", "1e-5"])
    assert request.origin("atol") == CLI and request.origin("input_ranges", "x") == CLI
    assert request.origin("rtol") == "default" and not request.given("rtol")


# -- one rule for bad values -----------------------------------------------------------------------------------

BAD = [
    ("min_top1", ["--min-top1", "5"], 5, "a fraction between 0 and 1"),
    ("atol", ["--atol", "fast"], "fast", "is not a number"),
    ("dim_min", ["--dim-min", "batch=0"], {"batch": 0}, "dimension size"),
    ("input_kinds", ["--input-kind", "x=mask2"], {"x": "mask2"}, "input kind"),
    ("input_ranges", ["--input-range", "x=1:0"], {"x": "1:0"}, "empty input range"),
    ("precision", ["--precision", "int4"], "int4", "one of fp32, fp16, int8"),
    ("threads", ["--threads", "0"], 0, "an integer >= 1"),
    ("devices", ["--device", "tpu"], ["tpu"], "devices from cpu, cuda"),
]


@pytest.mark.parametrize("name, flag, value, problem", BAD, ids=[b[0] for b in BAD])
def test_a_bad_value_fails_alike_on_every_surface(name, flag, value, problem, tmp_path):
    import bridge
    from bridge.check.config import load_config
    from bridge.commands import main

    errors = {}
    with pytest.raises(UsageError) as info:
        bridge.verify(tmp_path / "b", source="m.py:f", samples="s.npz", **{name: value})
    errors[API] = info.value
    (tmp_path / "bridge.toml").write_text(
        f'[[models]]\nname = "m"\nsource = "m.py:f"\nsamples = "s.npz"\n{name} = {_toml(value)}\n'
    )
    with pytest.raises(UsageError) as info:
        load_config(tmp_path / "bridge.toml")
    errors[CONFIG] = info.value
    with pytest.raises(UsageError) as info:
        parse_argv(["verify", str(tmp_path / "b"), "--source", "m.py:f", "--samples", "s.npz", *flag])
    errors[CLI] = info.value
    for surface, exc in errors.items():
        assert exc.exit_code == 2 and problem in exc.message, (surface, exc.message)
    tails = {surface: exc.message.rsplit(": ", 1)[-1] for surface, exc in errors.items()}
    assert len(set(tails.values())) == 1, tails  # the same problem text, wherever the value came from
    assert main(["verify", str(tmp_path / "b"), "--source", "m.py:f", "--samples", "s.npz", *flag]) == 2


def _toml(value) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, list):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    return f'"{value}"' if isinstance(value, str) else str(value)


def test_a_usage_error_never_starts_a_worker(monkeypatch, tmp_path, capsys):
    from bridge.commands import main, work

    started = []
    monkeypatch.setattr(work, "run", lambda *a, **k: started.append(a))
    for argv in (
        ["verify", str(tmp_path), "--atol", "x"],
        ["export", "m.py:f", "-o", str(tmp_path / "o"), "--opset", "1"],
        ["bench", str(tmp_path), "--latency-runs", "0"],
        ["verify", str(tmp_path), "--labels", "l.npy"],
        ["export", "m.py:f", "-o", str(tmp_path / "o"), "--calibrate", "c.npz"],
    ):
        assert main(argv) == 2, argv
    assert started == []


def test_unknown_api_keyword_is_a_usage_error_with_a_suggestion(tmp_path):
    import bridge

    with pytest.raises(UsageError, match="did you mean 'atol'"):
        bridge.verify(tmp_path, atoll=1)


def test_the_parser_is_generated_for_the_chosen_command_only():
    parser = build_parser(["verify", "--help"])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    assert sub.choices["verify"]._actions and len(sub.choices["export"]._actions) == 1  # export: only -h
