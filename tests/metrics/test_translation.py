"""The translation metric: an oracle translator (the true transform) scores error 0 and
accuracy 1; the identity translator scores the error computed independently with numpy;
an exact inverse pair has cycle error 0, a non-inverse pair the closed-form cycle error."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dgmbench.data import load_dataset
from dgmbench.data.translation import make_transform, split_pair
from dgmbench.metrics.base import METRICS, EvalContext, SettingError, evaluate, validate_eval_settings
from dgmbench.metrics.translation import absolute_errors, pixel_accuracies


class Translator:
    """A stand-in translation model: G (and optionally F) given as functions."""

    def __init__(self, forward, backward=None):
        self.translate = forward
        if backward is not None:
            self.translate_back = backward
        self.device = torch.device("cpu")

    def eval(self):
        return self


def scores(model, dataset, **settings) -> dict:
    ctx = EvalContext(batch_size=97, settings=settings)
    return {v.name: v for v in evaluate(model, dataset, ctx, only=["translation"])}


@pytest.mark.parametrize("transform", ["invert", "rot90", "permute"])
def test_oracle_scores_zero_error_and_perfect_accuracy(transform):
    data = load_dataset(f"digits_translation/{transform}_aligned")
    truth = make_transform(transform, 8, 8)
    values = scores(Translator(truth.forward), data)
    assert set(values) == {"translation_mae", "translation_pixel_accuracy"}
    assert values["translation_mae"].value == 0 and values["translation_pixel_accuracy"].value == 1
    assert values["translation_mae"].n == 360 and not values["translation_mae"].higher_is_better


@pytest.mark.parametrize("transform", ["invert", "rot90", "permute"])
def test_identity_scores_the_independently_computed_error(transform):
    data = load_dataset(f"digits_translation/{transform}_aligned")
    pairs = data.split("test").double().numpy()[:, 0]  # (n, 8, 16)
    source, target = pairs[:, :, :8], pairs[:, :, 8:]
    per_example = [np.abs(s - t).mean() for s, t in zip(source, target)]  # |x - T(x)|, one image at a time
    expected = float(np.mean(per_example))
    values = scores(Translator(lambda x: x), data)
    assert math.isclose(values["translation_mae"].value, expected, rel_tol=1e-9, abs_tol=1e-12)
    assert math.isclose(values["translation_mae"].stderr, np.std(per_example, ddof=1) / np.sqrt(len(per_example)),
                        rel_tol=1e-6)
    # binary images: accuracy of the identity is 1 - (fraction of pixels that differ) = 1 - mae
    assert math.isclose(values["translation_pixel_accuracy"].value, 1 - expected, rel_tol=1e-9)
    if transform == "invert":
        assert values["translation_mae"].value == 1 and values["translation_pixel_accuracy"].value == 0


@pytest.mark.parametrize("transform", ["invert", "rot90", "permute"])
def test_exact_inverse_pair_has_zero_cycle_error(transform):
    data = load_dataset(f"digits_translation/{transform}_unaligned")
    truth = make_transform(transform, 8, 8)
    values = scores(Translator(truth.forward, truth.inverse), data)
    for name in ("translation_mae", "cycle_mae", "backward_translation_mae", "backward_cycle_mae"):
        assert values[name].value == 0, name
    assert values["backward_translation_pixel_accuracy"].value == 1


def test_non_inverse_pair_has_the_closed_form_cycle_error():
    data = load_dataset("digits_translation/rot90_aligned")
    rotate = make_transform("rot90", 8, 8).forward
    # F = G = rot90: F(G(x)) = rot180(x), so the cycle error is mean |rot180(x) - x|
    values = scores(Translator(rotate, rotate), data)
    source = split_pair(data.split("test"))[0].double().numpy()[:, 0]
    expected = float(np.mean([np.abs(np.rot90(s, 2) - s).mean() for s in source]))
    assert math.isclose(values["cycle_mae"].value, expected, rel_tol=1e-9)
    assert values["translation_mae"].value == 0 and values["backward_translation_mae"].value > 0


def test_soft_outputs_and_threshold_setting():
    data = load_dataset("digits_translation/invert_aligned")
    truth = make_transform("invert", 8, 8).forward
    values = scores(Translator(lambda x: 0.3 + 0.4 * truth(x)), data, translation_threshold=0.5)
    assert math.isclose(values["translation_mae"].value, 0.3, rel_tol=1e-6)  # |0.3 + 0.4 t - t| = 0.3
    assert values["translation_pixel_accuracy"].value == 1
    values = scores(Translator(lambda x: 0.3 + 0.4 * truth(x)), data, translation_threshold=0.8, translation_examples=10)
    assert values["translation_pixel_accuracy"].value == pytest.approx(
        float((split_pair(data.split("test")[:10])[1] == 0).float().mean()))
    assert values["translation_mae"].n == 10 and values["translation_mae"].protocol["examples"] == 10


def test_per_example_helpers():
    out = torch.tensor([[0.2, 0.9], [0.6, 0.4]])
    truth = torch.tensor([[0.0, 1.0], [1.0, 1.0]])
    assert torch.allclose(absolute_errors(out, truth), torch.tensor([0.15, 0.5]))
    assert torch.equal(pixel_accuracies(out, truth), torch.tensor([1.0, 0.5]))


def test_applies_only_to_translators_on_translation_data():
    metric = METRICS.get("translation")
    pairs = load_dataset("digits_translation/invert_aligned")
    assert metric.applies(Translator(lambda x: x), pairs)
    assert not metric.applies(Translator(lambda x: x), load_dataset("digits/binary"))
    assert not metric.applies(object(), pairs)


def test_settings_are_declared_and_validated():
    validate_eval_settings({"translation_examples": 5, "translation_threshold": 0.25})
    with pytest.raises(SettingError, match="translation_threshold"):
        validate_eval_settings({"translation_threshold": 1.5})
    with pytest.raises(SettingError, match="translation_examples"):
        validate_eval_settings({"translation_examples": 0})
