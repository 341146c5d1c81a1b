"""The committed flow sweeps (sweeps/flows_toy.toml, sweeps/flows_mnist.toml) expand to the
runs their records come from: every option valid for its model, the toy board complete (every
flow that takes 2-D data x the three boards with exact densities), and each toy model builds
on a toy board, where Glow is refused with a one-line error."""
from __future__ import annotations

from pathlib import Path

import pytest

from dgmbench.data.base import load_dataset
from dgmbench.data.toy2d import EXACT_LOG_DENSITY
from dgmbench.models import build_model
from dgmbench.sweep import expand, read_sweep

SWEEPS = Path(__file__).resolve().parents[3] / "sweeps"
TOY_FLOWS = {"planar_flow", "radial_flow", "nice", "realnvp", "maf", "iaf"}


def specs(name, tmp_path):
    return expand(read_sweep(SWEEPS / name), str(tmp_path / "results"), str(tmp_path / "work"))


def test_toy_sweep_is_every_2d_flow_on_every_exact_board(tmp_path):
    runs = specs("flows_toy.toml", tmp_path)
    assert {(s.model, s.dataset.split("/")[0]) for s in runs} == {(m, b) for m in TOY_FLOWS for b in EXACT_LOG_DENSITY}
    assert len(runs) == len(TOY_FLOWS) * len(EXACT_LOG_DENSITY)
    for s in runs:
        assert s.eval_options["metrics"] == ["exact_likelihood", "toy_kl"]
        assert s.train_options["epochs"] == 20


@pytest.mark.parametrize("model", sorted(TOY_FLOWS))
def test_toy_sweep_models_build_on_2d_data(model, tmp_path):
    (spec, *_) = [s for s in specs("flows_toy.toml", tmp_path) if s.model == model]
    info = load_dataset(spec.dataset).info
    built = build_model(model, info, **spec.model_options)
    assert built.likelihood_protocol()["density_space"] == "R^D"


def test_glow_is_refused_on_2d_data_in_one_line():
    with pytest.raises(ValueError, match="needs image data"):
        build_model("glow", load_dataset("checkerboard/continuous").info)


def test_mnist_sweep_is_nice_realnvp_maf_glow_on_dequantized_mnist_with_the_exact_likelihood(tmp_path):
    runs = specs("flows_mnist.toml", tmp_path)
    assert sorted(s.model for s in runs) == ["glow", "maf", "nice", "realnvp"]
    assert {s.dataset for s in runs} == {"mnist/dequantized"}
    assert all(s.eval_options["metrics"] == "exact_likelihood" for s in runs)
    maf = next(s for s in runs if s.model == "maf")
    assert maf.model_options["hidden_sizes"] == [512]  # one grid value, not a grid axis
