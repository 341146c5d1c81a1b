"""CIFAR-10 (Krizhevsky 2009): 60,000 32x32 RGB images in 10 classes, 8-bit.

Read from the canonical python-pickle batches. Split: ``data_batch_1`` .. ``data_batch_5``
in order give 50,000 training images; the first 45,000 are ``train``, the last 5,000 (the
second half of ``data_batch_5``) ``valid``; ``test_batch`` (10,000) is ``test``. Likelihood
papers train on all 50,000; our ``train`` split is 5,000 smaller so that early stopping
never looks at test data. Variants ``8bit`` (levels 0..255) and ``dequantized``
((level + u) / 256), as for MNIST (see dgmbench.data.mnist).

Sources, in order:

* offline (``DGMBENCH_DATA_DIR`` set): ``<dir>/cifar10/cifar-10-python.tar.gz``, verified by
  sha256; or, if that is absent, the extracted ``<dir>/cifar10/cifar-10-batches-py/``
  whose batch files are verified against torchvision's published md5s (no sha256 of the
  extracted batches is published).
* online: the archive is downloaded into the cache and verified by sha256.

The archive's sha256 is the one Keras' ``keras.datasets.cifar10`` loader verifies; its md5
(c58f30108f718f92721af3b95e74349a) is torchvision's. No copy of CIFAR-10 was available
while writing this loader, so the checksum path has only been exercised on synthetic
batches; it is verified for real on the first real download.

Batch format: a pickled dict (Python 2 ``cPickle``; loaded with latin1 encoding) with
``data`` a uint8 (N, 3072) array whose rows are the red, green and blue 32x32 planes, each
row-major, and ``labels`` a list of N ints in 0..9. Unpickling only admits numpy's array
reconstruction, so a doctored file cannot run code.
"""
from __future__ import annotations

import hashlib
import io
import pickle
import tarfile
from pathlib import Path
from typing import IO

import numpy as np

from dgmbench.data.base import Dataset, DatasetSpec, register_dataset
from dgmbench.data.download import (
    DataFileError,
    MissingDataError,
    RemoteFile,
    cached_arrays,
    content_digest,
    data_dir,
    fetch_file,
    verify,
)
from dgmbench.data.mnist import image_variant

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = RemoteFile(
    "cifar-10-python.tar.gz",
    URL,
    sha256="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    size=170498071,
)
BATCH_DIR = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
BATCH_MD5 = {  # torchvision.datasets.CIFAR10
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
N_VALID = 5_000  # the last 5,000 training images
SHAPE = (3, 32, 32)
DESCRIPTION = (
    "CIFAR-10 32x32 RGB; train = first 45k of data_batch_1..5, valid = last 5k of data_batch_5, "
    "test = test_batch"
)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays, nothing else."""

    NUMPY_NAMES = {"_reconstruct", "ndarray", "dtype", "scalar"}

    def find_class(self, module: str, name: str):
        numpy_array_part = module.split(".")[0] == "numpy" and name in self.NUMPY_NAMES
        # protocol-2 pickles written by Python 3 spell bytes objects as _codecs.encode(...)
        if numpy_array_part or (module, name) == ("_codecs", "encode"):
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"CIFAR-10 batch refers to {module}.{name}, which a data batch never does")


def read_batch(file: IO[bytes]) -> tuple[np.ndarray, np.ndarray]:
    """One pickled batch -> uint8 images (N, 3, 32, 32) and int64 labels (N,)."""
    batch = _NumpyOnlyUnpickler(file, encoding="latin1").load()
    # Python 2 pickles give str keys under latin1 decoding; Python 3 ones may have bytes keys.
    batch = {key.decode() if isinstance(key, bytes) else key: value for key, value in batch.items()}
    data = np.asarray(batch["data"], dtype=np.uint8)
    labels = np.asarray(batch["labels"], dtype=np.int64)
    if data.ndim != 2 or data.shape[1] != np.prod(SHAPE) or len(labels) != len(data):
        raise DataFileError(f"not a CIFAR-10 batch: data {data.shape}, {len(labels)} labels")
    return data.reshape(-1, *SHAPE), labels


def _combine(batches: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    def stack(names):
        return (
            np.concatenate([batches[name][0] for name in names]),
            np.concatenate([batches[name][1] for name in names]),
        )

    train_images, train_labels = stack(TRAIN_BATCHES)
    test_images, test_labels = stack(TEST_BATCHES)
    return dict(train_images=train_images, train_labels=train_labels, test_images=test_images, test_labels=test_labels)


def parse_archive(path: Path) -> dict[str, np.ndarray]:
    with tarfile.open(path, "r:gz") as archive:
        batches = {}
        for name in TRAIN_BATCHES + TEST_BATCHES:
            member = archive.extractfile(f"{BATCH_DIR}/{name}")
            if member is None:
                raise DataFileError(f"{path} has no file {BATCH_DIR}/{name}")
            batches[name] = read_batch(io.BytesIO(member.read()))
    return _combine(batches)


def parse_directory(directory: Path) -> dict[str, np.ndarray]:
    batches = {}
    for name in TRAIN_BATCHES + TEST_BATCHES:
        with open(directory / name, "rb") as f:
            batches[name] = read_batch(f)
    return _combine(batches)


def _directory_key(md5s: dict[str, str]) -> str:
    """One checksum for the extracted batches: sha256 of their md5s in name order."""
    return hashlib.sha256(" ".join(md5s[name] for name in sorted(md5s)).encode()).hexdigest()


def _directory_content_key(directory: Path) -> str:
    """:func:`_directory_key` of the batches' md5s hashed afresh from their content."""
    return _directory_key({name: content_digest(directory / name, "md5") for name in BATCH_MD5})


def _arrays() -> dict[str, np.ndarray]:
    offline = data_dir()
    extracted = offline / "cifar10" / BATCH_DIR if offline is not None else None
    if extracted is not None and not (offline / "cifar10" / ARCHIVE.filename).is_file():
        if not extracted.is_dir():
            raise MissingDataError(
                f"CIFAR-10 not found in the offline data directory: expected "
                f"{offline / 'cifar10' / ARCHIVE.filename} or the extracted {extracted}/ "
                f"(data_batch_1..5, test_batch). Copy the archive from {URL} there."
            )
        for name, md5 in BATCH_MD5.items():
            path = extracted / name
            if not path.is_file():
                raise MissingDataError(f"CIFAR-10 batch missing: {path}. Re-extract it from {URL}.")
            verify(path, RemoteFile(name, URL, md5=md5))
        return cached_arrays(extracted, _directory_key(BATCH_MD5), parse_directory, _directory_content_key)
    archive = fetch_file("cifar10", ARCHIVE)
    return cached_arrays(archive, ARCHIVE.checksum, parse_archive)


def _load(variant: str) -> Dataset:
    arrays = _arrays()
    n_train = len(arrays["train_images"]) - N_VALID
    levels = {
        "train": arrays["train_images"][:n_train],
        "valid": arrays["train_images"][n_train:],
        "test": arrays["test_images"],
    }
    labels = {
        "train": arrays["train_labels"][:n_train],
        "valid": arrays["train_labels"][n_train:],
        "test": arrays["test_labels"],
    }
    return image_variant("cifar10", variant, levels, labels, num_classes=10, description=DESCRIPTION)


register_dataset(
    DatasetSpec(
        name="cifar10",
        variants=("8bit", "dequantized"),
        loader=_load,
        description=DESCRIPTION,
        source=URL,
    )
)
