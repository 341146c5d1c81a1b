"""Networks and the model base shared by the image-to-image translation GANs (pix2pix,
Isola et al. 2017; CycleGAN, Zhu et al. 2017).

* :class:`UNetGenerator`: pix2pix's generator (Isola et al. 2017, Sec. 3.2.1 and 6.1.1): an
  encoder of 4x4 stride-2 convolutions C64-C128-C256-C512-C512-... (batch norm except the
  first and the innermost layer, LeakyReLU 0.2), a mirrored decoder of 4x4 stride-2
  transposed convolutions (ReLU, dropout 0.5 in the first three layers) and skip
  connections concatenating encoder layer i with decoder layer n - i. Without the skips it
  is the paper's "encoder-decoder" ablation.
* :class:`ResnetGenerator`: CycleGAN's generator (Zhu et al. 2017, Sec. 7.2, after Johnson
  et al. 2016): c7s1-64, d128, d256, R256 x blocks, u128, u64, c7s1-C, reflection padding.
* :class:`PatchDiscriminator`: the PatchGAN of both papers (Isola et al. Sec. 3.2.2; the
  70x70 one is C64-C128-C256-C512 then a 1-channel convolution): one logit per
  overlapping patch, no normalisation on the first layer, LeakyReLU 0.2.
* :class:`ImagePool`: CycleGAN's history of generated images for the discriminator
  updates (Sec. 4, after Shrivastava et al. 2017).

Images are in [0, 1] outside the networks and [-1, 1] inside (the papers' range): inputs
are mapped by 2x - 1 and outputs by (tanh + 1) / 2. All weights start from N(0, 0.02).

:class:`TranslationModel` fits a translator into the model protocol: its dataset is a
translation dataset of :mod:`dgmbench.data.translation` (pairs source | target side by
side), ``translate(x)`` maps source images to the target domain, and ``sample(n)``
returns n pairs (x, G(x)) for source images x drawn at random (with replacement) from the
held-out validation split, so the sample-based metrics score the joint of
(source, translation) against the test pairs (source, truth), never a training image.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from dgmbench.data.base import DataInfo, load_dataset
from dgmbench.data.translation import is_translation, join_pair, split_pair
from dgmbench.models.base import GenerativeModel, Implicit, TrainConfig

TRANSLATION_NORMS = ("batch", "instance", "none")


def translation_norm(kind: str, channels: int) -> nn.Module:
    if kind == "batch":
        return nn.BatchNorm2d(channels)
    if kind == "instance":  # CycleGAN: per image and channel, no affine parameters (authors' code)
        return nn.InstanceNorm2d(channels)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"norm {kind!r} is not one of {', '.join(TRANSLATION_NORMS)}")


class AlwaysOnDropout(nn.Dropout):
    """Dropout that stays on in evaluation mode: pix2pix's only noise z (Sec. 3.1: "we
    provide noise only in the form of dropout, applied on several layers of our generator
    at both training and test time")."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.dropout(x, self.p, training=True)


def halvings(side: int, limit: int) -> int:
    """How many times `side` halves exactly (at most `limit`): 8 -> 3, 28 -> 2, 256 -> 8."""
    k = 0
    while k < limit and side % 2 ** (k + 1) == 0:
        k += 1
    return k


class UNetGenerator(nn.Module):
    def __init__(self, channels: int, depth: int, base: int, norm: str, dropout: float, dropout_layers: int,
                 test_dropout: bool, skip_connections: bool = True):
        super().__init__()
        if depth < 1:
            raise ValueError(f"the U-Net needs depth >= 1, got {depth}")
        self.skip_connections = skip_connections
        widths = [base * 2 ** min(i, 3) for i in range(depth)]  # C64-C128-C256-C512-C512-...
        self.down = nn.ModuleList()
        c_in = channels
        for i, width in enumerate(widths):
            layers = [nn.LeakyReLU(0.2)] if i > 0 else []  # the raw image enters the first conv
            layers.append(nn.Conv2d(c_in, width, 4, stride=2, padding=1))
            if 0 < i < depth - 1:  # no norm on the first (paper) nor the 1x1 innermost layer
                layers.append(translation_norm(norm, width))
            self.down.append(nn.Sequential(*layers))
            c_in = width
        self.up = nn.ModuleList()
        drop = AlwaysOnDropout if test_dropout else nn.Dropout
        for j in range(depth):  # j = 0 is the innermost decoder layer; it mirrors encoder layer i
            i = depth - 1 - j
            c_in = widths[i] * (2 if j > 0 and skip_connections else 1)
            c_out = widths[i - 1] if i > 0 else channels
            layers = [nn.ReLU(), nn.ConvTranspose2d(c_in, c_out, 4, stride=2, padding=1)]
            if i > 0:
                layers.append(translation_norm(norm, c_out))
                if j < dropout_layers and dropout > 0:
                    layers.append(drop(dropout))
            self.up.append(nn.Sequential(*layers))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, skips = 2 * x - 1, []
        for layer in self.down:
            h = layer(h)
            skips.append(h)
        h = self.up[0](h)
        for j, layer in enumerate(self.up[1:], start=1):
            h = layer(torch.cat([h, skips[-1 - j]], dim=1) if self.skip_connections else h)
        return (torch.tanh(h) + 1) / 2


class ResidualBlock(nn.Module):
    def __init__(self, channels: int, norm: str):
        super().__init__()
        self.body = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), translation_norm(norm, channels), nn.ReLU(),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), translation_norm(norm, channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class ResnetGenerator(nn.Module):
    def __init__(self, channels: int, base: int, blocks: int, norm: str, downsamplings: int = 2):
        super().__init__()
        layers: list[nn.Module] = [  # c7s1-64
            nn.ReflectionPad2d(3), nn.Conv2d(channels, base, 7), translation_norm(norm, base), nn.ReLU(),
        ]
        width = base
        for _ in range(downsamplings):  # d128, d256
            layers += [nn.Conv2d(width, 2 * width, 3, stride=2, padding=1), translation_norm(norm, 2 * width), nn.ReLU()]
            width *= 2
        layers += [ResidualBlock(width, norm) for _ in range(blocks)]  # R256 x blocks
        for _ in range(downsamplings):  # u128, u64: fractionally strided, stride 1/2
            layers += [nn.ConvTranspose2d(width, width // 2, 3, stride=2, padding=1, output_padding=1),
                       translation_norm(norm, width // 2), nn.ReLU()]
            width //= 2
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(width, channels, 7)]  # c7s1-C, tanh below
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (torch.tanh(self.body(2 * x - 1)) + 1) / 2


def patch_layers(side: int, limit: int) -> int:
    """Stride-2 layers of the PatchGAN (at most `limit`) that leave a map of at least 1x1:
    the output side is floor(side / 2^L) - 2 (two 4x4 stride-1 convolutions follow)."""
    k = limit
    while k > 0 and side // 2**k - 2 < 1:
        k -= 1
    if k == 0:
        raise ValueError(f"images of side {side} are too small for a PatchGAN (need side >= 6)")
    return k


class PatchDiscriminator(nn.Module):
    """x (N, C, H, W) in [0, 1] -> one logit per patch (N, 1, h, w)."""

    def __init__(self, channels: int, base: int, layers: int, norm: str):
        super().__init__()
        seq: list[nn.Module] = [nn.Conv2d(channels, base, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
        width = base
        for i in range(1, layers):
            out = base * 2 ** min(i, 3)
            seq += [nn.Conv2d(width, out, 4, stride=2, padding=1), translation_norm(norm, out), nn.LeakyReLU(0.2)]
            width = out
        out = base * 2 ** min(layers, 3)
        seq += [nn.Conv2d(width, out, 4, stride=1, padding=1), translation_norm(norm, out), nn.LeakyReLU(0.2),
                nn.Conv2d(out, 1, 4, stride=1, padding=1)]
        self.body = nn.Sequential(*seq)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(2 * x - 1)


class ImagePool(nn.Module):
    """The last `size` generated images (Zhu et al. 2017, Sec. 4): while the pool fills, new
    images are stored and returned; once full, each new image is, with probability 1/2,
    returned as is, or else swapped for a uniformly chosen stored one (returned), taking its
    place. The swap is vectorised over the batch: two images of one batch choosing the same
    slot both get its old image and the later one is stored (the authors' code loops over
    the batch instead). The pool is a buffer, so a resumed run continues with it."""

    def __init__(self, size: int, shape: tuple[int, ...]):
        super().__init__()
        self.size = size
        self.register_buffer("images", torch.zeros(size, *shape))
        self.register_buffer("count", torch.zeros((), dtype=torch.long))

    @torch.no_grad()
    def query(self, images: torch.Tensor) -> torch.Tensor:
        if self.size == 0:
            return images
        images = images.detach()
        free = min(self.size - int(self.count), len(images))
        if free > 0:  # filling: store and return as they are
            self.images[int(self.count): int(self.count) + free] = images[:free]
            self.count += free
        rest = images[free:]
        if len(rest) == 0:
            return images
        swap = torch.rand(len(rest), device=images.device) < 0.5
        slots = torch.randint(self.size, (len(rest),), device=images.device)
        out = torch.where(swap.view(-1, *[1] * (rest.dim() - 1)), self.images[slots], rest)
        self.images[slots[swap]] = rest[swap]
        return torch.cat([images[:free], out])


class TranslationModel(GenerativeModel, Implicit):
    """A translator G: source domain -> target domain, trained on a translation dataset."""

    family = "gans"
    value_types = ("binary", "continuous")

    def __init__(self, config, info: DataInfo):
        super().__init__(config, info)
        if not is_translation(info):
            raise ValueError(
                f"{type(self).__name__} translates images and needs a translation dataset "
                f"(e.g. {self.quick_dataset()}), got {info.board}"
            )
        channels, height, width = info.shape
        self.image_shape = (channels, height, width // 2)
        self._held_out: torch.Tensor | None = None

    def translate(self, x: torch.Tensor) -> torch.Tensor:
        """G(x): source images (N, C, H, W) -> target-domain images in [0, 1]."""
        raise NotImplementedError

    def held_out_sources(self) -> torch.Tensor:
        """The source images sample() translates: the validation split's left halves."""
        if self._held_out is None:
            self._held_out = split_pair(load_dataset(self.info.name, self.info.variant).split("valid"))[0]
        return self._held_out

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        sources = self.held_out_sources()
        x = sources[torch.randint(len(sources), (n,))].to(self.device)
        return join_pair(x, self.translate(x))

    def validation_score(self, x: torch.Tensor) -> float | None:
        return None  # as in the papers: a fixed number of epochs, keep the last checkpoint

    def _adam(self, module: nn.Module, train: TrainConfig) -> torch.optim.Optimizer:
        return torch.optim.Adam(module.parameters(), lr=train.lr, betas=tuple(self.config.betas),
                                weight_decay=train.weight_decay)

    @staticmethod
    def _update(loss: torch.Tensor, optimizer: torch.optim.Optimizer, modules: list[nn.Module], train: TrainConfig):
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if train.grad_clip is not None:
            nn.utils.clip_grad_norm_([p for m in modules for p in m.parameters()], train.grad_clip)
        optimizer.step()

    @staticmethod
    def _frozen(modules: list[nn.Module], frozen: bool) -> None:
        for module in modules:
            module.requires_grad_(not frozen)

    @classmethod
    def quick_variant(cls) -> str:
        return "binary"  # the digits variant the translation pairs are built from
