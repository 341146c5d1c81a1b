"""Feature extractors: committed domain classifiers (hash-checked weights, recorded accuracy,
batch-size independent float64 features) and the offline plumbing of torch-fidelity's Inception."""
from __future__ import annotations

import os
import shutil

import pytest
import torch
import torch_fidelity
from threadpoolctl import threadpool_limits
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

from dgmbench.data import load_dataset
from dgmbench.metrics import features
from dgmbench.metrics.features import (
    EXTRACTORS,
    INCEPTION,
    extract_features,
    extract_featuresdict,
    file_sha256,
    inception_weights_path,
    load_domain_weights,
)
from dgmbench.metrics.fidelity import to_uint8

DOMAIN = ["digits-cnn", "mnist-cnn", "fashion_mnist-cnn"]


@pytest.fixture(autouse=True, scope="module")
def _single_threaded_blas():
    # On an oversubscribed CPU, multi-threaded OpenBLAS spins and small matrix ops take seconds.
    with threadpool_limits(1):
        yield


@pytest.fixture(scope="module")
def digits_test():
    data = load_dataset("digits/17level")
    return to_uint8(data.split("test"), data.info), data.labels["test"]


@pytest.mark.parametrize("name", DOMAIN)
def test_committed_weights_match_registered_sha256_and_are_small(name):
    spec = EXTRACTORS.get(name)
    assert file_sha256(spec.weights_file) == spec.sha256
    assert spec.weights_file.stat().st_size < 1_000_000
    state = load_domain_weights(spec)  # torch.load(weights_only=True) inside
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    assert name in FEATURE_EXTRACTORS_REGISTRY  # torch-fidelity can use it by name


def test_tampered_weights_are_refused(tmp_path, monkeypatch):
    spec = EXTRACTORS.get("digits-cnn")
    tampered = tmp_path / spec.weights_file.name
    shutil.copy(spec.weights_file, tampered)
    with open(tampered, "r+b") as handle:
        handle.seek(-100, os.SEEK_END)
        byte = handle.read(1)
        handle.seek(-100, os.SEEK_END)
        handle.write(bytes([byte[0] ^ 1]))
    monkeypatch.setattr(features, "WEIGHTS_DIR", tmp_path)
    with pytest.raises(ValueError, match="sha256"):
        load_domain_weights(spec)


def test_digits_extractor_accuracy_is_the_recorded_one(digits_test):
    """Ground truth: the dataset's labels; the figure is the one in the features docstring."""
    images, labels = digits_test
    logits = extract_features(images, "digits-cnn", layer="logits")
    assert (logits.argmax(1) == labels).sum().item() == 358  # 0.9944 on the 360 test digits
    binary_data = load_dataset("digits/binary")
    binary = to_uint8(binary_data.split("test"), binary_data.info)
    binary_logits = extract_features(binary, "digits-cnn", layer="logits")
    assert (binary_logits.argmax(1) == labels).sum().item() == 348  # 0.9667


def test_feature_shapes_dtype_and_batch_size_independence(digits_test):
    images, _ = digits_test
    one_batch = extract_featuresdict(images, "digits-cnn", ["penultimate", "logits"], batch_size=500)
    small_batches = extract_featuresdict(images, "digits-cnn", ["penultimate", "logits"], batch_size=7)
    assert one_batch["penultimate"].shape == (360, EXTRACTORS.get("digits-cnn").feature_dim)
    assert one_batch["logits"].shape == (360, 10)
    for layer in ("penultimate", "logits"):
        assert one_batch[layer].dtype == torch.float64
        torch.testing.assert_close(one_batch[layer], small_batches[layer], rtol=1e-12, atol=1e-12)
    # the default layer is the FID layer
    torch.testing.assert_close(extract_features(images, "digits-cnn"), one_batch["penultimate"])


def test_features_equal_a_direct_forward_pass_of_the_network(digits_test):
    """Independent path: the bare SmallCNN on images / 255, no torch-fidelity in between."""
    images, _ = digits_test
    spec = EXTRACTORS.get("digits-cnn")
    network = features.SmallCNN.for_spec(spec).double()
    network.load_state_dict(load_domain_weights(spec))
    with torch.no_grad():
        penultimate, logits = network(images[:50].double() / 255)
    torch.testing.assert_close(extract_features(images[:50], "digits-cnn"), penultimate)
    torch.testing.assert_close(extract_features(images[:50], "digits-cnn", layer="logits"), logits)


def test_domain_extractor_rejects_wrong_inputs(digits_test):
    images, _ = digits_test
    with pytest.raises(ValueError, match="shape"):
        extract_features(torch.zeros(2, 1, 28, 28, dtype=torch.uint8), "digits-cnn")
    with pytest.raises(TypeError):
        features.UInt8Images(images.float())
    with pytest.raises(ValueError, match="committed"):
        torch_fidelity.calculate_metrics(
            input1=features.UInt8Images(images), feature_extractor="digits-cnn", isc=True,
            feature_extractor_weights_path="/nonexistent.pt", cuda=False, verbose=False,
        )


def test_unknown_extractor_lists_valid_names():
    with pytest.raises(KeyError, match="digits-cnn"):
        EXTRACTORS.get("digit-cnn")


def test_inception_never_downloads_unless_allowed(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    with pytest.raises(FileNotFoundError, match="not available locally"):
        inception_weights_path(None, allow_download=False)
    with pytest.raises(FileNotFoundError):
        inception_weights_path(str(tmp_path / "missing.pt"))


def _no_network(*args, **kwargs):
    raise AssertionError("tried to download")


# test-set images the extractor classifies correctly, as printed by scripts/train_domain_extractor.py
RECORDED_CORRECT = {"mnist-cnn": 9794, "fashion_mnist-cnn": 8561}


@pytest.mark.slow
@pytest.mark.parametrize("name, board", [("mnist-cnn", "mnist/8bit"), ("fashion_mnist-cnn", "fashion_mnist/8bit")])
def test_mnist_extractors_accuracy_is_the_recorded_one(name, board):
    data = load_dataset(board)
    images = to_uint8(data.split("test"), data.info)
    logits = extract_features(images, name, layer="logits")
    assert (logits.argmax(1) == data.labels["test"]).sum().item() == RECORDED_CORRECT[name]


@pytest.mark.slow
def test_inception_offline_plumbing_with_a_local_weights_file(tmp_path, monkeypatch):
    """Plumbing only, NOT reference values: a weights file with torch-fidelity's Inception-v3
    architecture and *random* weights, written here, goes through the offline path (no
    download is possible) and gives exactly torch-fidelity's own features for that file,
    with grey images repeated to RGB."""
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    monkeypatch.setattr(torch.hub, "download_url_to_file", _no_network)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", _no_network)
    import torch_fidelity.feature_extractor_inceptionv3 as inception_module

    monkeypatch.setattr(inception_module, "load_state_dict_from_url", _no_network)

    empty = tmp_path / "empty.pt"
    torch.save({}, empty)
    with monkeypatch.context() as patch:  # build the architecture without any weights
        patch.setattr(FeatureExtractorInceptionV3, "load_state_dict", lambda self, state, strict=True: None)
        torch.manual_seed(0)
        random_inception = FeatureExtractorInceptionV3(INCEPTION, ["2048"], feature_extractor_weights_path=str(empty))
    weights = tmp_path / "inception-random.pt"
    torch.save(random_inception.state_dict(), weights)

    grey = torch.randint(0, 256, (3, 1, 8, 8), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    ours = extract_featuresdict(grey, INCEPTION, ["2048", "logits_unbiased"], weights_path=str(weights))
    assert ours["2048"].shape == (3, 2048) and ours["logits_unbiased"].shape == (3, 1008)

    reference = FeatureExtractorInceptionV3(INCEPTION, ["2048"], feature_extractor_weights_path=str(weights))
    with torch.no_grad():
        (expected,) = reference(grey.expand(-1, 3, -1, -1).contiguous())
    torch.testing.assert_close(ours["2048"], expected.double(), rtol=0, atol=0)
    assert features.weights_sha256(INCEPTION, str(weights)) == file_sha256(weights)
