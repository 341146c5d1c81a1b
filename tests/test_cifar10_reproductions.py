"""The CIFAR-10 GPU configurations (the gpu_only reproductions ``dcgan_cifar10``,
``wgan_gp_cifar10`` in baselines/gans.toml and ``realnvp_cifar10``, ``glow_cifar10`` in
baselines/flows.toml) tested for plumbing on small fake CIFAR-10 batch files: no copy of
CIFAR-10 and no Inception weights exist on this machine.

* Each reproduction resolves through the runner (names, types, ranges of every option), loads
  the fake batches through DGMBENCH_DATA_DIR, builds its model at the paper's full size and
  takes one training step (for the GANs: n_critic discriminator steps and one generator step)
  on a 2-image batch, every parameter group moving and every logged scalar finite.
* Inception FID: without weights, the path fails before training with one line saying which
  setting to give; with a stand-in for the Inception network (a fixed random projection
  registered under torch-fidelity's Inception name, its "weights" a local file), the whole
  path runs and its FID equals a scipy computation on the stand-in's features, and a
  ``dgmbench run`` records it with the extractor and the weights file's sha256.

The fake batches follow the canonical layout (pickled protocol-2 dicts with bytes keys, b'data'
uint8 (N, 3072) of R, G, B planes, b'labels'); the loader only accepts extracted batches whose
md5 is in ``cifar10.BATCH_MD5``, so the fixture points that table at the fake files' md5s.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from dgmbench.reproduce import load_reproductions

GANS = {"dcgan_cifar10": "dcgan", "wgan_gp_cifar10": "wgan_gp"}
FLOWS = {"realnvp_cifar10": "realnvp", "glow_cifar10": "glow"}
PUBLISHED = {"dcgan_cifar10": 28.12, "wgan_gp_cifar10": 29.3, "realnvp_cifar10": 3.49, "glow_cifar10": 3.35}
# parameter counts of the paper-size models on 3x32x32 (a guard against silent size changes)
PARAMETERS = {"dcgan_cifar10": 6_095_364, "realnvp_cifar10": 6_019_299, "glow_cifar10": 44_152_236}


@pytest.fixture
def fake_cifar(fake_cifar_dir):
    """26 train / 4 valid / 4 test images in canonical batch files (tests/conftest.py)."""
    return fake_cifar_dir


def _spec(name, tmp_path):
    return load_reproductions()[name].spec(device="cpu", results_dir=str(tmp_path / "results"),
                                           workdir=str(tmp_path / "work"), progress=False)


def test_cifar_reproductions_are_gpu_only_with_their_protocols():
    from dgmbench.runner import validate

    reproductions = load_reproductions()
    for name, model in {**GANS, **FLOWS}.items():
        r = reproductions[name]
        assert (r.model, r.board, r.gpu_only, r.published) == (model, "cifar10/dequantized", True, PUBLISHED[name])
        assert r.cpu_hours > 24 and r.gpu_hours > 0  # "not feasible on a CPU in a working day"
        validate(r.spec(device="cpu"))  # every option's name, type and range
    for name in GANS:
        r = reproductions[name]
        assert r.metric == "fid" and r.eval_options["inception"] is True
        assert r.eval_options["metrics"] == ["sample_quality_fidelity"]
    dcgan, wgan_gp = reproductions["dcgan_cifar10"], reproductions["wgan_gp_cifar10"]
    assert (dcgan.eval_options["fid_samples"], dcgan.eval_options["fid_reference_split"]) == (10_000, "test")
    assert (wgan_gp.eval_options["fid_samples"], wgan_gp.eval_options["fid_reference_split"]) == (50_000, "train")
    for name in FLOWS:
        r = reproductions[name]
        assert r.metric == "bpd" and r.eval_options["metrics"] == ["exact_likelihood"]
        assert r.model_options == {}  # the Config defaults are the papers' sizes (tests/models/flows)


@pytest.mark.parametrize("name", ["dcgan_cifar10", "wgan_gp_cifar10",  # flows: ~15 s (RealNVP), more (Glow)
                                  *(pytest.param(name, marks=pytest.mark.slow) for name in FLOWS)])
def test_full_size_config_resolves_and_trains_one_step_on_fake_cifar(fake_cifar, name):
    from dgmbench.runner import resolve

    repro = load_reproductions()[name]
    cls, dataset, model_config, train_config = resolve(_spec(name, fake_cifar))
    for key, value in repro.train_options.items():
        assert getattr(train_config, key) == value
    info = dataset.info
    assert (info.board, info.shape, info.dequantization_levels) == ("cifar10/dequantized", (3, 32, 32), 256)
    assert {split: len(x) for split, x in dataset.splits.items()} == {"train": 26, "valid": 4, "test": 4}
    torch.manual_seed(0)
    model = cls(model_config, info)
    if name in PARAMETERS:
        assert sum(p.numel() for p in model.parameters()) == PARAMETERS[name]
    optimizers = model.configure_optimizers(train_config)
    before = {key: p.detach().clone() for key, p in model.named_parameters()}
    x = dataset.train_epoch(0)[:2]
    model.train()
    steps = getattr(model_config, "n_critic", 1)  # GANs: n_critic critic steps, then the generator's
    for _ in range(steps):
        scalars = model.training_step(x, optimizers, train_config)
    assert scalars and all(math.isfinite(v) for v in scalars.values())
    moved = {key.split(".")[0] for key, p in model.named_parameters() if not torch.equal(p.detach(), before[key])}
    if name in GANS:
        assert {"generator", "discriminator"} <= moved
        assert int(model.generator_updates) == 1 and int(model.critic_updates) == steps
    else:
        assert moved  # a gradient step on -log p(x)


@pytest.mark.slow  # one step of the full-size model takes ~15 s on one CPU thread
def test_gated_pixelcnn_cifar10_config_trains_one_step_on_fake_cifar(fake_cifar):
    """The GPU-only Gated PixelCNN reproduction on the discrete 8-bit board: resolves, builds at
    its stated size, one gradient step on 2 fake images moves every layer, finite loss."""
    from dgmbench.runner import resolve

    repro = load_reproductions()["gated_pixelcnn_cifar10"]
    assert (repro.board, repro.gpu_only, repro.published, repro.metric) == ("cifar10/8bit", True, 3.03, "bpd")
    cls, dataset, model_config, train_config = resolve(_spec("gated_pixelcnn_cifar10", fake_cifar))
    assert (dataset.info.shape, dataset.info.num_levels) == ((3, 32, 32), 256)
    torch.manual_seed(0)
    model = cls(model_config, dataset.info)
    assert sum(p.numel() for p in model.parameters()) == 8_081_536
    optimizers = model.configure_optimizers(train_config)
    before = {key: p.detach().clone() for key, p in model.named_parameters()}
    scalars = model.training_step(dataset.train_epoch(0)[:2], optimizers, train_config)
    assert scalars and all(math.isfinite(v) for v in scalars.values())
    assert all(not torch.equal(p.detach(), before[key]) for key, p in model.named_parameters())


# --- Inception FID: no weights here; a stand-in network with the same plumbing -----------------


from torch_fidelity.feature_extractor_base import FeatureExtractorBase  # noqa: E402


class StandInInception(FeatureExtractorBase):
    """Registered under torch-fidelity's Inception name for a test: uint8 RGB (N, 3, H, W) ->
    the '2048' and 'logits_unbiased' layers as fixed random projections of 4x4-pooled pixels,
    read from the local 'weights' file given as feature_extractor_weights_path. The layers
    keep Inception's names but are 16- and 10-dimensional: a 2048x2048 matrix square root
    takes minutes on one loaded core, and nothing in the plumbing depends on the width."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise AssertionError("the metric layer must pass the local weights file")
        weights = torch.load(feature_extractor_weights_path, weights_only=True)
        self.register_buffer("to_2048", weights["to_2048"])
        self.register_buffer("to_logits", weights["to_logits"])

    @staticmethod
    def get_provided_features_list():
        return ("2048", "logits_unbiased")

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def features(images, weights):
        pooled = torch.nn.functional.adaptive_avg_pool2d(images.double() / 255, 4).flatten(1)  # (N, 48)
        return pooled @ weights["to_2048"].double(), pooled @ weights["to_logits"].double()

    def forward(self, images):
        assert images.dtype == torch.uint8 and images.shape[1] == 3
        pool3, logits = self.features(images, {"to_2048": self.to_2048, "to_logits": self.to_logits})
        chosen = {"2048": pool3, "logits_unbiased": logits}
        return tuple(chosen[layer] for layer in self.features_list)


@pytest.fixture
def stand_in_inception(tmp_path, monkeypatch):
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    from dgmbench.metrics.features import INCEPTION

    generator = torch.Generator().manual_seed(0)
    weights = {"to_2048": torch.randn(48, 16, generator=generator),
               "to_logits": torch.randn(48, 10, generator=generator)}
    path = tmp_path / "stand-in-inception.pt"
    torch.save(weights, path)
    monkeypatch.setitem(FEATURE_EXTRACTORS_REGISTRY, INCEPTION, StandInInception)
    return path, weights


class ImageSampler(torch.nn.Module):
    def __init__(self, images, info):
        super().__init__()
        self.images, self.info, self.device = images, info, torch.device("cpu")

    def sample(self, n):
        return self.images[:n]


def _scipy_fid(a: np.ndarray, b: np.ndarray) -> float:
    from scipy import linalg

    mu_a, mu_b = a.mean(0), b.mean(0)
    cov_a, cov_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(((mu_a - mu_b) ** 2).sum() + np.trace(cov_a + cov_b - 2 * root))


def test_inception_fid_end_to_end_with_a_stand_in_network(fake_cifar, stand_in_inception):
    from dgmbench.data.base import load_dataset
    from dgmbench.metrics.base import EvalContext, evaluate
    from dgmbench.metrics.features import INCEPTION, file_sha256
    from dgmbench.metrics.fidelity import to_uint8

    path, weights = stand_in_inception
    dataset = load_dataset("cifar10/dequantized")
    samples = dataset.split("train")[:12]
    ctx = EvalContext(settings={"inception_weights": str(path), "fid_samples": 12, "isc_splits": 2, "kid_subsets": 5})
    values = {v.name: v for v in evaluate(ImageSampler(samples, dataset.info), dataset, ctx,
                                          only=["sample_quality_fidelity"])}
    fid = values["fid"]
    assert fid.protocol["extractor"] == INCEPTION and fid.protocol["weights_sha256"] == file_sha256(path)
    protocol = fid.protocol
    assert (protocol["n_generated"], protocol["n_reference"], protocol["reference_split"]) == (12, 4, "test")
    generated = StandInInception.features(to_uint8(samples, dataset.info), weights)[0].numpy()
    reference = StandInInception.features(to_uint8(dataset.split("test"), dataset.info), weights)[0].numpy()
    assert fid.value == pytest.approx(_scipy_fid(generated, reference), rel=1e-6)
    assert math.isfinite(values["kid"].value) and values["is"].value >= 1.0


def _cli(args, capsys):
    from dgmbench.cli import main

    code = main(args)
    return code, capsys.readouterr()


def _tiny_dcgan_run(tmp_path, *eval_options):
    return ["run", "--model", "dcgan", "--dataset", "cifar10/dequantized", "-o", "base_channels=4", "-o", "latent=4",
            "-t", "epochs=1", "-t", "batch_size=13", "-e", 'metrics=["sample_quality_fidelity"]',
            "-e", "fid_samples=8", "-e", "isc_splits=2", "-e", "kid_subsets=5", *eval_options,
            "--results-dir", str(tmp_path / "results"), "--workdir", str(tmp_path / "work"), "--no-progress"]


def test_missing_inception_weights_fail_before_training_with_one_line(fake_cifar, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "empty-hub"))  # no cached torch-fidelity weights
    code, out = _cli(_tiny_dcgan_run(tmp_path, "-e", f"inception_weights={str(tmp_path / 'absent.pt')!r}"), capsys)
    assert code == 2 and out.err.count("\n") == 1
    assert "absent.pt" in out.err and "inception_weights" in out.err
    code, out = _cli(_tiny_dcgan_run(tmp_path, "-e", 'fid_extractor="inception-v3-compat"'), capsys)
    assert code == 2 and out.err.count("\n") == 1
    assert "Inception-v3 weights are not available locally" in out.err and "inception_weights" in out.err
    assert not (tmp_path / "work" / "runs").exists() or not any((tmp_path / "work" / "runs").rglob("last.pt"))
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").rglob("*.json"))


def test_cli_run_records_inception_fid_with_the_weights_hash(fake_cifar, tmp_path, stand_in_inception, capsys):
    import json

    from dgmbench.metrics.features import INCEPTION, file_sha256

    path, _ = stand_in_inception
    code, out = _cli(_tiny_dcgan_run(tmp_path, "-e", f"inception_weights={str(path)!r}"), capsys)
    assert code == 0, out.err
    (record_file,) = (tmp_path / "results").rglob("dcgan__cifar10__dequantized__*.json")
    metrics = {m["name"]: m for m in json.loads(record_file.read_text())["metrics"]}
    assert metrics["fid"]["protocol"]["extractor"] == INCEPTION
    assert metrics["fid"]["protocol"]["weights_sha256"] == file_sha256(path)
    assert math.isfinite(metrics["fid"]["value"]) and metrics["fid"]["value"] > 0
