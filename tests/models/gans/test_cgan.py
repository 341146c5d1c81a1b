"""Conditional GAN: the label reaches both players (the discriminator's score changes with
y; the generator's output does), the trainer passes labels, and after a short fit on two
classes at known places, sample_class puts (almost) every sample of a class nearer its own
place than the other's."""
from __future__ import annotations

import pytest
import torch

from dgmbench.data.base import DataInfo, Dataset
from dgmbench.models import build_model
from dgmbench.models.base import TrainConfig
from dgmbench.train.trainer import fit


def labelled_info(shape=(2,), classes=2):
    return DataInfo(name="tiny", variant="test", shape=shape, value_type="continuous", num_classes=classes)


def tiny(**options):
    torch.manual_seed(0)
    return build_model("cgan", labelled_info(), **{"latent": 4, "g_hidden": (32, 32), "d_hidden": (32, 32),
                                                    "maxout_pieces": 0, "dropout": 0.0, "input_dropout": 0.0,
                                                    "optimizer": "adam", **options})


def test_label_reaches_both_players():
    model = tiny().eval()
    x = torch.randn(5, 2)
    assert not torch.allclose(model.critic(x, torch.zeros(5, dtype=torch.long)), model.critic(x, torch.ones(5, dtype=torch.long)))
    torch.manual_seed(1)
    a = model.sample_class(5, 0)
    torch.manual_seed(1)
    b = model.sample_class(5, 1)
    assert not torch.allclose(a, b)
    with pytest.raises(ValueError, match="class 2"):
        model.sample_class(1, 2)


def test_class_conditional_samples_after_training(tmp_path):
    means = torch.tensor([[-2.0, 0.0], [2.0, 1.0]])
    g = torch.Generator().manual_seed(0)
    y = torch.randint(0, 2, (1000,), generator=g)
    x = means[y] + 0.3 * torch.randn(1000, 2, generator=g)
    dataset = Dataset(labelled_info(), {"train": x, "valid": x[:100], "test": x[:100]},
                      labels={"train": y, "valid": y[:100], "test": y[:100]})
    model = tiny()
    train = TrainConfig(epochs=5, batch_size=50, lr=2e-3, patience=None)
    summary = fit(model, dataset, train, tmp_path, torch.device("cpu"), progress=False, log=lambda *_: None)
    assert "js_estimate" in summary.history[-1]
    model.eval()
    for label in (0, 1):
        samples = model.sample_class(1000, label)
        nearest = torch.cdist(samples, means).argmin(1)  # which class's place each sample is at
        assert (nearest == label).float().mean() > 0.95


def test_image_networks_and_no_labels():
    info = labelled_info((1, 8, 8), 10)
    for architecture in ("mlp", "dcgan"):
        model = build_model("cgan", info, latent=4, architecture=architecture, base_channels=8, g_hidden=(16,),
                            d_hidden=(16,), maxout_pieces=2)
        x = model.sample(6)
        assert x.shape == (6, 1, 8, 8) and model.critic(x, torch.arange(6)).shape == (6,)
    with pytest.raises(ValueError, match="labels"):
        build_model("cgan", DataInfo(name="t", variant="t", shape=(2,), value_type="continuous"))
