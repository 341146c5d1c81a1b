"""pytest-benchmark: precision/recall/density/coverage on 10,000 x 10,000 features of
dimension 2048, float64, blocked distances (CPU; CUDA when present). Skipped by the default
test run (--benchmark-skip); run with `pytest tests/benchmarks/test_bench_prdc.py --benchmark-only`."""
import pytest
import torch

from dgmbench.metrics.prdc import precision_recall_density_coverage

N, DIM = 10_000, 2048
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_prdc_10k_by_10k_2048(benchmark, device):
    generator = torch.Generator().manual_seed(0)
    real = torch.randn(N, DIM, generator=generator).to(device)
    fake = (torch.randn(N, DIM, generator=generator) + 0.05).to(device)

    def run():
        result = precision_recall_density_coverage(real, fake)
        if device == "cuda":
            torch.cuda.synchronize()
        return result

    # one round: a CPU call takes a minute or more
    result = benchmark.pedantic(run, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update({"n_real": N, "n_fake": N, "dim": DIM, "dtype": "float64", **result})
    assert 0 < result["precision"] < 1 and 0 < result["recall"] < 1
