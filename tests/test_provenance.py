"""Thread provenance and thread policies: every record's device block carries the torch and
BLAS/OpenMP pool sizes, metrics run with numpy's BLAS limited (and restored afterwards), and
the `dgmbench` entry point sets OMP_WAIT_POLICY=PASSIVE before torch loads OpenMP unless the
user chose a policy."""
import os
import subprocess
import sys

import numpy as np  # noqa: F401 - loads numpy's BLAS, so threadpoolctl can see it
import torch
from threadpoolctl import threadpool_info

from dgmbench.provenance import METRIC_BLAS_THREADS, device_info, metric_thread_limits, thread_info


def blas_threads() -> list[int]:
    return [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]


def test_thread_info_reports_torch_and_every_pool():
    info = thread_info()
    assert info["torch_threads"] == torch.get_num_threads()
    assert info["metric_blas_threads"] == METRIC_BLAS_THREADS
    assert info["pools"], "numpy's BLAS and torch's OpenMP are loaded, so threadpoolctl lists them"
    assert all(isinstance(pool["threads"], int) and pool["threads"] >= 1 for pool in info["pools"])
    assert {pool["api"] for pool in info["pools"]} & {"openblas", "mkl", "blis"}
    assert device_info(torch.device("cpu"))["threads"]["torch_threads"] == torch.get_num_threads()


def test_metric_thread_limits_limit_numpy_blas_and_restore_it():
    before = blas_threads()
    torch_threads = torch.get_num_threads()
    with metric_thread_limits():
        assert blas_threads() and all(n == METRIC_BLAS_THREADS for n in blas_threads())
        assert torch.get_num_threads() == torch_threads  # torch's own pool is left alone
    assert blas_threads() == before


def _entry_point_env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    return {**env, **extra}


def test_entry_point_sets_passive_openmp_before_torch_loads():
    code = "import sys, os, dgmbench.cli; print('torch' in sys.modules, os.environ.get('OMP_WAIT_POLICY'))"
    out = subprocess.run([sys.executable, "-c", code], env=_entry_point_env(), capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "PASSIVE"]


def test_entry_point_keeps_the_users_wait_policy():
    code = "import os, dgmbench.cli; print(os.environ.get('OMP_WAIT_POLICY'))"
    env = _entry_point_env(OMP_WAIT_POLICY="ACTIVE")
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "ACTIVE"
