"""Dependency checks for autoregressive models, used by the tests (and handy when adding one).

``dependency_matrix`` asks autograd which inputs each output looks at: entry [i, j] is the
summed |d output_i / d input_j| over a batch of random inputs, so an exact zero means
"output i cannot see input j" (any structural leak shows up as a non-zero)."""

from __future__ import annotations

from collections.abc import Callable

import torch


def dependency_matrix(
    outputs_fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, outputs_per_position: int = 1
) -> torch.Tensor:
    """Which inputs each output position depends on.

    `outputs_fn` maps x (N, C, *spatial) to (N, C*K, *spatial) with the K outputs of image
    channel c in channels c*K .. c*K+K-1. Returns a (C*prod(spatial), C*prod(spatial)) matrix:
    rows are output positions and columns input positions, both in x.flatten(1) order."""
    x = x.detach().clone().requires_grad_(True)
    out = outputs_fn(x)
    n, channels_k = out.shape[:2]
    spatial = out.shape[2:]
    out = out.reshape(n, channels_k // outputs_per_position, outputs_per_position, *spatial)
    out = out.sum(2).reshape(n, -1)  # (N, C * spatial), channel-major like x.flatten(1)
    rows = []
    for i in range(out.shape[1]):
        (grad,) = torch.autograd.grad(out[:, i].sum(), x, retain_graph=True)
        rows.append(grad.abs().sum(0).flatten())
    return torch.stack(rows)


def raster_order_index(shape: tuple[int, ...]) -> torch.Tensor:
    """For each flattened (C, H, W) position, its rank in the autoregressive ordering:
    pixels in raster order, channels R < G < B within a pixel."""
    channels = shape[0]
    spatial = int(torch.tensor(shape[1:]).prod())
    c = torch.arange(channels)[:, None]
    p = torch.arange(spatial)[None, :]
    return (p * channels + c).flatten()


def enumerate_values(shape: tuple[int, ...], num_levels: int) -> torch.Tensor:
    """Every tensor of `shape` with entries in 0..num_levels-1: (num_levels**D, *shape) float."""
    dim = int(torch.tensor(shape).prod())
    codes = torch.arange(num_levels**dim)
    digits = torch.stack([(codes // num_levels**k) % num_levels for k in range(dim)], dim=1)
    return digits.float().view(-1, *shape)


def flat_index(x: torch.Tensor, num_levels: int) -> torch.Tensor:
    """Inverse of ``enumerate_values``: the row of each example of x (N, *shape)."""
    flat = x.flatten(1).long()
    weights = num_levels ** torch.arange(flat.shape[1], device=x.device)
    return (flat * weights).sum(1)


@torch.no_grad()
def perturbation_dependencies(
    outputs_fn: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    num_levels: int,
    outputs_per_position: int = 1,
) -> torch.Tensor:
    """Like ``dependency_matrix`` for models whose inputs are not differentiable (one-hot
    embeddings): entry [i, j] is the summed |change of output i| when input j is moved to
    each other level. Use float64 and compare with a small tolerance, since a convolution
    may reorder its arithmetic when an unrelated input changes."""

    def per_position(out):  # (N, C*K, *spatial) -> (N, C, K, prod(spatial))
        return out.reshape(out.shape[0], -1, outputs_per_position, out[0, 0].numel())

    reference = per_position(outputs_fn(x))
    flat = x.flatten(1)
    columns = []
    for j in range(flat.shape[1]):
        change = torch.zeros_like(reference[0, :, 0])
        for shift in range(1, num_levels):
            moved = flat.clone()
            moved[:, j] = (moved[:, j] + shift) % num_levels
            change += (per_position(outputs_fn(moved.view_as(x))) - reference).abs().sum((0, 2))
        columns.append(change.flatten())
    return torch.stack(columns, dim=1)


# A known distribution over the 16 binary 2x2 images, far from uniform, for "a trained model
# gets close to it, and its samples follow the model's own pmf" tests.
KNOWN_SHAPE = (1, 2, 2)
KNOWN_TARGET = torch.tensor([8, 1, 1, 1, 1, 4, 1, 1, 1, 1, 6, 1, 1, 1, 1, 8], dtype=torch.float64) / 36


def fit_known_distribution_and_sample(model, steps: int = 150, lr: float = 3e-2, n: int = 4000, seed: int = 123):
    """Fit `model` (on KNOWN_SHAPE binary images) to KNOWN_TARGET by exact maximum likelihood
    over all 16 images; return its enumerated pmf and the counts of n seeded samples per image."""
    images = enumerate_values(KNOWN_SHAPE, 2).double()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        (-(model.log_prob(images) * KNOWN_TARGET).sum()).backward()
        opt.step()
    with torch.no_grad():
        pmf = model.log_prob(images).exp()
    torch.manual_seed(seed)
    counts = torch.bincount(flat_index(model.sample(n), 2), minlength=len(images)).double()
    return pmf, counts
