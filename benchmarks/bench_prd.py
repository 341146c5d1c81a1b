"""asv: PRD (Sajjadi et al. 2018; 20 clusters, 10 runs of MiniBatchKMeans) of dgmbench
(dgmbench.metrics.prd.prd_from_features: the union built and checked once, the runs spread
over the threads on large inputs) side by side with the reference code's loop
(benchmarks/peers/prd_reference.py) on the same float64 features, at the quick suite's size
(1,000 + 1,000 points of dimension 64) and at 5,000 + 5,000 of dimension 2,048 (Inception
features), at 1 and 2 threads (torch, BLAS and OpenMP). ``track_ratio_vs_reference`` is the
median over interleaved runs of time(ours) / time(reference); the curves must be bit-equal."""
import numpy as np

from benchmarks.bench_prdc import equal_threads, interleaved
from benchmarks.peers.prd_reference import reference_prd
from dgmbench.metrics.prd import prd_from_features

SIZES = [(1_000, 64), (5_000, 2_048)]


def prd_features(n: int, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded Gaussian real features and fake ones with three shifted modes, float64."""
    rng = np.random.default_rng(0)
    real = rng.normal(size=(n, dim))
    fake = rng.normal(size=(n, dim)) + 0.2 * rng.integers(0, 3, size=(n, 1))
    return real, fake


class PRDVersusReference:
    params = ([f"{n}x{dim}" for n, dim in SIZES], [1, 2])
    param_names = ("size", "threads")
    number = 1
    repeat = 1
    warmup_time = 0.0
    timeout = 1800

    def setup(self, size, threads):
        n, dim = (int(part) for part in size.split("x"))
        self.real, self.fake = prd_features(n, dim)

    def ours(self):
        return prd_from_features(self.fake, self.real, seed=0)

    def reference(self):
        return reference_prd(self.fake, self.real, seed=0)

    def time_prd(self, size, threads):
        with equal_threads(threads):
            self.ours()

    def track_ratio_vs_reference(self, size, threads):
        with equal_threads(threads):
            ratio, _, _, ours, reference = interleaved(self.ours, self.reference, pairs=3)
        if not all(np.array_equal(a, b) for a, b in zip(ours, reference)):
            raise AssertionError("PRD curves differ from the reference protocol's")
        return ratio

    track_ratio_vs_reference.unit = "time ours / time reference"

