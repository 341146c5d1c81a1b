"""pytest-benchmark: training-step and sampling throughput of every registered model
(quick-suite size on digits), CPU and CUDA when present. Run with
``pytest tests/benchmarks --benchmark-only``; skipped in the default test run."""
import pytest

from dgmbench.benchmarking import BATCH, SAMPLES, devices, quick_models, setup_bench


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("model", quick_models())
def test_training_step(benchmark, model, device):
    bench = setup_bench(model, device)
    benchmark.extra_info.update(batch=BATCH, device=device)
    benchmark.pedantic(bench.training_step, rounds=5, iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("device", devices())
@pytest.mark.parametrize("model", quick_models())
def test_sampling(benchmark, model, device):
    bench = setup_bench(model, device)
    benchmark.extra_info.update(samples=SAMPLES, device=device)
    benchmark.pedantic(bench.sample, rounds=3, iterations=1, warmup_rounds=1)
