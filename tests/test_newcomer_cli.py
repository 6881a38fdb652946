"""The command line as a newcomer meets it: help pages that open with what the command does and an
example, a bad flag answered with that command's usage and the flag meant, one timeout default
documented where CI reads it, and the README's check for the other `bridge` telling the truth."""

import re
from pathlib import Path

import pytest
from conftest import run_cli

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("command", ["export", "verify", "bench", "inspect", "check"])
def test_help_opens_with_what_the_command_does_and_an_example(command):
    from bridge.commands import COMMANDS

    res = run_cli(command, "--help")
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    description = COMMANDS[command][2].splitlines()
    assert lines[0] == description[0], lines[:3]  # not "usage: ...": for export that is 25 lines
    example = next(i for i, ln in enumerate(lines) if ln.startswith("example: bridge " + command))
    usage = next(i for i, ln in enumerate(lines) if ln.startswith("usage: bridge " + command))
    assert example < usage


def test_inspect_target_has_help_text():
    res = run_cli("inspect", "--help")
    assert re.search(r"^\s+TARGET\s+\S", res.stdout, re.M), res.stdout


@pytest.mark.parametrize(
    "argv, usage, meant",
    [
        (["export", "m.py:build", "-o", "out", "-q"], "usage: bridge export", "--quiet"),
        (["verify", "bundle", "--atoll", "1e-5"], "usage: bridge verify", "--atol"),
        (["inspect", "bundle", "--jsn", "x.json"], "usage: bridge inspect", "--json"),
    ],
)
def test_a_bad_flag_shows_the_commands_usage_and_the_flag_meant(argv, usage, meant, tmp_path):
    res = run_cli(*argv, cwd=tmp_path)
    assert res.returncode == 2
    assert res.stderr.startswith(usage), res.stderr
    assert "usage: bridge [-h] [--version] COMMAND" not in res.stderr
    assert f"(did you mean {meant}?)" in res.stderr
    assert f"hint: bridge {argv[0]} --help lists every option" in res.stderr
    assert not (tmp_path / "out").exists()


def test_check_and_export_share_one_timeout_default_and_ci_docs_say_it():
    from bridge.commands.check import DEFAULT_STEP_TIMEOUT_S
    from bridge.contain import DEFAULT_TIMEOUT_S
    from bridge.request import OPTIONS

    option = next(o for o in OPTIONS if o.name == "timeout")
    assert option.default == DEFAULT_STEP_TIMEOUT_S == DEFAULT_TIMEOUT_S == 3600.0
    row = next(ln for ln in (ROOT / "docs" / "ci.md").read_text().splitlines() if ln.startswith("| `--timeout"))
    assert "default 3600 s" in row and "0, the default" not in row


def test_readme_says_what_iproute2s_bridge_prints():
    text = (ROOT / "README.md").read_text()
    assert 'Option "-version" is unknown, try "bridge help".' in text
    assert "bridge utility, iproute2-..." not in text
