"""Security III, data loss: one rule for every path bridge writes (bridge/commands/reports.py ``Guard``).

Every writing option of every command (reports of export, verify, bench and inspect; export's bundle
folder; ``--localize``; ``bridge check``'s summaries, baselines and the bundles, reports and logs it
keeps in its workdir) is enumerated from the commands themselves, and each must refuse, before any
work, every kind of input path: the config, the SOURCE file, weights, samples, labels, calibration
data, a policy, another model's baseline, anything under the bundle verified; by the same path, a
symbolic link or a hard link, and for folders a folder holding one. A new option that names a path
must be declared (the option table's ``role`` or a command's ``PATH_OPTIONS``), or the first test fails.

The calls run in this process (``bridge.commands.main``) with the work replaced by a trap: a refusal
costs no model run. The issue's own reproductions run through the real command line at the end.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np
import pytest

from bridge.commands import build_parser, main
from bridge.commands import check as check_command
from bridge.commands import inspect as inspect_command
from bridge.commands.reports import writers
from bridge.request import PathText, SourceText, options_for
from hostile.build import pair_bundle
from hostile.common import TORCH_FACTORIES, Call, assert_exit, run_many

COMMANDS = ("export", "verify", "bench", "inspect", "check")
# Options of check and inspect that name nothing on disk (the option table covers the other commands).
NOT_PATHS = {
    "check": {"--jobs", "--model", "--threads", "--timeout", "--executor", "--ray-address", "--ray-max-retries"},
    "inspect": set(),
}


def _value_options(command: str) -> dict[str, argparse.Action]:
    """Every option of ``command`` that takes a value, by its long flag (positionals included by dest)."""
    parser = build_parser([command])
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    out = {}
    for action in sub._actions:
        if action.nargs == 0 or isinstance(action, argparse._HelpAction):
            continue
        long = next((s for s in action.option_strings if s.startswith("--")), None)
        out[long or action.dest] = action
    return out


@pytest.mark.parametrize("command", COMMANDS)
def test_every_option_that_names_a_path_is_declared(command):
    """The rule cannot be forgotten by the next option: each one that takes a path says what it does
    with it (read, or write through the Guard)."""
    undeclared = []
    if command in ("export", "verify", "bench"):
        for o in options_for(command):
            if isinstance(o.kind, (PathText, SourceText)) and o.role is None:
                undeclared.append(o.cli_flag or o.name)
    else:
        module = check_command if command == "check" else inspect_command
        declared = set(module.PATH_OPTIONS) | NOT_PATHS[command] | {"target"}
        undeclared = [flag for flag in _value_options(command) if flag not in declared]
    assert undeclared == [], f"bridge {command}: declare what these options do on disk: {undeclared}"


# -- the inputs a run reads, and the ways a written path can reach one ------------------------------------


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    base = tmp_path_factory.mktemp("writers")
    files = {
        "source": base / "fac.py",
        "weights": base / "weights.pt",
        "samples": base / "samples.npz",
        "labels": base / "labels.npy",
        "calibrate": base / "cal.npz",
        "policy": base / "policy.toml",
        "baseline": base / "other_baseline.json",
    }
    files["source"].write_text(TORCH_FACTORIES.read_text())
    files["weights"].write_bytes(b"weights")
    np.savez(files["samples"], x=np.zeros((2, 4), np.float32))
    np.save(files["labels"], np.zeros(2, np.int64))
    np.savez(files["calibrate"], x=np.zeros((2, 4), np.float32))
    files["policy"].write_text("atol = 1e-5\n")
    files["baseline"].write_text('{"status": "pass"}\n')
    files["bundle"] = pair_bundle(base / "bundle", {"y": np.ones(2, np.float32)}, {"y": np.ones(2, np.float32)})
    files["member"] = files["bundle"] / "model.onnx"  # anything under the bundle verified
    return base, files


def _config(base: Path, baseline: str | None = None, name: str = "m1") -> Path:
    """A config whose first model reads every kind of input and whose second has a baseline."""
    path = base / "bridge.toml"
    path.write_text(
        f"""
[[models]]
name = "{name}"
source = "fac.py:linear"
weights = "weights.pt"
samples = "samples.npz"
labels = "labels.npy"
calibrate = "cal.npz"
precision = "int8"
policy = "policy.toml"
{f'baseline = "{baseline}"' if baseline else ""}

[[models]]
name = "m2"
source = "fac.py:linear"
baseline = "other_baseline.json"
"""
    )
    return path


# Which inputs each command reads in the calls below.
READS = {
    "export": ("source", "weights", "calibrate"),
    "verify": ("source", "weights", "samples", "labels", "policy", "member"),
    "bench": ("source", "weights", "member"),
    "inspect": ("member",),
    "check": ("config", "source", "weights", "samples", "labels", "calibrate", "policy", "baseline"),
}


def _argv(command: str, files: dict, out: Path) -> list[str]:
    f = {k: str(v) for k, v in files.items()}
    if command == "export":
        return [
            "export",
            f"{f['source']}:linear",
            "--weights",
            f["weights"],
            "--precision",
            "int8",
            "--calibrate",
            f["calibrate"],
            "-o",
            str(out / "new_bundle"),
        ]
    if command == "verify":
        return [
            "verify",
            f["bundle"],
            "--source",
            f"{f['source']}:linear",
            "--weights",
            f["weights"],
            "--samples",
            f["samples"],
            "--labels",
            f["labels"],
            "--policy",
            f["policy"],
        ]
    if command == "bench":
        return ["bench", f["bundle"], "--source", f"{f['source']}:linear", "--weights", f["weights"]]
    if command == "inspect":
        return ["inspect", f["bundle"]]
    return ["check", "--config", str(files["config"]), "--workdir", str(out / "work"), "--no-progress"]


def _writers() -> list[tuple[str, str, bool]]:
    """(command, flag, whether it writes a folder) for every writer the commands declare."""
    out = []
    for command in ("export", "verify", "bench"):
        for o, folder in writers(command):
            out.append((command, o.short if o.name == "output" else o.cli_flag, folder))
    out += [("inspect", flag, False) for flag, role in inspect_command.PATH_OPTIONS.items() if role == "output"]
    out += [("check", flag, False) for flag, role in check_command.PATH_OPTIONS.items() if role == "output"]
    return out


def _victim_paths(kind: str, victim: Path, how: str, tmp: Path, folder: bool) -> Path | None:
    """The path a writer is given to reach ``victim`` ``how``; None where that way does not apply."""
    if how == "same":
        return victim
    if how == "symlink":
        link = tmp / f"link_{kind}"
        os.symlink(victim.parent if folder else victim, link)
        return link
    if how == "hard_link":
        if folder or victim.is_dir():
            return None
        link = tmp / f"hard_{kind}.json"
        os.link(victim, link)
        return link
    if how == "holding":  # a folder holding the input (written as a whole)
        return victim.parent if folder else None
    if how == "inside":  # a new file inside an input directory
        return victim.parent / "new_report.json" if not folder and victim.parent.name == "bundle" else None
    raise AssertionError(how)


WAYS = ("same", "symlink", "hard_link", "holding", "inside")


@pytest.fixture
def trapped(monkeypatch):
    """No work may start: a path that should have been refused would reach it."""

    def trap(*a, **k):
        raise AssertionError("the work started: a written path was not refused")

    monkeypatch.setattr("bridge.commands.work.run", trap)
    monkeypatch.setattr("bridge.check.executor.make_executor", trap)
    monkeypatch.setattr("bridge.artifact.bundle.open_bundle", trap)


def _snapshot(base: Path) -> dict:
    return {p: p.read_bytes() for p in base.rglob("*") if p.is_file() and not p.is_symlink()}


@pytest.mark.parametrize("command,flag,folder", _writers(), ids=lambda v: str(v))
def test_every_writer_refuses_every_input(command, flag, folder, inputs, tmp_path, trapped, capsys):
    base, files = inputs
    files = dict(files, config=_config(base))
    tried = 0
    for kind in READS[command]:
        victim = files[kind]
        for how in WAYS:
            case = tmp_path / f"{kind}-{how}"
            case.mkdir()
            path = _victim_paths(kind, victim, how, case, folder)
            if path is None:
                continue
            before = _snapshot(base)
            argv = [*_argv(command, files, case), flag, str(path)]
            if flag == "--localize":
                argv += []  # verify's --localize: a folder written as a whole
            code = main(argv)
            err = capsys.readouterr().err
            assert code == 2, (command, flag, kind, how, err)
            assert "writing it would replace it" in err or "is a directory" in err, (command, flag, kind, how, err)
            assert _snapshot(base) == before, (command, flag, kind, how)
            tried += 1
    assert tried >= len(READS[command])


def test_check_baselines_never_replace_an_input(inputs, tmp_path, trapped, capsys):
    """--update-baselines writes each model's verify report to its baseline: never over the config
    itself, a model's source or any other input (the issue: ``baseline = "fac.py"``)."""
    base, files = inputs
    for victim in ("fac.py", "bridge.toml", "weights.pt", "samples.npz", "other_baseline.json"):
        config = _config(base, baseline=victim)
        before = _snapshot(base)
        argv = ["check", "--config", str(config), "--workdir", str(tmp_path / "w"), "--update-baselines"]
        code = main([*argv, "--model", "m1"])  # m2's baseline is read, m1's written
        err = capsys.readouterr().err
        assert code == 2 and "baseline" in err and "writing it would replace it" in err, (victim, err)
        assert _snapshot(base) == before


def test_check_workdir_outputs_never_replace_an_input(inputs, tmp_path, trapped, capsys):
    """What check writes into its workdir (each model's bundle folder, reports and logs) follows the
    same rule: a report or log file linked to an input, or a bundle folder that holds the inputs."""
    base, files = inputs
    config = _config(base)
    for how in ("symlink", "hard_link"):
        work = tmp_path / how
        work.mkdir()
        (os.symlink if how == "symlink" else os.link)(files["weights"], work / "m1.verify.json")
        before = _snapshot(base)
        code = main(["check", "--config", str(config), "--workdir", str(work)])
        err = capsys.readouterr().err
        assert code == 2 and "m1" in err and "writing it would replace it" in err, (how, err)
        assert _snapshot(base) == before
    # the workdir's bundle folder for a model named like the config's own directory: it holds every input
    config = _config(base, name=base.name)
    code = main(["check", "--config", str(config), "--workdir", str(base.parent)])
    err = capsys.readouterr().err
    assert code == 2 and "holds the input" in err, err


# -- the issue's reproductions, through the real command line --------------------------------------------


def test_issue_reproductions_through_the_command_line(inputs, tmp_path):
    base, files = inputs
    _config(base, baseline="fac.py")
    before = _snapshot(base)
    cal = str(files["calibrate"])
    calls = {
        "calibrate_markdown": Call(
            (
                "export",
                f"{files['source']}:linear",
                "-o",
                "out",
                "--precision",
                "int8",
                "--calibrate",
                cal,
                "--markdown",
                cal,
            ),
            tmp_path,
        ),
        "calibrate_json": Call(
            (
                "export",
                f"{files['source']}:linear",
                "-o",
                "out",
                "--precision",
                "int8",
                "--calibrate",
                cal,
                "--json",
                cal,
            ),
            tmp_path,
        ),
        "check_json_config": Call(("check", "--json", "bridge.toml"), base),
        "check_junit_config": Call(("check", "--junit", "bridge.toml"), base),
        "check_markdown_config": Call(("check", "--markdown", "bridge.toml"), base),
        "baseline_source": Call(("check", "--update-baselines", "--workdir", str(tmp_path / "w")), base),
    }
    res = run_many(calls)
    for name in ("calibrate_markdown", "calibrate_json"):
        assert_exit(res[name], 2, "usage", "cal.npz", "writing it would replace it")
    for name in ("check_json_config", "check_junit_config", "check_markdown_config"):
        assert_exit(res[name], 2, "usage", "bridge.toml", "writing it would replace it")
    assert_exit(res["baseline_source"], 2, "usage", "baseline", "fac.py", "writing it would replace it")
    assert _snapshot(base) == before
    assert not (tmp_path / "out").exists()
