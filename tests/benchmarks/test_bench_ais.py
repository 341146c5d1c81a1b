"""pytest-benchmark: AIS for log Z of a 784 x 500 binary RBM, 100 chains at a reduced
500-temperature schedule of the standard shape, ours and the minimal AIS loop
(benchmarks/peers/ais_minimal.py) side by side; the ours-case records
``ratio_vs_minimal_ais`` (median over interleaved runs of time(ours) / time(peer)),
``ratio_vs_one_batch`` (against the same fused loop on all chains as one batch, the
implementation before chain groups) and the thread count, at 1 and 2 threads. CPU, and
CUDA when present. Skipped by the default run (--benchmark-skip);
run with `pytest tests/benchmarks/test_bench_ais.py --benchmark-only`."""
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: benchmarks/ (peers)
from benchmarks.bench_rbm import INFO, interleaved_ratio  # noqa: E402
from benchmarks.peers.ais_minimal import minimal_ais_log_z  # noqa: E402
from dgmbench.metrics.ais import run_ais, schedule  # noqa: E402
from dgmbench.models.base import build_model  # noqa: E402

CHAINS, TEMPERATURES = 100, 500
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _setup(device):
    torch.manual_seed(0)
    layer = build_model("rbm", INFO, hidden=500, init_std=0.05).to(device).layer
    base = torch.full((784,), 0.2, dtype=torch.float64, device=device)
    generator = torch.Generator(device=device).manual_seed(0)

    def peer():
        return minimal_ais_log_z(layer.weight.detach(), layer.visible_bias.detach(), layer.hidden_bias.detach(),
                                 base, schedule(TEMPERATURES), CHAINS, generator)

    return layer.annealing_path(base), generator, peer


def _one_batch(path, generator, device):
    """The fused loop on all chains as one batch (before dgmbench.metrics.ais.CHAIN_GROUPS)."""
    betas = [float(beta) for beta in schedule(TEMPERATURES)]

    def run():
        result = path.anneal(path.sample_base(CHAINS, generator), betas, generator)
        _sync(device)
        return result

    return run


@pytest.fixture
def threads(request):
    """torch's thread count for the test, restored afterwards."""
    previous = torch.get_num_threads()
    torch.set_num_threads(request.param)
    yield request.param
    torch.set_num_threads(previous)


@pytest.mark.parametrize("threads", [1, 2], indirect=True)
@pytest.mark.parametrize("device", DEVICES)
def test_ais_784x500_throughput_vs_minimal(benchmark, device, threads):
    path, generator, peer = _setup(device)
    betas = schedule(TEMPERATURES)

    def ours():
        result = run_ais(path, betas, CHAINS, generator)
        _sync(device)
        return result

    ratio = interleaved_ratio(ours, peer, device, 3)
    ratio_one_batch = interleaved_ratio(ours, _one_batch(path, generator, device), device, 3)
    result = benchmark.pedantic(ours, rounds=3, iterations=1, warmup_rounds=1)
    seconds = benchmark.stats.stats.median
    benchmark.extra_info.update(
        chains=CHAINS,
        temperatures=TEMPERATURES,
        chain_temperatures_per_second=CHAINS * TEMPERATURES / seconds,
        device=device,
        threads=torch.get_num_threads(),
        ratio_vs_minimal_ais=ratio,
        ratio_vs_one_batch=ratio_one_batch,
    )
    assert result.log_weights.shape == (CHAINS,) and torch.isfinite(result.log_weights).all()


@pytest.mark.parametrize("device", DEVICES)
def test_minimal_ais_784x500_throughput(benchmark, device):
    _, _, peer = _setup(device)
    log_z = benchmark.pedantic(lambda: (peer(), _sync(device))[0], rounds=3, iterations=1, warmup_rounds=1)
    benchmark.extra_info.update(chains=CHAINS, temperatures=TEMPERATURES, device=device, threads=torch.get_num_threads())
    assert torch.isfinite(torch.tensor(log_z))
