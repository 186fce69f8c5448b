"""Style mixing: attribute vectors, dimension mixing or conditional decoding: ``textvae mix``.

Usage: ``python scripts/style_mix.py MODEL ...`` with the arguments of ``textvae mix`` (see ``--help``).
"""

import sys

from textvae.cli import main

if __name__ == "__main__":
    sys.exit(main(["mix", *sys.argv[1:]]))
