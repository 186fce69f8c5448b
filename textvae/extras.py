"""Optional dependencies: a feature that needs a package outside the core install asks for it here, and
the user gets one line naming the extra to install instead of an ImportError traceback."""

from __future__ import annotations

import importlib
from types import ModuleType

from textvae.errors import TextVAEError

# import name -> the name pip knows it by (when they differ)
_PIP_NAMES = {"sklearn": "scikit-learn", "umap": "umap-learn"}


class MissingExtraError(TextVAEError):
    """A feature needs a package of an optional extra that is not installed."""


def require(module: str, *, extra: str, feature: str | None = None) -> ModuleType:
    """Import ``module`` (e.g. ``"sklearn"``) or raise :class:`MissingExtraError` naming ``textvae[extra]``."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        what = f"{feature} needs" if feature else "this needs"
        raise MissingExtraError(
            f"{what} {_PIP_NAMES.get(top, top)}, which is not installed: pip install 'textvae[{extra}]'"
        ) from None
