"""The categorical-code accuracy metric: a code that is a relabelling of the classes scores
1, a constant code scores the largest class's share, through evaluate()."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from dgmbench.data.base import DataInfo, Dataset
from dgmbench.metrics.base import EvalContext, evaluate


class CodeModel(torch.nn.Module):
    def __init__(self, relabel):
        super().__init__()
        self.config = SimpleNamespace(categorical=3)
        self.relabel = relabel

    def infer_category(self, x):
        return self.relabel(x[:, 0].long())

    def sample(self, n):
        return torch.zeros(n, 2)


def dataset():
    labels = torch.tensor([0, 1, 2, 2, 1, 0, 0, 0])
    x = torch.stack([labels.float(), torch.zeros(8)], dim=1)
    info = DataInfo(name="tiny", variant="t", shape=(2,), value_type="continuous", num_classes=3)
    return Dataset(info, {"train": x, "valid": x, "test": x}, labels={"train": labels, "valid": labels, "test": labels})


@pytest.mark.parametrize("relabel, expected", [(lambda y: (y + 1) % 3, 1.0), (lambda y: torch.zeros_like(y), 4 / 8)])
def test_accuracy_up_to_permutation(relabel, expected):
    values = evaluate(CodeModel(relabel), dataset(), EvalContext(), only=["categorical_code_accuracy"])
    assert [v.name for v in values] == ["categorical_code_accuracy"] and values[0].value == pytest.approx(expected)
