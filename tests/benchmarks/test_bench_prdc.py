"""pytest-benchmark: precision/recall/density/coverage on float features of dimension 2048,
ours and the authors' ``prdc`` package side by side on the same float64 features at equal
threads (benchmarks/bench_prdc.py: same torch/BLAS thread count, process pinned to that many
cores). The ours-case records ``ratio_vs_prdc_package``, the median over interleaved runs of
time(ours) / time(prdc) (below 1: faster), the thread count, and checks the results are
equal. 2,000 points by default; the full 10,000 x 10,000 x 2048 case is marked slow (minutes
with the package). CUDA (ours only) when present. Skipped by the default run
(--benchmark-skip); run with `pytest tests/benchmarks/test_bench_prdc.py --benchmark-only`
(add `-m slow` for the full size)."""
import pytest
import torch

from benchmarks.bench_prdc import K, N, equal_threads, features, interleaved, prdc_package, same_results
from dgmbench.metrics.prdc import precision_recall_density_coverage

SIZES = [2_000, pytest.param(N, marks=pytest.mark.slow)]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("n", SIZES)
def test_prdc_vs_prdc_package(benchmark, n, threads):
    pytest.importorskip("prdc")
    real, fake = features(n)
    real_np, fake_np = real.numpy(), fake.numpy()
    with equal_threads(threads):
        ratio, ours_times, peer_times, ours, peer = interleaved(
            lambda: precision_recall_density_coverage(real, fake, K, K), lambda: prdc_package(real_np, fake_np), 3
        )
        result = benchmark.pedantic(
            lambda: precision_recall_density_coverage(real, fake, K, K), rounds=1, iterations=1, warmup_rounds=0
        )
    benchmark.extra_info.update(
        n_real=n, n_fake=n, dim=real.shape[1], k=K, threads=threads, ratio_vs_prdc_package=ratio,
        ours_seconds=ours_times, prdc_seconds=peer_times, **result,
    )
    assert same_results(ours, peer, n) and same_results(result, peer, n)


DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_prdc_10k_by_10k_2048(benchmark, device):
    real, fake = (t.float().to(device) for t in features(N))

    def run():
        result = precision_recall_density_coverage(real, fake)
        if device == "cuda":
            torch.cuda.synchronize()
        return result

    result = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(
        {"n_real": N, "n_fake": N, "dim": real.shape[1], "threads": torch.get_num_threads(), **result}
    )
    assert 0 < result["precision"] < 1 and 0 < result["recall"] < 1
