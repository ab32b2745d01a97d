"""`python -m layerctl` runs the command-line interface."""

from layerctl.cli import main

main()
