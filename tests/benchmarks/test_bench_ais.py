"""pytest-benchmark: AIS throughput (chains x temperatures per second) and one CD-k / PCD-k
training step of a 784 x 500 binary RBM; CPU, and CUDA when present. Skipped by the default
run (--benchmark-skip); run with `pytest tests/benchmarks/test_bench_ais.py --benchmark-only`."""
import pytest
import torch

from dgmbench.data.base import DataInfo
from dgmbench.metrics.ais import run_ais, schedule
from dgmbench.models.base import TrainConfig, build_model

INFO = DataInfo(name="bench", variant="binary", shape=(784,), value_type="binary", num_levels=2)
CHAINS, TEMPERATURES, BATCH = 100, 500, 100
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]


def _rbm(device, **overrides):
    torch.manual_seed(0)
    return build_model("rbm", INFO, hidden=500, init_std=0.05, **overrides).to(device)


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


@pytest.mark.parametrize("device", DEVICES)
def test_ais_784x500_throughput(benchmark, device):
    path = _rbm(device).annealing_path(torch.full((784,), 0.2, dtype=torch.float64, device=device))
    betas = schedule(TEMPERATURES)
    generator = torch.Generator(device=device).manual_seed(0)

    def run():
        result = run_ais(path, betas, CHAINS, generator)
        _sync(device)
        return result

    result = benchmark.pedantic(run, rounds=3, iterations=1, warmup_rounds=1)
    seconds = benchmark.stats.stats.mean
    benchmark.extra_info.update(
        chains=CHAINS,
        temperatures=TEMPERATURES,
        chain_temperatures_per_second=CHAINS * TEMPERATURES / seconds,
        device=device,
    )
    assert result.log_weights.shape == (CHAINS,) and torch.isfinite(result.log_weights).all()


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("k,persistent", [(1, False), (1, True), (25, False)])
def test_cd_training_step_784x500(benchmark, device, k, persistent):
    model = _rbm(device, k=k, persistent=persistent)
    train = TrainConfig(lr=0.05, batch_size=BATCH)
    optimizers = model.configure_optimizers(train)
    batch = torch.bernoulli(torch.full((BATCH, 784), 0.13, device=device))

    def step():
        scalars = model.training_step(batch, optimizers, train)
        _sync(device)
        return scalars

    scalars = benchmark.pedantic(step, rounds=10, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(batch=BATCH, k=k, persistent=persistent, device=device)
    assert all(torch.isfinite(torch.tensor(v)) for v in scalars.values())
