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
