"""``python -m segbridge.sandbox``: the same as ``segbridge sandbox``."""

from __future__ import annotations

from segbridge.sandbox.cli import sandbox_command

if __name__ == "__main__":
    sandbox_command()
