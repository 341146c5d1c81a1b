"""Variational autoencoder (Kingma & Welling 2014) with a diagonal Gaussian posterior, and
the importance-weighted bound of Burda et al. (2016).

    ELBO(x)  = E_q(z|x)[log p(x|z)] - KL(q(z|x) || N(0, I))                (KW eq. 10)
    L_k(x)   = E[log (1/k) sum_i p(x, z_i) / q(z_i|x)],  z_i ~ q(z|x)       (Burda eq. 8)

The KL term is analytic for the Gaussian posterior; the reconstruction term uses one
reparameterized sample. L_1 = ELBO <= L_k <= log p(x), and L_k -> log p(x) as k grows.

Options:

* ``decoder``: "bernoulli" (binary data; KW Appendix C.1), "gaussian" (continuous data,
  per-pixel mean and log-variance; KW Appendix C.2), "logistic" (discrete data with L levels:
  the discretized logistic of Salimans et al. 2017, one component per pixel), or "auto",
  which picks the one that matches the data (the paper's choice for MNIST and Frey Face).
* ``architecture``: "mlp" (tanh layers, as in KW) or "conv" (two stride-2 convolutions and
  their transposes; image data).
* ``kl_warmup``: the KL term of the *training* loss is scaled by beta rising linearly from 0
  to 1 over this many steps (KL annealing, Bowman et al. 2016); 0 disables it.
* ``free_bits``: the training loss uses sum_j max(lambda, E_batch KL_j) per latent unit j
  (Kingma et al. 2016, Sec. C.8); 0 disables it.
* ``activation`` ("tanh", KW's choice, or "relu") of the MLP's hidden layers, and
  ``encoder_layers`` when the encoder has another depth than the decoder (``layers``).
* ``optimizer``: "adam", or "sgd" with ``momentum``, optionally ramped linearly to
  ``final_momentum`` between the update counts ``momentum_ramp_updates``, and the learning
  rate divided by ``lr_decay`` after every update, not below ``min_lr``: the schedule of
  pylearn2's released VAE example (its ``MomentumAdjustor`` and ``ExponentialDecay``; the
  ramp there is by epochs, here by updates). PyTorch's momentum update (v = m v + g,
  p -= lr v) equals pylearn2's (v = m v - lr g, p += v) at a constant learning rate.

Annealing and free bits change only the training loss; ``elbo`` always reports the true
bound, with its reconstruction and KL parts. ``posterior_mean`` feeds the active-units
diagnostic (Burda et al. 2016, Sec. 5.2).

The posterior is a replaceable module (``posterior_module``): anything with
``rsample(x, k) -> (z, log q(z|x))`` fits (e.g. a flow posterior); the VAE then estimates the
KL by Monte Carlo unless the module also offers ``kl_per_unit(x)`` in closed form. The
``posterior`` option picks one: "gaussian" (KW), "planar" or "radial" (K = ``flow_steps``
planar or radial flows, Rezende & Mohamed 2015) or "iaf" (K inverse autoregressive steps fed the encoder's context
h(x), Kingma et al. 2016); see flow_posteriors.py. ``free_bits`` needs the Gaussian one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.models.base import Bound, GenerativeModel, LowerBound, register_model
from dgmbench.models.latent.flow_posteriors import flow_posterior
from dgmbench.models.layers import discretized_logistic
from dgmbench.train.schedules import decayed_lr, ramped_momentum

LOG_2PI = math.log(2 * math.pi)
DECODERS = ("auto", "bernoulli", "gaussian", "logistic")
DECODER_FOR_DATA = {"binary": "bernoulli", "continuous": "gaussian", "discrete": "logistic"}
ARCHITECTURES = ("mlp", "conv")
ACTIVATIONS = {"tanh": nn.Tanh, "relu": nn.ReLU}
OPTIMIZERS = ("adam", "sgd")


def mlp(sizes: list[int], activation: type[nn.Module] = nn.Tanh) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class ConvEncoder(nn.Module):
    """(N, C, H, W) -> (N, out): two stride-2 3x3 convolutions (32, 64 channels), then linear."""

    def __init__(self, shape: tuple[int, int, int], out: int):
        super().__init__()
        c, h, w = shape
        self.net = nn.Sequential(
            nn.Conv2d(c, 32, 3, 2, 1), nn.ReLU(), nn.Conv2d(32, 64, 3, 2, 1), nn.ReLU(), nn.Flatten(),
            nn.Linear(64 * math.ceil(h / 4) * math.ceil(w / 4), out),
        )

    def forward(self, x):
        lead = x.shape[:-3]
        return self.net(x.reshape(-1, *x.shape[-3:])).view(*lead, -1)


class ConvDecoder(nn.Module):
    """(..., latent) -> (..., channels, H, W): linear, then two stride-2 transposed convolutions."""

    def __init__(self, latent: int, shape: tuple[int, int, int], channels: int):
        super().__init__()
        _, h, w = shape
        self.shape, self.small = shape, (64, math.ceil(h / 4), math.ceil(w / 4))
        self.linear = nn.Sequential(nn.Linear(latent, math.prod(self.small)), nn.ReLU())
        self.deconv = nn.Sequential(
            nn.ConvTranspose2d(64, 32, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(32, channels, 4, 2, 1)
        )

    def forward(self, z):
        lead = z.shape[:-1]
        out = self.deconv(self.linear(z).view(-1, *self.small))[..., : self.shape[1], : self.shape[2]]
        return out.reshape(*lead, *out.shape[1:])


class DiagonalGaussianPosterior(nn.Module):
    """q(z|x) = N(mean(x), diag exp(log_var(x))) from an encoder network x -> 2*latent."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_var = self.net(x).chunk(2, dim=-1)
        return mean, log_var

    def rsample(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """k reparameterised samples (k, n, latent) and their log q (k, n)."""
        mean, log_var = self(x)
        eps = torch.randn(k, *mean.shape, dtype=mean.dtype, device=mean.device)
        z = mean + eps * (0.5 * log_var).exp()
        return z, (-0.5 * eps.pow(2) - 0.5 * log_var - 0.5 * LOG_2PI).sum(-1)

    def kl_per_unit(self, x: torch.Tensor) -> torch.Tensor:
        """KL(q(z_j|x) || N(0, 1)) per unit, (n, latent), in closed form."""
        mean, log_var = self(x)
        return 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var)

    def rsample_and_kl(self, x: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``rsample`` and ``kl_per_unit`` from one encoder pass."""
        mean, log_var = self(x)
        eps = torch.randn(k, *mean.shape, dtype=mean.dtype, device=mean.device)
        z = mean + eps * (0.5 * log_var).exp()
        log_q = (-0.5 * eps.pow(2) - 0.5 * log_var - 0.5 * LOG_2PI).sum(-1)
        return z, log_q, 0.5 * (mean.pow(2) + log_var.exp() - 1 - log_var)


@dataclass
class VAEConfig:
    latent: int = 50
    hidden: int = 500
    layers: int = 2  # hidden layers in the encoder and in the decoder (mlp)
    decoder: str = "auto"  # "auto" | "bernoulli" | "gaussian" | "logistic"
    architecture: str = "mlp"  # "mlp" | "conv" (image data)
    kl_warmup: int = 0  # training steps over which the KL weight rises from 0 to 1
    free_bits: float = 0.0  # nats per latent unit below which the KL is not penalised
    posterior: str = "gaussian"  # "gaussian" | "planar" | "radial" | "iaf" (flow_posteriors.py)
    flow_steps: int = 10  # K flow steps of a flow posterior (R&M 2015 Table 2: K = 10 ... 80)
    flow_amortised: bool = True  # planar/radial: step parameters per example from the encoder (as R&M)
    flow_hidden: int = 320  # iaf: width of each MADE's two hidden layers (Kingma et al. Table 1)
    flow_context: int = 50  # iaf: size of the encoder's context h(x) fed to every MADE
    iwae_chunk: int = 1000  # importance samples evaluated per pass (memory bound)
    activation: str = "tanh"  # hidden layers of the mlp: "tanh" (KW) | "relu"
    encoder_layers: int | None = None  # hidden layers of the encoder when not `layers`
    optimizer: str = "adam"  # "adam" | "sgd" (learning rate: the training option lr)
    momentum: float = 0.0  # sgd: momentum (at the start of the ramp, if any)
    final_momentum: float | None = None  # sgd: momentum ramped linearly to this ...
    momentum_ramp_updates: tuple[int, int] = (0, 0)  # ... between these update counts
    lr_decay: float = 1.0  # learning rate divided by this after every update ...
    min_lr: float = 0.0  # ... not below this
    # options whose defaults leave the model and its training as they were: runs recorded
    # before the options existed keep their run keys
    identity_neutral: ClassVar[tuple[str, ...]] = (
        "activation", "encoder_layers", "optimizer", "momentum", "final_momentum", "momentum_ramp_updates",
        "lr_decay", "min_lr")


@register_model("vae")
class VAE(GenerativeModel, LowerBound):
    Config = VAEConfig
    family = "latent"
    value_types = ("binary", "discrete", "continuous")
    citation = "Kingma & Welling (2014), Auto-Encoding Variational Bayes, ICLR"

    def __init__(self, config: VAEConfig, info):
        super().__init__(config, info)
        if config.decoder not in DECODERS:
            raise ValueError(f"decoder must be one of {', '.join(DECODERS)}, got {config.decoder!r}")
        if config.architecture not in ARCHITECTURES:
            raise ValueError(f"architecture must be one of {', '.join(ARCHITECTURES)}, got {config.architecture!r}")
        self.likelihood = DECODER_FOR_DATA[info.value_type] if config.decoder == "auto" else config.decoder
        if self.likelihood != DECODER_FOR_DATA[info.value_type]:
            raise ValueError(
                f"decoder={self.likelihood!r} does not model {info.value_type} data; use "
                f"decoder={DECODER_FOR_DATA[info.value_type]!r} (or auto)"
            )
        if config.architecture == "conv" and not info.is_image:
            raise ValueError(f"architecture='conv' needs image data (C, H, W), got shape {info.shape}; use 'mlp'")
        if config.kl_warmup < 0 or config.free_bits < 0:
            raise ValueError("kl_warmup and free_bits must be >= 0")
        if config.free_bits > 0 and config.posterior != "gaussian":
            raise ValueError("free_bits needs posterior='gaussian' (a closed-form KL per latent unit)")
        if config.activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {', '.join(ACTIVATIONS)}, got {config.activation!r}")
        if config.encoder_layers is not None and config.encoder_layers < 0:
            raise ValueError(f"encoder_layers must be >= 0 (or none: as `layers`), got {config.encoder_layers}")
        if config.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {config.optimizer!r}")
        if (config.momentum or config.final_momentum is not None) and config.optimizer != "sgd":
            raise ValueError(f"momentum and final_momentum are SGD's; optimizer is {config.optimizer!r}: use optimizer=sgd")
        for name in ("momentum", "final_momentum"):
            value = getattr(config, name)
            if value is not None and not 0 <= value < 1:
                raise ValueError(f"{name} must be in [0, 1), got {value}")
        start, end = config.momentum_ramp_updates
        if config.final_momentum is not None and not 0 <= start < end:
            raise ValueError(f"momentum_ramp_updates must be (start, end) with 0 <= start < end, got {(start, end)}")
        if config.lr_decay < 1 or config.min_lr < 0:
            raise ValueError(f"lr_decay must be >= 1 and min_lr >= 0, got {config.lr_decay} and {config.min_lr}")
        # image layout of x: (C, H, W); vectors become (1, 1, D)
        self.image_shape = tuple(info.shape) if info.is_image else (1, 1, info.dim)
        channels = self.image_shape[0]
        outputs = {
            "bernoulli": channels,
            "gaussian": 2 * channels,
            "logistic": discretized_logistic.num_parameters(channels, 1),
        }[self.likelihood]
        d, h, z = info.dim, config.hidden, config.latent

        def make_encoder(out: int) -> nn.Module:
            if config.architecture == "conv":
                return nn.Sequential(nn.Unflatten(-1, self.image_shape), ConvEncoder(self.image_shape, out))
            depth = config.layers if config.encoder_layers is None else config.encoder_layers
            return mlp([d] + [h] * depth + [out], ACTIVATIONS[config.activation])

        # the encoder is built before the decoder (the order of their random initialisation)
        if config.posterior == "gaussian":
            posterior = DiagonalGaussianPosterior(make_encoder(2 * z))
        else:  # q_K(z|x) = q0 pushed through K flow steps; Monte Carlo KL
            posterior = flow_posterior(config.posterior, make_encoder, z, config.flow_steps,
                                       config.flow_amortised, config.flow_hidden, config.flow_context)
        if config.architecture == "conv":
            self.decoder = ConvDecoder(z, self.image_shape, outputs)
        else:
            self.decoder = nn.Sequential(mlp([z] + [h] * config.layers + [outputs * d], ACTIVATIONS[config.activation]),
                                         nn.Unflatten(-1, (outputs, *self.image_shape[1:])))
        self.posterior_module = posterior
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))  # for KL annealing

    def posterior(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean and log-variance of the Gaussian posterior q(z|x) (of q0 for a flow posterior)."""
        return self.posterior_module(x.flatten(1))

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log p(x|z) for z of shape (..., n, latent) against x (n, ...): shape (..., n)."""
        out = self.decoder(z)  # (..., n, outputs, H, W)
        target = x.reshape(len(x), *self.image_shape).expand(*out.shape[:-3], *self.image_shape)
        if self.likelihood == "bernoulli":
            log_px = -F.binary_cross_entropy_with_logits(out, target, reduction="none")
        elif self.likelihood == "gaussian":
            mean, log_var = out.chunk(2, dim=-3)
            log_px = -0.5 * (target - mean).pow(2) / log_var.exp() - 0.5 * log_var - 0.5 * LOG_2PI
        else:
            flat = out.reshape(-1, *out.shape[-3:])
            log_px = discretized_logistic.log_prob(flat, target.reshape(-1, *self.image_shape), self.info.num_levels, 1)
            return log_px.flatten(1).sum(-1).view(out.shape[:-3])
        return log_px.flatten(-3).sum(-1)

    def kl_per_unit(self, x: torch.Tensor) -> torch.Tensor | None:
        closed_form = getattr(self.posterior_module, "kl_per_unit", None)
        return closed_form(x.flatten(1)) if closed_form is not None else None

    def _bound_parts(self, x: torch.Tensor):
        """(reconstruction, KL, KL per unit or None) from one posterior sample."""
        if hasattr(self.posterior_module, "rsample_and_kl"):  # one encoder pass for both
            z, log_q, kl_units = self.posterior_module.rsample_and_kl(x.flatten(1), 1)
        else:
            (z, log_q), kl_units = self.posterior_module.rsample(x.flatten(1), 1), self.kl_per_unit(x)
        reconstruction = self.log_likelihood(x, z)[0]
        if kl_units is None:  # Monte Carlo KL for posteriors without a closed form
            kl = log_q[0] - self.log_prior(z[0])
        else:
            kl = kl_units.sum(-1)
        return reconstruction, kl, kl_units

    def elbo(self, x: torch.Tensor) -> Bound:
        reconstruction, kl, _ = self._bound_parts(x)
        return Bound(reconstruction - kl, reconstruction, kl)

    def iwae_bound(self, x: torch.Tensor, k: int) -> torch.Tensor:
        chunks = []
        for start in range(0, k, self.config.iwae_chunk):
            m = min(self.config.iwae_chunk, k - start)
            z, log_q = self.posterior_module.rsample(x.flatten(1), m)
            chunks.append(self.log_likelihood(x, z) + self.log_prior(z) - log_q)  # (m, n)
        log_w = torch.cat(chunks)
        return torch.logsumexp(log_w, dim=0) - math.log(k)

    def configure_optimizers(self, train):
        if self.config.optimizer == "sgd":
            return {"model": torch.optim.SGD(self.parameters(), lr=train.lr, momentum=self.config.momentum,
                                             weight_decay=train.weight_decay)}
        return super().configure_optimizers(train)

    def training_step(self, x, optimizers, train, y=None):
        self.apply_schedule(optimizers["model"], train.lr)
        return super().training_step(x, optimizers, train, y)

    def apply_schedule(self, optimizer: torch.optim.Optimizer, base_lr: float) -> None:
        """Learning rate and momentum for the next update, from the updates done so far
        (``steps``, saved with the model, so a resumed run continues the schedule)."""
        c, done = self.config, int(self.steps)
        for group in optimizer.param_groups:
            if c.lr_decay != 1.0:
                group["lr"] = decayed_lr(base_lr, done, c.lr_decay, c.min_lr)
            if c.final_momentum is not None:
                group["momentum"] = ramped_momentum(done, c.momentum, c.final_momentum, c.momentum_ramp_updates)

    def kl_weight(self) -> float:
        if self.config.kl_warmup == 0:
            return 1.0
        return min(1.0, (self.steps.item() + 1) / self.config.kl_warmup)

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        """Negative ELBO; while training, with the KL annealed and/or floored by free bits."""
        reconstruction, kl, kl_units = self._bound_parts(x)
        if not (self.training and torch.is_grad_enabled()):
            return -(reconstruction - kl).mean()
        if self.config.free_bits > 0:
            if kl_units is None:
                raise ValueError("free_bits needs a posterior with a closed-form KL per unit")
            kl = kl_units.mean(0).clamp(min=self.config.free_bits).sum().expand_as(reconstruction)
        beta = self.kl_weight()
        self.steps += 1
        return -(reconstruction - beta * kl).mean()

    @torch.no_grad()
    def posterior_mean(self, x: torch.Tensor) -> torch.Tensor:
        """E_q[z|x], (n, latent): the input of the active-units diagnostic. Exact for the
        Gaussian posterior; the module's own ``mean`` where it has one (flow posteriors: Monte
        Carlo with common random numbers), else a 100-sample Monte Carlo mean."""
        if isinstance(self.posterior_module, DiagonalGaussianPosterior):
            return self.posterior(x)[0]
        if hasattr(self.posterior_module, "mean"):
            return self.posterior_module.mean(x.flatten(1))
        return self.posterior_module.rsample(x.flatten(1), 100)[0].mean(0)

    # --- the decoder-model interface (dgmbench.metrics.decoder_ais) ---------------
    @property
    def latent_dim(self) -> int:
        return self.config.latent

    def prior_sample(self, n: int) -> torch.Tensor:
        return torch.randn(n, self.config.latent, device=self.device)

    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return (-0.5 * z.pow(2) - 0.5 * LOG_2PI).sum(-1)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        return self.sample_given_latent(self.prior_sample(n))

    @torch.no_grad()
    def sample_given_latent(self, z: torch.Tensor) -> torch.Tensor:
        """x ~ p(x | z) for z (n, latent)."""
        n = len(z)
        out = self.decoder(z)
        if self.likelihood == "bernoulli":
            x = torch.bernoulli(torch.sigmoid(out))
        elif self.likelihood == "gaussian":
            mean, log_var = out.chunk(2, dim=1)
            x = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        else:
            x = discretized_logistic.sample(out, self.image_shape[0], self.info.num_levels, 1)
        return x.reshape(n, *self.info.shape)

    @classmethod
    def quick_config(cls, info):
        return {"latent": 8, "hidden": 128}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 30, "lr": 3e-3}
