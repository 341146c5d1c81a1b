"""Translation error against the known truth (pix2pix, CycleGAN on the datasets of
dgmbench.data.translation, whose target is a fixed transform T of the source).

On the evaluation split's aligned pairs (x, y = T(x)), for a model exposing
``translate(x)`` (G) and, for two-way models, ``translate_back(y)`` (F):

* ``translation_mae``            mean over examples of the mean |G(x) - T(x)| over pixels
                                 (0 for a perfect translator; in [0, 1] for [0, 1] images)
* ``translation_pixel_accuracy`` (binary data) mean over examples of the fraction of pixels
                                 where G(x), thresholded at ``translation_threshold``,
                                 equals T(x)
* ``cycle_mae``                  mean |F(G(x)) - x|, the cycle-consistency error of eq. 2 of
                                 Zhu et al. 2017 on held-out x (two-way models)
* ``backward_translation_mae``   mean |F(y) - T^-1(y)| = |F(y) - x| (two-way models)
* ``backward_cycle_mae``         mean |G(F(y)) - y| (two-way models)

Standard errors are over examples. Stochastic translators (pix2pix's test-time dropout)
are run under a forked RNG seeded with the evaluation seed, so the numbers are
reproducible and the caller's random state is untouched.
"""
from __future__ import annotations

from typing import Callable

import torch

from dgmbench.data.base import Dataset
from dgmbench.data.translation import is_translation, split_pair
from dgmbench.metrics.base import EvalContext, MetricValue, Setting, register_metric


def _mean_and_stderr(values: torch.Tensor) -> tuple[float, float]:
    values = values.double()
    stderr = values.std(unbiased=True).item() / len(values) ** 0.5 if len(values) > 1 else float("nan")
    return values.mean().item(), stderr


@torch.no_grad()
def apply_in_batches(function: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, batch_size: int,
                     device: torch.device) -> torch.Tensor:
    return torch.cat([function(chunk.to(device)).float().cpu() for chunk in x.split(batch_size)])


def absolute_errors(output: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """Per-example mean absolute error over pixels, shape (n,)."""
    return (output - truth).abs().flatten(1).mean(1)


def pixel_accuracies(output: torch.Tensor, truth: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Per-example fraction of pixels where (output > threshold) equals the binary truth, (n,)."""
    return ((output > threshold).float() == truth).float().flatten(1).mean(1)


class TranslationError:
    name = "translation"
    settings = {
        "translation_examples": Setting(int, "evaluation-split pairs scored (the first n); default: all", minimum=1,
                                        optional=True),
        "translation_threshold": Setting(float, "threshold that binarizes translations for the pixel accuracy "
                                         "on binary data", minimum=0.0, maximum=1.0),
    }

    def applies(self, model, dataset: Dataset) -> bool:
        return callable(getattr(model, "translate", None)) and is_translation(dataset.info)

    def __call__(self, model, dataset: Dataset, ctx: EvalContext) -> list[MetricValue]:
        pairs = dataset.split(ctx.split)
        examples = ctx.setting("translation_examples", None)
        if examples is not None:
            pairs = pairs[:examples]
        threshold = float(ctx.setting("translation_threshold", 0.5))
        source, target = split_pair(pairs)
        binary = dataset.info.value_type == "binary"
        device = getattr(model, "device", ctx.device)
        two_way = callable(getattr(model, "translate_back", None))
        protocol = {"split": ctx.split, "examples": len(pairs), "truth": f"{dataset.info.variant.rsplit('_', 1)[0]} "
                    "of the source (the pair's right half)", "error": "per-example mean |.| over pixels"}

        devices = [device] if device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):
            torch.manual_seed(ctx.seed)
            translated = apply_in_batches(model.translate, source, ctx.batch_size, device)
            if two_way:
                cycled = apply_in_batches(model.translate_back, translated, ctx.batch_size, device)
                back = apply_in_batches(model.translate_back, target, ctx.batch_size, device)
                back_cycled = apply_in_batches(model.translate, back, ctx.batch_size, device)

        def value(name, per_example, higher_is_better=False, extra=None):
            mean, stderr = _mean_and_stderr(per_example)
            return MetricValue(name, mean, "", len(per_example), stderr=stderr, kind="score",
                               higher_is_better=higher_is_better, protocol={**protocol, **(extra or {})})

        values = [value("translation_mae", absolute_errors(translated, target))]
        if binary:
            values.append(value("translation_pixel_accuracy", pixel_accuracies(translated, target, threshold), True,
                                {"threshold": threshold}))
        if two_way:
            values += [
                value("cycle_mae", absolute_errors(cycled, source)),
                value("backward_translation_mae", absolute_errors(back, source)),
                value("backward_cycle_mae", absolute_errors(back_cycled, target)),
            ]
            if binary:
                values.append(value("backward_translation_pixel_accuracy", pixel_accuracies(back, source, threshold),
                                    True, {"threshold": threshold}))
        return values


register_metric(TranslationError())
