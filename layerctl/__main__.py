"""`python -m layerctl` runs the command-line interface."""

try:
    from layerctl.cli import main
except KeyboardInterrupt:  # Ctrl-C while the CLI itself loads
    import sys

    sys.stderr.write("interrupted\n")
    sys.exit(130)

main()
