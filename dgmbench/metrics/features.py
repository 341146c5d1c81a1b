"""Feature extractors for sample-quality metrics (FID, KID, IS, precision/recall/density/coverage).

Every extractor is a torch-fidelity feature extractor (``torch_fidelity.register_feature_extractor``),
so ``torch_fidelity.calculate_metrics(feature_extractor=NAME, ...)`` and dgmbench compute from
the very same features. Every extractor is identified by its name *and* the sha256 of its
weights file, and every metric value records both.

Extractors
----------
``inception-v3-compat``
    torch-fidelity's port of the TF Inception-v3 used by the original FID/IS code.
    Input: uint8 RGB (N, 3, H, W) of any size, resized inside the extractor to 299x299 with
    torch-fidelity's TF1-compatible bilinear interpolation. Grey images are repeated to 3
    channels first. Layers: ``2048`` (pool3, FID/KID), ``logits_unbiased`` (IS). Weights come
    from a local file when one is given (``feature_extractor_weights_path``), else from
    torch-fidelity's URL into torch hub's cache, where torch-fidelity's own download puts
    them, but only when downloading is explicitly allowed: nothing here downloads by default.
    The sha256 of the weights file used is recorded with every value.

Domain extractors (``digits-cnn``, ``mnist-cnn``, ``fashion_mnist-cnn``)
    A small CNN classifier trained on the dataset's labels by ``scripts/train_domain_extractor.py``
    (fixed seed), weights committed in ``dgmbench/metrics/weights/<name>.pt`` and checked against
    the sha256 stored below before ``torch.load(weights_only=True)``. Input: uint8 grey images
    at native resolution (N, 1, H, W) (no resizing), scaled to [0, 1]. The network runs in
    float64, so features do not depend on the batch size beyond float64 round-off.

    Architecture: blocks of [3x3 conv (padding 1) -> ReLU -> 2x2 max-pool], flatten,
    Linear -> ReLU (the *penultimate* layer, 128 features, used for FID/KID/PRDC),
    Linear -> 10 class logits (used for the IS of a domain classifier, as in e.g. the
    "MNIST score"). Training half-binarizes its inputs (see the script), so the same extractor
    serves the grey-level and the binary boards of a dataset. Some ReLU units of the
    penultimate layer never fire (on the test images: 55 of 128 for digits, 42 for MNIST, 51 for
    Fashion-MNIST); they add nothing to FID (KID's kernel scale 1/d counts all 128).

    * ``digits-cnn``         8x8,   blocks (32, 64),     test accuracy 0.9944 (358/360, grey levels),
                             0.9667 (348/360, the binary variant) on the dgmbench digits test split
                             (60 epochs on the 1,257 training digits).
    * ``mnist-cnn``          28x28, blocks (16, 32, 32), test accuracy 0.9794 (9794/10000, grey levels),
                             0.9714 (dynamically binarized) on the official 10,000 MNIST test images
                             (1 epoch on the 60,000 training images).
    * ``fashion_mnist-cnn``  28x28, blocks (16, 32, 32), test accuracy 0.8561 (8561/10000, grey levels),
                             0.8226 (dynamically binarized) on the official 10,000 Fashion-MNIST test
                             images (2 epochs on the 60,000 training images).

``extract_features(images_uint8, extractor_name, batch_size, device)`` returns (n, d) float64
features of the FID layer (or another ``layer=``) and is what other metrics (precision/recall,
density/coverage) build on.
"""
from __future__ import annotations

import contextlib
import functools
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import torch
import torch_fidelity
from torch import nn
from torch.utils.data import Dataset as TorchDataset
from torch_fidelity.feature_extractor_base import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import URL_INCEPTION_V3
from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY
from torch_fidelity.utils import create_feature_extractor, get_featuresdict_from_dataset

from dgmbench.registry import Registry
from dgmbench.train.checkpoint import load_tensor_file

WEIGHTS_DIR = Path(__file__).parent / "weights"
INCEPTION = "inception-v3-compat"


@dataclass(frozen=True)
class ExtractorSpec:
    """What a result must record about its feature extractor, and how to build it."""

    name: str  # torch-fidelity registry name
    image_shape: tuple[int, int, int] | None  # (C, H, W) the extractor takes; None: any size
    fid_layer: str  # features for FID / KID / precision-recall
    isc_layer: str  # logits for the Inception Score
    feature_dim: int
    resize: str  # how images reach the network's input size
    # domain extractors only
    blocks: tuple[int, ...] = ()
    hidden: int = 0
    num_classes: int = 0
    sha256: str = ""
    test_accuracy: str = ""

    @property
    def is_domain(self) -> bool:
        return bool(self.blocks)

    @property
    def weights_file(self) -> Path:
        return WEIGHTS_DIR / f"{self.name}.pt"


EXTRACTORS: Registry[ExtractorSpec] = Registry("feature extractor")

EXTRACTORS.register(
    INCEPTION,
    ExtractorSpec(
        name=INCEPTION,
        image_shape=None,
        fid_layer="2048",
        isc_layer="logits_unbiased",
        feature_dim=2048,
        resize="torch-fidelity TF1-compatible bilinear resize to 299x299; grey repeated to RGB",
    ),
)


def _domain(name, image_size, blocks, sha256, test_accuracy):
    spec = ExtractorSpec(
        name=name,
        image_shape=(1, image_size, image_size),
        fid_layer="penultimate",
        isc_layer="logits",
        feature_dim=128,
        resize=f"none (native {image_size}x{image_size} grey)",
        blocks=blocks,
        hidden=128,
        num_classes=10,
        sha256=sha256,
        test_accuracy=test_accuracy,
    )
    EXTRACTORS.register(name, spec)
    return spec


_domain(
    "digits-cnn", 8, (32, 64),
    sha256="4b38018290818fea9eb93a5ade27f1da754a6efd2514a3658b30abbc1bf8c5db",
    test_accuracy="0.9944 grey / 0.9667 binary (digits test split, 360 images)",
)
_domain(
    "mnist-cnn", 28, (16, 32, 32),
    sha256="12affa9ee77515b4db3d4b05ff92835bf43aa0ab78f9a5d68cd1723b4f565950",
    test_accuracy="0.9794 grey / 0.9714 binarized (MNIST test, 10,000 images)",
)
_domain(
    "fashion_mnist-cnn", 28, (16, 32, 32),
    sha256="27e3a0dd50e5d465f443613d15c8c50600384dfefc5fd19c28c3775e2238618f",
    test_accuracy="0.8561 grey / 0.8226 binarized (Fashion-MNIST test, 10,000 images)",
)

# dataset registry name -> its domain extractor (binarized MNIST is MNIST, binary)
DOMAIN_EXTRACTOR_FOR_DATASET = {
    "digits": "digits-cnn",
    "mnist": "mnist-cnn",
    "binarized_mnist": "mnist-cnn",
    "fashion_mnist": "fashion_mnist-cnn",
}


class SmallCNN(nn.Module):
    """[conv3x3 -> ReLU -> maxpool2] * len(blocks) -> Linear -> ReLU (penultimate) -> Linear (logits)."""

    def __init__(self, image_size: int, blocks: tuple[int, ...], hidden: int, num_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        channels, size = 1, image_size
        for width in blocks:
            layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
            channels, size = width, size // 2
        layers += [nn.Flatten(), nn.Linear(channels * size * size, hidden), nn.ReLU()]
        self.body = nn.Sequential(*layers)
        self.head = nn.Linear(hidden, num_classes)

    def forward(self, images01: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """images in [0, 1], (N, 1, H, W) -> (penultimate features, logits)."""
        penultimate = self.body(images01)
        return penultimate, self.head(penultimate)

    @classmethod
    def for_spec(cls, spec: ExtractorSpec) -> SmallCNN:
        return cls(spec.image_shape[-1], spec.blocks, spec.hidden, spec.num_classes)


def file_sha256(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_domain_weights(spec: ExtractorSpec) -> dict[str, torch.Tensor]:
    """The committed state dict of a domain extractor, refused if its sha256 is not the registered one."""
    path = spec.weights_file
    if not path.exists():
        raise FileNotFoundError(
            f"weights of feature extractor {spec.name!r} are missing at {path}; "
            f"they are committed with dgmbench (or rebuilt by scripts/train_domain_extractor.py)"
        )
    actual = file_sha256(path)
    if actual != spec.sha256:
        raise ValueError(
            f"weights file {path} has sha256 {actual}, but {spec.name!r} is registered with "
            f"{spec.sha256}: results from it would not be comparable"
        )
    return load_tensor_file(path, what="weights file")


class DomainFeatureExtractor(FeatureExtractorBase):
    """torch-fidelity wrapper of a domain classifier: uint8 (N, 1, H, W) -> penultimate, logits (float64)."""

    def __init__(self, name, features_list, feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is not None:
            raise ValueError(
                f"{name!r} only runs with its committed, hash-checked weights; "
                f"feature_extractor_weights_path is for Inception"
            )
        self.spec = EXTRACTORS.get(name)
        self.network = SmallCNN.for_spec(self.spec)
        self.network.load_state_dict(load_domain_weights(self.spec))
        # float64 end to end: features (hence FID) independent of batch size and summation order
        self.network.double()
        self.requires_grad_(False)
        self.eval()

    @staticmethod
    def get_provided_features_list():
        return ("penultimate", "logits")

    @staticmethod
    def get_default_feature_layer_for_metric(metric):
        return {"isc": "logits", "fid": "penultimate", "kid": "penultimate", "prc": "penultimate"}[metric]

    @staticmethod
    def can_be_compiled():
        return False

    @staticmethod
    def get_dummy_input_for_compile():
        return None

    def forward(self, images):
        if not (torch.is_tensor(images) and images.dtype == torch.uint8):
            raise TypeError(f"{self.name} expects uint8 images, got {getattr(images, 'dtype', type(images))}")
        if tuple(images.shape[1:]) != self.spec.image_shape:
            raise ValueError(
                f"{self.name} takes images of shape (N, {', '.join(map(str, self.spec.image_shape))}), "
                f"got {tuple(images.shape)}"
            )
        penultimate, logits = self.network(images.to(torch.float64) / 255.0)
        features = {"penultimate": penultimate, "logits": logits}
        return tuple(features[name] for name in self.features_list)


for _name, _spec in EXTRACTORS.items():
    if _spec.is_domain and _name not in FEATURE_EXTRACTORS_REGISTRY:
        torch_fidelity.register_feature_extractor(_name, DomainFeatureExtractor)


# --- Inception weights: a local file, or torch-fidelity's download when allowed ----------------
def inception_weights_path(weights_path: str | None = None, allow_download: bool = False) -> str:
    """Path of the Inception-v3 weights: `weights_path`, else torch hub's cached copy of
    torch-fidelity's file, downloaded only if `allow_download`."""
    if weights_path is not None:
        if not os.path.exists(weights_path):
            raise FileNotFoundError(f"Inception weights file {weights_path} does not exist")
        return str(weights_path)
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", os.path.basename(URL_INCEPTION_V3))
    if not os.path.exists(cached):
        if not allow_download:
            raise FileNotFoundError(
                f"Inception-v3 weights are not available locally ({cached}); pass a weights file "
                f"(setting 'inception_weights') or allow torch-fidelity's download (setting 'inception': True)"
            )
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        torch.hub.download_url_to_file(URL_INCEPTION_V3, cached)
    return cached


@functools.lru_cache(maxsize=8)
def _cached_sha256(path: str, size: int, mtime_ns: int) -> str:
    return file_sha256(path)


def weights_sha256(extractor_name: str, weights_path: str | None = None) -> str:
    spec = EXTRACTORS.get(extractor_name)
    if spec.is_domain:
        return spec.sha256
    stat = os.stat(weights_path)
    return _cached_sha256(str(weights_path), stat.st_size, stat.st_mtime_ns)


# --- extraction ---------------------------------------------------------------------------------
class UInt8Images(TorchDataset):
    """A uint8 image tensor (N, C, H, W) as the torch Dataset torch-fidelity consumes."""

    def __init__(self, images: torch.Tensor):
        if images.dtype != torch.uint8 or images.dim() != 4:
            raise TypeError(f"expected uint8 images (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        self.images = images.cpu()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return self.images[index]


def prepare_images(images_uint8: torch.Tensor, extractor_name: str) -> torch.Tensor:
    """Channel handling per extractor: Inception takes RGB (grey repeated to 3 channels);
    domain extractors take their native grey images unchanged."""
    spec = EXTRACTORS.get(extractor_name)
    if not spec.is_domain and images_uint8.shape[1] == 1:
        return images_uint8.expand(-1, 3, -1, -1).contiguous()
    return images_uint8


def extract_featuresdict(
    images_uint8: torch.Tensor,
    extractor_name: str,
    layers: list[str] | tuple[str, ...] | None = None,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
    weights_path: str | None = None,
    allow_download: bool = False,
) -> dict[str, torch.Tensor]:
    """layer -> (n, d) float64 features of uint8 images, through torch-fidelity's own extractor
    and batching (`get_featuresdict_from_dataset`)."""
    spec = EXTRACTORS.get(extractor_name)
    layers = list(layers or [spec.fid_layer])
    device = torch.device(device)
    cuda = device.type == "cuda"
    kwargs = {"verbose": False}
    if not spec.is_domain:
        kwargs["feature_extractor_weights_path"] = inception_weights_path(weights_path, allow_download)
    # fork_rng: torch's DataLoader draws its base seed from the global generator; feature
    # extraction must not shift the caller's random stream.
    with torch.cuda.device(device) if cuda else contextlib.nullcontext(), torch.random.fork_rng(devices=[]):
        extractor = create_feature_extractor(extractor_name, layers, cuda=cuda, **kwargs)
        features = get_featuresdict_from_dataset(
            UInt8Images(prepare_images(images_uint8, extractor_name)),
            extractor,
            batch_size,
            cuda,
            True,  # save_cpu_ram: no DataLoader worker processes
            False,  # verbose
        )
    return {layer: features[layer].to(torch.float64) for layer in layers}


def extract_features(
    images_uint8: torch.Tensor,
    extractor_name: str,
    batch_size: int = 500,
    device: torch.device | str = "cpu",
    layer: str | None = None,
    weights_path: str | None = None,
    allow_download: bool = False,
) -> torch.Tensor:
    """(n, d) float64 features (default: the extractor's FID layer) of uint8 images (n, C, H, W)."""
    layer = layer or EXTRACTORS.get(extractor_name).fid_layer
    return extract_featuresdict(
        images_uint8, extractor_name, [layer], batch_size, device, weights_path, allow_download
    )[layer]

