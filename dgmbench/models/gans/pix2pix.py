"""pix2pix: image-to-image translation with conditional adversarial networks (Isola, Zhu,
Zhou & Efros 2017), trained on aligned pairs (x, y).

The conditional GAN objective (eq. 1) and its unconditional variant (eq. 2):

    L_cGAN(G, D) = E_{x,y} log D(x, y) + E_{x,z} log(1 - D(x, G(x, z)))           (eq. 1)
    L_GAN(G, D)  = E_y log D(y) + E_{x,z} log(1 - D(G(x, z)))                       (eq. 2)

an L1 term that ties the output to the ground truth (eq. 3) and the full objective (eq. 4):

    L_L1(G) = E_{x,y,z} ||y - G(x, z)||_1                                            (eq. 3)
    G* = arg min_G max_D L_cGAN(G, D) + lambda L_L1(G),   lambda = 100               (eq. 4)

As in the paper (Sec. 3.3): the generator maximises log D(x, G(x, z)) (non-saturating)
instead of minimising log(1 - D(x, G(x, z))); the discriminator's objective is divided by
2; D is a PatchGAN scoring every overlapping patch, its loss the mean over patches; one D
step then one G step per minibatch (D first, G on the same G(x) under the updated D). The
noise z is dropout, on at training and test time (Sec. 3.1), so ``translate`` is
stochastic unless ``test_dropout`` is off. ||.||_1 is averaged over pixels (authors' code).
At test time batch norm uses its running statistics (the paper normalises with the test
batch's own statistics, which at batch size 1 is instance norm: ``-o norm=instance``).

Reference configuration (Sec. 6.1 and 3.3): U-Net generator, encoder C64-C128-C256-C512-
C512-C512-C512-C512 (depth 8 for 256x256 images) with a mirrored decoder, dropout 0.5 in
its first three layers, skip connections; 70x70 PatchGAN C64-C128-C256-C512 (d_layers =
3 stride-2 layers); batch norm; weights N(0, 0.02); Adam lr 2e-4, beta1 0.5; batch 1.
Smaller images get the most halvings they allow (8x8 digits: depth 3; 28x28: depth 2)
and the most PatchGAN layers that leave at least one patch (8x8: 1 layer, 2x2 patches).

Data: a translation dataset of :mod:`dgmbench.data.translation` with aligned training
pairs (``<transform>_aligned``); ``sample(n)`` returns pairs (x, G(x)) for held-out source
images (see gans/layers/translation.py), and the metric ``translation`` scores G(x)
against the true T(x) on the test split.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from dgmbench.data.translation import split_pair, task_of
from dgmbench.models.base import TrainConfig, register_model
from dgmbench.models.gans.layers.losses import gan_discriminator_loss, gan_generator_loss
from dgmbench.models.gans.layers.networks import dcgan_init
from dgmbench.models.gans.layers.translation import (
    PatchDiscriminator,
    TranslationModel,
    UNetGenerator,
    halvings,
    patch_layers,
    translation_norm,
)

GENERATORS = ("unet", "encoder_decoder")


@dataclass
class Pix2PixConfig:
    generator: str = "unet"  # "encoder_decoder": the U-Net without skip connections (paper's ablation)
    base_channels: int = 64  # generator: channels of the first encoder layer
    depth: int = 8  # encoder layers, at most the image's exact halvings
    dropout: float = 0.5
    dropout_layers: int = 3  # decoder layers (from the innermost) with dropout
    test_dropout: bool = True  # dropout is the noise z: on at test time too (Sec. 3.1)
    d_base_channels: int = 64
    d_layers: int = 3  # stride-2 PatchGAN layers: 3 = the 70x70 PatchGAN
    conditional: bool = True  # D sees (x, y) (eq. 1); False: D sees y only (eq. 2)
    norm: str = "batch"  # batch | instance | none
    l1_weight: float = 100.0  # lambda of eq. 4
    betas: tuple[float, float] = (0.5, 0.999)


@register_model("pix2pix")
class Pix2Pix(TranslationModel):
    Config = Pix2PixConfig
    citation = "Isola, Zhu, Zhou & Efros (2017), Image-to-Image Translation with Conditional Adversarial Networks, CVPR"
    train_defaults = {"patience": None, "lr": 2e-4, "batch_size": 1}

    def __init__(self, config: Pix2PixConfig, info):
        super().__init__(config, info)
        c = config
        if c.generator not in GENERATORS:
            raise ValueError(f"generator {c.generator!r} is not one of {', '.join(GENERATORS)}")
        translation_norm(c.norm, 1)  # rejects an unknown norm with the valid ones
        _, pairing = task_of(info)
        if pairing != "aligned":
            raise ValueError(f"pix2pix learns from aligned pairs; {info.board} is unaligned: use the variant "
                             f"{info.variant.replace('unaligned', 'aligned')} (or the model cyclegan)")
        channels, height, width = self.image_shape
        side = min(height, width)
        self.depth = halvings(side, c.depth)
        if self.depth == 0:
            raise ValueError(f"the U-Net needs an even image side, got {height}x{width}")
        self.d_layers = patch_layers(side, c.d_layers)
        self.generator = UNetGenerator(channels, self.depth, c.base_channels, c.norm, c.dropout, c.dropout_layers,
                                       c.test_dropout, skip_connections=c.generator == "unet")
        self.discriminator = PatchDiscriminator(channels * (2 if c.conditional else 1), c.d_base_channels,
                                                self.d_layers, c.norm)
        dcgan_init(self)

    def translate(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator(x)

    def critic(self, source: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """Patch logits of D(x, y) (eq. 1) or D(y) (eq. 2)."""
        return self.discriminator(torch.cat([source, image], dim=1) if self.config.conditional else image)

    def discriminator_loss(self, source, target, fake) -> torch.Tensor:
        """-L_cGAN / 2: cross-entropy of real pairs against 1 and generated ones against 0."""
        return gan_discriminator_loss(self.critic(source, target), self.critic(source, fake)) / 2

    def generator_loss(self, source, target, fake) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(total, adversarial, L1): -E log D(x, G(x)) + lambda E|y - G(x)|."""
        adversarial = gan_generator_loss(self.critic(source, fake))
        l1 = (target - fake).abs().mean()
        return adversarial + self.config.l1_weight * l1, adversarial, l1

    def loss(self, x: torch.Tensor) -> torch.Tensor:
        source, target = split_pair(x)
        return self.generator_loss(source, target, self.generator(source))[0]

    def configure_optimizers(self, train: TrainConfig) -> dict[str, torch.optim.Optimizer]:
        return {"discriminator": self._adam(self.discriminator, train), "generator": self._adam(self.generator, train)}

    def discriminator_step(self, source, target, fake, optimizer, train: TrainConfig) -> dict[str, float]:
        loss = self.discriminator_loss(source, target, fake.detach())
        self._update(loss, optimizer, [self.discriminator], train)
        return {"d_loss": loss.item()}

    def generator_step(self, source, target, fake, optimizer, train: TrainConfig) -> dict[str, float]:
        self._frozen([self.discriminator], True)  # the generator's step needs no D gradients
        try:
            loss, adversarial, l1 = self.generator_loss(source, target, fake)
            self._update(loss, optimizer, [self.generator], train)
        finally:
            self._frozen([self.discriminator], False)
        return {"g_loss": loss.item(), "g_adversarial": adversarial.item(), "l1": l1.item()}

    def training_step(self, x, optimizers, train, y=None) -> dict[str, float]:
        source, target = split_pair(x)
        fake = self.generator(source)
        scalars = self.discriminator_step(source, target, fake, optimizers["discriminator"], train)
        scalars.update(self.generator_step(source, target, fake, optimizers["generator"], train))
        return scalars

    # --- quick suite --------------------------------------------------------------------
    @classmethod
    def quick_dataset(cls) -> str:
        return "digits_translation/invert_aligned"

    @classmethod
    def quick_config(cls, info) -> dict:
        return {"base_channels": 8, "d_base_channels": 8}

    @classmethod
    def quick_train(cls, info) -> dict:
        return {"epochs": 4, "batch_size": 32, "lr": 5e-3}
