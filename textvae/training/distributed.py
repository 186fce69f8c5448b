"""Data-parallel training across processes (``torchrun``): gloo on CPU, NCCL on CUDA.

``train.batch_size`` is the *global* batch: every rank builds the same sequence of global batches (same
seed) and trains on its slice ``batch[rank::world]``. With equal slices, DDP's gradient average equals
the gradient of the mean loss over the global batch, so N processes follow single-process training.
Rank 0 alone logs, evaluates and writes checkpoints.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands: ``world == 1`` means plain single-process training."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(device: torch.device) -> DistInfo:
    """Join the process group that ``torchrun`` describes in the environment (no-op without it)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def shard(indices: Sequence[int], info: DistInfo) -> Sequence[int]:
    """This rank's slice of a global batch."""
    return indices[info.rank :: info.world] if info.enabled else indices


def all_sum(values: list[float], info: DistInfo, device: torch.device) -> list[float]:
    """Element-wise sum of ``values`` over ranks (identity on one process)."""
    if not info.enabled:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=device)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.tolist()


def any_rank(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """True on every rank if it is true on any (e.g. a stop request that reached one process)."""
    return bool(all_sum([float(flag)], info, device)[0]) if info.enabled else flag


def broadcast_flag(flag: bool, info: DistInfo, device: torch.device) -> bool:
    """Rank 0's value of ``flag`` on every rank (e.g. its early-stopping decision)."""
    if not info.enabled:
        return flag
    t = torch.tensor([float(flag)], device=device)
    dist.broadcast(t, src=0)
    return bool(t.item())


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def cleanup(info: DistInfo) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def shared_noise(seed: int, n: int, size: int, info: DistInfo) -> torch.Tensor:
    """This rank's rows of one ``[n, size]`` standard-normal draw seeded by ``seed`` (on the CPU): every rank
    draws the whole global batch's noise and takes its shard's rows, so N ranks draw exactly what one process
    would, and a resumed run (same seed) redraws the same noise."""
    eps = torch.randn((n, size), generator=torch.Generator().manual_seed(seed))
    return eps[info.rank :: info.world]
