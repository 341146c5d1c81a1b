"""Test-wide settings: real data come from the offline copy next to the checkout (never
downloaded), caches go to a per-session temporary directory."""
from __future__ import annotations

import itertools
import os
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parent.parent
# Tests use small tensors, for which one thread is fastest and deterministic; subprocesses
# started by tests inherit it through the environment.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(1)
os.environ.setdefault("DGMBENCH_DATA_DIR", str((REPO.parent / "shared" / "data").resolve()))


def pytest_benchmark_update_machine_info(config, machine_info):
    """pytest-benchmark: every saved run's machine_info carries the thread counts in force
    (torch's pools, the OpenMP wait policy, every BLAS / OpenMP pool via threadpoolctl), so
    timings from a loaded or differently-threaded machine can be told apart. (Here, not in
    tests/benchmarks/conftest.py: a second module named conftest would shadow this one's
    helpers for the tests that import them.)"""
    import numpy  # noqa: F401 - load numpy's BLAS, so that its pool is listed too

    from dgmbench.provenance import thread_info

    machine_info["threads"] = thread_info()


@pytest.fixture(scope="session", autouse=True)
def _cache_dir(tmp_path_factory):
    if "DGMBENCH_CACHE_DIR" not in os.environ:
        os.environ["DGMBENCH_CACHE_DIR"] = str(tmp_path_factory.mktemp("dgmbench-cache"))
    yield


def all_binary_vectors(dim: int) -> torch.Tensor:
    """Every x in {0,1}^dim, shape (2^dim, dim)."""
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=dim)))


def vector_info(dim: int, value_type: str = "binary", num_levels: int | None = 2):
    from dgmbench.data.base import DataInfo

    return DataInfo(name="tiny", variant="test", shape=(dim,), value_type=value_type, num_levels=num_levels)


@pytest.fixture
def fake_cifar_dir(tmp_path, monkeypatch):
    """Small CIFAR-10 batch files in the canonical layout (pickled protocol-2 dicts with bytes
    keys, b'data' uint8 (N, 3072) of R, G, B planes, b'labels'): 6 images per training batch
    (26 train / 4 valid) and 4 test images, under a tmp DGMBENCH_DATA_DIR (no CIFAR-10 copy
    exists offline). The loader accepts extracted batches only with an md5 listed in
    cifar10.BATCH_MD5, so that table points at the fake files. Returns tmp_path."""
    import hashlib
    import pickle

    import numpy as np

    from dgmbench.data import cifar10

    batches = tmp_path / "data" / "cifar10" / cifar10.BATCH_DIR
    batches.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in cifar10.TRAIN_BATCHES + cifar10.TEST_BATCHES:
        n = FAKE_CIFAR_TEST if name == "test_batch" else FAKE_CIFAR_PER_TRAIN_BATCH
        batch = {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
                 b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                 b"filenames": [f"{name}_{i}.png".encode() for i in range(n)]}
        (batches / name).write_bytes(pickle.dumps(batch, protocol=2))
    md5 = {name: hashlib.md5((batches / name).read_bytes()).hexdigest() for name in cifar10.BATCH_MD5}
    monkeypatch.setattr(cifar10, "BATCH_MD5", md5)
    monkeypatch.setattr(cifar10, "N_VALID", 4)
    monkeypatch.setenv("DGMBENCH_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("DGMBENCH_CACHE_DIR", str(tmp_path / "cache"))
    return tmp_path


FAKE_CIFAR_PER_TRAIN_BATCH, FAKE_CIFAR_TEST = 6, 4


@pytest.fixture
def thread_pools(monkeypatch) -> list[int]:
    """The worker counts of every concurrent.futures.ThreadPoolExecutor created during the
    test, in order (to check that work was, or was not, spread over threads)."""
    import concurrent.futures

    created: list[int] = []

    class RecordingPool(concurrent.futures.ThreadPoolExecutor):
        def __init__(self, workers):
            created.append(workers)
            super().__init__(workers)

    monkeypatch.setattr(concurrent.futures, "ThreadPoolExecutor", RecordingPool)
    return created
