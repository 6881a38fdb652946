"""``python -m bridge.check``: the check command on its own."""

from bridge.check.command import main

raise SystemExit(main())
