"""ONNX Runtime's CPU execution provider: always there, the reference device."""

from __future__ import annotations

NAME = "cpu"
PROVIDER = "CPUExecutionProvider"


def problem(ort) -> str | None:
    return None


def prepare(ort) -> None:
    """Nothing to load before a session."""


def options(tf32: bool) -> dict:
    return {}


def policy_row(tf32: bool) -> str:
    return "cpu"


def precision(options: dict) -> dict:
    return {}
