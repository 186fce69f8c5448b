"""Which torch device a run or a command uses: ``auto``, or a named one that this torch can use."""

from __future__ import annotations

import torch

from textvae.errors import ConfigError


def resolve_device(name: str, key: str = "train.device") -> torch.device:
    """``auto`` picks CUDA, then MPS, then CPU; anything else is passed to :class:`torch.device` and must be
    available in this torch. ``key`` names the setting (or flag) in messages."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"{key}: unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "a CPU-only build" if torch.version.cuda is None else "no CUDA device is visible"
            raise ConfigError(f"{key}={name}: this torch ({torch.__version__}) has no CUDA ({why}); use cpu or auto")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ConfigError(f"{key}={name}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif device.type == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise ConfigError(f"{key}={name}: MPS is not available on this machine; use cpu or auto")
    return device
