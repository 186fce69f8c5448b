"""textvae: variational autoencoders over sentences."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textvae.version import __version__

__all__ = ["Config", "TextVAE", "__version__"]

if TYPE_CHECKING:
    from textvae.config import Config
    from textvae.model.vae import TextVAE

# transformers.AutoConfig learns model_type "textvae" when it is imported (not now: it costs seconds).
from textvae.hf_config import install_hook as _install_hook  # noqa: E402

_install_hook()


def __getattr__(name: str) -> Any:
    # Lazy, so that `import textvae.config` (and `textvae --help`) does not pay for importing torch.
    if name == "TextVAE":
        from textvae.model.vae import TextVAE

        return TextVAE
    if name == "Config":
        from textvae.config import Config

        return Config
    raise AttributeError(f"module 'textvae' has no attribute {name!r}")
