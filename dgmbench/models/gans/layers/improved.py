"""Improved techniques for training GANs (Salimans et al. 2016) that need their own layers:
minibatch discrimination (Sec. 3.2), historical averaging (Sec. 3.3) and virtual batch
normalisation (Sec. 3.5). Feature matching (Sec. 3.1) and one-sided label smoothing
(Sec. 3.4) are loss options of :class:`..adversarial.AdversarialModel`.
"""
from __future__ import annotations

import torch
from torch import nn


class MinibatchDiscrimination(nn.Module):
    """Sec. 3.2: side information on how close each example is to the rest of its batch.

    f(x_i) in R^A is multiplied by a tensor T in R^{A x B x C} to M_i in R^{B x C};
    c_b(x_i, x_j) = exp(-||M_{i,b} - M_{j,b}||_1) and o(x_i)_b = sum_j c_b(x_i, x_j) over
    the batch (j = i included, as in the paper's sum). Output: [f(x_i), o(x_i)], A + B
    features, so the discriminator can tell a batch of near-identical samples (a
    collapsed generator) from a diverse one."""

    def __init__(self, in_features: int, kernels: int, kernel_dim: int):
        super().__init__()
        self.kernels, self.kernel_dim = kernels, kernel_dim
        self.T = nn.Parameter(torch.randn(in_features, kernels * kernel_dim) * 0.05)

    @property
    def out_features(self) -> int:
        return self.T.shape[0] + self.kernels

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        m = (f @ self.T).view(-1, self.kernels, self.kernel_dim)  # (N, B, C)
        l1 = (m[:, None] - m[None, :]).abs().sum(-1)  # (N, N, B)
        return torch.cat([f, torch.exp(-l1).sum(1)], dim=1)


class VirtualBatchNorm(nn.Module):
    """Sec. 3.5: each example is normalised with the statistics of a reference batch fixed
    at the start of training together with the example itself, never with the rest of its
    batch, so one example's output does not depend on the others.

    The generator puts the reference batch's activations in the first ``reference_size``
    rows of every input. Per channel (and, for images, over the spatial positions too):
    the reference rows are normalised with the reference statistics (mu_ref, s_ref of the
    second moment); example x with mu = w mean(x) + (1 - w) mu_ref,
    var = w mean(x^2) + (1 - w) s_ref - mu^2, w = 1 / (reference_size + 1) (the paper's
    "statistics of the reference batch and of x itself"; as the authors' code)."""

    def __init__(self, channels: int, reference_size: int, eps: float = 1e-5):
        super().__init__()
        self.reference_size, self.eps = reference_size, eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        r = self.reference_size
        if len(h) < r:
            raise ValueError(f"VirtualBatchNorm expects the {r} reference rows first, got {len(h)} rows")
        spatial = tuple(range(2, h.dim()))  # () for vectors, (2, 3) for images
        shape = (1, -1) + (1,) * len(spatial)
        ref = h[:r]
        ref_mean = ref.mean(dim=(0, *spatial))
        ref_square = ref.pow(2).mean(dim=(0, *spatial))
        x = h[r:]
        w = 1.0 / (r + 1)
        x_mean = x.mean(dim=spatial) if spatial else x
        x_square = x.pow(2).mean(dim=spatial) if spatial else x.pow(2)
        mean = w * x_mean + (1 - w) * ref_mean
        var = (w * x_square + (1 - w) * ref_square - mean.pow(2)).clamp_min(0)
        expand = (-1, x.shape[1]) + (1,) * len(spatial)
        x_hat = (x - mean.view(expand)) / (var.view(expand) + self.eps).sqrt()
        ref_var = (ref_square - ref_mean.pow(2)).clamp_min(0)
        ref_hat = (ref - ref_mean.view(shape)) / (ref_var.view(shape) + self.eps).sqrt()
        out = torch.cat([ref_hat, x_hat])
        return out * self.weight.view(shape) + self.bias.view(shape)


class HistoricalAverage(nn.Module):
    """Sec. 3.3: the penalty ||theta - (1/t) sum_{i<=t} theta[i]||^2 pulling a player's
    parameters towards the running mean of their past values (a fictitious-play-like
    damping of oscillations). ``update()`` after every step of the player; the running
    means are buffers, so they are checkpointed with the model."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self._params = [p for p in module.parameters()]
        for i, p in enumerate(self._params):
            self.register_buffer(f"mean_{i}", p.detach().clone())
        self.register_buffer("count", torch.ones((), dtype=torch.long))

    def _means(self) -> list[torch.Tensor]:
        return [getattr(self, f"mean_{i}") for i in range(len(self._params))]

    def penalty(self) -> torch.Tensor:
        return sum((p - m).pow(2).sum() for p, m in zip(self._params, self._means()))

    @torch.no_grad()
    def update(self) -> None:
        self.count += 1
        for p, m in zip(self._params, self._means()):
            m.add_((p - m) / self.count)
