"""Memorisation check: are generated samples closer to the training set than unseen data is?

For each generated sample s, with Euclidean nearest-neighbour distances

    r(s) = d(s, NN_train(s)) / d(s, NN_heldout(s))

(r = 1 when both distances are 0, i.e. s equals a training and a held-out example).
A model that copies its training set has r ~ 0; a model that samples from the data
distribution has r about as large as genuinely unseen data does. Because
nearest-neighbour distances shrink as a reference set grows, r of honest samples is
below 1 whenever the training set is larger than the held-out set, so the reported

    memorization_ratio = median_s r(s) / median_q r(q)

is calibrated by real held-out queries q (examples in neither reference set): about 1
for an honest generator whatever the set sizes, about 0 for a copier. Without
calibration queries the raw median is reported and the protocol says so.

``copy_fraction`` is the fraction of samples within ``copy_threshold`` times the
median held-out-to-train nearest-neighbour distance of a training example: near-exact
copies. The same fraction for the calibration queries (``copy_fraction_reference``)
shows how often real unseen data is that close by chance (duplicates exist, e.g. in
binarised 8x8 digits).

In the spirit of the data-copying tests of Meehan et al. (2020) and the nearest-
neighbour checks of the GAN literature; distances on pixels or on features.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from dgmbench.metrics.base import EvalContext, MetricValue, Setting, model_samples, register_metric
from dgmbench.metrics.fidelity import conversion_rule, to_uint8
from dgmbench.metrics.prdc import DEFAULT_MAX_BLOCK_ELEMENTS

COPY_THRESHOLD = 0.1  # fraction of the median held-out -> train nearest-neighbour distance


@torch.no_grad()
def nearest_neighbour_distances(
    queries: torch.Tensor, reference: torch.Tensor, max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS
) -> torch.Tensor:
    """Euclidean distance from each query row to its nearest reference row, float64.

    The neighbour is the argmin over r of ||r||^2 - 2 q.r (||q||^2 and the square root do
    not change it), in row blocks; its distance is then recomputed as ||q - r|| so that
    exact copies come out as exactly 0.
    """
    queries = queries.reshape(len(queries), -1).to(torch.float64)
    reference = reference.reshape(len(reference), -1).to(device=queries.device, dtype=torch.float64)
    shift = reference.mean(0)
    centred_reference = reference - shift
    reference_squared_norms = (centred_reference * centred_reference).sum(1)
    rows = max(1, max_block_elements // max(1, len(reference)))
    nearest = torch.cat([
        torch.addmm(reference_squared_norms, block - shift, centred_reference.T, alpha=-2.0).argmin(1)
        for block in queries.split(rows)
    ])
    return (queries - reference[nearest]).norm(dim=1)


def _median(values: torch.Tensor) -> float:
    """The usual median (mean of the middle two for even counts; torch.median takes the lower)."""
    return float(np.median(values.cpu().numpy()))


def _distance_ratios(to_train: torch.Tensor, to_heldout: torch.Tensor) -> torch.Tensor:
    both_zero = (to_train == 0) & (to_heldout == 0)
    return torch.where(both_zero, torch.ones_like(to_train), to_train / to_heldout)


@dataclass
class MemorizationResult:
    memorization_ratio: float  # calibrated median ratio: ~1 honest, ~0 copying
    raw_median_ratio: float  # median_s r(s), uncalibrated
    reference_median_ratio: float | None  # median_q r(q) of real held-out queries
    copy_fraction: float  # samples within the copy threshold of a training example
    copy_fraction_reference: float | None  # the same for the held-out queries
    copy_distance: float  # the absolute copy threshold
    n_samples: int
    n_train: int
    n_heldout: int
    n_queries: int


def memorization_check(
    samples: torch.Tensor,
    train: torch.Tensor,
    heldout: torch.Tensor,
    queries: torch.Tensor | None = None,
    copy_threshold: float = COPY_THRESHOLD,
    max_block_elements: int = DEFAULT_MAX_BLOCK_ELEMENTS,
) -> MemorizationResult:
    """Nearest-neighbour memorisation statistics of `samples` (rows are flattened).

    `heldout` and `queries` must be disjoint real examples unseen in training: the first
    is a reference set like `train`, the second calibrates the ratio.
    """
    sample_to_train = nearest_neighbour_distances(samples, train, max_block_elements)
    sample_to_heldout = nearest_neighbour_distances(samples, heldout, max_block_elements)
    raw_median = _median(_distance_ratios(sample_to_train, sample_to_heldout))

    heldout_to_train = nearest_neighbour_distances(heldout, train, max_block_elements)
    copy_distance = copy_threshold * _median(heldout_to_train)
    copy_fraction = (sample_to_train <= copy_distance).double().mean().item()

    reference_median, copy_fraction_reference = None, None
    ratio = raw_median
    if queries is not None:
        query_to_train = nearest_neighbour_distances(queries, train, max_block_elements)
        query_to_heldout = nearest_neighbour_distances(queries, heldout, max_block_elements)
        reference_median = _median(_distance_ratios(query_to_train, query_to_heldout))
        copy_fraction_reference = (query_to_train <= copy_distance).double().mean().item()
        ratio = raw_median / reference_median if reference_median > 0 else float("nan")
    return MemorizationResult(
        memorization_ratio=ratio,
        raw_median_ratio=raw_median,
        reference_median_ratio=reference_median,
        copy_fraction=copy_fraction,
        copy_fraction_reference=copy_fraction_reference,
        copy_distance=copy_distance,
        n_samples=len(samples),
        n_train=len(train),
        n_heldout=len(heldout),
        n_queries=0 if queries is None else len(queries),
    )


def _pixels(x: torch.Tensor, info) -> torch.Tensor:
    """Images as their uint8 pixels / 255, converted as for FID (a copy of a dequantized
    training image is then exactly a copy), vectors as they are."""
    if info.is_image:
        return to_uint8(x, info).flatten(1).double() / 255.0
    return x.flatten(1).double()


class Memorization:
    """memorization_ratio and copy_fraction of model samples, on pixels: the training split
    against the held-out one of valid/test that is not the evaluation split, calibrated by
    the evaluation split's real examples."""

    name = "memorization"
    settings = {
        "memorization_heldout": Setting(int, "held-out reference examples (all; quick 1000)", minimum=1, optional=True),
        "memorization_queries": Setting(int, "real calibration queries from the evaluation split (all; quick 1000)",
                                        minimum=1, optional=True),
        "memorization_samples": Setting(int, "model samples scored (10000; quick: as many as queries)", minimum=1),
        "memorization_copy_threshold": Setting(float, "distance ratio below which a sample counts as a copy",
                                               greater_than=0),
    }

    def applies(self, model, dataset) -> bool:
        # A translator's "samples" are translations of held-out validation sources, so a good
        # one reproduces validation pairs by construction: the ratio would not measure copying.
        return callable(getattr(model, "sample", None)) and not callable(getattr(model, "translate", None))

    def __call__(self, model, dataset, ctx: EvalContext) -> list[MetricValue]:
        info = dataset.info
        heldout_split = "valid" if ctx.split != "valid" else "test"
        train = _pixels(dataset.split("train"), info).to(ctx.device)
        # quick runs: at most 1000 held-out references, calibration queries and samples
        n_heldout = ctx.setting("memorization_heldout", 1000 if ctx.quick else None)
        heldout = _pixels(dataset.split(heldout_split)[:n_heldout], info).to(ctx.device)
        n_queries = ctx.setting("memorization_queries", 1000 if ctx.quick else None)
        queries = _pixels(dataset.split(ctx.split)[:n_queries], info).to(ctx.device)
        n_samples = int(ctx.setting("memorization_samples", len(queries) if ctx.quick else 10_000))
        copy_threshold = float(ctx.setting("memorization_copy_threshold", COPY_THRESHOLD))
        samples = _pixels(model_samples(model, n_samples, ctx), info).to(ctx.device)
        result = memorization_check(samples, train, heldout, queries, copy_threshold)
        protocol = {
            "space": f"uint8 pixels / 255 ({conversion_rule(info)})" if info.is_image else "raw vectors",
            "distance": "euclidean, nearest neighbour",
            "train_split": "train",
            "heldout_split": heldout_split,
            "calibration_split": ctx.split,
            "n_samples": result.n_samples,
            "n_train": result.n_train,
            "n_heldout": result.n_heldout,
            "n_queries": result.n_queries,
            "raw_median_ratio": result.raw_median_ratio,
            "reference_median_ratio": result.reference_median_ratio,
            "copy_threshold": copy_threshold,
            "copy_distance": result.copy_distance,
            "copy_fraction_reference": result.copy_fraction_reference,
        }
        return [
            MetricValue(
                name="memorization_ratio",
                value=result.memorization_ratio,
                n=result.n_samples,
                kind="score",
                higher_is_better=True,
                protocol={**protocol, "definition": "median d(s,train)/d(s,heldout) over samples, "
                          "divided by the same median over real calibration examples; ~1 honest, ~0 copying"},
            ),
            MetricValue(
                name="copy_fraction",
                value=result.copy_fraction,
                n=result.n_samples,
                kind="score",
                higher_is_better=False,
                protocol={**protocol, "definition": "fraction of samples within copy_distance "
                          "(copy_threshold x median held-out -> train NN distance) of a training example"},
            ),
        ]


register_metric(Memorization())
