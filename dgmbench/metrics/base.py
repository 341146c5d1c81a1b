"""The metric protocol: every metric says which models it applies to and returns values
that carry their own protocol (unit, sample counts, estimator settings), so a number in
the results store can always be traced to how it was computed."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import torch

from dgmbench.data.base import Dataset
from dgmbench.registry import Registry, import_submodules


@dataclass
class MetricValue:
    name: str  # e.g. "nll", "bpd", "elbo", "iwae_nll", "fid"
    value: float
    unit: str = ""  # "nats", "bits/dim", "" for scores
    n: int = 0  # number of test examples (or generated samples) it averages over
    stderr: float | None = None  # standard error of the mean, where meaningful
    kind: str = "exact"  # "exact" | "bound" | "estimate" | "score"
    higher_is_better: bool = False
    protocol: dict[str, Any] = field(default_factory=dict)  # k, extractor hash, schedule, ...

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class EvalContext:
    """What a metric may use besides the model and the data."""

    split: str = "test"
    batch_size: int = 500
    device: torch.device = torch.device("cpu")
    seed: int = 0
    quick: bool = False  # quick suite: metrics may use smaller, recorded settings
    settings: dict[str, Any] = field(default_factory=dict)  # e.g. {"iwae_k": 5000}
    workdir: str | None = None  # for caches (reference statistics, ...)

    def setting(self, key: str, default: Any) -> Any:
        return self.settings.get(key, default)

    def generator(self, offset: int = 0) -> torch.Generator:
        return torch.Generator(device="cpu").manual_seed(self.seed * 1_000_003 + offset)

    # model samples drawn for this evaluation, by (model id, n): see model_samples
    _samples: dict = field(default_factory=dict, repr=False, compare=False)


@torch.no_grad()
def model_samples(model, n: int, ctx: EvalContext) -> torch.Tensor:
    """n samples of `model` (float, on the CPU), drawn in batches of ctx.batch_size under a
    forked RNG seeded with ctx.seed, so the caller's random state is untouched and every
    sample-based metric of one evaluation scores the same samples. They are drawn once per
    (model, n) and evaluation; a metric asking for the same n gets them from the cache,
    exactly as it would have drawn them itself."""
    key = (id(model), n)
    cached = ctx._samples.get(key)
    if cached is not None and cached[0] is model:
        return cached[1]
    devices = [model.device] if model.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(ctx.seed)
        if devices:
            torch.cuda.manual_seed(ctx.seed)
        chunks = [model.sample(len(batch)).detach().cpu() for batch in torch.arange(n).split(ctx.batch_size)]
    samples = torch.cat(chunks).float()
    ctx._samples[key] = (model, samples)
    return samples


class Metric(Protocol):
    name: str

    def applies(self, model, dataset: Dataset) -> bool: ...

    def __call__(self, model, dataset: Dataset, ctx: EvalContext) -> list[MetricValue]: ...


def _load_metrics() -> None:
    import_submodules("dgmbench.metrics")
    import_submodules("dgmbench.models")  # some model files register their own metric (e.g. dbm_vlb)


METRICS: Registry[Metric] = Registry("metric", loader=_load_metrics)


def register_metric(metric: Metric) -> Metric:
    return METRICS.register(metric.name, metric)


def evaluate(model, dataset: Dataset, ctx: EvalContext, only: list[str] | None = None) -> list[MetricValue]:
    """Every registered metric that applies to `model` on `dataset`."""
    values: list[MetricValue] = []
    names = only if only is not None else METRICS.names()
    model.eval()
    for name in names:
        metric = METRICS.get(name)
        if metric.applies(model, dataset):
            values.extend(metric(model, dataset, ctx))
    return values
