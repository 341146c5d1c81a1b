"""The paper-size CIFAR-10 configurations (the Config defaults of realnvp and glow) on small
fake CIFAR-10 batch files in the canonical pickle layout: they build, their sizes are the
papers', the loader's dequantized variant feeds them, and a log-density comes out per
image. No CIFAR-10 copy exists offline; training at these sizes needs a GPU."""
from __future__ import annotations

import math

import pytest
import torch

from dgmbench.data.base import load_dataset
from dgmbench.models import MODELS, build_model


@pytest.fixture
def fake_cifar(fake_cifar_dir):
    """26 train / 4 valid / 4 test images as canonical batches (tests/conftest.py)."""
    return load_dataset("cifar10/dequantized")


def test_paper_configurations_are_the_defaults():
    realnvp, glow = MODELS.get("realnvp").Config(), MODELS.get("glow").Config()
    assert (realnvp.num_scales, realnvp.residual_blocks, realnvp.hidden_channels, realnvp.logit_alpha) == (2, 8, 64, 0.05)
    assert (glow.num_levels, glow.steps_per_level, glow.hidden_channels, glow.coupling, glow.lu_decomposed) == (3, 32, 512, "affine", True)
    assert MODELS.get("realnvp").train_defaults == {"lr": 1e-3, "batch_size": 64, "weight_decay": 5e-5}
    assert MODELS.get("glow").train_defaults == {"lr": 1e-3, "batch_size": 64}


@pytest.mark.parametrize("name", ["realnvp", pytest.param("glow", marks=pytest.mark.slow)])  # glow: ~9 s
def test_paper_size_flow_on_fake_cifar(fake_cifar, name):
    info = fake_cifar.info
    assert (info.shape, info.dequantization_levels) == ((3, 32, 32), 256)
    torch.manual_seed(0)
    model = build_model(name, info)
    x = fake_cifar.split("test")[:2]
    model.train()
    with torch.no_grad():
        model.log_prob(fake_cifar.split("train")[:4])  # actnorm's data-dependent initialisation
    model.eval()
    with torch.no_grad():
        log_p = model.log_prob(x)
        z = model.encode(x)
    assert log_p.shape == (2,) and torch.isfinite(log_p).all()
    assert z.shape == (2, 3 * 32 * 32)
    bpd = (-log_p + info.dim * math.log(256)) / (info.dim * math.log(2))
    assert (bpd > 0).all()  # a proper density on [0,1]^D scores uniform noise above 0 bits/dim
    # parameter counts of the reference configurations (a guard against silent size changes)
    assert model.num_parameters() == {"realnvp": 6_019_299, "glow": 44_152_236}[name]


@pytest.mark.parametrize("name", [pytest.param("realnvp", marks=pytest.mark.slow), "glow"])  # realnvp: ~10 s
def test_cli_run_on_fake_cifar_at_reduced_width(fake_cifar, tmp_path, name):
    """The whole runner path (train, evaluate, record) at the paper's depth and structure with
    narrow networks: plumbing, not a result."""
    from dgmbench.runner import RunSpec, run

    narrow = {"realnvp": {"hidden_channels": 4, "residual_blocks": 1}, "glow": {"hidden_channels": 8, "steps_per_level": 2}}
    spec = RunSpec(model=name, dataset="cifar10/dequantized", model_options=narrow[name],
                   train_options={"epochs": 1, "batch_size": 13}, eval_options={"metrics": ["exact_likelihood"]},
                   results_dir=str(tmp_path / "results"), workdir=str(tmp_path / "work"), progress=False)
    record = run(spec, log=lambda *a, **k: None)
    values = {m["name"]: m for m in record["metrics"]}
    assert values["bpd"]["protocol"]["density_space"] == "pixel [0,256)"
    assert values["nll"]["protocol"]["density_space"] == "[0,1]"
    assert math.isfinite(values["bpd"]["value"])
