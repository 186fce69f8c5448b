"""``transformers.AutoConfig`` reads a textvae ``config.json`` (``model_type: "textvae"``).

Importing transformers costs about 3 s, against 30 ms for ``import textvae``, so the registration is lazy:
``import textvae`` installs an import hook that registers :class:`TextVAEConfig` right after
``transformers.models.auto.configuration_auto`` (where ``AutoConfig`` lives) is first imported, or at
once when it already is. :func:`register_auto_config` does it by hand.
"""

from __future__ import annotations

import contextlib
import importlib.machinery
import sys
from typing import Any

MODEL_TYPE = "textvae"
_AUTO_MODULE = "transformers.models.auto.configuration_auto"
_registered: dict[str, Any] = {}


def register_auto_config() -> Any:
    """Register ``TextVAEConfig`` with ``AutoConfig`` (idempotent); returns the config class."""
    if "cls" in _registered:
        return _registered["cls"]
    # From the defining modules: this runs right after configuration_auto executes, while the package
    # ``transformers.models.auto`` may still be initialising.
    from transformers.configuration_utils import PretrainedConfig
    from transformers.models.auto.configuration_auto import AutoConfig

    class TextVAEConfig(PretrainedConfig):
        """A textvae ``config.json`` as a 🤗 config: its sections (``model``, ``data``, ``tokenizer`` ...)
        are attributes holding plain dicts. Loading the model itself is :meth:`TextVAE.from_pretrained`."""

        model_type = MODEL_TYPE

    TextVAEConfig.__module__ = __name__
    TextVAEConfig.__qualname__ = "TextVAEConfig"
    AutoConfig.register(MODEL_TYPE, TextVAEConfig, exist_ok=True)
    _registered["cls"] = TextVAEConfig
    return TextVAEConfig


class _Loader:  # duck-typed (importlib.abc costs more to import than all of textvae/__init__)
    """Runs the real loader, then registers."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def create_module(self, spec):  # noqa: ANN001 - importlib protocol
        return self._inner.create_module(spec)

    def exec_module(self, module) -> None:  # noqa: ANN001
        self._inner.exec_module(module)
        # Never break importing transformers; calling register_auto_config() by hand shows any error.
        with contextlib.suppress(Exception):
            register_auto_config()

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, ...
        return getattr(self._inner, name)


class _Hook:  # a sys.meta_path finder
    def find_spec(self, fullname, path, target=None):  # noqa: ANN001
        if fullname != _AUTO_MODULE:
            return None
        sys.meta_path.remove(self)  # one shot; also keeps the lookup below from finding this hook
        spec = importlib.machinery.PathFinder.find_spec(fullname, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


def install_hook() -> None:
    """Register now if ``AutoConfig`` is already imported, else when it is."""
    if _AUTO_MODULE in sys.modules:
        with contextlib.suppress(Exception):
            register_auto_config()
    elif not any(isinstance(f, _Hook) for f in sys.meta_path):
        sys.meta_path.insert(0, _Hook())
