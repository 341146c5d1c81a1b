"""Where a number came from: commit, package versions, device and thread pools."""
from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
from pathlib import Path

import torch

PACKAGES = ("dgmbench", "torch", "torchvision", "torch-fidelity", "numpy", "scipy", "scikit-learn", "pandas")


def git_commit() -> dict:
    repo = Path(__file__).resolve().parent.parent

    def git(*args):
        return subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, timeout=10)

    try:
        head = git("rev-parse", "HEAD")
        if head.returncode != 0:
            return {"commit": None, "dirty": None}
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", "dgmbench")
        return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def versions() -> dict:
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = None
    return found


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# numpy / scipy BLAS threads while metrics run (torch-fidelity's KID, sklearn): their matrices
# are small, and idle OpenBLAS threads spin, which made KID 4-30x slower on a loaded machine.
METRIC_BLAS_THREADS = 1


def metric_thread_limits():
    """Context manager limiting numpy's and scipy's BLAS pools to METRIC_BLAS_THREADS (torch's
    own pool, set by torch.set_num_threads / OMP_NUM_THREADS, is left alone)."""
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=METRIC_BLAS_THREADS, user_api="blas")


def thread_info() -> dict:
    """Thread counts that decide CPU timings: torch's intra-/inter-op pools, the OpenMP wait
    policy, and every BLAS / OpenMP pool loaded in the process (threadpoolctl)."""
    info = {
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "metric_blas_threads": METRIC_BLAS_THREADS,
        "pools": [],
    }
    try:
        from threadpoolctl import threadpool_info

        info["pools"] = [
            {"api": pool["internal_api"], "library": Path(pool["filepath"]).name, "threads": pool["num_threads"]}
            for pool in threadpool_info()
        ]
    except ImportError:  # provenance never stops a run: the pools stay unknown
        info["pools"] = None
    return info


def device_info(device: torch.device) -> dict:
    info = {"type": device.type, "cpu": cpu_name(), "torch_threads": torch.get_num_threads(), "threads": thread_info()}
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info
