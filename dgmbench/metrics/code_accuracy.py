"""Unsupervised classification accuracy of a latent categorical code (InfoGAN, Chen et al.
2016, Sec. 7.1): each test example's inferred category, argmax_k Q(c = k | x), is scored
against its true class under the best one-to-one matching of categories to classes
(Hungarian algorithm), i.e. accuracy "up to permutation". Applies to models exposing
``infer_category(x)`` (and ``config.categorical``) on datasets with labels for the split."""
from __future__ import annotations

import torch

from dgmbench.data.base import Dataset
from dgmbench.metrics.base import EvalContext, MetricValue, register_metric


class CategoricalCodeAccuracy:
    name = "categorical_code_accuracy"
    settings: dict = {}

    def applies(self, model, dataset: Dataset) -> bool:
        return callable(getattr(model, "infer_category", None)) and bool(dataset.labels) and bool(
            getattr(getattr(model, "config", None), "categorical", 0))

    def __call__(self, model, dataset: Dataset, ctx: EvalContext) -> list[MetricValue]:
        labels = dataset.labels.get(ctx.split)
        if labels is None:
            return []
        x = dataset.split(ctx.split)
        with torch.no_grad():
            predicted = torch.cat([model.infer_category(chunk.to(ctx.device)).cpu() for chunk in x.split(ctx.batch_size)])
        from dgmbench.models.gans.infogan import matched_accuracy

        value = matched_accuracy(predicted, labels, model.config.categorical, dataset.info.num_classes or int(labels.max()) + 1)
        protocol = {"split": ctx.split, "categories": model.config.categorical,
                    "matching": "one-to-one, Hungarian (scipy linear_sum_assignment)"}
        return [MetricValue("categorical_code_accuracy", value, "", len(x), kind="score", higher_is_better=True,
                            protocol=protocol)]


register_metric(CategoricalCodeAccuracy())
