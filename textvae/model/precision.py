"""Mixed precision: which dtype training matmuls run in, and the autocast context that applies it.

bfloat16 halves memory traffic and, on hardware with native bf16 matrix instructions (CUDA GPUs since
Ampere, x86 CPUs with AVX512-BF16 or AMX), runs matmuls several times faster. Elsewhere PyTorch emulates
it, which is slower than float32, so ``train.precision=auto`` only picks it where it is native.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import torch

from textvae.errors import ConfigError

_CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@cache
def cpu_has_native_bf16() -> bool:
    """True if this x86 CPU advertises bfloat16 matrix instructions (Linux ``/proc/cpuinfo`` flags)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:  # not Linux: assume no native bf16 (autocast stays off, which is always correct)
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return any(f in flags for f in _CPU_BF16_FLAGS)


PRECISIONS = ("auto", "float32", "bfloat16")


def autocast_dtype(
    precision: str, device: torch.device, *, recurrent: bool = False, name: str = "train.precision"
) -> torch.dtype | None:
    """The autocast dtype for ``precision`` (``auto`` | ``float32`` | ``bfloat16``) on ``device``; None means
    plain float32. ``name`` is the setting's name in messages (``train.precision``, ``--precision``).

    ``recurrent``: the model has LSTM/GRU layers. oneDNN has no emulated bf16 RNN kernels, so on a CPU
    without native bf16 an explicit ``bfloat16`` is refused for such a model instead of crashing mid-step.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"{name} must be auto, float32 or bfloat16; got {precision!r}")
    if precision == "float32":
        return None
    native = torch.cuda.is_bf16_supported() if device.type == "cuda" else device.type == "cpu" and cpu_has_native_bf16()
    if precision == "auto":
        return torch.bfloat16 if native else None
    if device.type not in ("cpu", "cuda"):
        raise ConfigError(f"{name}=bfloat16 is supported on cpu and cuda, not {device.type}")
    if recurrent and not native:
        raise ConfigError(
            f"{name}=bfloat16: this CPU has no native bfloat16 (AVX512-BF16 or AMX) and LSTM/GRU "
            f"layers cannot run emulated; use {name}=auto or float32"
        )
    return torch.bfloat16


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` to ``dtype`` on ``device``, or nothing when ``dtype`` is None. The loss itself
    is computed in float32 (``token_nll`` upcasts the logits), so only matmuls change precision."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield
