"""Data-parallel training with torch.distributed (DistributedDataParallel).

``dgmbench run ... --nproc N`` re-executes itself under ``torchrun`` with N processes (or
start it under ``torchrun`` yourself, e.g. across nodes); each process trains on its shard
of every global minibatch, and DDP averages the gradients. Only rank 0 writes checkpoints,
sample grids and the record, so a data-parallel run has the same run directory, resume and
record as a single-process run of the same command.

Exactness: the trainer draws the same global minibatches as one process (same seed), rank r
takes the r-th contiguous slice, and its loss (a mean over its slice) is weighted by
n_r * W / N before backward, so DDP's average over the W ranks is

    (1/W) sum_r (n_r W / N) grad L_r = (1/N) sum_r sum_{i in slice r} grad l_i,

the gradient of the global minibatch mean, also for a last minibatch that does not split
evenly. For a deterministic loss the trained parameters therefore equal a single process's
with the same global batch, up to float summation order (tested with gloo on CPU). A loss
that draws noise (a VAE's reparameterisation) draws different noise per rank: same
distribution, not the same numbers.

Only models trained by the default gradient step are supported; models with their own
learning rule (EM, contrastive divergence, alternating GAN updates) are refused up front.
Multi-node runs need the run directory on a file system all ranks share (checkpoints are
written by rank 0 and read by every rank on resume).
"""
from __future__ import annotations

import os

import torch
import torch.distributed as dist
from torch import nn

from dgmbench.models.base import GenerativeModel


def active() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    return dist.get_rank() if active() else 0


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if active():
        dist.barrier()


def agree(flag: bool) -> bool:
    """Rank 0's `flag` on every rank (one process: `flag` itself), for decisions that must
    be the same everywhere, e.g. pausing at a time limit measured by each rank's own clock."""
    if not active():
        return flag
    on = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
    value = torch.tensor([int(flag)], device=on)
    dist.broadcast(value, src=0)
    return bool(value.item())


def describe() -> dict | None:
    """What a record says about data parallelism (None: one process)."""
    if not active():
        return None
    return {"world_size": dist.get_world_size(), "backend": dist.get_backend(),
            "note": "global minibatch split across ranks; gradients averaged by DistributedDataParallel"}


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_env(device_name: str) -> str:
    """Join the process group torchrun describes in the environment; returns the device this
    rank trains on (cuda:LOCAL_RANK for a CUDA run, else the given device)."""
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if cuda else "gloo")
    if cuda:
        torch.cuda.set_device(local_rank)
        return f"cuda:{local_rank}"
    return device_name


def check_supported(model_cls: type) -> None:
    if model_cls.training_step is not GenerativeModel.training_step:
        raise ValueError(
            f"{model_cls.__name__} has its own learning rule (not one gradient step on loss(x)); "
            "data-parallel training (--nproc / torchrun) supports gradient-trained models only: drop --nproc"
        )


class _Loss(nn.Module):
    """DDP hooks the module's forward; our models' objective is ``loss(x)``."""

    def __init__(self, model: GenerativeModel):
        super().__init__()
        self.model = model

    def forward(self, x, y=None):
        return self.model.loss(x) if y is None else self.model.loss(x, y)


def wrap(model: GenerativeModel, device: torch.device) -> nn.parallel.DistributedDataParallel:
    device_ids = [device.index] if device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(_Loss(model), device_ids=device_ids)


def step(ddp, model: GenerativeModel, x: torch.Tensor, y: torch.Tensor | None, optimizers, train) -> dict[str, float]:
    """One data-parallel gradient step on the global minibatch (x, y) (every rank holds the
    same global indices); returns the global mean loss."""
    world, me, n = dist.get_world_size(), dist.get_rank(), len(x)
    index = torch.arange(n).tensor_split(world)[me]
    weight = len(index) * world / n
    if len(index) == 0:  # fewer examples than ranks: take part in the all-reduce with a zero weight
        index = torch.arange(1)
    x_local = x[index]
    y_local = None if y is None else y[index]
    (opt,) = optimizers.values()
    opt.zero_grad(set_to_none=True)
    loss = ddp(x_local, y_local)
    (loss * weight).backward()
    if train.grad_clip is not None:
        nn.utils.clip_grad_norm_(model.parameters(), train.grad_clip)
    opt.step()
    total = (loss.detach() * weight / world).reshape(1)
    dist.all_reduce(total)
    return {"loss": total.item()}
