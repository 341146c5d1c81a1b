"""pytest-benchmark: one CD-1 training step of a 784 x 500 binary RBM at batch 100 and 1000,
ours and the minimal hand-written CD-1 (benchmarks/peers/cd1_minimal.py) side by side; the
ours-case records ``ratio_vs_minimal_cd1``, the median over interleaved runs of
time(ours) / time(peer) (below 1: faster), and the thread count. Also CD-k / PCD-k steps.
CPU, and CUDA when present. Skipped by the default run (--benchmark-skip); run with
`pytest tests/benchmarks/test_bench_rbm.py --benchmark-only`."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: benchmarks/ (peers)
from benchmarks.bench_rbm import INFO, interleaved_ratio  # noqa: E402
from benchmarks.peers.cd1_minimal import MinimalCD1  # noqa: E402
from dgmbench.models.base import TrainConfig, build_model  # noqa: E402

DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _setup(device, batch, **overrides):
    torch.manual_seed(0)
    model = build_model("rbm", INFO, hidden=500, init_std=0.05, **overrides).to(device)
    train = TrainConfig(lr=0.05, batch_size=batch)
    optimizers = model.configure_optimizers(train)
    data = torch.bernoulli(torch.full((batch, 784), 0.13, device=device))
    return model, train, optimizers, data


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [100, 1000])
def test_cd1_step_784x500_vs_minimal(benchmark, device, batch):
    model, train, optimizers, data = _setup(device, batch)
    peer = MinimalCD1(784, 500, lr=0.05, momentum=0.5, init_std=0.05, device=device)

    def ours():
        return model.training_step(data, optimizers, train)

    ours()
    peer.step(data)
    ratio = interleaved_ratio(ours, lambda: peer.step(data), device, 11)
    scalars = benchmark.pedantic(lambda: (ours(), _sync(device))[0], rounds=10, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(batch=batch, device=device, threads=torch.get_num_threads(),
                                examples_per_second=batch / benchmark.stats.stats.median,
                                ratio_vs_minimal_cd1=ratio)
    assert all(torch.isfinite(torch.tensor(v)) for v in scalars.values())


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("batch", [100, 1000])
def test_minimal_cd1_step_784x500(benchmark, device, batch):
    _, _, _, data = _setup(device, batch)
    peer = MinimalCD1(784, 500, lr=0.05, momentum=0.5, init_std=0.05, device=device)
    benchmark.pedantic(lambda: (peer.step(data), _sync(device)), rounds=10, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(batch=batch, device=device, threads=torch.get_num_threads(),
                                examples_per_second=batch / benchmark.stats.stats.median)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k,persistent", [(1, False), (1, True), (25, False)])
def test_cd_training_step_784x500(benchmark, device, k, persistent):
    model, train, optimizers, data = _setup(device, 100, k=k, persistent=persistent)

    def step():
        scalars = model.training_step(data, optimizers, train)
        _sync(device)
        return scalars

    scalars = benchmark.pedantic(step, rounds=10, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(batch=100, k=k, persistent=persistent, device=device, threads=torch.get_num_threads())
    assert all(torch.isfinite(torch.tensor(v)) for v in scalars.values())
