"""The model protocol: what every generative model offers, and what each family can report.

A model is a ``torch.nn.Module`` subclass of :class:`GenerativeModel` with a ``Config``
dataclass. What it can be evaluated on follows from which capability it implements:

* :class:`ExactLikelihood`  ``log_prob(x)``: exact log p(x) in nats, per example.
* :class:`LowerBound`       ``elbo(x)`` with its reconstruction and KL parts, and
                            ``iwae_bound(x, k)`` (Burda et al. 2016).
* :class:`EnergyBased`      ``unnormalized_log_prob(x)`` = log p~(x) = log p(x) + log Z;
                            log Z comes from AIS (dgmbench.metrics.ais) or enumeration.
* :class:`Invertible`       ``encode(x)`` / ``decode(z)``: an exact bijection x <-> z (flows).
* :class:`Implicit`         sampling only.

Every model samples (``sample(n)``). Training is one trainer for all families: the
default ``training_step`` minimises ``loss(x)`` with the optimisers of
``configure_optimizers``; families whose learning rule is not "gradient of one loss"
(EM, contrastive divergence, alternating GAN updates) override ``training_step``.
"""
from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import nn

from dgmbench.data.base import DataInfo
from dgmbench.registry import Registry, import_submodules


@dataclass
class TrainConfig:
    """How a model is trained; shared by all families (model-specific knobs live in Config)."""

    epochs: int = 10
    batch_size: int | None = 100  # None: full batch (e.g. EM)
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_clip: float | None = None
    patience: int | None = 10  # early stopping on validation; None disables
    seed: int = 0
    eval_batch_size: int = 500


class Bound(NamedTuple):
    """Per-example ELBO and its parts, in nats: elbo = reconstruction - kl."""

    elbo: torch.Tensor
    reconstruction: torch.Tensor  # E_q[log p(x|z)]
    kl: torch.Tensor  # KL(q(z|x) || p(z))


class GenerativeModel(nn.Module, ABC):
    """Base class for every model in the registry."""

    Config: ClassVar[type]  # a dataclass; its defaults are the reference configuration
    family: ClassVar[str]  # "autoregressive", "latent", "energy", "flow", "gan", "mixture"
    value_types: ClassVar[tuple[str, ...]] = ("binary",)  # data the model accepts
    citation: ClassVar[str] = ""
    # TrainConfig defaults this family needs (e.g. {"batch_size": None} for full-batch EM);
    # applied before the user's overrides.
    train_defaults: ClassVar[dict] = {}

    def __init__(self, config: Any, info: DataInfo):
        super().__init__()
        if info.value_type not in self.value_types:
            raise ValueError(
                f"{type(self).__name__} models {'/'.join(self.value_types)} data, but "
                f"{info.board} is {info.value_type}"
            )
        self.config = config
        self.info = info

    # --- what every model must do -------------------------------------------------
    @abstractmethod
    def sample(self, n: int) -> torch.Tensor:
        """n samples of shape (n, *info.shape), on the model's device."""

    @abstractmethod
    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Scalar training objective (mean over the batch) that the default step minimises."""

    # --- training hooks (override for EM, CD, GANs, ...) --------------------------
    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        return {
            "model": torch.optim.Adam(self.parameters(), lr=train.lr, weight_decay=train.weight_decay)
        }

    uses_labels: bool = False  # True: the trainer passes class labels y to training_step

    def training_step(
        self,
        x: torch.Tensor,
        optimizers: dict[str, torch.optim.Optimizer],
        train: TrainConfig,
        y: torch.Tensor | None = None,
    ) -> dict[str, float]:
        """One update on batch x (with labels y for models that use them); returns the
        scalars to log (all must be finite)."""
        (opt,) = optimizers.values()
        opt.zero_grad(set_to_none=True)
        loss = self.loss(x) if y is None else self.loss(x, y)
        loss.backward()
        if train.grad_clip is not None:
            nn.utils.clip_grad_norm_(self.parameters(), train.grad_clip)
        opt.step()
        return {"loss": loss.item()}

    @torch.no_grad()
    def validation_score(self, x: torch.Tensor) -> float | None:
        """Lower is better; drives early stopping. None: no early stopping (e.g. GANs)."""
        return self.loss(x).item()

    # --- bookkeeping --------------------------------------------------------------
    @property
    def device(self) -> torch.device:
        for tensor in self.parameters():
            return tensor.device
        for tensor in self.buffers():
            return tensor.device
        return torch.device("cpu")

    @classmethod
    def quick_config(cls, info: DataInfo) -> dict | None:
        """Config overrides for the quick suite on the embedded `digits` dataset, or None
        to leave the model out. Keep it small: the whole quick suite must stay fast."""
        return {}

    @classmethod
    def quick_train(cls, info: DataInfo) -> dict:
        """TrainConfig overrides for the quick suite."""
        return {"epochs": 5}

    @classmethod
    def quick_variant(cls) -> str:
        """Which variant of `digits` the quick suite trains this model on."""
        return "binary"

    @classmethod
    def quick_dataset(cls) -> str | None:
        """The quick suite's dataset as "name/variant" when it is not a variant of `digits`
        (translation models train on pairs built from digits); None: digits/<quick_variant()>."""
        return None

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


class ExactLikelihood(ABC):
    @abstractmethod
    def log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """Exact log p(x) in nats, shape (n,)."""


class LowerBound(ABC):
    @abstractmethod
    def elbo(self, x: torch.Tensor) -> Bound:
        """Per-example ELBO and its parts (single-sample or analytic KL)."""

    @abstractmethod
    def iwae_bound(self, x: torch.Tensor, k: int) -> torch.Tensor:
        """log (1/k sum_i p(x, z_i) / q(z_i|x)), z_i ~ q(z|x): a stochastic lower bound on
        log p(x) that tightens as k grows. Shape (n,)."""


class EnergyBased(ABC):
    @abstractmethod
    def unnormalized_log_prob(self, x: torch.Tensor) -> torch.Tensor:
        """log p~(x) = log p(x) + log Z (minus the free energy), shape (n,)."""


class Invertible(ABC):
    """Bijective models (normalising flows): x <-> z exactly."""

    @abstractmethod
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """The base-distribution vector z = f(x), shape (n, D)."""

    @abstractmethod
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """x = f^-1(z), shape (n, *info.shape)."""


class Implicit(ABC):
    """Marker: the model only samples (GANs)."""


MODELS: Registry[type[GenerativeModel]] = Registry(
    "model", loader=lambda: import_submodules("dgmbench.models")
)


def register_model(name: str):
    """Class decorator: ``@register_model("nade")``."""

    def add(cls):
        cls.registry_name = name
        return MODELS.register(name, cls)

    return add


def build_model(name: str, info: DataInfo, **overrides) -> GenerativeModel:
    cls = MODELS.get(name)
    config = make_config(cls.Config, overrides, what=f"model {name!r}")
    return cls(config, info)


def make_config(config_cls: type, overrides: dict, what: str):
    """A dataclass instance with overrides, rejecting unknown keys with the valid ones."""
    valid = {f.name for f in dataclasses.fields(config_cls)}
    unknown = sorted(set(overrides) - valid)
    if unknown:
        raise ValueError(
            f"{what} has no option(s) {', '.join(unknown)}; valid options: {', '.join(sorted(valid))}"
        )
    return config_cls(**overrides)
