"""asv: precision/recall/density/coverage on 10,000 x 10,000 features of dimension 2048
(the size of an Inception-feature evaluation); CPU, and CUDA when present. Side by side
with the authors' ``prdc`` package (``prdc.compute_prdc``, sklearn distances in float64) on
the same float64 features at equal threads: ``track_ratio_vs_prdc_package`` is the median
over interleaved runs of time(ours) / time(prdc) (below 1: faster), at 2,000 points and at
the full 10,000. Equal threads means the same torch / BLAS thread count and the process
pinned to that many cores (the package runs 8 joblib threads whatever BLAS is limited to)."""
import contextlib
import io
import os
import statistics
import time

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from dgmbench.metrics.prdc import precision_recall_density_coverage

N, DIM = 10_000, 2048
K = 5  # the package takes one k for all four values


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def features(n: int, dim: int = DIM, device: str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded Gaussian real features and slightly shifted fake ones, float64."""
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(n, dim, generator=generator, dtype=torch.float64)
    fake = torch.randn(n, dim, generator=generator, dtype=torch.float64) + 0.05
    return real.to(device), fake.to(device)


@contextlib.contextmanager
def equal_threads(threads: int):
    """torch and every BLAS/OpenMP pool at `threads`, the process pinned to that many cores."""
    previous_threads = torch.get_num_threads()
    previous_cores = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    torch.set_num_threads(threads)
    if previous_cores is not None:
        os.sched_setaffinity(0, sorted(previous_cores)[:threads])
    try:
        with threadpool_limits(threads):
            yield
    finally:
        torch.set_num_threads(previous_threads)
        if previous_cores is not None:
            os.sched_setaffinity(0, previous_cores)


def prdc_package(real: np.ndarray, fake: np.ndarray, k: int = K) -> dict[str, float]:
    import prdc

    with contextlib.redirect_stdout(io.StringIO()):  # it prints the sample counts
        return {name: float(value) for name, value in prdc.compute_prdc(real, fake, nearest_k=k).items()}


def same_results(ours: dict, peer: dict, n_fake: int, k: int = K) -> bool:
    """Bit-equal precision, recall and coverage, and the same integer count of ball
    memberships behind density (the package divides by k and by M separately)."""
    if any(ours[name] != peer[name] for name in ("precision", "recall", "coverage")):
        return False
    return round(ours["density"] * k * n_fake) == round(peer["density"] * k * n_fake)


def interleaved(ours, peer, pairs: int) -> tuple[float, list[float], list[float], dict, dict]:
    """(median of time(ours) / time(peer), our times, peer times, last results), alternating
    which runs first."""
    ours_times, peer_times, ratios = [], [], []
    for pair in range(pairs):
        runs = [("ours", ours), ("peer", peer)]
        timed = {}
        for name, run in runs if pair % 2 == 0 else runs[::-1]:
            tic = time.perf_counter()
            result = run()
            timed[name] = (time.perf_counter() - tic, result)
        ours_times.append(timed["ours"][0])
        peer_times.append(timed["peer"][0])
        ratios.append(ours_times[-1] / peer_times[-1])
    return statistics.median(ratios), ours_times, peer_times, timed["ours"][1], timed["peer"][1]


class PRDC10k:
    params = (_devices(),)
    param_names = ("device",)
    number = 1  # one call is seconds on a CPU
    repeat = (1, 3, 120.0)
    warmup_time = 0.0
    timeout = 1200

    def setup(self, device):
        self.real, self.fake = features(N, device=device)

    def time_prdc(self, device):
        precision_recall_density_coverage(self.real, self.fake)
        if device == "cuda":
            torch.cuda.synchronize()

    def peakmem_prdc(self, device):
        precision_recall_density_coverage(self.real, self.fake)


class PRDCVersusPackage:
    """Ours against ``prdc.compute_prdc`` on the same features, k = 5, equal threads (CPU)."""

    params = ([2_000, N], [1, 2])
    param_names = ("n", "threads")
    number = 1
    repeat = 1
    warmup_time = 0.0
    timeout = 3600

    def setup(self, n, threads):
        self.real, self.fake = features(n)
        self.real_np, self.fake_np = self.real.numpy(), self.fake.numpy()

    def track_ratio_vs_prdc_package(self, n, threads):
        with equal_threads(threads):
            ratio, _, _, ours, peer = interleaved(
                lambda: precision_recall_density_coverage(self.real, self.fake, K, K),
                lambda: prdc_package(self.real_np, self.fake_np),
                pairs=3,
            )
        if not same_results(ours, peer, n):
            raise AssertionError(f"results differ: ours {ours}, prdc {peer}")
        return ratio

    track_ratio_vs_prdc_package.unit = "time ours / time prdc"
