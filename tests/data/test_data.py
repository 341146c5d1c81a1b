"""Datasets: registry, real-data loaders against independent parsers and published facts,
checksum / missing-file / cache-refetch plumbing, CIFAR-10's pickle format, the embedded
image patches, and the toy 2-D densities against quadrature and sample histograms.

Real files are read from DGMBENCH_DATA_DIR (default <repo>/../shared/data, the offline
copies listed in its MANIFEST.md); nothing here touches the network.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import math
import os
import pickle
import shutil
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from dgmbench.data import DATASETS, load_dataset
from dgmbench.data import cifar10, download, image_patches, mnist, toy2d
from dgmbench.data.download import ChecksumError, MissingDataError, RemoteFile

REPO = Path(__file__).resolve().parents[2]
SHARED_DATA = Path(os.environ.get("DGMBENCH_DATA_DIR") or REPO.parent / "shared" / "data")
needs_shared_data = pytest.mark.skipif(
    not (SHARED_DATA / "MANIFEST.md").is_file(), reason=f"no offline data copy at {SHARED_DATA}"
)


@pytest.fixture(scope="module", autouse=True)
def data_environment(tmp_path_factory):
    """Offline data dir for every test, and one parse cache for the module so that each
    large file is parsed once."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("DGMBENCH_DATA_DIR", str(SHARED_DATA))
        patch.setenv("DGMBENCH_CACHE_DIR", str(tmp_path_factory.mktemp("dgmbench-cache")))
        yield


@pytest.fixture(scope="module")
def loaded():
    """load_dataset with the offline data, each board loaded once (MNIST-sized
    boards take a second or more on a busy CPU)."""
    boards = {}

    def load(board: str):
        if board not in boards:
            boards[board] = load_dataset(board)
        return boards[board]

    return load


def test_registry_lists_every_dataset_with_its_variants():
    expected = {
        "digits": ("binary", "17level", "dequantized"),
        "binarized_mnist": ("fixed",),
        "mnist": ("dynamic", "8bit", "dequantized"),
        "fashion_mnist": ("dynamic", "8bit", "dequantized"),
        "cifar10": ("8bit", "dequantized"),
        "image_patches": ("8bit", "dequantized"),
        **{name: ("continuous",) for name in toy2d.SAMPLERS},
    }
    assert set(expected) <= set(DATASETS.names())
    for name, variants in expected.items():
        assert DATASETS.get(name).variants == variants
        assert DATASETS.get(name).source


# --- real data ---------------------------------------------------------------------------


def _is_binary(x: torch.Tensor) -> bool:
    """Values in {0, 1}, both present (torch.unique sorts, which is slow at MNIST size)."""
    return bool(((x == 0) | (x == 1)).all() and x.min() == 0 and x.max() == 1)


def _split_sizes(dataset):
    return {split: len(x) for split, x in dataset.splits.items()}


@needs_shared_data
def test_binarized_mnist_matches_a_plain_text_parse(loaded):
    dataset = loaded("binarized_mnist/fixed")
    assert dataset.info.board == "binarized_mnist/fixed"
    assert (dataset.info.value_type, dataset.info.shape) == ("binary", (1, 28, 28))
    assert _split_sizes(dataset) == {"train": 50_000, "valid": 10_000, "test": 10_000}
    for x in dataset.splits.values():
        assert x.dtype == torch.float32
        assert _is_binary(x)
    # ground truth: the first and last lines of the files, parsed as text
    for split in ("train", "valid", "test"):
        with open(SHARED_DATA / "binarized_mnist" / f"binarized_mnist_{split}.amat", "rb") as f:
            first = f.readline()
            f.seek(-len(first), os.SEEK_END)
            last = f.read()
        for row, line in ((0, first), (-1, last)):
            expected = torch.tensor([float(v) for v in line.split()])
            assert torch.equal(dataset.splits[split][row].flatten(), expected)
    assert 0.12 < dataset.splits["train"].mean() < 0.14  # MNIST's ink fraction


@needs_shared_data
def test_mnist_8bit_matches_torchvision_reader_and_split(tmp_path, loaded):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    def torchvision_read(reader, filename):
        raw = tmp_path / filename.removesuffix(".gz")
        raw.write_bytes(gzip.decompress((SHARED_DATA / "mnist" / filename).read_bytes()))
        return reader(str(raw))

    dataset = loaded("mnist/8bit")
    info = dataset.info
    assert (info.value_type, info.num_levels, info.shape, info.num_classes) == ("discrete", 256, (1, 28, 28), 10)
    assert _split_sizes(dataset) == {"train": 50_000, "valid": 10_000, "test": 10_000}
    train_images = torchvision_read(read_image_file, "train-images-idx3-ubyte.gz").float()[:, None]
    train_labels = torchvision_read(read_label_file, "train-labels-idx1-ubyte.gz")
    assert torch.equal(dataset.splits["train"], train_images[:50_000])
    assert torch.equal(dataset.splits["valid"], train_images[50_000:])
    assert torch.equal(dataset.labels["train"], train_labels[:50_000])
    assert torch.equal(dataset.labels["valid"], train_labels[50_000:])
    test_images = torchvision_read(read_image_file, "t10k-images-idx3-ubyte.gz").float()[:, None]
    assert torch.equal(dataset.splits["test"], test_images)
    # published class counts of the MNIST test set
    assert dataset.labels["test"].bincount().tolist() == [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
    assert dataset.labels["test"].dtype == torch.int64


@needs_shared_data
def test_mnist_dynamic_binarization_resamples_train_but_fixes_test(loaded):
    dataset = loaded("mnist/dynamic")
    assert dataset.info.dynamic_binarization and dataset.info.value_type == "binary"
    assert dataset.info.board == "mnist/dynamic"
    epoch0, epoch1 = dataset.splits["train"], dataset.train_epoch(1)
    assert epoch1.shape == (50_000, 1, 28, 28)
    assert not torch.equal(epoch0, epoch1)
    assert torch.equal(epoch1, dataset.train_epoch(1))  # an epoch's sample is reproducible
    for x in (epoch1, dataset.splits["test"]):
        assert _is_binary(x)
    again = load_dataset("mnist/dynamic")
    assert torch.equal(again.splits["test"], dataset.splits["test"])
    assert torch.equal(again.splits["valid"], dataset.splits["valid"])
    # E[x] = level / 255: over 39M pixels the frequency is within ~1e-4 of it
    levels = loaded("mnist/8bit")
    assert abs(epoch1.mean() - levels.splits["train"].mean() / 255) < 1e-3
    ink = levels.splits["test"] / 255
    assert torch.equal(dataset.splits["test"][ink == 0], torch.zeros_like(ink[ink == 0]))
    assert torch.equal(dataset.splits["test"][ink == 1], torch.ones_like(ink[ink == 1]))


@needs_shared_data
def test_fashion_mnist_dequantized_recovers_levels_and_refreshes_noise(loaded):
    dataset = loaded("fashion_mnist/dequantized")
    levels = loaded("fashion_mnist/8bit")
    info = dataset.info
    assert (info.value_type, info.dequantization_levels, info.shape) == ("continuous", 256, (1, 28, 28))
    assert _split_sizes(dataset) == {"train": 50_000, "valid": 10_000, "test": 10_000}
    for split, x in dataset.splits.items():
        assert 0.0 <= x.min() and x.max() < 1.0
        assert torch.equal((x * 256).floor(), levels.splits[split])
    epoch1 = dataset.train_epoch(1)
    assert not torch.equal(dataset.splits["train"], epoch1)
    assert torch.equal(epoch1.mul(256).floor(), levels.splits["train"])
    assert torch.equal(load_dataset("fashion_mnist/dequantized").splits["test"], dataset.splits["test"])
    # Fashion-MNIST is class-balanced: 6,000 per class in training, 1,000 in test
    all_train = torch.cat([levels.labels["train"], levels.labels["valid"]])
    assert all_train.bincount().tolist() == [6000] * 10
    assert levels.labels["test"].bincount().tolist() == [1000] * 10


# --- checksums, missing files, cache ----------------------------------------------------


def _offline_copy(tmp_path: Path, dataset: str, corrupt: str | None = None) -> Path:
    """A tmp offline data dir linking to the shared files, with `corrupt` a modified copy."""
    (tmp_path / dataset).mkdir(parents=True)
    for source in (SHARED_DATA / dataset).iterdir():
        target = tmp_path / dataset / source.name
        if source.name == corrupt:
            data = bytearray(source.read_bytes())
            data[len(data) // 2] ^= 0xFF
            target.write_bytes(bytes(data))
        else:
            target.symlink_to(source)
    return tmp_path


@needs_shared_data
def test_corrupt_offline_file_raises_checksum_error_naming_file_and_fix(tmp_path, monkeypatch):
    corrupt = "t10k-labels-idx1-ubyte.gz"
    monkeypatch.setenv("DGMBENCH_DATA_DIR", str(_offline_copy(tmp_path, "mnist", corrupt)))
    with pytest.raises(ChecksumError) as error:
        load_dataset("mnist/8bit")
    message = str(error.value)
    expected = mnist.MNIST_FILES[corrupt]
    assert str(tmp_path / "mnist" / corrupt) in message
    assert expected.sha256 in message
    assert hashlib.sha256((tmp_path / "mnist" / corrupt).read_bytes()).hexdigest() in message
    assert expected.url in message and "Delete it" in message


def test_missing_offline_file_says_where_and_from_where(tmp_path, monkeypatch):
    monkeypatch.setenv("DGMBENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(MissingDataError) as error:
        load_dataset("binarized_mnist")
    message = str(error.value)
    assert str(tmp_path / "binarized_mnist" / "binarized_mnist_train.amat") in message
    assert mnist.BINARIZED_MNIST_FILES["train"].url in message
    assert isinstance(error.value, FileNotFoundError)


@needs_shared_data
def test_corrupt_cached_file_is_deleted_and_fetched_again(tmp_path, monkeypatch):
    monkeypatch.delenv("DGMBENCH_DATA_DIR")
    monkeypatch.setenv("DGMBENCH_CACHE_DIR", str(tmp_path))
    remote = mnist.MNIST_FILES["t10k-labels-idx1-ubyte.gz"]
    original = SHARED_DATA / "mnist" / remote.filename
    downloads = []

    def fake_download(url, destination, size=None):  # stands in for the network
        downloads.append(url)
        shutil.copyfile(original, destination)

    monkeypatch.setattr(download, "download_url", fake_download)
    cached = tmp_path / "mnist" / remote.filename
    cached.parent.mkdir()
    cached.write_bytes(b"truncated")
    with pytest.warns(UserWarning, match="Deleting it and downloading it again"):
        path = download.fetch_file("mnist", remote)
    assert path == cached and downloads == [remote.url]
    assert path.read_bytes() == original.read_bytes()
    assert download.fetch_file("mnist", remote) == cached and len(downloads) == 1  # now cached
    assert download.fetch("mnist", remote.filename, remote.url, remote.sha256) == cached
    assert not list(cached.parent.glob("*.part"))


def test_bad_download_leaves_no_file_under_the_final_name(tmp_path, monkeypatch):
    monkeypatch.delenv("DGMBENCH_DATA_DIR")
    monkeypatch.setenv("DGMBENCH_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(download, "download_url", lambda url, destination, size=None: destination.write_bytes(b"x"))
    remote = RemoteFile("file.bin", "http://example.invalid/file.bin", sha256="0" * 64)
    with pytest.raises(ChecksumError, match="example.invalid"):
        download.fetch_file("toy", remote)
    assert list((tmp_path / "toy").iterdir()) == []


def test_download_over_http_from_a_loopback_server(tmp_path, monkeypatch):
    """The real urllib path, served from 127.0.0.1 (no network): lands verified, no .part."""
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    served = tmp_path / "served"
    served.mkdir()
    payload = os.urandom(300_000)
    (served / "blob.bin").write_bytes(payload)
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.delenv("DGMBENCH_DATA_DIR")
        monkeypatch.setenv("DGMBENCH_CACHE_DIR", str(tmp_path / "cache"))
        url = f"http://127.0.0.1:{server.server_address[1]}/blob.bin"
        path = download.fetch("toy", "blob.bin", url, hashlib.sha256(payload).hexdigest())
        assert path == tmp_path / "cache" / "toy" / "blob.bin" and path.read_bytes() == payload
        assert [p.name for p in path.parent.iterdir()] == ["blob.bin"]
        with pytest.raises(download.DataFileError, match="could not download"):
            download.fetch("toy", "missing.bin", url.replace("blob", "missing"), "0" * 64)
        assert [p.name for p in path.parent.iterdir()] == ["blob.bin"]
    finally:
        server.shutdown()
        server.server_close()


def test_remembered_hash_is_invalidated_when_the_file_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("DGMBENCH_CACHE_DIR", str(tmp_path / "cache"))
    path = tmp_path / "file.bin"
    path.write_bytes(b"first")
    assert download.file_hash(path) == hashlib.sha256(b"first").hexdigest()
    assert len(list((tmp_path / "cache" / "verified").iterdir())) == 1
    assert download.file_hash(path) == hashlib.sha256(b"first").hexdigest()  # from the record
    path.write_bytes(b"other")  # same size
    os.utime(path, ns=(1, 1))
    assert download.file_hash(path) == hashlib.sha256(b"other").hexdigest()
    assert download.file_hash(path, "md5") == hashlib.md5(b"other").hexdigest()


def _parsed_source(tmp_path, monkeypatch):
    """A small source file, its sha256 and a parse function that counts its calls."""
    monkeypatch.setenv("DGMBENCH_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "bits.amat"
    source.write_bytes(b"0 1 1\n1 0 0\n")
    parses = []

    def parse(path):
        parses.append(path)
        return mnist.read_amat(path, dim=3)

    return source, hashlib.sha256(source.read_bytes()).hexdigest(), parse, parses


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty"])
def test_corrupt_parsed_cache_entry_is_rebuilt_from_the_source(tmp_path, monkeypatch, damage):
    """Issue 8 item 5: a truncated/garbage .npz in <cache>/parsed/ raised BadZipFile."""
    source, checksum, parse, parses = _parsed_source(tmp_path, monkeypatch)
    expected = [[0, 1, 1], [1, 0, 0]]
    assert download.cached_array(source, checksum, parse).tolist() == expected
    (entry,) = (tmp_path / "cache" / "parsed").glob("*.npz")
    data = entry.read_bytes()
    entry.write_bytes({"truncate": data[: len(data) // 2], "garbage": b"PK\x03\x04" + b"x" * 50, "empty": b""}[damage])
    assert download.cached_array(source, checksum, parse).tolist() == expected
    assert len(parses) == 2  # rebuilt, from the source
    assert entry.read_bytes() == data  # and the rebuilt entry is whole again
    assert download.cached_array(source, checksum, parse).tolist() == expected and len(parses) == 2


def test_parsed_cache_entry_stores_and_checks_the_source_hash(tmp_path, monkeypatch):
    source, checksum, parse, parses = _parsed_source(tmp_path, monkeypatch)
    download.cached_array(source, checksum, parse)
    (entry,) = (tmp_path / "cache" / "parsed").glob("*.npz")
    with np.load(entry) as stored:
        assert str(stored[download.SOURCE_HASH_KEY]) == checksum
    # An entry under the right name but built from other content is not accepted.
    np.savez(entry, array=np.zeros((2, 3), np.uint8), **{download.SOURCE_HASH_KEY: np.array("0" * 64)})
    assert download.cached_array(source, checksum, parse).tolist() == [[0, 1, 1], [1, 0, 0]]
    assert len(parses) == 2


def test_in_place_edit_with_restored_mtime_is_caught_when_the_cache_is_built(tmp_path, monkeypatch):
    """Issue 8 item 5: the remembered (path, size, mtime) hash accepts such an edit, so the
    content is hashed afresh before an entry is built, and the stale memory is dropped."""
    source, checksum, parse, parses = _parsed_source(tmp_path, monkeypatch)
    remote = RemoteFile(source.name, "http://example.invalid/bits.amat", sha256=checksum)
    download.verify(source, remote)  # remembered as verified
    stat = source.stat()
    source.write_bytes(b"1 1 1\n1 0 0\n")  # same size
    os.utime(source, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    download.verify(source, remote)  # the remembered hash cannot see the edit...
    with pytest.raises(ChecksumError, match="changed after it was verified"):
        download.cached_array(source, checksum, parse)  # ...but building the entry does
    assert parses == [] and not list((tmp_path / "cache" / "parsed").glob("*.npz"))
    with pytest.raises(ChecksumError):  # and the stale remembered hash is gone
        download.verify(source, remote)


def test_cifar10_directory_entry_is_checked_against_the_batches_content(tmp_path, monkeypatch):
    extracted = tmp_path / "cifar10" / cifar10.BATCH_DIR
    _write_cifar_batches(extracted)
    md5s = {name: hashlib.md5((extracted / name).read_bytes()).hexdigest() for name in cifar10.BATCH_MD5}
    assert cifar10._directory_content_key(extracted) == cifar10._directory_key(md5s)
    monkeypatch.setenv("DGMBENCH_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(ChecksumError, match="changed after it was verified"):  # synthetic != published
        download.cached_arrays(extracted, cifar10._directory_key(cifar10.BATCH_MD5), cifar10.parse_directory, cifar10._directory_content_key)


def test_read_amat_rejects_malformed_text(tmp_path):
    good = tmp_path / "good.amat"
    good.write_bytes(b"0 1 1\n1 0 0\n")
    checksum = hashlib.sha256(good.read_bytes()).hexdigest()
    assert download.cached_array(good, checksum, lambda p: mnist.read_amat(p, dim=3)).tolist() == [[0, 1, 1], [1, 0, 0]]
    bad = tmp_path / "bad.amat"
    bad.write_bytes(b"0 2 1\n1 0 0\n")
    with pytest.raises(download.DataFileError):
        mnist.read_amat(bad, dim=3)


# --- CIFAR-10 ----------------------------------------------------------------------------


def _write_cifar_batches(directory: Path, per_batch: int = 6, n_test: int = 4) -> dict[str, tuple]:
    """Small batches in the canonical layout: pickled (protocol 2) dicts with bytes keys,
    b'data' uint8 (N, 3072) = red, green, blue 32x32 planes row-major, b'labels' a list."""
    directory.mkdir(parents=True)
    rng = np.random.default_rng(0)
    written = {}
    for name in cifar10.TRAIN_BATCHES + cifar10.TEST_BATCHES:
        n = n_test if name == "test_batch" else per_batch
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, size=n).tolist()
        batch = {
            b"batch_label": f"batch {name}".encode(),
            b"labels": labels,
            b"data": data,
            b"filenames": [f"{name}_{i}.png".encode() for i in range(n)],
        }
        (directory / name).write_bytes(pickle.dumps(batch, protocol=2))
        written[name] = (data, labels)
    return written


def test_cifar10_batch_parsing_pixel_order_and_labels(tmp_path):
    """Checks the pickle format and the plumbing on synthetic batches: no CIFAR-10 copy is
    available offline, and checksums are verified only on real downloads."""
    written = _write_cifar_batches(tmp_path / cifar10.BATCH_DIR)
    data, labels = written["data_batch_3"]
    with open(tmp_path / cifar10.BATCH_DIR / "data_batch_3", "rb") as f:
        images, parsed_labels = cifar10.read_batch(f)
    assert images.shape == (6, 3, 32, 32) and images.dtype == np.uint8
    assert parsed_labels.tolist() == labels
    # channel c, row h, column w sits at column c*1024 + h*32 + w of the row
    for c, h, w in [(0, 0, 1), (0, 1, 0), (1, 0, 0), (2, 31, 31), (1, 17, 5)]:
        assert np.array_equal(images[:, c, h, w], data[:, c * 1024 + h * 32 + w])


def test_cifar10_loader_split_from_directory_and_archive(tmp_path, monkeypatch):
    """Plumbing on synthetic batches (see above): extracted layout and tar.gz give the
    documented split: train = batches 1..5 minus the last N_VALID images, valid = those."""
    offline = tmp_path / "data"
    batches_dir = offline / "cifar10" / cifar10.BATCH_DIR
    written = _write_cifar_batches(batches_dir)
    md5 = {name: hashlib.md5((batches_dir / name).read_bytes()).hexdigest() for name in written}
    monkeypatch.setattr(cifar10, "BATCH_MD5", md5)
    monkeypatch.setattr(cifar10, "N_VALID", 4)
    monkeypatch.setenv("DGMBENCH_DATA_DIR", str(offline))

    dataset = load_dataset("cifar10/8bit")
    info = dataset.info
    assert (info.shape, info.value_type, info.num_levels, info.num_classes) == ((3, 32, 32), "discrete", 256, 10)
    assert _split_sizes(dataset) == {"train": 26, "valid": 4, "test": 4}
    all_train = np.concatenate([written[name][0] for name in cifar10.TRAIN_BATCHES])
    all_labels = sum((written[name][1] for name in cifar10.TRAIN_BATCHES), [])
    assert torch.equal(dataset.splits["valid"].flatten(1), torch.from_numpy(all_train[-4:]).float())
    assert torch.equal(dataset.splits["train"].flatten(1), torch.from_numpy(all_train[:-4]).float())
    assert dataset.labels["valid"].tolist() == all_labels[-4:]
    assert torch.equal(dataset.splits["test"].flatten(1), torch.from_numpy(written["test_batch"][0]).float())
    dequantized = load_dataset("cifar10/dequantized")
    assert torch.equal((dequantized.splits["test"] * 256).floor(), dataset.splits["test"])

    # the same batches as the canonical archive give the same dataset
    archive = offline / "cifar10" / "cifar-10-python.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(batches_dir, arcname=cifar10.BATCH_DIR)
    shutil.rmtree(batches_dir)
    sha256 = hashlib.sha256(archive.read_bytes()).hexdigest()
    monkeypatch.setattr(cifar10, "ARCHIVE", RemoteFile(archive.name, cifar10.URL, sha256=sha256))
    from_archive = load_dataset("cifar10/8bit")
    for split in dataset.splits:
        assert torch.equal(from_archive.splits[split], dataset.splits[split])
        assert torch.equal(from_archive.labels[split], dataset.labels[split])


def test_cifar10_extracted_batches_are_checked_against_published_md5(tmp_path, monkeypatch):
    _write_cifar_batches(tmp_path / "cifar10" / cifar10.BATCH_DIR)
    monkeypatch.setenv("DGMBENCH_DATA_DIR", str(tmp_path))
    with pytest.raises(ChecksumError, match="data_batch_1"):
        load_dataset("cifar10/8bit")
    shutil.rmtree(tmp_path / "cifar10")
    with pytest.raises(MissingDataError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10/8bit")


def test_cifar10_unpickler_refuses_code():
    class Exploit:
        def __reduce__(self):
            return (os.getcwd, ())

    with pytest.raises(pickle.UnpicklingError, match="getcwd"):
        cifar10.read_batch(io.BytesIO(pickle.dumps({b"data": Exploit()}, protocol=2)))


# --- image patches ------------------------------------------------------------------------


def test_image_patches_cut_the_documented_grid_and_split():
    from sklearn.datasets import load_sample_images

    dataset = load_dataset("image_patches/8bit")
    info = dataset.info
    assert (info.shape, info.value_type, info.num_levels, info.num_classes) == ((3, 32, 32), "discrete", 256, 2)
    assert _split_sizes(dataset) == {"train": 364, "valid": 52, "test": 104}
    bunch = load_sample_images()
    photos = {Path(name).name: image for name, image in zip(bunch.filenames, bunch.images, strict=True)}
    # ground truth by explicit slicing: patch (row r, column c) of a photo
    patches, labels = image_patches.patches_and_labels()
    assert patches.shape == (520, 3, 32, 32)
    for photo, r, c in [("china.jpg", 0, 0), ("china.jpg", 12, 19), ("flower.jpg", 3, 7)]:
        k = (260 if photo == "flower.jpg" else 0) + r * 20 + c
        assert np.array_equal(patches[k], photos[photo][32 * r : 32 * r + 32, 32 * c : 32 * c + 32].transpose(2, 0, 1))
        assert labels[k] == (photo == "flower.jpg")
    # the three splits partition the 520 patches
    union = torch.cat([dataset.splits[s] for s in ("train", "valid", "test")]).to(torch.uint8).numpy()
    assert sorted(map(bytes, union)) == sorted(map(bytes, patches))
    again = load_dataset("image_patches/8bit")
    for split in dataset.splits:
        assert torch.equal(again.splits[split], dataset.splits[split])
        assert torch.equal(again.labels[split], dataset.labels[split])
    dequantized = load_dataset("image_patches/dequantized")
    assert dequantized.info.dequantization_levels == 256
    assert torch.equal((dequantized.splits["valid"] * 256).floor(), dataset.splits["valid"])


# --- toy 2-D densities ----------------------------------------------------------------------


def test_toy_datasets_are_seeded_and_shaped():
    for name, sampler in toy2d.SAMPLERS.items():
        dataset = load_dataset(name)
        assert dataset.info.board == f"{name}/continuous" and dataset.info.shape == (2,)
        assert _split_sizes(dataset) == {"train": 20_000, "valid": 5_000, "test": 5_000}
        assert torch.equal(load_dataset(name).splits["test"], dataset.splits["test"])
        assert not torch.equal(dataset.splits["valid"], dataset.splits["test"])
        assert torch.isfinite(dataset.splits["train"]).all()
        x = sampler(7, torch.Generator().manual_seed(3))
        assert x.shape == (7, 2) and torch.equal(x, sampler(7, torch.Generator().manual_seed(3)))
    assert set(toy2d.EXACT_LOG_DENSITY) == {"eight_gaussians", "checkerboard", "pinwheel"}


def _midpoint_grid(half_width: float, n: int) -> tuple[torch.Tensor, float]:
    step = 2 * half_width / n
    centres = torch.linspace(-half_width + step / 2, half_width - step / 2, n, dtype=torch.float64)
    return torch.stack(torch.meshgrid(centres, centres, indexing="ij"), dim=-1), step


@pytest.mark.parametrize("name", ["eight_gaussians", "checkerboard", "pinwheel"])
def test_exact_density_integrates_to_one(name):
    grid, step = _midpoint_grid(8.0, 800)
    log_p = toy2d.EXACT_LOG_DENSITY[name](grid.reshape(-1, 2))
    assert log_p.dtype == torch.float64
    assert abs(log_p.exp().sum().item() * step**2 - 1) < 1e-6


@pytest.mark.parametrize("name", ["eight_gaussians", "checkerboard", "pinwheel"])
def test_exact_density_matches_sample_histogram(name):
    """Chi-square test of 200k samples against bin masses integrated from the density."""
    from scipy.stats import chisquare

    bins, sub, half_width = 24, 16, 6.0
    grid, step = _midpoint_grid(half_width, bins * sub)
    density = toy2d.EXACT_LOG_DENSITY[name](grid.reshape(-1, 2)).exp().reshape(bins, sub, bins, sub)
    bin_mass = (density.sum(dim=(1, 3)) * step**2).flatten()

    n = 200_000
    x = toy2d.SAMPLERS[name](n, torch.Generator().manual_seed(0)).double()
    inside = (x.abs() < half_width).all(dim=1)
    cell = ((x[inside] + half_width) / (2 * half_width / bins)).floor().long().clamp(0, bins - 1)
    counts = torch.bincount(cell[:, 0] * bins + cell[:, 1], minlength=bins * bins).double()

    expected = n * bin_mass
    big = expected >= 5
    # all small bins and the outside of the window pooled into one cell
    rest_observed, rest_expected = n - counts[big].sum(), n - expected[big].sum()
    observed, expected = counts[big], expected[big]
    if rest_expected > 1e-6:
        observed = torch.cat([observed, rest_observed.reshape(1)])
        expected = torch.cat([expected, rest_expected.reshape(1)])
    else:
        assert rest_observed == 0
    assert chisquare(observed.numpy(), expected.numpy()).pvalue > 1e-3
    if name == "checkerboard":  # no sample on a white square
        assert torch.isfinite(toy2d.log_density_checkerboard(x)).all()


def test_eight_gaussians_density_against_scipy_mixture():
    from scipy.stats import multivariate_normal

    x = torch.randn(50, 2, dtype=torch.float64) * 3
    radius = 2 * math.sqrt(2)
    means = [(radius * math.cos(k * math.pi / 4), radius * math.sin(k * math.pi / 4)) for k in range(8)]
    reference = sum(multivariate_normal(m, np.eye(2) / 8).pdf(x.numpy()) for m in means) / 8
    assert np.allclose(toy2d.log_density_eight_gaussians(x).exp().numpy(), reference, rtol=1e-10)


def test_checkerboard_density_on_known_points():
    x = torch.tensor([[-3.0, -3.0], [-1.0, -3.0], [1.0, 1.0], [3.0, -1.0], [0.5, -0.5], [4.5, 0.0]])
    expected = [1 / 32, 0, 1 / 32, 1 / 32, 0, 0]
    assert torch.allclose(toy2d.log_density_checkerboard(x).exp(), torch.tensor(expected))


def test_pinwheel_twist_preserves_area_and_inverts():
    z = torch.randn(20, 2, dtype=torch.float64) * 1.5
    jacobians = torch.func.vmap(torch.func.jacrev(toy2d.pinwheel_twist))(z)
    assert torch.allclose(torch.linalg.det(jacobians), torch.ones(20, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(toy2d.pinwheel_twist(toy2d.pinwheel_twist(z), inverse=True), z, atol=1e-12)
