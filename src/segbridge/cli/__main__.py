"""``python -m segbridge.cli``: the segbridge command line."""

from segbridge.cli.main import main

main()
