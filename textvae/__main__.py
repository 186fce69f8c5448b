"""``python -m textvae`` is the ``textvae`` command."""

from textvae.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
