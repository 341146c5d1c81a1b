"""pytest-benchmark: NADE at MNIST size (D = 784, H = 500), one Adam training step at batch
100 and 1000, ours and the per-pixel-loop NADE (pytorch-generative's design,
benchmarks/peers/nade_loop.py) side by side; CPU, and CUDA when present. The ours-case
records ``ratio_vs_loop`` (median over interleaved runs of time(ours) / time(loop), below 1:
faster), both throughputs and the thread counts; the memory case records the peak resident
memory a batch-1000 step adds for each implementation (fresh subprocess each). The helpers
live in benchmarks/bench_nade.py (shared with asv; `benchmarks` is importable from the
repository root, as for the PRDC benchmarks). Skipped by the default run (--benchmark-skip);
run with `pytest tests/benchmarks/test_bench_nade.py --benchmark-only`."""
import pytest
import torch

from benchmarks.bench_nade import BATCHES, IMPLEMENTATIONS, interleaved, peak_memory_mb, training_step
from dgmbench.provenance import thread_info

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_nade_training_step_784x500(benchmark, implementation, batch, device):
    step = training_step(implementation, batch, device)
    benchmark.pedantic(step, rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        implementation=implementation,
        batch=batch,
        device=device,
        examples_per_second=batch / benchmark.stats.stats.median,
        threads=thread_info(),
    )


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", BATCHES)
def test_nade_versus_loop(benchmark, batch, device):
    comparison = interleaved(batch, pairs=5 if batch <= 100 else 3, device=device)
    step = training_step("dgmbench", batch, device)
    benchmark.pedantic(step, rounds=1, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(device=device, **comparison)
    assert comparison["ratio_vs_loop"] > 0


def test_nade_peak_memory_batch_1000(benchmark):
    peaks = {}

    def measure():
        peaks.update({name: peak_memory_mb(name, 1000) for name in IMPLEMENTATIONS})

    benchmark.pedantic(measure, rounds=1, iterations=1, warmup_rounds=0)
    benchmark.extra_info.update(
        batch=1000,
        peak_memory_mb=peaks,
        ratio_vs_loop=peaks["dgmbench"] / peaks["loop"],
        threads=thread_info(),
    )
    assert 0 < peaks["dgmbench"] < peaks["loop"]
