"""MNIST, Fashion-MNIST and Larochelle's fixed binarization of MNIST.

``mnist`` and ``fashion_mnist`` (LeCun et al. 1998; Xiao et al. 2017): 28x28 grey images
with 256 levels and 10 classes, read from the canonical IDX files. Split: the first 50,000
images of the training file are ``train``, its last 10,000 ``valid``, the 10,000 images of
the test file ``test`` (the usual 50k/10k/10k split of the MNIST likelihood literature).
Variants:

* ``dynamic``     binary, x ~ Bernoulli(level / 255) per pixel (Salakhutdinov & Murray 2008).
                  The training split is resampled every epoch (seed 1000 + epoch); valid and
                  test are one fixed, seeded binarization, so test numbers are comparable.
* ``8bit``        the levels 0..255 (discrete, 256 levels).
* ``dequantized`` (level + u) / 256, u ~ U(0,1) (continuous in [0, 1]); fresh noise for the
                  training split every epoch, fixed seeded noise for valid/test.

``binarized_mnist`` (Larochelle & Murray 2011), variant ``fixed``: the single fixed binary
sample of MNIST that the NADE / DARN / PixelCNN papers report on, as three ``.amat`` text
files of 50,000 / 10,000 / 10,000 rows (train / valid / test) with 784 values in {0, 1}.
It has no labels.

The helper :func:`image_variant` builds these variants from uint8 levels and is shared by
every 8-bit image dataset (cifar10, image_patches).
"""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch

from dgmbench.data.base import DataInfo, Dataset, DatasetSpec, register_dataset
from dgmbench.data.digits import dequantize
from dgmbench.data.download import DataFileError, RemoteFile, cached_array, fetch_file

N_VALID = 10_000  # the last 10,000 training images
EIGHT_BIT_LEVELS = 256
SPLIT_SEEDS = {"train": 0, "valid": 1, "test": 2}  # binarization / dequantization noise
EPOCH_SEED_OFFSET = 1000  # training-split noise of epoch e uses seed 1000 + e
IMAGE_VARIANTS = ("dynamic", "8bit", "dequantized")

MNIST_URL = "http://yann.lecun.com/exdb/mnist/"
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"


def _idx_files(base_url: str, checksums: dict[str, tuple[str, int]]) -> dict[str, RemoteFile]:
    return {
        name: RemoteFile(name, base_url + name, sha256=sha256, size=size)
        for name, (sha256, size) in checksums.items()
    }


MNIST_FILES = _idx_files(
    MNIST_URL,
    {
        "train-images-idx3-ubyte.gz": ("440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609", 9912422),
        "train-labels-idx1-ubyte.gz": ("3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c", 28881),
        "t10k-images-idx3-ubyte.gz": ("8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6", 1648877),
        "t10k-labels-idx1-ubyte.gz": ("f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6", 4542),
    },
)
FASHION_MNIST_FILES = _idx_files(
    FASHION_URL,
    {
        "train-images-idx3-ubyte.gz": ("3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84", 26421880),
        "train-labels-idx1-ubyte.gz": ("a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845", 29515),
        "t10k-images-idx3-ubyte.gz": ("346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073", 4422102),
        "t10k-labels-idx1-ubyte.gz": ("67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5", 5148),
    },
)
BINARIZED_MNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
BINARIZED_MNIST_FILES = {
    split: RemoteFile(
        f"binarized_mnist_{split}.amat", f"{BINARIZED_MNIST_URL}binarized_mnist_{split}.amat", sha256=sha256, size=size
    )
    for split, sha256, size in (
        ("train", "ad693b29f94c14277b095f5238ddefbbdaaae0939789dd2f4f0205278cee3e4d", 78400000),
        ("valid", "1de3d397c40fe8eeb33dafd4099a1f665ec01e96d9be234aaeeac8a34930e2e2", 15680000),
        ("test", "e6687bfea3f820c174f33b7865140b2a2dd2930ef786f35d45795fc193b5ab2c", 15680000),
    )
}


# --- parsing -----------------------------------------------------------------------------


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzipped) as a uint8 array: magic 0x0000 08 <ndim>, then
    ndim big-endian uint32 sizes, then the data (http://yann.lecun.com/exdb/mnist/)."""
    raw = Path(path).read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[:2] != b"\0\0" or raw[2] != 0x08:
        raise DataFileError(f"{path} is not an unsigned-byte IDX file (magic {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    if len(raw) - header != int(np.prod(shape)):
        raise DataFileError(f"{path}: IDX header says {shape} but holds {len(raw) - header} bytes")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def read_amat(path: Path, dim: int = 784) -> np.ndarray:
    """Larochelle's binary ``.amat``: one example per line, `dim` values '0'/'1' separated
    by single spaces. Every value is one character plus one separator, so the file is a
    (N, 2*dim) byte table: parse it with array ops instead of a text parser."""
    raw = np.fromfile(path, dtype=np.uint8)
    if raw.size % (2 * dim):
        raise DataFileError(f"{path}: {raw.size} bytes is not a whole number of {dim}-value lines")
    table = raw.reshape(-1, 2 * dim)
    values, separators = table[:, 0::2], table[:, 1::2]
    expected_separators = np.full(dim, ord(" "), dtype=np.uint8)
    expected_separators[-1] = ord("\n")
    if not (separators == expected_separators).all() or not np.isin(values, (ord("0"), ord("1"))).all():
        raise DataFileError(f"{path} is not a binary .amat file of {dim} values per line")
    return values - np.uint8(ord("0"))


# --- variants shared by every 8-bit image dataset -------------------------------------


def binarize(levels: torch.Tensor, seed: int) -> torch.Tensor:
    """x ~ Bernoulli(level / 255), reproducible from `seed`."""
    generator = torch.Generator().manual_seed(seed)
    uniform = torch.rand(levels.shape, generator=generator)  # 3x faster than torch.bernoulli
    return (uniform < levels / (EIGHT_BIT_LEVELS - 1)).float()


def image_variant(
    name: str,
    variant: str,
    levels: dict[str, np.ndarray],
    labels: dict[str, np.ndarray] | None = None,
    num_classes: int | None = None,
    description: str = "",
) -> Dataset:
    """The ``dynamic`` / ``8bit`` / ``dequantized`` Dataset from uint8 (N, C, H, W) splits."""
    levels_t = {split: torch.from_numpy(np.array(x)) for split, x in levels.items()}  # owned, writable
    labels_t = {split: torch.from_numpy(y.astype(np.int64)) for split, y in (labels or {}).items()}
    common = dict(name=name, variant=variant, shape=tuple(levels["test"].shape[1:]), num_classes=num_classes)
    train_levels = levels_t["train"]
    if variant == "dynamic":
        info = DataInfo(value_type="binary", num_levels=2, dynamic_binarization=True, **common)
        splits = {split: binarize(x, SPLIT_SEEDS[split]) for split, x in levels_t.items()}

        def resample(epoch: int) -> torch.Tensor:
            return binarize(train_levels, EPOCH_SEED_OFFSET + epoch)

        return Dataset(info, splits, labels_t, resample_train=resample, description=description)
    if variant == "8bit":
        info = DataInfo(value_type="discrete", num_levels=EIGHT_BIT_LEVELS, **common)
        return Dataset(info, {split: x.float() for split, x in levels_t.items()}, labels_t, description=description)
    if variant == "dequantized":
        info = DataInfo(value_type="continuous", dequantization_levels=EIGHT_BIT_LEVELS, **common)
        splits = {split: dequantize(x.float(), EIGHT_BIT_LEVELS, SPLIT_SEEDS[split]) for split, x in levels_t.items()}

        def resample(epoch: int) -> torch.Tensor:
            return dequantize(train_levels.float(), EIGHT_BIT_LEVELS, EPOCH_SEED_OFFSET + epoch)

        return Dataset(info, splits, labels_t, resample_train=resample, description=description)
    raise AssertionError(variant)  # DatasetSpec.load has already validated the variant


# --- MNIST and Fashion-MNIST ---------------------------------------------------------------


def _load_idx_dataset(name: str, files: dict[str, RemoteFile]):
    arrays = {}
    for filename, remote in files.items():
        path = fetch_file(name, remote)
        arrays[filename] = cached_array(path, remote.checksum, read_idx)
    train_images, train_labels = arrays["train-images-idx3-ubyte.gz"], arrays["train-labels-idx1-ubyte.gz"]
    n_train = len(train_images) - N_VALID
    levels = {
        "train": train_images[:n_train, None],
        "valid": train_images[n_train:, None],
        "test": arrays["t10k-images-idx3-ubyte.gz"][:, None],
    }
    labels = {
        "train": train_labels[:n_train],
        "valid": train_labels[n_train:],
        "test": arrays["t10k-labels-idx1-ubyte.gz"],
    }
    return levels, labels


def _mnist_loader(name: str, files: dict[str, RemoteFile], description: str):
    def load(variant: str) -> Dataset:
        levels, labels = _load_idx_dataset(name, files)
        return image_variant(name, variant, levels, labels, num_classes=10, description=description)

    return load


_SPLIT_TEXT = "train = first 50k of the training file, valid = its last 10k, test = the 10k test file"
MNIST_DESCRIPTION = f"MNIST 28x28 handwritten digits; {_SPLIT_TEXT}"
FASHION_DESCRIPTION = f"Fashion-MNIST 28x28 clothing images; {_SPLIT_TEXT}"

register_dataset(
    DatasetSpec(
        name="mnist",
        variants=IMAGE_VARIANTS,
        loader=_mnist_loader("mnist", MNIST_FILES, MNIST_DESCRIPTION),
        description=MNIST_DESCRIPTION,
        source=MNIST_URL,
    )
)
register_dataset(
    DatasetSpec(
        name="fashion_mnist",
        variants=IMAGE_VARIANTS,
        loader=_mnist_loader("fashion_mnist", FASHION_MNIST_FILES, FASHION_DESCRIPTION),
        description=FASHION_DESCRIPTION,
        source=FASHION_URL,
    )
)


# --- Larochelle's binarized MNIST -----------------------------------------------------------

BINARIZED_DESCRIPTION = "Binarized MNIST (Larochelle & Murray 2011), fixed binarization; 50k/10k/10k as published"


def _load_binarized(variant: str) -> Dataset:
    splits = {}
    for split, remote in BINARIZED_MNIST_FILES.items():
        path = fetch_file("binarized_mnist", remote)
        bits = cached_array(path, remote.checksum, read_amat)
        splits[split] = torch.from_numpy(bits).reshape(-1, 1, 28, 28).float()
    info = DataInfo(name="binarized_mnist", variant=variant, shape=(1, 28, 28), value_type="binary", num_levels=2)
    return Dataset(info, splits, description=BINARIZED_DESCRIPTION)


register_dataset(
    DatasetSpec(
        name="binarized_mnist",
        variants=("fixed",),
        loader=_load_binarized,
        description=BINARIZED_DESCRIPTION,
        source=BINARIZED_MNIST_URL,
    )
)
