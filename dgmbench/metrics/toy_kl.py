"""KL from the true density on the toy 2-D boards with a closed-form density
(eight_gaussians, checkerboard, pinwheel; see dgmbench/data/toy2d.py):

    KL(p || q) = E_p[log p(x) - log q(x)]  ~=  (1/N) sum_i [log p(x_i) - log q(x_i)],

x_i the N test samples (drawn from p), with its standard error over them: a Monte Carlo
estimate, unbiased, in nats. It is reported beside the same estimate for a single Gaussian
fitted by maximum likelihood to the training split (``toy_kl_gaussian``), the floor any
flexible density model should clear. Applies to models with an exact ``log_prob``.
A model that puts zero density on a test point (log q = -inf) gets KL = +inf.
"""
from __future__ import annotations

import torch

from dgmbench.data.base import Dataset
from dgmbench.data.toy2d import EXACT_LOG_DENSITY
from dgmbench.metrics.base import EvalContext, MetricValue, register_metric
from dgmbench.metrics.likelihood import mean_with_stderr, per_example
from dgmbench.models.base import ExactLikelihood


def gaussian_log_density(train: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log N(x; mean, covariance) with the maximum-likelihood fit to `train`."""
    train = train.double()
    mean = train.mean(0)
    covariance = torch.cov(train.T, correction=0)
    return torch.distributions.MultivariateNormal(mean, covariance).log_prob(x.double())


class ToyKL:
    name = "toy_kl"
    settings: dict = {}

    def applies(self, model, dataset: Dataset) -> bool:
        return isinstance(model, ExactLikelihood) and dataset.info.name in EXACT_LOG_DENSITY

    def __call__(self, model, dataset: Dataset, ctx: EvalContext) -> list[MetricValue]:
        x = dataset.split(ctx.split)
        log_p = EXACT_LOG_DENSITY[dataset.info.name](x.double())
        log_q = per_example(model.log_prob, x, ctx.batch_size, ctx.device)
        log_gaussian = gaussian_log_density(dataset.split("train"), x)
        protocol = {"split": ctx.split, "estimator": "mean over test samples of log p - log q", "truth": dataset.info.name}
        values = []
        for name, log_model in (("toy_kl", log_q), ("toy_kl_gaussian", log_gaussian)):
            mean, stderr = mean_with_stderr(log_p - log_model)
            values.append(MetricValue(name, mean, "nats", len(x), stderr, "estimate", protocol=dict(protocol)))
        return values


register_metric(ToyKL())
