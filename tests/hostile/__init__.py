"""Hostile and malformed inputs (the catalogue in /work/shared/RELIABILITY.md), end to end through the CLI.

See docs/security.md for what each test proves and for the gaps found and closed."""
