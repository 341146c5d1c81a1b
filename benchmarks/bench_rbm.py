"""asv: one CD-k / PCD-k training step of a 784 x 500 binary RBM (the binarized-MNIST
reference size) at batch 100 and 1000, side by side with the minimal hand-written CD-1
(benchmarks/peers/cd1_minimal.py); ``track_ratio_vs_minimal_cd1`` is the median over
interleaved runs of time(ours) / time(peer) (below 1: faster). The thread count is a
parameter; CPU, and CUDA when present."""
import statistics
import time

import torch

from benchmarks.peers.cd1_minimal import MinimalCD1
from dgmbench.data.base import DataInfo
from dgmbench.models.base import TrainConfig, build_model

INFO = DataInfo(name="bench", variant="binary", shape=(784,), value_type="binary", num_levels=2)
HIDDEN = 500


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def interleaved_ratio(ours, peer, device, pairs: int) -> float:
    """Median of time(ours) / time(peer) over `pairs` back-to-back runs of each."""
    ratios = []
    for _ in range(pairs):
        times = []
        for run in (ours, peer):
            tic = time.perf_counter()
            run()
            _sync(device)
            times.append(time.perf_counter() - tic)
        ratios.append(times[0] / times[1])
    return statistics.median(ratios)


class CD1VersusMinimal784x500:
    params = (_devices(), [100, 1000], [1, 2])
    param_names = ("device", "batch", "threads")
    number = 1
    repeat = (3, 10, 60.0)

    def setup(self, device, batch, threads):
        torch.set_num_threads(threads)
        torch.manual_seed(0)
        self.model = build_model("rbm", INFO, hidden=HIDDEN, init_std=0.05).to(device)
        self.train = TrainConfig(lr=0.05, batch_size=batch)
        self.optimizers = self.model.configure_optimizers(self.train)
        self.batch = torch.bernoulli(torch.full((batch, 784), 0.13, device=device))
        self.peer = MinimalCD1(784, HIDDEN, lr=0.05, momentum=0.5, init_std=0.05, device=device)
        self.ours_step()  # first step: visible biases from the data, optimizer state
        self.peer.step(self.batch)

    def ours_step(self):
        self.model.training_step(self.batch, self.optimizers, self.train)

    def time_ours(self, device, batch, threads):
        self.ours_step()
        _sync(device)

    def time_minimal_cd1(self, device, batch, threads):
        self.peer.step(self.batch)
        _sync(device)

    def track_ratio_vs_minimal_cd1(self, device, batch, threads):
        return interleaved_ratio(self.ours_step, lambda: self.peer.step(self.batch), device, 11)

    track_ratio_vs_minimal_cd1.unit = "time ours / time peer"


class CDStep784x500:
    params = (_devices(), [1, 25], [False, True])
    param_names = ("device", "k", "persistent")
    number = 1
    repeat = (3, 10, 60.0)

    def setup(self, device, k, persistent):
        torch.manual_seed(0)
        self.model = build_model("rbm", INFO, hidden=HIDDEN, init_std=0.05, k=k, persistent=persistent).to(device)
        self.train = TrainConfig(lr=0.05, batch_size=100)
        self.optimizers = self.model.configure_optimizers(self.train)
        self.batch = torch.bernoulli(torch.full((100, 784), 0.13, device=device))

    def time_training_step(self, device, k, persistent):
        self.model.training_step(self.batch, self.optimizers, self.train)
        _sync(device)
