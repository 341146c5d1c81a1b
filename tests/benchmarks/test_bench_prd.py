"""pytest-benchmark: PRD (20 clusters, 10 MiniBatchKMeans runs) of dgmbench against the
reference code's loop (benchmarks/peers/prd_reference.py) on the same float64 features, at
1 and 2 threads (benchmarks/bench_prdc.equal_threads); records ``ratio_vs_reference`` (median
over interleaved runs of time(ours) / time(reference)) and the thread count, and checks the
curves are bit-equal. The quick suite's size by default; 5,000 + 5,000 x 2,048 is marked
slow. Skipped by the default run (--benchmark-skip); run with
`pytest tests/benchmarks/test_bench_prd.py --benchmark-only` (add `-m slow` for the large size)."""
import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: benchmarks/ (peers)
from benchmarks.bench_prd import prd_features  # noqa: E402
from benchmarks.bench_prdc import equal_threads, interleaved  # noqa: E402
from benchmarks.peers.prd_reference import reference_prd  # noqa: E402
from dgmbench.metrics.prd import prd_from_features  # noqa: E402

SIZES = [(1_000, 64), pytest.param((5_000, 2_048), marks=pytest.mark.slow)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("size", SIZES)
def test_prd_vs_reference(benchmark, size, threads):
    n, dim = size
    real, fake = prd_features(n, dim)
    with equal_threads(threads):
        ratio, ours_times, reference_times, ours, reference = interleaved(
            lambda: prd_from_features(fake, real, seed=0), lambda: reference_prd(fake, real, seed=0), 3
        )
        result = benchmark.pedantic(lambda: prd_from_features(fake, real, seed=0), rounds=1, iterations=1,
                                    warmup_rounds=0)
    benchmark.extra_info.update(n_real=n, n_fake=n, dim=dim, threads=threads, ratio_vs_reference=ratio,
                                ours_seconds=ours_times, reference_seconds=reference_times)
    for got in (ours, result):
        assert all(np.array_equal(a, b) for a, b in zip(got, reference))
