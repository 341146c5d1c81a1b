"""CycleGAN: unpaired image-to-image translation with cycle-consistent adversarial networks
(Zhu, Park, Isola & Efros 2017). Two translators G: X -> Y and F: Y -> X and two
discriminators D_Y (on Y) and D_X (on X), learnt from unpaired samples of X and Y.

Adversarial loss (eq. 1), for G and D_Y, and likewise L_GAN(F, D_X, Y, X):

    L_GAN(G, D_Y, X, Y) = E_y log D_Y(y) + E_x log(1 - D_Y(G(x)))                  (eq. 1)

cycle-consistency loss (eq. 2) and the full objective (eq. 3), lambda = 10:

    L_cyc(G, F) = E_x ||F(G(x)) - x||_1 + E_y ||G(F(y)) - y||_1                    (eq. 2)
    L(G, F, D_X, D_Y) = L_GAN(G, D_Y, X, Y) + L_GAN(F, D_X, Y, X) + lambda L_cyc(G, F)   (eq. 3)

    G*, F* = arg min_{G,F} max_{D_X,D_Y} L(G, F, D_X, D_Y)                          (eq. 4)

As in the paper (Sec. 4, "Training details"): the negative log-likelihood of eq. 1 is
replaced by least squares (LSGAN, Mao et al. 2017): G minimises E_x (D_Y(G(x)) - 1)^2 and
D_Y minimises E_y (D_Y(y) - 1)^2 + E_x D_Y(G(x))^2, divided by 2 ("we divide the objective
by 2 while optimizing D"); D_X and D_Y are updated on a history of the last 50 generated
images (``pool_size``), not only the latest batch. Optional identity loss (Sec. 5.2, for
painting -> photo): identity_weight * lambda * (E_y ||G(y) - y||_1 + E_x ||F(x) - x||_1),
0.5 in the paper where it is used, off by default (the main experiments do not use it; on
our tasks it pulls G towards the identity, which is wrong for every transform we have).
||.||_1 is averaged over pixels (authors' code). One step: G and F update on the minibatch
(with D_X, D_Y frozen), then D_X and D_Y update on the real batch and pooled fakes.

Reference configuration (Sec. 4 and 7.2): ResNet generators c7s1-64, d128, d256, nine
residual blocks R256 (for 256x256 images; six for 128x128), u128, u64, c7s1-3, instance
norm; 70x70 PatchGAN discriminators; Adam lr 2e-4, beta1 0.5, batch 1; weights N(0, 0.02).
(The paper keeps lr for 100 epochs and decays it linearly to 0 over the next 100; our
trainer keeps it constant.)

Data: a translation dataset of :mod:`dgmbench.data.translation`, ``<transform>_unaligned``
(domains from disjoint halves of the training split: no pair is ever seen). The loss does
not use the row pairing of a batch, so on an aligned variant it learns from the same
images but every target is the transform of some source. ``translate`` is G;
``translate_back`` is F; ``sample(n)`` returns pairs (x, G(x)) for held-out sources, and the
metric ``translation`` scores G(x) against T(x), F(y) against T^-1(y) and both cycles.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dgmbench.data.translation import split_pair, task_of
from dgmbench.models.base import TrainConfig, register_model
from dgmbench.models.gans.layers.losses import least_squares_discriminator_loss
from dgmbench.models.gans.layers.networks import dcgan_init
from dgmbench.models.gans.layers.translation import (
    ImagePool,
    PatchDiscriminator,
    ResnetGenerator,
    TranslationModel,
    UNetGenerator,
    halvings,
    patch_layers,
    translation_norm,
)

GENERATORS = ("resnet", "unet")
DOWNSAMPLINGS = 2  # d128, d256


@dataclass
class CycleGANConfig:
    generator: str = "resnet"  # or "unet" (the authors' code offers both)
    base_channels: int = 64
    res_blocks: int = 9  # 9 for 256x256, 6 for 128x128 (Sec. 7.2)
    unet_depth: int = 8  # generator "unet": encoder layers, at most the image's halvings
    d_base_channels: int = 64
    d_layers: int = 3  # 70x70 PatchGAN
    norm: str = "instance"  # instance | batch | none
    cycle_weight: float = 10.0  # lambda of eq. 3
    identity_weight: float = 0.0  # times lambda; 0.5 where the paper uses it (Sec. 5.2)
    pool_size: int = 50  # history of generated images for D; 0: the latest batch only
    betas: tuple[float, float] = (0.5, 0.999)


@register_model("cyclegan")
class CycleGAN(TranslationModel):
    Config = CycleGANConfig
    citation = ("Zhu, Park, Isola & Efros (2017), Unpaired Image-to-Image Translation using Cycle-Consistent "
                "Adversarial Networks, ICCV")
    train_defaults = {"patience": None, "lr": 2e-4, "batch_size": 1}

    def __init__(self, config: CycleGANConfig, info):
        super().__init__(config, info)
        c = config
        if c.generator not in GENERATORS:
            raise ValueError(f"generator {c.generator!r} is not one of {', '.join(GENERATORS)}")
        translation_norm(c.norm, 1)  # rejects an unknown norm with the valid ones
        if c.pool_size < 0:
            raise ValueError(f"pool_size must be >= 0, got {c.pool_size}")
        task_of(info)
        channels, height, width = self.image_shape
        side = min(height, width)
        if c.generator == "resnet" and halvings(side, DOWNSAMPLINGS) < DOWNSAMPLINGS:
            raise ValueError(f"the ResNet generator halves the image twice: its side must be divisible by 4, "
                             f"got {height}x{width}; use -o generator=unet")

        def translator():
            if c.generator == "resnet":
                return ResnetGenerator(channels, c.base_channels, c.res_blocks, c.norm, DOWNSAMPLINGS)
            return UNetGenerator(channels, halvings(side, c.unet_depth), c.base_channels, c.norm, 0.0, 0, False)

        self.d_layers = patch_layers(side, c.d_layers)
        self.generator_xy, self.generator_yx = translator(), translator()  # G: X -> Y, F: Y -> X
        self.discriminator_y = PatchDiscriminator(channels, c.d_base_channels, self.d_layers, c.norm)
        self.discriminator_x = PatchDiscriminator(channels, c.d_base_channels, self.d_layers, c.norm)
        dcgan_init(self)
        self.pool_y = ImagePool(c.pool_size, self.image_shape)  # G(x) history, for D_Y
        self.pool_x = ImagePool(c.pool_size, self.image_shape)  # F(y) history, for D_X

    @property
    def generators(self):
        return [self.generator_xy, self.generator_yx]

    @property
    def discriminators(self):
        return [self.discriminator_x, self.discriminator_y]

    def translate(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator_xy(x)

    def translate_back(self, y: torch.Tensor) -> torch.Tensor:
        return self.generator_yx(y)

    def generator_loss(self, x: torch.Tensor, y: torch.Tensor):
        """(total of eq. 3 for G and F with LSGAN terms, scalars, (G(x), F(y)))."""
        c = self.config
        fake_y, fake_x = self.generator_xy(x), self.generator_yx(y)
        adversarial_y = (self.discriminator_y(fake_y) - 1).pow(2).mean()
        adversarial_x = (self.discriminator_x(fake_x) - 1).pow(2).mean()
        cycle_x = (self.generator_yx(fake_y) - x).abs().mean()  # ||F(G(x)) - x||_1
        cycle_y = (self.generator_xy(fake_x) - y).abs().mean()  # ||G(F(y)) - y||_1
        total = adversarial_y + adversarial_x + c.cycle_weight * (cycle_x + cycle_y)
        scalars = {"g_adversarial_y": adversarial_y.item(), "g_adversarial_x": adversarial_x.item(),
                   "cycle_x": cycle_x.item(), "cycle_y": cycle_y.item()}
        if c.identity_weight:
            identity = (self.generator_xy(y) - y).abs().mean() + (self.generator_yx(x) - x).abs().mean()
            total = total + c.identity_weight * c.cycle_weight * identity
            scalars["identity"] = identity.item()
        scalars["g_loss"] = total.item()
        return total, scalars, (fake_y, fake_x)

    def discriminator_loss(self, x, y, fake_x, fake_y):
        """(D_Y loss, D_X loss): 1/2 [E (D(real) - 1)^2 + E D(fake)^2] each."""
        loss_y = least_squares_discriminator_loss(self.discriminator_y(y), self.discriminator_y(fake_y), a=0.0, b=1.0)
        loss_x = least_squares_discriminator_loss(self.discriminator_x(x), self.discriminator_x(fake_x), a=0.0, b=1.0)
        return loss_y, loss_x

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        source, target = split_pair(x)
        return self.generator_loss(source, target)[0]

    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        # one optimiser per player over both of its networks, as in the authors' code
        return {"generator": self._adam(torch.nn.ModuleList(self.generators), train),
                "discriminator": self._adam(torch.nn.ModuleList(self.discriminators), train)}

    def generator_step(self, x, y, optimizer, train: TrainConfig):
        """One update of G and F; returns the scalars and (G(x), F(y)), detached."""
        self._frozen(self.discriminators, True)
        try:
            loss, scalars, (fake_y, fake_x) = self.generator_loss(x, y)
            self._update(loss, optimizer, self.generators, train)
        finally:
            self._frozen(self.discriminators, False)
        return scalars, (fake_y.detach(), fake_x.detach())

    def discriminator_step(self, x, y, fake_y, fake_x, optimizer, train: TrainConfig) -> dict[str, float]:
        loss_y, loss_x = self.discriminator_loss(x, y, self.pool_x.query(fake_x), self.pool_y.query(fake_y))
        self._update(loss_y + loss_x, optimizer, self.discriminators, train)
        return {"d_loss_y": loss_y.item(), "d_loss_x": loss_x.item()}

    def training_step(self, x, optimizers, train, y=None) -> dict[str, float]:
        source, target = split_pair(x)
        scalars, (fake_y, fake_x) = self.generator_step(source, target, optimizers["generator"], train)
        scalars.update(self.discriminator_step(source, target, fake_y, fake_x, optimizers["discriminator"], train))
        return scalars

    # --- quick suite --------------------------------------------------------------------
    @classmethod
    def quick_dataset(cls) -> str:
        return "digits_translation/invert_unaligned"

    @classmethod
    def quick_config(cls, info) -> dict:
        # U-Net translators: the ResNet reference (base 8-16, 1-2 blocks) stayed at test MAE
        # ~0.25 on digits inversion in 8 epochs (outputting near-all-ones scores 0.32), the
        # U-Net reached 0.10 (1 thread, shared machine, seed 0)
        return {"generator": "unet", "base_channels": 16, "d_base_channels": 8}

    @classmethod
    def quick_train(cls, info) -> dict:
        return {"epochs": 8, "batch_size": 32, "lr": 2e-3}
