"""Likelihood metrics: exact NLL for models with ``log_prob``; ELBO (with its
reconstruction and KL parts) and the IWAE estimate for models with a lower bound.

Units. NLL is in nats per example. Bits per dimension is NLL / (D ln 2) for binary and
discrete data. For data dequantized from L levels onto [0,1]^D the continuous density
gives a bound on the discrete model: bpd <= (nll + D ln L) / (D ln 2) (Theis et al. 2016),
so that bpd is reported with kind "bound". Purely continuous data (toy 2-D) gets no bpd.

Every value carries its standard error over test examples and its sample counts.
"""
from __future__ import annotations

import math

import torch

from dgmbench.data.base import Dataset
from dgmbench.metrics.base import EvalContext, MetricValue, Setting, register_metric
from dgmbench.models.base import ExactLikelihood, LowerBound

# IWAE with k importance samples on a batch of b examples evaluates b*k decoder passes;
# this many per call bounds memory on both CPU and GPU.
IWAE_SAMPLES_PER_CALL = 50_000


# Burda et al. (2016, Sec. 5.2): unit u is active when Cov_x(E_q[u|x]) exceeds this.
ACTIVE_UNIT_THRESHOLD = 0.01


def active_units(posterior_means: torch.Tensor, threshold: float = ACTIVE_UNIT_THRESHOLD) -> int:
    """Latent units whose posterior mean varies across examples: Cov_x(E_q[u|x]) > threshold,
    from posterior means of shape (examples, units)."""
    return int((posterior_means.double().var(0, unbiased=True) > threshold).sum().item())


def mean_with_stderr(values: torch.Tensor) -> tuple[float, float]:
    values = values.double()
    n = values.numel()
    stderr = values.std(unbiased=True).item() / math.sqrt(n) if n > 1 else float("nan")
    return values.mean().item(), stderr


def per_example(fn, x: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    """Concatenate fn(batch) over x in batches, without building a graph."""
    with torch.no_grad():
        return torch.cat([fn(x[i : i + batch_size].to(device)).double().cpu() for i in range(0, len(x), batch_size)])


# The space a density of each kind of data lives in when a model states it (flows):
# dequantized data (level + u)/L is on [0,1]; bits/dim then add D log L for pixel space.
DATA_SPACE = {"continuous": "[0,1]", "binary": "{0,1}", "discrete": "levels"}


def nll_values(name: str, nll: torch.Tensor, dataset: Dataset, kind: str, protocol: dict) -> list[MetricValue]:
    """`name` in nats, plus its bits/dim where the data is discrete or dequantized."""
    info = dataset.info
    mean, stderr = mean_with_stderr(nll)
    values = [MetricValue(name, mean, "nats", len(nll), stderr, kind, protocol=dict(protocol))]
    if info.value_type == "continuous" and info.dequantization_levels is None:
        return values
    # Flows record the space their density lives in; only a density of the data as given
    # (e.g. [0,1] for dequantized data) converts to bits/dim, never one in logit space.
    space = protocol.get("density_space")
    if space is not None and space != DATA_SPACE.get(info.value_type, "[0,1]"):
        return values
    offset = info.dim * math.log(info.dequantization_levels) if info.value_type == "continuous" else 0.0
    scale = info.dim * math.log(2)
    bpd_kind = "bound" if info.value_type == "continuous" else kind
    bpd_name = "bpd" if name == "nll" else f"{name}_bpd"
    bpd_protocol = dict(protocol, dequantization_levels=info.dequantization_levels)
    if space is not None and info.value_type == "continuous":
        bpd_protocol["density_space"] = f"pixel [0,{info.dequantization_levels})"
    values.append(
        MetricValue(bpd_name, (mean + offset) / scale, "bits/dim", len(nll), stderr / scale, bpd_kind, protocol=bpd_protocol)
    )
    return values


class ExactNLL:
    name = "exact_likelihood"
    settings: dict = {}

    def applies(self, model, dataset: Dataset) -> bool:
        return isinstance(model, ExactLikelihood)

    def __call__(self, model, dataset: Dataset, ctx: EvalContext) -> list[MetricValue]:
        x = dataset.split(ctx.split)
        nll = -per_example(model.log_prob, x, ctx.batch_size, ctx.device)
        protocol = {"split": ctx.split}
        if getattr(model, "likelihood_protocol", None):
            protocol.update(model.likelihood_protocol())
        return nll_values("nll", nll, dataset, "exact", protocol)


class ELBOAndIWAE:
    """-ELBO = reconstruction NLL + KL (an upper bound on NLL), and the IWAE estimate
    -log (1/k sum_i p(x,z_i)/q(z_i|x)) (Burda et al. 2016), whose expectation is an upper
    bound on NLL that tightens as k grows; k = 5000 by default, as in that paper."""

    name = "elbo_iwae"
    settings = {"iwae_k": Setting(int, "importance samples per example for the IWAE bound; default 5000, quick 500", minimum=1)}

    def applies(self, model, dataset: Dataset) -> bool:
        return isinstance(model, LowerBound)

    def __call__(self, model, dataset: Dataset, ctx: EvalContext) -> list[MetricValue]:
        x = dataset.split(ctx.split)
        torch.manual_seed(ctx.seed)
        parts = per_example(lambda b: torch.stack(model.elbo(b), dim=1), x, ctx.batch_size, ctx.device)
        elbo, reconstruction, kl = parts.unbind(1)
        protocol = {"split": ctx.split, "elbo_samples": 1}
        values = nll_values("neg_elbo", -elbo, dataset, "bound", protocol)
        for name, part in (("recon_nll", -reconstruction), ("kl", kl)):
            mean, stderr = mean_with_stderr(part)
            values.append(MetricValue(name, mean, "nats", len(part), stderr, "bound", protocol=dict(protocol)))
        if hasattr(model, "posterior_mean"):  # the posterior-collapse diagnostic
            means = per_example(model.posterior_mean, x, ctx.batch_size, ctx.device)
            values.append(MetricValue(
                "active_units", float(active_units(means)), "units", len(means), None, "score", higher_is_better=True,
                protocol={"split": ctx.split, "threshold": ACTIVE_UNIT_THRESHOLD, "latent_units": means.shape[1]},
            ))
        labels = dataset.labels.get(ctx.split) if hasattr(model, "classify") else None
        if labels is not None:  # semi-supervised models (M2): their q(y|x) as a classifier
            predicted = per_example(model.classify, x, ctx.batch_size, ctx.device)
            error = (predicted != labels.double()).double()
            p = error.mean().item()
            values.append(MetricValue(
                "classification_error", p, "", len(error), math.sqrt(p * (1 - p) / len(error)), "score",
                protocol={"split": ctx.split, "labelled": getattr(model.config, "labelled", None)},
            ))
        k = int(ctx.setting("iwae_k", 500 if ctx.quick else 5000))
        batch = max(1, min(ctx.batch_size, IWAE_SAMPLES_PER_CALL // k))
        iwae = per_example(lambda b: model.iwae_bound(b, k), x, batch, ctx.device)
        values += nll_values("iwae_nll", -iwae, dataset, "estimate", {"split": ctx.split, "k": k})
        return values


register_metric(ExactNLL())
register_metric(ELBOAndIWAE())
