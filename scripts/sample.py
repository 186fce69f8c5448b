"""Sentences from a model's prior, or near a given sentence: ``textvae sample``.

Usage: ``python scripts/sample.py MODEL ...`` with the arguments of ``textvae sample`` (see ``--help``).
"""

import sys

from textvae.cli import main

if __name__ == "__main__":
    sys.exit(main(["sample", *sys.argv[1:]]))
