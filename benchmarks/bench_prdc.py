"""asv: precision/recall/density/coverage on 10,000 x 10,000 features of dimension 2048
(the size of an Inception-feature evaluation), float64, blocked distances; CPU, and CUDA
when present."""
import torch

from dgmbench.metrics.prdc import precision_recall_density_coverage

N, DIM = 10_000, 2048


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


class PRDC10k:
    params = (_devices(),)
    param_names = ("device",)
    number = 1  # one call is tens of seconds on a CPU
    repeat = (1, 3, 120.0)
    warmup_time = 0.0
    timeout = 1200

    def setup(self, device):
        generator = torch.Generator().manual_seed(0)
        self.real = torch.randn(N, DIM, generator=generator).to(device)
        self.fake = (torch.randn(N, DIM, generator=generator) + 0.05).to(device)

    def time_prdc(self, device):
        precision_recall_density_coverage(self.real, self.fake)
        if device == "cuda":
            torch.cuda.synchronize()

    def peakmem_prdc(self, device):
        precision_recall_density_coverage(self.real, self.fake)
