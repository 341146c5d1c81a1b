"""Deep convolutional GAN (Radford, Metz & Chintala 2016): the GAN game of Goodfellow et al.
2014 (eq. 1, non-saturating generator loss) with convolutional networks that follow the
paper's "architecture guidelines for stable deep convolutional GANs" (Sec. 3):

* no pooling: strided convolutions in the discriminator, fractionally-strided
  (transposed) convolutions in the generator;
* batch normalisation in both networks, except the generator's output layer and the
  discriminator's input layer;
* no fully connected hidden layers: the 100-D uniform z is projected and reshaped to the
  smallest feature map, the discriminator's last map is flattened into one logit;
* ReLU in the generator with tanh at the output; LeakyReLU (slope 0.2) in the
  discriminator.

Training details (Sec. 4): weights from N(0, 0.02), Adam with learning rate 2e-4 and
beta1 = 0.5, minibatch 128, images scaled to [-1, 1]. For 64x64 LSUN the generator is
4x4x1024 -> 8x8x512 -> 16x16x256 -> 32x32x128 -> 64x64x3 (Fig. 1): base_channels = 128
reproduces it; 32x32 images get 4x4x512 -> ... -> 32x32, 28x28 ones 7x7x256 -> 14x14x128
-> 28x28, and the 8x8 digits 4x4 -> 8x8 (see gans/layers/networks.py).
"""
from __future__ import annotations

from dataclasses import dataclass

from dgmbench.models.base import register_model
from dgmbench.models.gans.gan import CrossEntropyGAN
from dgmbench.models.gans.layers.adversarial import AdversarialConfig


@dataclass
class DCGANConfig(AdversarialConfig):
    latent: int = 100
    prior: str = "uniform"
    architecture: str = "dcgan"
    base_channels: int = 128
    generator_norm: str = "batch"
    critic_norm: str = "batch"
    optimizer: str = "adam"
    betas: tuple[float, float] = (0.5, 0.999)
    generator_loss: str = "non_saturating"  # or "minimax"


@register_model("dcgan")
class DCGAN(CrossEntropyGAN):
    Config = DCGANConfig
    citation = (
        "Radford, Metz & Chintala (2016), Unsupervised Representation Learning with Deep "
        "Convolutional Generative Adversarial Networks, ICLR"
    )
    train_defaults = {"patience": None, "lr": 2e-4, "batch_size": 128}

    def __init__(self, config, info):
        if not info.is_image:
            raise ValueError(f"DCGAN models images; {info.board} has shape {info.shape}: use the model 'gan'")
        super().__init__(config, info)

    @classmethod
    def quick_config(cls, info):
        return {"latent": 16, "base_channels": 32}

    @classmethod
    def quick_train(cls, info):
        return {"epochs": 20, "batch_size": 64, "lr": 2e-4}
