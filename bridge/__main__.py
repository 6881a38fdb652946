"""``python -m bridge``: the same CLI as the ``bridge`` console script.

``python -m`` puts the working directory first on ``sys.path``. bridge is often run from a directory
it does not trust (an unpacked download), where an ``argparse.py`` or ``json.py`` would run before
bridge's own code imports the real one. The entry drops that implicit entry before importing anything
beyond what the interpreter has already loaded (``sys`` and ``os`` are loaded at start-up); explicit
``PYTHONPATH`` entries stay. ``python -P -m bridge`` (Python 3.11+) never adds it in the first place.
"""

import os
import sys


def _drop_working_directory() -> None:
    if sys.flags.safe_path or not sys.path:
        return
    first = sys.path[0]
    try:
        here = os.getcwd()
    except OSError:  # the working directory was removed: nothing to import from it either
        here = None
    if first in ("", ".") or (here is not None and os.path.realpath(first) == os.path.realpath(here)):
        del sys.path[0]


_drop_working_directory()

from bridge.commands import main  # noqa: E402

raise SystemExit(main())
