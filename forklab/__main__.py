"""python -m forklab: the same as the forklab command."""

from forklab.cli.main import main

main()
