"""pytest-benchmark: MAF and RealNVP, ours and zuko's at equal sizes (D = 784, 5 layers,
hidden 1024, batch 100; benchmarks/bench_flows.py says what "equal" means for each), for a
training step, density evaluation and sampling, at one thread. The ours-case records
``ratio_vs_zuko`` (median over interleaved runs of time(ours) / time(zuko); below 1: faster),
both sides' times and the thread count, and checks both sides did the same work (finite
outputs of the same shape; training losses of the same magnitude at initialisation).
Skipped by the default run (--benchmark-skip); run with
`pytest tests/benchmarks/test_bench_flows.py --benchmark-only`."""
import math

import pytest
import torch

from benchmarks.bench_flows import (
    BATCH, DIM, KINDS, OPERATIONS, PAIRS, SAMPLE_BATCH, batch, compare, layers_for, operation, ours, prepared,
)


@pytest.mark.parametrize("name", OPERATIONS)
@pytest.mark.parametrize("kind", KINDS)
def test_flow_operation_vs_zuko(benchmark, kind, name):
    pytest.importorskip("zuko")
    result = compare(kind, name, threads=1, pairs=min(PAIRS[name], 5))
    x = batch()
    model = prepared(ours(kind, layers_for(kind, name)))
    benchmark.pedantic(lambda: operation(model, name, x), rounds=1 if name == "sample" else 5, iterations=1,
                       warmup_rounds=0 if name == "sample" else 1)
    benchmark.extra_info.update(
        batch=SAMPLE_BATCH if name == "sample" else BATCH, dim=DIM, layers=result["layers"], threads=1,
        ratio_vs_zuko=result["ratio"], ours_seconds=result["ours_seconds"], zuko_seconds=result["zuko_seconds"],
    )
    mine, peer = result["ours_output"], result["zuko_output"]
    if name == "train_step":
        # the same objective: per-example -log p(x) in nats, both near 784 * 1.42 at initialisation
        assert math.isfinite(mine) and math.isfinite(peer)
        assert mine == pytest.approx(peer, rel=0.2)
    else:
        shape = (BATCH,) if name == "log_prob" else (SAMPLE_BATCH, DIM)
        assert mine.shape == peer.shape == shape
        assert torch.isfinite(mine).all() and torch.isfinite(peer).all()
