"""Generator and discriminator networks shared by the adversarial models.

* MLP (Goodfellow et al. 2014): ReLU generator; discriminator of maxout units (Goodfellow
  et al. 2013) or LeakyReLU(0.2) layers, with dropout.
* DCGAN (Radford et al. 2016, "architecture guidelines for stable deep convolutional
  GANs"): no pooling, strided convolutions in the discriminator and fractionally-strided
  (transposed) ones in the generator; batch norm in both except the generator's output and
  the discriminator's input layer; ReLU in the generator with a tanh output; LeakyReLU(0.2)
  in the discriminator; no fully connected hidden layers (the first generator layer is the
  "project and reshape" matrix multiply; the discriminator's last is flattened into one
  output). Weights from N(0, 0.02). Sizes: the generator starts at s0 x s0 with
  s0 = H / 2^k, k the most halvings that keep s0 >= 4 (32 -> 4, 28 -> 7, 8 -> 4), and
  doubles k times; channels base * 2^(k-1) ... base (the discriminator mirrors it).

Images are in [0, 1] outside the networks: the generator maps tanh to (t + 1) / 2 and the
discriminator sees 2x - 1, the [-1, 1] range of the DCGAN paper. Vectors (toy 2-D data)
are unbounded: linear output, no rescaling. The authors' pylearn2 MLP GAN used a sigmoid
output and fed [0, 1] images to the discriminator: ``output="sigmoid"`` and
``centred=False`` (the same functions up to an affine change of parameters, but not the
same SGD dynamics).

Every discriminator is a :class:`Critic`: ``features(x)`` (the last hidden layer, used by
feature matching), an optional minibatch-discrimination layer, and a linear ``head`` to
one score per example.
"""
from __future__ import annotations

import torch
from torch import nn

from dgmbench.data.base import DataInfo
from dgmbench.models.gans.layers.improved import MinibatchDiscrimination, VirtualBatchNorm

NORMS = ("batch", "layer", "virtual_batch", "none")


def check_norm(kind: str, allowed: tuple[str, ...] = NORMS) -> str:
    if kind not in allowed:
        raise ValueError(f"normalisation {kind!r} is not one of {', '.join(allowed)}")
    return kind


def norm_layer(kind: str, channels: int, image: bool, reference_size: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels) if image else nn.BatchNorm1d(channels)
    if kind == "layer":  # over all of an example's features (C, H, W): LayerNorm for maps
        return nn.GroupNorm(1, channels)
    if kind == "virtual_batch":
        return VirtualBatchNorm(channels, reference_size)
    return nn.Identity()


class Maxout(nn.Module):
    """max over `pieces` linear units (Goodfellow et al. 2013)."""

    def __init__(self, in_features: int, out_features: int, pieces: int):
        super().__init__()
        self.out_features, self.pieces = out_features, pieces
        self.linear = nn.Linear(in_features, out_features * pieces)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(x).view(-1, self.out_features, self.pieces).amax(-1)


def dcgan_levels(shape: tuple[int, ...]) -> tuple[int, int]:
    """(k, s0): the number of stride-2 layers and the smallest feature-map side."""
    _, height, width = shape
    if height != width:
        raise ValueError(f"the DCGAN networks need square images, got {height}x{width}")
    k = 0
    while height % 2 ** (k + 1) == 0 and height // 2 ** (k + 1) >= 4:
        k += 1
    if k == 0:
        raise ValueError(f"the DCGAN networks need images of side 8 or more divisible by 2, got {height}")
    return k, height // 2**k


GENERATOR_OUTPUTS = ("tanh", "sigmoid")


def uniform_init_(module: nn.Module, init_range: float) -> None:
    """Every linear and convolution weight ~ U(-r, r), biases 0 (pylearn2's ``irange``)."""
    for layer in module.modules():
        if isinstance(layer, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.uniform_(layer.weight, -init_range, init_range)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


class Generator(nn.Module):
    """z -> x in data space. With virtual batch norm, the fixed reference latents are run
    in front of every batch (their rows are dropped from the output). Images: output
    (tanh(a) + 1) / 2 = sigmoid(2a) by default, or sigmoid(a) (``output="sigmoid"``)."""

    def __init__(self, body: nn.Module, info: DataInfo, reference_z: torch.Tensor | None, output: str = "tanh"):
        super().__init__()
        if output not in GENERATOR_OUTPUTS:
            raise ValueError(f"generator output {output!r} is not one of {', '.join(GENERATOR_OUTPUTS)}")
        self.body, self.image, self.shape, self.output = body, info.is_image, info.shape, output
        if reference_z is not None:
            self.register_buffer("reference_z", reference_z)
        else:
            self.reference_z = None

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if self.reference_z is not None:
            r = len(self.reference_z)
            out = self.body(torch.cat([self.reference_z.to(z.dtype), z]))[r:]
        else:
            out = self.body(z)
        out = out.view(len(z), *self.shape)
        if not self.image:
            return out
        return torch.sigmoid(out) if self.output == "sigmoid" else (torch.tanh(out) + 1) / 2

    def output_preactivation(self, mean: torch.Tensor) -> torch.Tensor:
        """The pre-activation a whose output is `mean` (in (0, 1)): the inverse of forward's last step."""
        logit = torch.logit(mean)
        return logit if self.output == "sigmoid" else logit / 2


class Critic(nn.Module):
    """x -> one score per example (a logit for GAN losses, a value for WGAN/LSGAN)."""

    def __init__(
        self, body: nn.Module, feature_dim: int, image: bool, minibatch_kernels: int = 0,
        minibatch_kernel_dim: int = 5, centred: bool = True,
    ):
        super().__init__()
        self.body, self.image, self.centred = body, image, centred
        self.minibatch = (
            MinibatchDiscrimination(feature_dim, minibatch_kernels, minibatch_kernel_dim) if minibatch_kernels else None
        )
        self.head = nn.Linear(self.minibatch.out_features if self.minibatch else feature_dim, 1)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(2 * x - 1 if self.image and self.centred else x).flatten(1)

    def score(self, features: torch.Tensor) -> torch.Tensor:
        if self.minibatch is not None:
            features = self.minibatch(features)
        return self.head(features).squeeze(-1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.score(self.features(x))


def mlp_generator(
    info: DataInfo, latent: int, hidden: tuple[int, ...], norm: str, reference_z, output: str = "tanh"
) -> Generator:
    layers: list[nn.Module] = []
    width = latent
    for h in hidden:
        layers += [nn.Linear(width, h), norm_layer(norm, h, False, len(reference_z) if reference_z is not None else 0), nn.ReLU()]
        width = h
    layers.append(nn.Linear(width, info.dim))
    return Generator(nn.Sequential(*layers), info, reference_z, output)


def mlp_critic(
    info: DataInfo, hidden: tuple[int, ...], maxout_pieces: int, dropout: float, input_dropout: float,
    minibatch_kernels: int = 0, minibatch_kernel_dim: int = 5, centred: bool = True,
) -> Critic:
    layers: list[nn.Module] = [nn.Flatten(), nn.Dropout(input_dropout)]
    width = info.dim
    for h in hidden:
        layers += [Maxout(width, h, maxout_pieces) if maxout_pieces > 1 else nn.Sequential(nn.Linear(width, h), nn.LeakyReLU(0.2))]
        layers.append(nn.Dropout(dropout))
        width = h
    return Critic(nn.Sequential(*layers), width, info.is_image, minibatch_kernels, minibatch_kernel_dim, centred)


def dcgan_generator(info: DataInfo, latent: int, base_channels: int, norm: str, reference_z) -> Generator:
    k, s0 = dcgan_levels(info.shape)
    r = len(reference_z) if reference_z is not None else 0
    channels = [base_channels * 2 ** (k - 1 - i) for i in range(k)] + [info.shape[0]]
    layers: list[nn.Module] = [  # "project and reshape"
        nn.Linear(latent, channels[0] * s0 * s0),
        nn.Unflatten(1, (channels[0], s0, s0)),
        norm_layer(norm, channels[0], True, r),
        nn.ReLU(),
    ]
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
        layers.append(nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1))
        if i < k - 1:  # no normalisation on the output layer
            layers += [norm_layer(norm, c_out, True, r), nn.ReLU()]
    return Generator(nn.Sequential(*layers), info, reference_z)


def dcgan_critic(
    info: DataInfo, base_channels: int, norm: str, minibatch_kernels: int = 0, minibatch_kernel_dim: int = 5
) -> Critic:
    k, s0 = dcgan_levels(info.shape)
    channels = [info.shape[0]] + [base_channels * 2**i for i in range(k)]
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
        layers.append(nn.Conv2d(c_in, c_out, 4, stride=2, padding=1))
        if i > 0:  # no normalisation on the input layer
            layers.append(norm_layer(norm, c_out, True, 0))
        layers.append(nn.LeakyReLU(0.2))
    return Critic(nn.Sequential(*layers), channels[-1] * s0 * s0, True, minibatch_kernels, minibatch_kernel_dim)


def dcgan_init(module: nn.Module) -> None:
    """Radford et al. 2016, Sec. 4: all weights from N(0, 0.02); norm gains N(1, 0.02)."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d, nn.GroupNorm, VirtualBatchNorm)):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)


def reference_latents(size: int, latent: int, prior: str, seed: int = 12345) -> torch.Tensor:
    """The fixed reference batch of virtual batch norm, drawn once from the prior."""
    g = torch.Generator().manual_seed(seed)
    if prior == "uniform":
        return torch.rand(size, latent, generator=g) * 2 - 1
    return torch.randn(size, latent, generator=g)



class AutoencoderCritic(nn.Module):
    """An autoencoder as the discriminator (EBGAN, BEGAN): the score of x is its per-example
    reconstruction energy, the mean over its dimensions of |Dec(Enc(x)) - x|^p (p = 2 for
    EBGAN's squared error, 1 for BEGAN's L1), on the critic's input scale ([-1, 1] for
    images). ``features(x)`` is the code Enc(x)."""

    def __init__(self, encoder: nn.Module, encoder_dim: int, code: int, decoder: nn.Module, info: DataInfo, power: int):
        super().__init__()
        self.encoder, self.decoder, self.image, self.power = encoder, decoder, info.is_image, power
        self.to_code = nn.Linear(encoder_dim, code)

    def _scaled(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x - 1 if self.image else x

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.to_code(self.encoder(self._scaled(x)).flatten(1))

    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Dec(Enc(x)) on the critic's input scale."""
        return self.decoder(self.features(x)).view(x.shape)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        error = (self.reconstruct(x) - self._scaled(x)).abs().pow(self.power)
        return error.flatten(1).mean(1)


def autoencoder_critic(info: DataInfo, architecture: str, code: int, base_channels: int, hidden: tuple[int, ...],
                       norm: str, power: int) -> AutoencoderCritic:
    """DCGAN-style convolutional encoder/decoder for images, an MLP pair for vectors."""
    if architecture == "dcgan":
        k, s0 = dcgan_levels(info.shape)
        encoder = dcgan_critic(info, base_channels, norm).body
        decoder = dcgan_generator(info, code, base_channels, norm, None).body
        encoder_dim = base_channels * 2 ** (k - 1) * s0 * s0
    else:
        encoder = mlp_critic(info, hidden, 0, 0.0, 0.0).body
        decoder = mlp_generator(info, code, tuple(reversed(hidden)), "none", None).body
        encoder_dim = hidden[-1] if hidden else info.dim
    return AutoencoderCritic(encoder, encoder_dim, code, decoder, info, power)
