"""asv: one training step (forward, backward, Adam update) of the VAE and the IWAE (k = 5)
at the one-stochastic-layer architecture of Burda et al. (784-200-200-50, tanh; Bernoulli
decoder) on a batch of 100 binary 28x28 images, ours and pythae's (``pythae.models.VAE`` /
``IWAE`` with encoder and decoder networks of exactly the same layers) side by side.
``track_ratio_vs_pythae`` is the median over interleaved runs of time(ours) / time(pythae)
(below 1: faster) at equal threads (benchmarks/bench_prdc.equal_threads). Skipped when
pythae is not installed (it is in the ``test`` extra)."""
from __future__ import annotations

import torch
from torch import nn

from benchmarks.bench_prdc import equal_threads, interleaved
from dgmbench.data.base import DataInfo
from dgmbench.models import build_model

BATCH, LATENT, HIDDEN, K = 100, 50, 200, 5
INFO = DataInfo(name="mnist", variant="dynamic", shape=(1, 28, 28), value_type="binary", num_levels=2)
KINDS = ("vae", "iwae")


def batch(device: str = "cpu") -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.bernoulli(torch.full((BATCH, 1, 28, 28), 0.3), generator=generator).to(device)


def ours(kind: str, device: str = "cpu"):
    """(model, optimiser): our VAE (analytic KL, one sample) or IWAE (k = 5)."""
    torch.manual_seed(0)
    if kind == "vae":
        model = build_model("vae", INFO, latent=LATENT, hidden=HIDDEN, layers=2)
    else:
        model = build_model("iwae", INFO, latent=(LATENT,), hidden=(HIDDEN,), depth=2, k=K)
    model = model.to(device)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def pythae_model(kind: str, device: str = "cpu"):
    """(model, optimiser): pythae's VAE / IWAE (k = 5) with our layer sizes and tanh."""
    from pythae.models import IWAE, VAE, IWAEConfig, VAEConfig
    from pythae.models.base.base_utils import ModelOutput
    from pythae.models.nn import BaseDecoder, BaseEncoder

    class Encoder(BaseEncoder):
        def __init__(self):
            BaseEncoder.__init__(self)
            self.net = nn.Sequential(nn.Linear(784, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
                                     nn.Linear(HIDDEN, 2 * LATENT))

        def forward(self, x):
            mean, log_var = self.net(x.reshape(len(x), -1)).chunk(2, dim=-1)
            return ModelOutput(embedding=mean, log_covariance=log_var)

    class Decoder(BaseDecoder):
        def __init__(self):
            BaseDecoder.__init__(self)
            self.net = nn.Sequential(nn.Linear(LATENT, HIDDEN), nn.Tanh(), nn.Linear(HIDDEN, HIDDEN), nn.Tanh(),
                                     nn.Linear(HIDDEN, 784), nn.Sigmoid())

        def forward(self, z):
            return ModelOutput(reconstruction=self.net(z).reshape(len(z), 1, 28, 28))

    torch.manual_seed(0)
    if kind == "vae":
        config = VAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT, reconstruction_loss="bce")
        model = VAE(config, encoder=Encoder(), decoder=Decoder())
    else:
        config = IWAEConfig(input_dim=(1, 28, 28), latent_dim=LATENT, reconstruction_loss="bce", number_samples=K)
        model = IWAE(config, encoder=Encoder(), decoder=Decoder())
    model = model.to(device)
    return model, torch.optim.Adam(model.parameters(), lr=1e-3)


def our_step(model, optimiser, x) -> float:
    optimiser.zero_grad(set_to_none=True)
    loss = model.loss(x)
    loss.backward()
    optimiser.step()
    return loss.item()


def pythae_step(model, optimiser, x) -> float:
    optimiser.zero_grad(set_to_none=True)
    loss = model({"data": x}).loss
    loss.backward()
    optimiser.step()
    return loss.item()


def compare(kind: str, threads: int, pairs: int = 20) -> dict:
    """Interleaved timings of `pairs` training steps of each, after one warm-up step each."""
    x = batch()
    mine, mine_opt = ours(kind)
    peer, peer_opt = pythae_model(kind)
    our_step(mine, mine_opt, x)
    pythae_step(peer, peer_opt, x)
    with equal_threads(threads):
        ratio, our_times, peer_times, our_loss, peer_loss = interleaved(
            lambda: our_step(mine, mine_opt, x), lambda: pythae_step(peer, peer_opt, x), pairs
        )
    return {"ratio": ratio, "ours_seconds": our_times, "pythae_seconds": peer_times, "threads": threads,
            "ours_loss": our_loss, "pythae_loss": peer_loss}


class LatentTrainingStepVersusPythae:
    params = (KINDS, [1, 2])
    param_names = ("model", "threads")
    number = 1
    repeat = 1
    timeout = 300

    def setup(self, kind, threads):
        try:
            import pythae  # noqa: F401
        except ImportError:
            raise NotImplementedError("pythae is not installed")

    def track_ratio_vs_pythae(self, kind, threads):
        return compare(kind, threads)["ratio"]

    track_ratio_vs_pythae.unit = "time(ours) / time(pythae)"


class LatentTrainingStep:
    params = (KINDS,)
    param_names = ("model",)

    def setup(self, kind):
        self.x = batch()
        self.model, self.optimiser = ours(kind)
        our_step(self.model, self.optimiser, self.x)

    def time_training_step(self, kind):
        our_step(self.model, self.optimiser, self.x)
