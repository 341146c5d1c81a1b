"""asv: AIS throughput (chains x temperatures per second) and a CD-k training step of a
784 x 500 binary RBM (the binarized-MNIST reference size); CPU, and CUDA when present."""
import time

import torch

from dgmbench.data.base import DataInfo
from dgmbench.metrics.ais import run_ais, schedule
from dgmbench.models.base import TrainConfig, build_model

INFO = DataInfo(name="bench", variant="binary", shape=(784,), value_type="binary", num_levels=2)
CHAINS, TEMPERATURES, BATCH = 100, 500, 100


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def _sync(device):
    if device == "cuda":
        torch.cuda.synchronize()


def _rbm(device, **overrides):
    torch.manual_seed(0)
    return build_model("rbm", INFO, hidden=500, init_std=0.05, **overrides).to(device)


class AIS784x500:
    params = (_devices(),)
    param_names = ("device",)
    number = 1
    repeat = (1, 3, 120.0)
    warmup_time = 0.0
    timeout = 600

    def setup(self, device):
        self.path = _rbm(device).annealing_path(torch.full((784,), 0.2, dtype=torch.float64, device=device))
        self.betas = schedule(TEMPERATURES)
        self.generator = torch.Generator(device=device).manual_seed(0)

    def time_ais(self, device):
        run_ais(self.path, self.betas, CHAINS, self.generator)
        _sync(device)

    def track_chain_temperatures_per_second(self, device):
        tic = time.perf_counter()
        run_ais(self.path, self.betas, CHAINS, self.generator)
        _sync(device)
        return CHAINS * TEMPERATURES / (time.perf_counter() - tic)

    track_chain_temperatures_per_second.unit = "chain-temperatures/s"


class CDStep784x500:
    params = (_devices(), [1, 25], [False, True])
    param_names = ("device", "k", "persistent")
    number = 1
    repeat = (3, 10, 60.0)

    def setup(self, device, k, persistent):
        self.model = _rbm(device, k=k, persistent=persistent)
        self.train = TrainConfig(lr=0.05, batch_size=BATCH)
        self.optimizers = self.model.configure_optimizers(self.train)
        self.batch = torch.bernoulli(torch.full((BATCH, 784), 0.13, device=device))

    def time_training_step(self, device, k, persistent):
        self.model.training_step(self.batch, self.optimizers, self.train)
        _sync(device)
