"""Shared set-up for the throughput benchmarks (asv in benchmarks/, pytest-benchmark in
tests/benchmarks/): every registered model at its quick-suite configuration on digits,
one training step on a batch of 100, and sampling 64 examples, on CPU and CUDA."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dgmbench.data.base import load_dataset
from dgmbench.models.base import MODELS, GenerativeModel, TrainConfig, make_config
from dgmbench.runner import quick_dataset_name

BATCH, SAMPLES = 100, 64


def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def quick_models() -> list[str]:
    from dgmbench.runner import quick_suite_models

    return quick_suite_models()


@dataclass
class Bench:
    model: GenerativeModel
    batch: torch.Tensor
    optimizers: dict
    train: TrainConfig
    device: torch.device
    labels: torch.Tensor | None = None  # the batch's class labels, for models that use them

    def training_step(self) -> None:
        self.model.train()
        if self.labels is None:
            self.model.training_step(self.batch, self.optimizers, self.train)
        else:
            self.model.training_step(self.batch, self.optimizers, self.train, y=self.labels)
        self.sync()

    @torch.no_grad()
    def sample(self) -> None:
        self.model.eval()
        self.model.sample(SAMPLES)
        self.sync()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)


def setup_bench(name: str, device: str) -> Bench:
    cls = MODELS.get(name)
    dataset = load_dataset(quick_dataset_name(cls))
    options = cls.quick_config(dataset.info)
    if options is None:
        raise NotImplementedError(f"{name} is not in the quick suite")
    torch.manual_seed(0)
    model = cls(make_config(cls.Config, options, what=name), dataset.info).to(device)
    train = make_config(TrainConfig, {**cls.train_defaults, **cls.quick_train(dataset.info)}, what="training")
    batch = dataset.train_epoch(0)[:BATCH].to(device)
    labels = dataset.labels["train"][:BATCH].to(device) if model.uses_labels else None
    bench = Bench(model, batch, model.configure_optimizers(train), train, torch.device(device), labels)
    bench.training_step()  # warm-up: lazy state, first-call allocations
    return bench
