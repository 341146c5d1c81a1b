"""asv: MAF and RealNVP, ours and zuko's (Rozet et al.) side by side at equal sizes on flat
784-dimensional data (MNIST as a vector): a training step (forward, backward, Adam update),
density evaluation (log p(x) of a batch, no gradients) and sampling.

Equal sizes: MAF (Papamakarios et al. 2017, MAF (5) for MNIST): 5 MADE layers of one hidden
layer of 1024 ReLU units, orderings reversed between layers (zuko's ``MAF`` alternates them
too); RealNVP: 5 affine couplings with alternating halves, each conditioner an MLP with two
hidden layers of 1024 ReLU units. Neither side uses batch normalisation (zuko has none).
One difference in RealNVP: our conditioner reads the masked full vector (784 inputs, 2 x 784
outputs, of which the kept half is unused), zuko's only the kept half (392 in, 2 x 392 out):
the same depth and width, about 1.3x the multiply-adds in ours (17.3M against 11.3M
parameters; the MAFs have 12.1M each). Sampling draws ``SAMPLE_BATCH`` = 10 examples.
Inverting a MAF layer takes D = 784 sequential network passes on both sides (zuko:
``passes = features``), about 8 s per layer on one core, so MAF sampling is measured on a
one-layer MAF of the same width (``SAMPLE_MAF_LAYERS``; its time is linear in the layers).

``track_ratio_vs_zuko`` is the median over interleaved runs of time(ours) / time(zuko) (below
1: ours faster) at equal threads (benchmarks/bench_prdc.equal_threads). Skipped when zuko is
not installed (it is in the ``test`` extra)."""
from __future__ import annotations

import torch

from benchmarks.bench_prdc import equal_threads, interleaved
from dgmbench.data.base import DataInfo
from dgmbench.models import build_model

DIM, LAYERS, HIDDEN, BATCH, SAMPLE_BATCH, SAMPLE_MAF_LAYERS = 784, 5, 1024, 100, 10, 1
INFO = DataInfo(name="mnist", variant="flat", shape=(DIM,), value_type="continuous")
KINDS = ("maf", "realnvp")
OPERATIONS = ("train_step", "log_prob", "sample")
PAIRS = {"train_step": 10, "log_prob": 10, "sample": 3}  # interleaved pairs per measurement


def layers_for(kind: str, name: str) -> int:
    return SAMPLE_MAF_LAYERS if (kind, name) == ("maf", "sample") else LAYERS


def batch(device: str = "cpu") -> torch.Tensor:
    return torch.randn(BATCH, DIM, generator=torch.Generator().manual_seed(0)).to(device)


def ours(kind: str, layers: int = LAYERS, device: str = "cpu") -> torch.nn.Module:
    torch.manual_seed(0)
    if kind == "maf":
        model = build_model("maf", INFO, num_layers=layers, hidden_sizes=(HIDDEN,), batch_norm=False, logit_alpha=None)
    else:
        model = build_model("realnvp", INFO, vector_couplings=layers, vector_hidden=HIDDEN, batch_norm=False,
                            logit_alpha=None)
    return model.to(device)


class ZukoModel(torch.nn.Module):
    """zuko's lazy flow behind our model's three calls (loss, log_prob, sample)."""

    def __init__(self, kind: str, layers: int = LAYERS):
        super().__init__()
        import zuko

        torch.manual_seed(0)
        if kind == "maf":
            self.flow = zuko.flows.MAF(DIM, transforms=layers, hidden_features=(HIDDEN,))
        else:
            self.flow = zuko.flows.RealNVP(DIM, transforms=layers, hidden_features=(HIDDEN, HIDDEN))

    def log_prob(self, x):
        return self.flow().log_prob(x)

    def loss(self, x):
        return -self.log_prob(x).mean()

    def sample(self, n):
        return self.flow().sample((n,))


def operation(model: torch.nn.Module, name: str, x: torch.Tensor):
    """One call of `name` on `model` (either side), returning something to check."""
    if name == "train_step":
        optimiser = model._benchmark_optimiser
        optimiser.zero_grad(set_to_none=True)
        loss = model.loss(x)
        loss.backward()
        optimiser.step()
        return loss.item()
    with torch.no_grad():
        if name == "log_prob":
            return model.log_prob(x)
        return model.sample(SAMPLE_BATCH)


def prepared(model: torch.nn.Module) -> torch.nn.Module:
    model._benchmark_optimiser = torch.optim.Adam(model.parameters(), lr=1e-4)
    return model


def compare(kind: str, name: str, threads: int = 1, pairs: int | None = None) -> dict:
    """Interleaved timings of `pairs` calls of each side, after one warm-up call each."""
    x = batch()
    layers = layers_for(kind, name)
    mine, peer = prepared(ours(kind, layers)), prepared(ZukoModel(kind, layers))
    pairs = PAIRS[name] if pairs is None else pairs
    with equal_threads(threads):
        operation(mine, name, x), operation(peer, name, x)
        ratio, our_times, peer_times, our_out, peer_out = interleaved(
            lambda: operation(mine, name, x), lambda: operation(peer, name, x), pairs
        )
    return {"ratio": ratio, "ours_seconds": our_times, "zuko_seconds": peer_times, "threads": threads,
            "layers": layers, "ours_output": our_out, "zuko_output": peer_out}


class FlowsVersusZuko:
    params = (KINDS, OPERATIONS, [1])
    param_names = ("model", "operation", "threads")
    number = 1
    repeat = 1
    timeout = 900

    def setup(self, kind, name, threads):
        try:
            import zuko  # noqa: F401
        except ImportError:
            raise NotImplementedError("zuko is not installed")

    def track_ratio_vs_zuko(self, kind, name, threads):
        return compare(kind, name, threads)["ratio"]

    track_ratio_vs_zuko.unit = "time(ours) / time(zuko)"


class FlowOperations:
    """Our MAF and RealNVP alone at the sizes above (absolute times)."""

    params = (KINDS,)
    param_names = ("model",)
    timeout = 600

    def setup(self, kind):
        self.x = batch()
        self.model = prepared(ours(kind))
        self.sampler = ours(kind, layers_for(kind, "sample"))

    def time_training_step(self, kind):
        operation(self.model, "train_step", self.x)

    def time_log_prob(self, kind):
        operation(self.model, "log_prob", self.x)

    def time_sample(self, kind):
        operation(self.sampler, "sample", self.x)
