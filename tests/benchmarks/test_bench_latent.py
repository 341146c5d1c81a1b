"""pytest-benchmark: a VAE and an IWAE (k = 5) training step at Burda et al.'s 784-200-200-50
architecture, ours and pythae's with identical layers side by side (benchmarks/bench_latent.py),
at equal threads. The ours-case records ``ratio_vs_pythae`` (median over interleaved runs of
time(ours) / time(pythae); below 1: faster) and the thread count, and checks both losses are
the same objective at the same initial weights' scale (finite, of the same magnitude).
Skipped by the default run (--benchmark-skip); run with
`pytest tests/benchmarks/test_bench_latent.py --benchmark-only`."""
import math

import pytest

from benchmarks.bench_latent import KINDS, batch, compare, our_step, ours


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("kind", KINDS)
def test_training_step_vs_pythae(benchmark, kind, threads):
    pytest.importorskip("pythae")
    result = compare(kind, threads, pairs=10)
    x = batch()
    model, optimiser = ours(kind)
    benchmark.pedantic(lambda: our_step(model, optimiser, x), rounds=5, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(
        batch=x.shape[0], threads=threads, ratio_vs_pythae=result["ratio"],
        ours_seconds=result["ours_seconds"], pythae_seconds=result["pythae_seconds"],
    )
    # the same objective on the same batch: per-example -ELBO (or -L_5), both near 784 ln 2 at init
    # (pythae's losses are batch means of per-example sums, as ours)
    assert math.isfinite(result["ours_loss"]) and math.isfinite(result["pythae_loss"])
    assert result["ours_loss"] == pytest.approx(result["pythae_loss"], rel=0.2)
