"""One training loop for every family.

Per epoch: shuffle ``dataset.train_epoch(epoch)`` (dynamic binarization resamples here),
call ``model.training_step`` on each minibatch (a gradient step by default; EM, CD or GAN
updates where the model overrides it), score the validation split for early stopping, and
checkpoint. A non-finite training scalar stops the run before anything is saved, so the
last checkpoint on disk is the last good one. A run whose directory holds a checkpoint
resumes from it: model, optimisers, RNG states and early-stopping state included.

``deadline`` (a ``time.time()`` value) is a limit of this invocation, not of the protocol:
training pauses at the last epoch boundary before it (judged by the last epoch's duration)
with the checkpoint saved, and the next invocation continues from there exactly as after
an interruption.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm

from dgmbench.data.base import Dataset
from dgmbench.models.base import GenerativeModel, TrainConfig
from dgmbench.train import distributed
from dgmbench.train.checkpoint import load_checkpoint, save_checkpoint

LAST, BEST = "last.pt", "best.pt"


class NonFiniteLossError(RuntimeError):
    """A training scalar became NaN or infinite. ``checkpoint`` is the last good checkpoint
    on disk (None if none was saved yet) and ``checkpoint_epoch`` the epochs it holds."""

    def __init__(self, message: str, checkpoint: Path | None = None, checkpoint_epoch: int | None = None):
        super().__init__(message)
        self.checkpoint, self.checkpoint_epoch = checkpoint, checkpoint_epoch


@dataclass
class TrainSummary:
    epochs_completed: int
    best_epoch: int | None
    best_validation: float | None
    stopped_early: bool
    train_seconds: float
    resumed_from_epoch: int | None
    seconds_before_resume: float  # training time spent by earlier, interrupted invocations
    history: list[dict] = field(default_factory=list)
    paused_at_deadline: bool = False  # stopped by the invocation's deadline, not by the protocol


# Share of the free GPU memory the training set may take to live on the device for the epoch.
RESIDENT_FRACTION = 0.25


def resident(x: torch.Tensor | None, device: torch.device) -> torch.Tensor | None:
    """x moved to a CUDA device once, when it takes at most RESIDENT_FRACTION of the free
    memory there, so that every minibatch is sliced on the device instead of copied from the
    host; otherwise (and on CPU) x itself. Batches and their order are unchanged."""
    if x is None or device.type != "cuda" or x.device == device:
        return x
    free, _ = torch.cuda.mem_get_info(device)
    return x.to(device) if x.element_size() * x.nelement() <= RESIDENT_FRACTION * free else x


def batches(n: int, batch_size: int | None, generator: torch.Generator | None):
    """Index tensors covering range(n): shuffled minibatches, or one full batch."""
    order = torch.randperm(n, generator=generator) if generator is not None else torch.arange(n)
    size = n if batch_size is None else batch_size
    return order.split(size)


@torch.no_grad()
def validation_score(model: GenerativeModel, x: torch.Tensor, batch_size: int, device) -> float | None:
    """Example-weighted mean of the model's validation score over batches; one call on the
    whole split for a model whose ``validation_score_is_whole_split`` is true (a score that is
    not a mean over examples, e.g. a GAN's Frechet distance to the split)."""
    if getattr(model, "validation_score_is_whole_split", False):
        return model.validation_score(x.to(device))
    total, count = 0.0, 0
    for index in batches(len(x), batch_size, None):
        score = model.validation_score(x[index].to(device))
        if score is None:
            return None
        total += score * len(index)
        count += len(index)
    return total / count


def _rng_state(device: torch.device) -> dict:
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def _set_rng_state(state: dict, device: torch.device) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and device.type == "cuda":
        torch.cuda.set_rng_state(state["cuda"], device)


def fit(
    model: GenerativeModel,
    dataset: Dataset,
    train: TrainConfig,
    run_dir: Path,
    device: torch.device,
    progress: bool = True,
    log: Callable[[str], None] = print,
    deadline: float | None = None,
) -> TrainSummary:
    run_dir = Path(run_dir)
    model.to(device)
    optimizers = model.configure_optimizers(train)
    # torchrun / --nproc: every rank steps on its slice of the same global minibatch
    ddp = distributed.wrap(model, device) if distributed.active() else None
    shuffle = torch.Generator().manual_seed(train.seed)
    torch.manual_seed(train.seed)

    start_epoch, best, best_epoch, bad_epochs, seconds, history = 0, math.inf, None, 0, 0.0, []
    stopped_early = paused = False
    seconds_before_resume = 0.0
    resumed_from = None
    if (run_dir / LAST).exists():
        ckpt = load_checkpoint(run_dir / LAST, map_location=device)
        model.load_state_dict(ckpt["model"])
        # None: a run continued from another run's checkpoint with new training options
        # (runner --resume-from) starts its optimisers afresh under those options
        if ckpt["optimizers"] is not None:
            for name, opt in optimizers.items():
                opt.load_state_dict(ckpt["optimizers"][name])
        shuffle.set_state(ckpt["shuffle"])
        _set_rng_state(ckpt["rng"], device)
        start_epoch, best, best_epoch = ckpt["epoch"], ckpt["best"], ckpt["best_epoch"]
        bad_epochs, seconds, history = ckpt["bad_epochs"], ckpt["seconds"], ckpt["history"]
        stopped_early = ckpt["stopped_early"]
        resumed_from = start_epoch
        seconds_before_resume = seconds
        log(f"resuming {run_dir.name} from epoch {start_epoch}")

    valid = resident(dataset.split("valid"), device)
    for epoch in range(start_epoch, train.epochs):
        tic = time.perf_counter()
        model.train()
        x = resident(dataset.train_epoch(epoch), device)  # once per epoch: binarization may resample
        labels = resident(dataset.labels.get("train"), device) if model.uses_labels else None
        if model.uses_labels and labels is None:
            raise ValueError(f"{type(model).__name__} is class-conditional, but {dataset.info.board} has no labels")
        sums: dict[str, float] = {}
        steps = batches(len(x), train.batch_size, shuffle)
        bar = tqdm(steps, desc=f"epoch {epoch + 1}/{train.epochs}", disable=not progress, leave=False)
        for step, index in enumerate(bar):
            xb = x[index].to(device)
            yb = None if labels is None else labels[index].to(device)
            if ddp is not None:
                scalars = distributed.step(ddp, model, xb, yb, optimizers, train)
            elif yb is None:
                scalars = model.training_step(xb, optimizers, train)
            else:
                scalars = model.training_step(xb, optimizers, train, y=yb)
            bad = {k: v for k, v in scalars.items() if not math.isfinite(v)}
            if bad:
                checkpoint = run_dir / LAST if (run_dir / LAST).exists() else None
                kept = (f"its last good checkpoint is {checkpoint} (after epoch {epoch})" if checkpoint
                        else "no checkpoint was saved (no epoch had finished)")
                raise NonFiniteLossError(
                    f"non-finite training value {bad} at epoch {epoch + 1}, step {step + 1}; the run "
                    f"stopped and {kept}. A lower learning rate (lr) or gradient clipping (grad_clip) "
                    "usually avoids this.",
                    checkpoint, epoch if checkpoint else None,
                )
            for k, v in scalars.items():
                sums[k] = sums.get(k, 0.0) + v
            if progress:
                bar.set_postfix({k: f"{v:.3f}" for k, v in scalars.items()})
        model.eval()
        score = validation_score(model, valid, train.eval_batch_size, device)
        seconds += time.perf_counter() - tic
        entry = {k: v / len(steps) for k, v in sums.items()}
        # cumulative training seconds: the runner draws the curves against epoch and wall time
        entry.update(epoch=epoch + 1, seconds=round(seconds, 3), valid=score if score is not None else float("nan"))
        history.append(entry)
        improved = score is None or score < best
        if improved:
            best, best_epoch, bad_epochs = (score if score is not None else best), epoch + 1, 0
            if distributed.is_main():  # one writer; every rank holds the same parameters
                save_checkpoint({"model": model.state_dict()}, run_dir / BEST)
        else:
            bad_epochs += 1
        stop = train.patience is not None and score is not None and bad_epochs >= train.patience
        if distributed.is_main():
            save_checkpoint(
                {
                    "model": model.state_dict(),
                    "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
                    "shuffle": shuffle.get_state(),
                    "rng": _rng_state(device),
                    "epoch": epoch + 1 if not stop else train.epochs,
                    "best": best,
                    "best_epoch": best_epoch,
                    "bad_epochs": bad_epochs,
                    "seconds": seconds,
                    "history": history,
                    "stopped_early": stop,
                },
                run_dir / LAST,
            )
        distributed.barrier()  # no rank reads a checkpoint before rank 0 has written it
        if progress:
            shown = ", ".join(f"{k} {v:.4g}" for k, v in entry.items() if k not in ("epoch", "seconds"))
            log(f"epoch {epoch + 1}: {shown}")
        if stop:
            stopped_early = True
            log(f"early stopping after epoch {epoch + 1}: no validation improvement in {train.patience} epochs")
            break
        # every rank reaches the same verdict only if they share a clock: decide on rank 0's
        epoch_seconds = time.perf_counter() - tic
        if deadline is not None and epoch + 1 < train.epochs and distributed.agree(time.time() + epoch_seconds > deadline):
            paused = True
            log(f"pausing after epoch {epoch + 1} of {train.epochs}: the next epoch would pass this invocation's "
                "time limit; the checkpoint is saved and the same command continues the run")
            break

    if (run_dir / BEST).exists():
        model.load_state_dict(load_checkpoint(run_dir / BEST, map_location=device)["model"])
    return TrainSummary(
        epochs_completed=len(history),
        best_epoch=best_epoch,
        best_validation=None if best == math.inf else best,
        stopped_early=stopped_early,
        train_seconds=seconds,
        resumed_from_epoch=resumed_from,
        seconds_before_resume=seconds_before_resume,
        history=history,
        paused_at_deadline=paused,
    )
