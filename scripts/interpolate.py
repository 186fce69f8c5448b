"""Homotopy interpolation between sentences: ``textvae interpolate``. Usage: ``python scripts/interpolate.py MODEL ...`` (see ``--help``)."""

import sys

from textvae.cli import main

if __name__ == "__main__":
    sys.exit(main(["interpolate", *sys.argv[1:]]))
