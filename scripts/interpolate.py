"""Homotopy interpolation between sentences (or random prior points): ``textvae interpolate``.

Usage: ``python scripts/interpolate.py MODEL ...`` with the arguments of ``textvae interpolate`` (see ``--help``).
"""

import sys

from textvae.cli import main

if __name__ == "__main__":
    sys.exit(main(["interpolate", *sys.argv[1:]]))
