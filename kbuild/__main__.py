"""`python -m kbuild` runs the CLI (the same as the `kbuild` console script)."""

from kbuild.cli import main

main()
