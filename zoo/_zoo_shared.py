"""What the coverage zoo's factories share with the speed zoo's (tools/zoo_models.py, tools/zoo_keras.py):
those modules loaded by path, once (``tools`` is not a package, and the name is taken elsewhere)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

TOOLS = Path(__file__).resolve().parent.parent / "tools"


def speed_zoo(name: str):
    key = f"_bridge_speed_zoo_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, TOOLS / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]
