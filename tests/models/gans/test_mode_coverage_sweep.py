"""The mode-coverage board's sweep file (sweeps/mode_coverage.toml) expands to the runs the
board promises: every variant on both boards and three seeds, each improved technique
switched on alone against the plain non-saturating GAN, one shared architecture; and the
sweep format's ``[[variants]]`` tables it relies on."""
from __future__ import annotations

import dataclasses

import pytest

from conftest import REPO
from dgmbench.models.base import MODELS
from dgmbench.sweep import expand, read_sweep
from dgmbench.validation import ConfigError

TECHNIQUES = {"feature_matching": True, "minibatch_kernels": 32, "historical_averaging": 0.01,
              "label_smoothing": 0.9, "generator_norm": "virtual_batch"}


def _full_config(spec):
    options = {k: tuple(v) if isinstance(v, list) else v for k, v in spec.model_options.items()}
    return dataclasses.asdict(MODELS.get(spec.model).Config(**options))


def test_the_board_sweep_expands_to_every_variant_board_and_seed():
    specs = expand(read_sweep(REPO / "sweeps" / "mode_coverage.toml"), "results", ".dgmbench")
    assert len(specs) == 9 * 2 * 3
    assert {s.dataset for s in specs} == {"ring8/continuous", "grid25/continuous"}
    by_variant = {}
    for spec in specs:
        assert spec.eval_options == {"metrics": ["mode_coverage"]}
        assert spec.train_options == {"epochs": 5, "batch_size": 100, "lr": 1e-3} and not spec.quick
        key = (spec.model, tuple(sorted((k, str(v)) for k, v in spec.model_options.items())))
        by_variant.setdefault(key, set()).add((spec.dataset, spec.seed))
    assert len(by_variant) == 9 and all(len(runs) == 6 for runs in by_variant.values())

    gans = {s.model_options.get("generator_loss", "non_saturating") + "|" + ",".join(
        k for k in TECHNIQUES if s.model_options.get(k, None) == TECHNIQUES[k]): s
        for s in specs if s.model == "gan" and s.seed == 0 and s.dataset == "grid25/continuous"}
    assert set(gans) == {"minimax|", "non_saturating|"} | {f"non_saturating|{t}" for t in TECHNIQUES}
    plain = _full_config(gans["non_saturating|"])
    assert (plain["feature_matching"], plain["minibatch_kernels"], plain["historical_averaging"],
            plain["label_smoothing"], plain["generator_norm"]) == (False, 0, 0.0, 1.0, "batch")  # all off
    for technique, value in TECHNIQUES.items():  # each differs from the plain GAN in its technique only
        config = _full_config(gans[f"non_saturating|{technique}"])
        assert {k for k in config if config[k] != plain[k]} == {technique}
        assert config[technique] == (tuple(value) if isinstance(value, list) else value)
    assert {k for k, v in _full_config(gans["minimax|"]).items() if v != plain[k]} == {"generator_loss"}
    # the same PacGAN-style networks for every variant (WGAN-GP keeps its Adam betas and n_critic)
    for spec in specs:
        config = _full_config(spec)
        assert (config["latent"], config["prior"], config["g_hidden"], config["d_hidden"], config["maxout_pieces"],
                config["critic_norm"]) == (2, "normal", (128,) * 4, (128,) * 3, 5, "none")
        assert config["betas"] == ((0.0, 0.9) if spec.model == "wgan_gp" else (0.8, 0.999))


def test_variants_beside_models(tmp_path):
    path = tmp_path / "grid.toml"
    path.write_text('models = ["lsgan"]\nseeds = [0, 1]\ndatasets = ["ring8/continuous"]\n'
                    '[model_options]\nlatent = 2\n[model_options.gan]\ndropout = 0.0\n'
                    '[[variants]]\nmodel = "gan"\nmodel_options = { latent = 3, label_smoothing = [0.9, 0.8] }\n'
                    '[[variants]]\nmodel = "gan"\ntrain_options = { lr = 0.5 }\n')
    specs = expand(read_sweep(path), "results", ".dgmbench")
    assert [(s.model, s.model_options, s.train_options, s.seed) for s in specs] == [
        ("lsgan", {"latent": 2}, {}, 0), ("lsgan", {"latent": 2}, {}, 1),
        # a variant's own options win over the shared ones; its lists are axes; the model's sub-table applies
        ("gan", {"latent": 3, "dropout": 0.0, "label_smoothing": 0.9}, {}, 0),
        ("gan", {"latent": 3, "dropout": 0.0, "label_smoothing": 0.9}, {}, 1),
        ("gan", {"latent": 3, "dropout": 0.0, "label_smoothing": 0.8}, {}, 0),
        ("gan", {"latent": 3, "dropout": 0.0, "label_smoothing": 0.8}, {}, 1),
        ("gan", {"latent": 2, "dropout": 0.0}, {"lr": 0.5}, 0),
        ("gan", {"latent": 2, "dropout": 0.0}, {"lr": 0.5}, 1),
    ]


@pytest.mark.parametrize("variant, message", [
    ('model_options = { latent = 2 }', "variant 1 needs a `model`"),
    ('model = "gan"\nseeds = [1]', "variant 1 has unknown key 'seeds'"),
])
def test_bad_variants_are_one_line_errors(variant, message, tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text(f"[[variants]]\n{variant}\n")
    with pytest.raises(ConfigError, match=message):
        read_sweep(path)
