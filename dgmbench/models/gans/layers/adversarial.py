"""Alternating two-player training through the shared trainer.

A model here has a generator G(z), z ~ p(z), and a discriminator (critic) D; a subclass
says only what the two players minimise (``discriminator_objective``,
``generator_objective``) and what the critic's value estimates (``critic_estimates``).

One call of :meth:`AdversarialModel.training_step` is one discriminator update on the real
minibatch it is given (against a fresh generated batch); after ``n_critic`` such calls
(``critic_iterations``, which WGAN's warm-up schedule overrides) the call also makes one
generator update (Goodfellow et al. 2014, Algorithm 1 with k = n_critic;
Arjovsky et al. 2017, Algorithm 1), so each critic iteration sees new real data, as in
those algorithms. The count of critic updates is a buffer, so a resumed run continues the
cycle. Every call logs, on that step's batches: ``d_loss`` (the discriminator's total
loss), ``d_real``/``d_fake`` (its mean raw score on real and generated data), the
model's critic estimates (e.g. ``js_estimate``, ``wasserstein_estimate``) and ``g_loss``
(the generator's loss: on a generator-update call the loss it stepped on; otherwise the
loss of this call's generated batch under the just-updated discriminator, without a step),
so the trainer's per-epoch history holds every curve.

Learning rates: each player has its own optimiser; ``lr_generator`` and ``lr_discriminator``
(None: the training option ``lr``, the default, so both players share it) set them apart.
This is the two time-scale update rule (TTUR, Heusel et al. 2017, Sec. 2: with separate
rates and the discriminator on the faster time scale, GAN training converges to a local Nash
equilibrium under their stochastic-approximation assumptions); in practice e.g.
``-o lr_discriminator=4e-4 -o lr_generator=1e-4`` (SAGAN, Zhang et al. 2019). The record's
model_config holds both rates, its train_config the shared ``lr``.

Checkpoint selection (``select_checkpoint``): a GAN has no meaningful validation loss, so
there is no early stopping either way. ``"last"`` (the default): ``validation_score`` is
None, every epoch counts as improved and the run keeps, evaluates and records its last
checkpoint. ``"validation_fd"``: each epoch is scored by the Frechet distance between
Gaussians fitted to generated samples and to the whole validation split,

    FD = ||mu_g - mu_v||^2 + tr(S_g + S_v - 2 (S_g^1/2 S_v S_g^1/2)^1/2)

(the formula of FID, Heusel et al. 2017, eq. 6), and the checkpoint with the lowest value
is kept and evaluated. It is computed in DATA space (flattened x), as many samples as the
split has, from fixed latents (the same every epoch, drawn from a seeded generator that
leaves the training RNG untouched): a proper choice for the 2-D/vector boards (e.g. the
mode-coverage ring and grid), and only a crude one for images, whose pixel-space FD is not
the benchmark's FID (that needs the metric layer's feature extractors, which models may
not import). The record's ``training.checkpoint_selection`` states the rule and the epoch.

Improved techniques (Salimans et al. 2016), all off by default: ``feature_matching``
(Sec. 3.1: the generator minimises ||E f(x) - E f(G(z))||^2 over the discriminator's last
hidden features f instead of its own objective), ``minibatch_kernels`` (Sec. 3.2),
``historical_averaging`` (Sec. 3.3: weight of the penalty, for both players),
``label_smoothing`` (Sec. 3.4: the real target of GAN-type losses, e.g. 0.9; 1 is off)
and ``generator_norm = "virtual_batch"`` (Sec. 3.5).

The authors' own MLP setup (Goodfellow et al. 2014, pylearn2 ``mnist.yaml`` and
``AdversaryCost2``), all off by default: ``init_range_generator`` / ``init_range_discriminator``
(weights ~ U(-r, r), biases 0: pylearn2's ``irange``), ``generator_output = "sigmoid"`` with
``output_bias_from_data`` (the output bias set to the logit of the pixel means, from the first
training batch, clamped to [1/(2n), 1 - 1/(2n)] for a batch of n, since unseen pixels would
otherwise saturate: pylearn2 used the whole training set), ``critic_input = "unit"`` (images
reach the discriminator in [0, 1], not 2x - 1), ``simultaneous_updates`` (one forward pass,
the same generated batch and dropout masks, both players stepping on their own loss's
gradient at once, as ``AdversaryCost2.get_gradients``, instead of Algorithm 1's alternation),
``lr_decay`` (both learning rates divided by it after every update, not below ``min_lr``:
``ExponentialDecay``) and ``final_momentum`` reached linearly between the generator-update
counts ``momentum_ramp_updates`` (``MomentumAdjustor``, there by epochs).

``observation_std`` (off by default) turns an unconditional generator with a N(0, I) prior
into the decoder p(x | z) = N(G(z), s^2 I), which the decoder_ais metric evaluates by
annealed importance sampling (Wu et al. 2017); s is part of the model config, hence
recorded with the run.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from dgmbench.models.base import GenerativeModel, Implicit, TrainConfig
from dgmbench.models.gans.layers.improved import HistoricalAverage
from dgmbench.models.gans.layers.networks import (
    GENERATOR_OUTPUTS,
    NORMS,
    check_norm,
    dcgan_critic,
    dcgan_generator,
    dcgan_init,
    mlp_critic,
    mlp_generator,
    reference_latents,
    uniform_init_,
)
from dgmbench.train.schedules import decayed_lr, ramped_momentum

PRIORS = ("normal", "uniform")
CRITIC_INPUTS = ("symmetric", "unit")
CHECKPOINT_RULES = ("last", "validation_fd")
VALIDATION_SEED = 1234  # the fixed latents of the validation Frechet distance
ARCHITECTURES = ("auto", "mlp", "dcgan")
OPTIMIZERS = ("adam", "rmsprop", "sgd")


@dataclass
class AdversarialConfig:
    latent: int = 100
    prior: str = "normal"  # "normal": N(0, I); "uniform": U(-1, 1)^latent
    architecture: str = "auto"  # "auto": dcgan for images, mlp for vectors
    g_hidden: tuple[int, ...] = (512, 512)  # MLP generator hidden widths
    d_hidden: tuple[int, ...] = (512, 512)  # MLP discriminator hidden widths
    maxout_pieces: int = 0  # MLP discriminator: maxout units with this many pieces; 0 or 1: LeakyReLU
    dropout: float = 0.0  # MLP discriminator, hidden layers
    input_dropout: float = 0.0  # MLP discriminator, input
    base_channels: int = 128  # DCGAN: channels of the largest feature map
    generator_norm: str = "batch"  # batch | layer | virtual_batch | none
    critic_norm: str = "batch"  # batch | layer | none
    n_critic: int = 1  # discriminator updates per generator update
    optimizer: str = "adam"  # adam | rmsprop | sgd (learning rate: the training option lr)
    lr_generator: float | None = None  # the generator's learning rate; None: the training option lr
    lr_discriminator: float | None = None  # the discriminator's (TTUR: the faster one); None: lr
    select_checkpoint: str = "last"  # "last" | "validation_fd" (lowest data-space Frechet distance)
    betas: tuple[float, float] = (0.5, 0.999)  # Adam
    momentum: float = 0.0  # SGD
    # improved techniques (Salimans et al. 2016)
    feature_matching: bool = False
    minibatch_kernels: int = 0  # B; 0 disables minibatch discrimination
    minibatch_kernel_dim: int = 5  # C
    historical_averaging: float = 0.0  # penalty weight; 0 disables
    label_smoothing: float = 1.0  # target for real examples (GAN-type losses); 1 disables
    vbn_reference_size: int = 64  # reference batch of virtual batch norm
    # > 0: the generator becomes the decoder p(x | z) = N(G(z), observation_std^2 I) with the
    # N(0, I) prior, so the decoder_ais metric estimates log p(x) (Wu et al. 2017, Sec. 2.2);
    # needs prior "normal" and an unconditional generator. None: off.
    observation_std: float | None = None
    # the authors' pylearn2 setup (module docstring)
    init_range_generator: float | None = None  # weights ~ U(-r, r), biases 0; None: PyTorch's defaults
    init_range_discriminator: float | None = None
    generator_output: str = "tanh"  # images: "tanh" ((tanh + 1) / 2) or "sigmoid"
    output_bias_from_data: bool = False  # MLP generator: output bias from the first batch's pixel means
    critic_input: str = "symmetric"  # images reach the critic as 2x - 1 ("symmetric") or x ("unit")
    simultaneous_updates: bool = False  # both players step on one forward pass's gradients
    lr_decay: float = 1.0  # learning rates divided by this after every generator update
    min_lr: float = 0.0  # ... but not below this
    final_momentum: float | None = None  # SGD momentum ramped linearly from `momentum` to this ...
    momentum_ramp_updates: tuple[int, int] = (0, 0)  # ... between these generator-update counts

    # (minimum, maximum) where the range inferred from the defaults (dgmbench.validation) is wrong
    option_ranges: ClassVar[dict] = {
        "maxout_pieces": (0, None),  # 0 or 1: LeakyReLU units instead of maxout
        "dropout": (0.0, 0.99),
        "input_dropout": (0.0, 0.99),
        "label_smoothing": (0.0, 1.0),
        "lr_generator": (0.0, None, True),  # > 0
        "lr_discriminator": (0.0, None, True),
        "init_range_generator": (0.0, None, True),
        "init_range_discriminator": (0.0, None, True),
        "lr_decay": (1.0, None),
        "final_momentum": (0.0, 0.999),
    }
    # options added after records existed: left out of the run key while at their default, so
    # the committed records of the defaults keep their keys (dgmbench.runner.run_identity)
    identity_neutral: ClassVar[tuple[str, ...]] = (
        "lr_generator", "lr_discriminator", "select_checkpoint", "init_range_generator", "init_range_discriminator",
        "generator_output", "output_bias_from_data", "critic_input", "simultaneous_updates", "lr_decay", "min_lr",
        "final_momentum", "momentum_ramp_updates",
    )


class AdversarialModel(GenerativeModel, Implicit):
    family = "gans"  # the folder name, as report.HEADLINE keys families
    value_types = ("continuous",)
    train_defaults = {"patience": None, "lr": 2e-4, "batch_size": 64}
    supports_label_smoothing = False  # GAN-type (cross-entropy) losses set True

    def __init__(self, config: AdversarialConfig, info):
        super().__init__(config, info)
        c = config
        _choice("prior", c.prior, PRIORS)
        _choice("architecture", c.architecture, ARCHITECTURES)
        _choice("optimizer", c.optimizer, OPTIMIZERS)
        _choice("select_checkpoint", c.select_checkpoint, CHECKPOINT_RULES)
        _choice("generator_output", c.generator_output, GENERATOR_OUTPUTS)
        _choice("critic_input", c.critic_input, CRITIC_INPUTS)
        if c.simultaneous_updates and (c.n_critic != 1 or c.feature_matching or c.historical_averaging):
            raise ValueError("simultaneous_updates needs n_critic = 1 and no feature_matching or historical_averaging")
        if c.final_momentum is not None and c.optimizer != "sgd":
            raise ValueError(f"final_momentum ramps SGD's momentum; optimizer is {c.optimizer!r}: use optimizer=sgd")
        start, end = c.momentum_ramp_updates
        if c.final_momentum is not None and not 0 <= start < end:
            raise ValueError(f"momentum_ramp_updates must be (start, end) with 0 <= start < end, got {tuple(c.momentum_ramp_updates)}")
        check_norm(c.generator_norm)
        check_norm(c.critic_norm, tuple(n for n in NORMS if n != "virtual_batch"))
        if c.n_critic < 1:
            raise ValueError(f"n_critic must be >= 1, got {c.n_critic}")
        if not 0 < c.label_smoothing <= 1:
            raise ValueError(f"label_smoothing is the real target in (0, 1], got {c.label_smoothing}")
        if c.label_smoothing != 1 and not self.supports_label_smoothing:
            raise ValueError(f"label_smoothing applies to cross-entropy GAN losses, not {type(self).__name__}")
        architecture = c.architecture if c.architecture != "auto" else ("dcgan" if info.is_image else "mlp")
        if architecture == "dcgan" and not info.is_image:
            raise ValueError(f"architecture 'dcgan' needs images; {info.board} has shape {info.shape}: use 'mlp'")
        self.architecture = architecture
        if c.observation_std is not None:
            if c.observation_std <= 0 or c.prior != "normal":
                raise ValueError("observation_std needs a positive value and prior 'normal' (AIS runs HMC in z)")
            self.latent_dim = c.latent  # what makes the model a decoder-based model for AIS
        reference = (  # with label or code columns (zero) for conditional models
            self._reference_input(reference_latents(c.vbn_reference_size, c.latent, c.prior))
            if c.generator_norm == "virtual_batch" else None
        )
        inputs = self.generator_input_dim()
        if architecture == "dcgan":
            self.generator = dcgan_generator(info, inputs, c.base_channels, c.generator_norm, reference)
        else:
            self.generator = mlp_generator(info, inputs, tuple(c.g_hidden), c.generator_norm, reference, c.generator_output)
        if c.generator_output != "tanh" and architecture != "mlp":
            raise ValueError("generator_output applies to the MLP generator (architecture mlp)")
        self.discriminator = self.build_discriminator()
        if c.critic_input == "unit" and getattr(self.discriminator, "centred", True) is not False:
            raise ValueError(f"critic_input 'unit' applies to the MLP discriminator (architecture mlp); "
                             f"{type(self).__name__} with architecture {architecture} rescales its own input")
        if architecture == "dcgan":
            dcgan_init(self)
        if c.init_range_generator is not None:
            uniform_init_(self.generator, c.init_range_generator)
        if c.init_range_discriminator is not None:
            uniform_init_(self.discriminator, c.init_range_discriminator)
        if c.output_bias_from_data:
            if architecture != "mlp" or not info.is_image:
                raise ValueError("output_bias_from_data needs an MLP generator of images")
            # a buffer only with this option (other checkpoints keep their format): a resumed
            # run does not initialise again
            self.register_buffer("output_bias_initialised", torch.zeros((), dtype=torch.bool))
        if c.historical_averaging:
            self.generator_average = HistoricalAverage(self.generator)
            self.discriminator_average = HistoricalAverage(self.discriminator)
        # the alternation's position, as buffers so that a resumed run continues the cycle
        self.register_buffer("critic_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("generator_updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("critic_since_generator", torch.zeros((), dtype=torch.long))

    # --- how the networks are fed (conditional models override) ----------------------
    def generator_input_dim(self) -> int:
        return self.config.latent

    def critic_info(self):
        """The DataInfo the discriminator's network is built for (its input)."""
        return self.info

    def build_discriminator(self) -> nn.Module:
        """A :class:`Critic` for ``critic_info()`` (EBGAN and BEGAN build an autoencoder)."""
        c, info = self.config, self.critic_info()
        if self.architecture == "dcgan":
            return dcgan_critic(info, c.base_channels, c.critic_norm, c.minibatch_kernels, c.minibatch_kernel_dim)
        return mlp_critic(info, tuple(c.d_hidden), c.maxout_pieces, c.dropout, c.input_dropout,
                          c.minibatch_kernels, c.minibatch_kernel_dim, c.critic_input == "symmetric")

    def _reference_input(self, z: torch.Tensor) -> torch.Tensor:
        extra = self.generator_input_dim() - z.shape[1]
        return torch.cat([z, torch.zeros(len(z), extra)], dim=1) if extra else z

    # --- what a subclass defines ------------------------------------------------------
    def discriminator_objective(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def generator_objective(self, fake_scores: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def critic_estimates(self, real_scores: torch.Tensor, fake_scores: torch.Tensor) -> dict[str, float]:
        """Named estimates of the divergence the critic measures (logged every step)."""
        return {}

    def discriminator_penalty(self, real: torch.Tensor, fake: torch.Tensor) -> tuple[torch.Tensor, dict[str, float]]:
        """An extra term of the discriminator's loss (e.g. WGAN-GP's gradient penalty)."""
        return torch.zeros((), device=real.device), {}

    def critic_iterations(self, generator_updates: int) -> int:
        """Discriminator updates before generator update number generator_updates + 1."""
        return self.config.n_critic

    def after_discriminator_step(self) -> None:
        """Called after every discriminator update (e.g. WGAN's weight clipping)."""

    # --- sampling -------------------------------------------------------------------------
    def prior_sample(self, n: int) -> torch.Tensor:
        shape = (n, self.config.latent)
        if self.config.prior == "uniform":
            return torch.rand(shape, device=self.device) * 2 - 1
        return torch.randn(shape, device=self.device)

    def generator_input(self, n: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        """What the generator is fed: z (conditional models append the label, InfoGAN its codes)."""
        return self.prior_sample(n)

    def generate_with_input(self, n: int, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        inputs = self.generator_input(n, labels)
        return self.generator(inputs), inputs

    def generate(self, n: int, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.generate_with_input(n, labels)[0]

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        return self.generate(n)

    # --- decoder-based evaluation (observation_std set): p(z) = N(0, I), p(x|z) = N(G(z), s^2 I)
    def log_prior(self, z: torch.Tensor) -> torch.Tensor:
        return (-0.5 * z.pow(2) - 0.5 * math.log(2 * math.pi)).sum(-1)

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        """log N(x; G(z), s^2 I) for z (..., n, latent) and x (n, ...): shape (..., n)."""
        if self.generator_input_dim() != self.config.latent:
            raise ValueError(f"{type(self).__name__}'s generator takes more than z: no decoder p(x | z)")
        mean = self.generator(z.reshape(-1, z.shape[-1])).reshape(*z.shape[:-1], -1)
        var = self.config.observation_std**2
        return (-0.5 * (x.flatten(1) - mean).pow(2) / var - 0.5 * math.log(2 * math.pi * var)).sum(-1)

    def sample_given_latent(self, z: torch.Tensor) -> torch.Tensor:
        mean = self.generator(z)
        return mean + self.config.observation_std * torch.randn_like(mean)

    # --- the discriminator as the losses see it (conditional models feed the label too) -----
    def critic(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.discriminator(x)

    def critic_features(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.discriminator.features(x)

    # --- the two players' losses ----------------------------------------------------------
    def discriminator_loss(
        self, real: torch.Tensor, fake: torch.Tensor, labels: torch.Tensor | None = None,
        inputs: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, dict[str, float]]:
        """The discriminator's loss on a real and a generated batch (``inputs``: what the
        generator was fed for ``fake``; ``labels``: the class labels of both, if conditional)."""
        real_scores, fake_scores = self.critic(real, labels), self.critic(fake, labels)
        loss = self.discriminator_objective(real_scores, fake_scores)
        penalty, scalars = self.discriminator_penalty(real, fake)
        loss = loss + penalty
        if self.config.historical_averaging:
            loss = loss + self.config.historical_averaging * self.discriminator_average.penalty()
        scalars.update(
            d_loss=loss.item(), d_real=real_scores.mean().item(), d_fake=fake_scores.mean().item(),
            **self.critic_estimates(real_scores.detach(), fake_scores.detach()),
        )
        return loss, scalars

    def generator_loss(
        self, fake: torch.Tensor, real: torch.Tensor, labels: torch.Tensor | None = None,
        inputs: torch.Tensor | None = None,
    ) -> torch.Tensor:
        if self.config.feature_matching:
            with torch.no_grad():
                real_features = self.critic_features(real, labels).mean(0)
            loss = (self.critic_features(fake, labels).mean(0) - real_features).pow(2).sum()
        else:
            loss = self.generator_objective(self.critic(fake, labels))
        if self.config.historical_averaging:
            loss = loss + self.config.historical_averaging * self.generator_average.penalty()
        return loss

    def loss(self, x: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        """The discriminator's loss on x against a fresh generated batch."""
        fake, inputs = self.generate_with_input(len(x), y)
        return self.discriminator_loss(x, fake, y, inputs)[0]

    # --- training ---------------------------------------------------------------------------
    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        c = self.config
        return {
            "discriminator": self._optimizer(self.discriminator_params_module().parameters(), train,
                                             train.lr if c.lr_discriminator is None else c.lr_discriminator),
            "generator": self._optimizer(self.generator_params_module().parameters(), train,
                                         train.lr if c.lr_generator is None else c.lr_generator),
        }

    def _optimizer(self, params, train: TrainConfig, lr: float) -> torch.optim.Optimizer:
        c = self.config
        if c.optimizer == "adam":
            return torch.optim.Adam(params, lr=lr, betas=tuple(c.betas), weight_decay=train.weight_decay)
        if c.optimizer == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, weight_decay=train.weight_decay)
        return torch.optim.SGD(params, lr=lr, momentum=c.momentum, weight_decay=train.weight_decay)

    def _step(self, loss: torch.Tensor, optimizer: torch.optim.Optimizer, module: nn.Module, train: TrainConfig) -> None:
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if train.grad_clip is not None:
            nn.utils.clip_grad_norm_(module.parameters(), train.grad_clip)
        optimizer.step()

    @torch.no_grad()
    def _initialise_output_bias(self, x: torch.Tensor) -> None:
        n = len(x)
        means = x.flatten(1).mean(0).clamp(1 / (2 * n), 1 - 1 / (2 * n))
        self.generator.body[-1].bias.copy_(self.generator.output_preactivation(means))
        self.output_bias_initialised.fill_(True)

    def _schedule(self, optimizers: dict[str, torch.optim.Optimizer], train: TrainConfig) -> None:
        """Learning rates and momentum for the next update (lr_decay, final_momentum)."""
        c, updates = self.config, int(self.generator_updates)
        if c.lr_decay != 1.0:
            for name, optimizer in optimizers.items():
                base = {"discriminator": c.lr_discriminator, "generator": c.lr_generator}.get(name)
                base = train.lr if base is None else base
                for group in optimizer.param_groups:
                    group["lr"] = decayed_lr(base, updates, c.lr_decay, c.min_lr)
        if c.final_momentum is not None:
            momentum = ramped_momentum(updates, c.momentum, c.final_momentum, c.momentum_ramp_updates)
            for optimizer in optimizers.values():
                for group in optimizer.param_groups:
                    group["momentum"] = momentum

    def _simultaneous_step(self, x, optimizers, train, labels) -> dict[str, float]:
        """One forward pass; each player steps on its own loss's gradient (AdversaryCost2)."""
        fake, inputs = self.generate_with_input(len(x), labels)
        real_scores, fake_scores = self.critic(x, labels), self.critic(fake, labels)
        penalty, scalars = self.discriminator_penalty(x, fake.detach())
        d_loss = self.discriminator_objective(real_scores, fake_scores) + penalty
        g_loss = self.generator_objective(fake_scores)
        players = {
            "discriminator": (d_loss, [p for p in self.discriminator_params_module().parameters() if p.requires_grad]),
            "generator": (g_loss, [p for p in self.generator_params_module().parameters() if p.requires_grad]),
        }
        # both gradients before either step: the generator's goes through the current discriminator
        gradients = {
            name: torch.autograd.grad(loss, parameters, retain_graph=name == "discriminator")
            for name, (loss, parameters) in players.items()
        }
        for name, (_, parameters) in players.items():
            for parameter, gradient in zip(parameters, gradients[name]):
                parameter.grad = gradient
            if train.grad_clip is not None:
                nn.utils.clip_grad_norm_(parameters, train.grad_clip)
            optimizers[name].step()
            optimizers[name].zero_grad(set_to_none=True)
        self.after_discriminator_step()
        self.critic_updates += 1
        self.generator_updates += 1
        scalars.update(
            d_loss=d_loss.item(), d_real=real_scores.mean().item(), d_fake=fake_scores.mean().item(),
            g_loss=g_loss.item(), **self.critic_estimates(real_scores.detach(), fake_scores.detach()),
        )
        return scalars

    def training_step(self, x, optimizers, train, y=None) -> dict[str, float]:
        n, labels = len(x), (y if self.uses_labels else None)
        if self.config.output_bias_from_data and not bool(self.output_bias_initialised):
            self._initialise_output_bias(x)
        self._schedule(optimizers, train)
        if self.config.simultaneous_updates:
            return self._simultaneous_step(x, optimizers, train, labels)
        with torch.no_grad():
            fake, inputs = self.generate_with_input(n, labels)
        d_loss, scalars = self.discriminator_loss(x, fake, labels, inputs)
        self._step(d_loss, optimizers["discriminator"], self.discriminator_params_module(), train)
        self.after_discriminator_step()
        if self.config.historical_averaging:
            self.discriminator_average.update()
        self.critic_updates += 1
        self.critic_since_generator += 1
        if int(self.critic_since_generator) >= self.critic_iterations(int(self.generator_updates)):
            discriminator = self.discriminator_params_module()
            discriminator.requires_grad_(False)  # the generator's step needs no D gradients
            try:
                fake, inputs = self.generate_with_input(n, labels)
                g_loss = self.generator_loss(fake, x, labels, inputs)
                self._step(g_loss, optimizers["generator"], self.generator_params_module(), train)
            finally:
                discriminator.requires_grad_(True)
            if self.config.historical_averaging:
                self.generator_average.update()
            self.generator_updates += 1
            self.critic_since_generator.zero_()
        else:
            with torch.no_grad():
                g_loss = self.generator_loss(fake, x, labels, inputs)
        scalars["g_loss"] = g_loss.item()
        return scalars

    def discriminator_params_module(self) -> nn.Module:
        """The modules the discriminator's optimiser updates (InfoGAN adds its Q head)."""
        return self.discriminator

    def generator_params_module(self) -> nn.Module:
        return self.generator

    # --- checkpoint selection (module docstring) ----------------------------------------------
    @property
    def validation_score_is_whole_split(self) -> bool:
        """The trainer calls validation_score once on the whole split (a Frechet distance is
        not a mean over examples)."""
        return self.config.select_checkpoint == "validation_fd"

    validation_score_description = "data-space Frechet distance of generated samples to the validation split"

    @torch.no_grad()
    def validation_score(self, x: torch.Tensor) -> float | None:
        if self.config.select_checkpoint == "last":
            return None  # no meaningful validation loss: no early stopping, keep the last checkpoint
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(VALIDATION_SEED)  # the same latents every epoch; training's RNG untouched
            fake = torch.cat([self.sample(len(chunk)) for chunk in x.split(VALIDATION_CHUNK)])
        return frechet_distance(*gaussian_moments(fake.flatten(1)), *gaussian_moments(x.flatten(1)))

    # --- quick suite ----------------------------------------------------------------------------
    @classmethod
    def quick_variant(cls) -> str:
        return "dequantized"

    @classmethod
    def quick_config(cls, info) -> dict:
        return {"latent": 16, "base_channels": 32, "g_hidden": (128, 128), "d_hidden": (128, 128)}

    @classmethod
    def quick_train(cls, info) -> dict:
        return {"epochs": 10, "batch_size": 64}


VALIDATION_CHUNK = 1000  # generated samples per generator call while scoring the validation split


def gaussian_moments(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean and (unbiased) covariance of the rows of x, in float64."""
    x = x.double()
    mean = x.mean(0)
    centred = x - mean
    return mean, centred.T @ centred / (len(x) - 1)


def frechet_distance(mean1: torch.Tensor, cov1: torch.Tensor, mean2: torch.Tensor, cov2: torch.Tensor) -> float:
    """||m1 - m2||^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2) between N(m1, C1) and N(m2, C2).
    tr (C1 C2)^1/2 is computed as the sum of the square roots of the eigenvalues of the
    symmetric PSD matrix C1^1/2 C2 C1^1/2 (which has the eigenvalues of C1 C2), C1^1/2 from
    the eigendecomposition of C1: symmetric eigensolvers only, no general matrix square root."""
    values, vectors = torch.linalg.eigh(cov1)
    root1 = vectors @ torch.diag(values.clamp_min(0).sqrt()) @ vectors.T
    middle = root1 @ cov2 @ root1
    trace_root = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    distance = (mean1 - mean2).pow(2).sum() + torch.trace(cov1) + torch.trace(cov2) - 2 * trace_root
    return float(distance.clamp_min(0))


def _choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} {value!r} is not one of {', '.join(allowed)}")
