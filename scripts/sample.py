"""Sentences from a model's prior (or near a sentence): ``textvae sample``. Usage: ``python scripts/sample.py MODEL ...`` (see ``--help``)."""

import sys

from textvae.cli import main

if __name__ == "__main__":
    sys.exit(main(["sample", *sys.argv[1:]]))
