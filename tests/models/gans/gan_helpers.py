"""Shared helpers for the GAN tests: exact expectations over discrete distributions, and a
tiny continuous vector 'dataset' info."""
from __future__ import annotations

import torch

from dgmbench.data.base import DataInfo


def vector_info(dim: int) -> DataInfo:
    return DataInfo(name="tiny", variant="test", shape=(dim,), value_type="continuous")


def tiny(name="gan", **options):
    """A seeded adversarial model with 8-unit networks on 2-D vectors (maxout with 2 pieces and
    no dropout for the plain GAN); options override."""
    from dgmbench.models import build_model

    torch.manual_seed(0)
    defaults = dict(latent=3, g_hidden=(8,), d_hidden=(8,))
    if name == "gan":
        defaults.update(maxout_pieces=2, dropout=0.0, input_dropout=0.0)
    return build_model(name, vector_info(2), **{**defaults, **options})


def as_batch(values: torch.Tensor, counts: list[int]) -> torch.Tensor:
    """Each value repeated by its count: the batch mean of any f is then exactly
    E f under the distribution counts / sum(counts)."""
    return values.repeat_interleave(torch.tensor(counts))


# two distributions on five points, probabilities in twentieths (exact batch means)
SUPPORT = torch.tensor([-2.0, -0.5, 0.0, 1.0, 3.0], dtype=torch.float64)
P_COUNTS = [8, 5, 4, 2, 1]  # "data"
Q_COUNTS = [1, 3, 4, 5, 7]  # "generator"
P = torch.tensor(P_COUNTS, dtype=torch.float64) / 20
Q = torch.tensor(Q_COUNTS, dtype=torch.float64) / 20
