"""asv: AIS for log Z of a 784 x 500 binary RBM (the binarized-MNIST reference size), 100
chains, at a reduced 500-temperature schedule of the standard shape (the standard 14,500 is
29x longer; measured once by hand, see the README's benchmark section), side by side with
the minimal AIS loop (benchmarks/peers/ais_minimal.py): ``track_ratio_vs_minimal_ais`` is
the median over interleaved runs of time(ours) / time(peer). ``track_ratio_vs_one_batch``
compares with the same fused loop run on all chains as one batch (the implementation
before chain groups, dgmbench.metrics.ais.CHAIN_GROUPS): on CPU at two threads the two
groups run concurrently. Thread count is a parameter; CPU, and CUDA when present."""
import time

import torch

from benchmarks.bench_rbm import INFO, interleaved_ratio
from benchmarks.peers.ais_minimal import minimal_ais_log_z
from dgmbench.metrics.ais import run_ais, schedule
from dgmbench.models.base import build_model

CHAINS, TEMPERATURES = 100, 500


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


class AIS784x500:
    params = (_devices(), [1, 2])
    param_names = ("device", "threads")
    number = 1
    repeat = (1, 3, 120.0)
    warmup_time = 0.0
    timeout = 600

    def setup(self, device, threads):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        self.layer = build_model("rbm", INFO, hidden=500, init_std=0.05).to(device).layer
        self.base = torch.full((784,), 0.2, dtype=torch.float64, device=device)
        self.path = self.layer.annealing_path(self.base)
        self.betas = schedule(TEMPERATURES)
        self.generator = torch.Generator(device=device).manual_seed(0)

    def ours(self):
        return run_ais(self.path, self.betas, CHAINS, self.generator)

    def one_batch(self):
        state = self.path.sample_base(CHAINS, self.generator)
        return self.path.anneal(state, [float(beta) for beta in self.betas], self.generator)

    def peer(self):
        layer = self.layer
        return minimal_ais_log_z(layer.weight.detach(), layer.visible_bias.detach(), layer.hidden_bias.detach(),
                                 self.base, self.betas, CHAINS, self.generator)

    def time_ais(self, device, threads):
        self.ours()
        _sync(device)

    def time_minimal_ais(self, device, threads):
        self.peer()
        _sync(device)

    def track_chain_temperatures_per_second(self, device, threads):
        tic = time.perf_counter()
        self.ours()
        _sync(device)
        return CHAINS * TEMPERATURES / (time.perf_counter() - tic)

    track_chain_temperatures_per_second.unit = "chain-temperatures/s"

    def track_ratio_vs_minimal_ais(self, device, threads):
        return interleaved_ratio(self.ours, self.peer, device, 3)

    track_ratio_vs_minimal_ais.unit = "time ours / time peer"

    def track_ratio_vs_one_batch(self, device, threads):
        return interleaved_ratio(self.ours, self.one_batch, device, 3)

    track_ratio_vs_one_batch.unit = "time ours / time one-batch loop"
