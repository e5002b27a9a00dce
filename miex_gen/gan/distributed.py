"""torchrun / DistributedDataParallel plumbing for GAN training: rank, device, barriers, means.

One process per device; ``torchrun`` sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``. The
backend is NCCL on CUDA and gloo on the CPU (so a 2-process CPU run works for tests). Without
those variables everything degrades to a single process and no collective is called.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from ..device import resolve_device
from ..errors import ConfigError


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def init_distributed(device_spec: str = "auto") -> DistContext:
    """Join the torchrun process group if there is one; pick this rank's device."""
    import torch.distributed as dist

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = resolve_device(device_spec)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", local_rank % torch.cuda.device_count())
    if world > 1:
        if device.type == "cuda":
            torch.cuda.set_device(device)
        elif device.type != "cpu":
            raise ConfigError(f"distributed training supports CUDA and CPU, not {device.type}")
        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistContext(rank=rank, world_size=world, local_rank=local_rank, device=device)


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        import torch.distributed as dist

        if ctx.device.type == "cuda":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()


def mean_across_ranks(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """The element-wise mean of ``values`` over all ranks (a no-op in a single process)."""
    if not ctx.distributed:
        return values
    import torch.distributed as dist

    out = values.detach().clone()
    dist.all_reduce(out, op=dist.ReduceOp.SUM)
    return out / ctx.world_size


def broadcast_flag(flag: bool, ctx: DistContext) -> bool:
    """Rank 0's ``flag`` on every rank (e.g. "stop now" after an interrupt)."""
    if not ctx.distributed:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], device=ctx.device if ctx.device.type == "cuda" else "cpu")
    dist.broadcast(t, src=0)
    return bool(t.item())


def shutdown(ctx: DistContext) -> None:
    if ctx.distributed:
        import torch.distributed as dist

        if dist.is_initialized():
            dist.destroy_process_group()


def parameter_checksum(module: torch.nn.Module) -> torch.Tensor:
    """A float64 fingerprint of a module's parameters (sum and sum of squares)."""
    with torch.no_grad():
        params = [p.detach().double() for p in module.parameters()]
        return torch.stack([sum(p.sum() for p in params), sum((p * p).sum() for p in params)])


def assert_in_sync(modules: dict[str, torch.nn.Module], ctx: DistContext) -> None:
    """Raise if any rank's weights differ from rank 0's (a DDP gradient-sync bug would show here)."""
    if not ctx.distributed:
        return
    import torch.distributed as dist

    local = torch.cat([parameter_checksum(m) for m in modules.values()]).to(ctx.device)
    gathered = [torch.empty_like(local) for _ in range(ctx.world_size)]
    dist.all_gather(gathered, local)
    for rank, other in enumerate(gathered):
        if not torch.equal(other, gathered[0]):
            raise RuntimeError(f"DDP ranks diverged: rank {rank}'s {', '.join(modules)} weights differ from rank 0's")
