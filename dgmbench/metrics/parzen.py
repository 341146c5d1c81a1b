"""Parzen-window log-likelihood of test data under a model's samples (Goodfellow et al.
2014, following Breuleux et al. 2011).

CAVEAT: this is a weak and biased estimate of log p(x). In high dimensions it is far
from the true log-likelihood even with millions of samples and it does not track sample
quality (Theis, van den Oord & Bethge 2016, "A note on the evaluation of generative
models"); a model that returns its training images is not penalised for it (see the
memorization metric). It is reported for comparison with the GAN-era literature only;
never read it as a likelihood.

With samples mu_1..mu_n in R^D and an isotropic Gaussian kernel of width sigma,

    log p_sigma(x) = logsumexp_j( -||x - mu_j||^2 / (2 sigma^2) ) - log n - D log(sigma sqrt(2 pi))

sigma is chosen from a log-spaced grid (np.logspace(-1, 0, 10), as in the GAN paper's
``parzen_ll.py``) by the mean log-density of a validation split, and the test value is
the mean over test examples with its standard error. Data are flattened and scaled to
[0, 1] for images, as in the paper's MNIST protocol.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from dgmbench.metrics.base import EvalContext, MetricValue, Setting, model_samples, register_metric
from dgmbench.metrics.prdc import (
    DEFAULT_MAX_BLOCK_ELEMENTS,
    pairwise_distance_blocks,
    unit_scale,
)

SIGMA_GRID = tuple(np.logspace(-1, 0, 10).tolist())  # Goodfellow et al. 2014, parzen_ll.py
CAVEAT = (
    "Parzen-window estimate: weak and biased, far from log p(x) in high dimensions, blind to "
    "copying of the training set (Theis et al. 2016); for comparison with older papers only"
)


@torch.no_grad()
def parzen_log_density(
    x: torch.Tensor,
    centres: torch.Tensor,
    sigmas,
    max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS,
) -> torch.Tensor:
    """log p_sigma(x) for every row of x (n, D) and every sigma: shape (n, len(sigmas)), float64."""
    x = x.reshape(len(x), -1).to(torch.float64)
    centres = centres.reshape(len(centres), -1).to(device=x.device, dtype=torch.float64)
    if x.shape[1] != centres.shape[1]:
        raise ValueError(f"x has dimension {x.shape[1]} but the kernel centres have {centres.shape[1]}")
    sigmas = torch.as_tensor(sigmas, dtype=torch.float64, device=x.device).reshape(-1)
    dim, n_centres = x.shape[1], len(centres)
    log_normaliser = math.log(n_centres) + dim * torch.log(sigmas * math.sqrt(2 * math.pi))
    # Distances are translation invariant; centring keeps ||x||^2 + ||mu||^2 - 2 x.mu accurate.
    shift = centres.mean(0)
    log_density = torch.empty(len(x), len(sigmas), dtype=torch.float64, device=x.device)
    inverse_two_variances = (0.5 / sigmas**2)[:, None, None]
    blocks = pairwise_distance_blocks(x - shift, centres - shift, max(1, max_block_elements // len(sigmas)))
    for start, stop, distances in blocks:  # all sigmas at once: (sigmas, rows, centres)
        log_kernels = -distances.square_()[None] * inverse_two_variances
        log_density[start:stop] = torch.logsumexp(log_kernels, dim=2).T
    return log_density - log_normaliser


@dataclass
class ParzenResult:
    mean: float  # mean test log-density, nats per example (higher is better)
    stderr: float  # standard error of that mean over test examples
    sigma: float  # kernel width chosen on the validation split
    validation_means: list[float]  # mean validation log-density for every sigma in the grid
    sigmas: list[float]


def parzen_window_ll(
    samples: torch.Tensor,
    valid: torch.Tensor,
    test: torch.Tensor,
    sigmas=SIGMA_GRID,
    max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS,
) -> ParzenResult:
    """Goodfellow et al.'s protocol: pick sigma on `valid`, report mean +- s.e. on `test`."""
    sigmas = [float(s) for s in sigmas]
    validation_means = parzen_log_density(valid, samples, sigmas, max_block_elements).mean(0)
    best = int(torch.argmax(validation_means))
    test_ll = parzen_log_density(test, samples, [sigmas[best]], max_block_elements)[:, 0]
    stderr = test_ll.std().item() / math.sqrt(len(test_ll)) if len(test_ll) > 1 else float("nan")
    return ParzenResult(
        mean=test_ll.mean().item(),
        stderr=stderr,
        sigma=sigmas[best],
        validation_means=validation_means.tolist(),
        sigmas=sigmas,
    )


class ParzenWindowLogLikelihood:
    """parzen_ll: mean Parzen-window log-density of the test split under model samples."""

    name = "parzen_ll"
    settings = {
        "parzen_examples": Setting(int, "test/valid examples scored (all; quick 1000)", minimum=1, optional=True),
        "parzen_samples": Setting(int, "model samples forming the kernel centres (10000; quick: as many as examples)",
                                  minimum=1),
        "parzen_sigmas": Setting(list[float], "bandwidth grid, chosen on the validation split", greater_than=0),
    }

    def applies(self, model, dataset) -> bool:
        return callable(getattr(model, "sample", None))

    def __call__(self, model, dataset, ctx: EvalContext) -> list[MetricValue]:
        info = dataset.info
        # Quick runs score (at most) the first 1000 examples against as many samples as
        # test examples (the same samples FID scores); full runs follow the paper: 10,000
        # samples, the whole validation and test splits.
        n_examples = ctx.setting("parzen_examples", 1000 if ctx.quick else None)
        test = unit_scale(dataset.split(ctx.split)[:n_examples], info)
        # sigma is chosen on valid; were valid the evaluation split, the estimate would be
        # optimistic, and the protocol says which split chose it
        valid = unit_scale(dataset.split("valid")[:n_examples], info)
        n_samples = int(ctx.setting("parzen_samples", len(test) if ctx.quick else 10_000))
        sigmas = [float(s) for s in ctx.setting("parzen_sigmas", SIGMA_GRID)]
        samples = unit_scale(model_samples(model, n_samples, ctx), info)
        result = parzen_window_ll(samples.to(ctx.device), valid.to(ctx.device), test.to(ctx.device), sigmas)
        if info.value_type == "discrete":
            scale = f"levels / {info.num_levels - 1}, in [0, 1]"
        elif info.value_type == "binary" or info.dequantization_levels:
            scale = "values as they are, in [0, 1]"
        else:
            scale = "raw values (not rescaled)"
        return [
            MetricValue(
                name=self.name,
                value=result.mean,
                unit="nats",
                n=len(test),
                stderr=result.stderr,
                kind="estimate",
                higher_is_better=True,
                protocol={
                    "caveat": CAVEAT,
                    "citation": "Goodfellow et al. 2014 (protocol of Breuleux et al. 2011); see Theis et al. 2016",
                    "kernel": "isotropic Gaussian centred on each sample, data flattened",
                    "sigma_grid": sigmas,
                    "sigma": result.sigma,
                    "sigma_split": "valid",
                    "validation_means": result.validation_means,
                    "split": ctx.split,
                    "n_samples": n_samples,
                    "n_test": len(test),
                    "n_valid": len(valid),
                    "data_scale": scale,
                },
            )
        ]


register_metric(ParzenWindowLogLikelihood())
