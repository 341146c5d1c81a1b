"""Random draws for the annealing loops (AIS / RAISE) of the Boltzmann machines.

An annealing run draws one uniform per unit, chain and temperature: 1.9e9 float32 uniforms
for the standard binarized-MNIST run (784 x 500 RBM, 100 chains, 14,500 temperatures). On
CPU torch's generator (one serial Mersenne-Twister stream) takes ~5 ns per uniform, about a
fifth of that run. ``fast_draws`` uses numpy's SFC64 (Small Fast Chaotic; passes TestU01's
BigCrush and PractRand) instead, about twice as fast, seeded by one draw from the caller's
torch generator, so a seed still fixes every draw. Uniforms have 24 random bits, as torch's
float32 ``rand``. On CUDA torch's own generator stays (Philox on the device is fast).

``TorchDraws`` keeps the torch-generator stream for the per-call ``transition(state, beta,
generator)`` API, whose callers (the generic AIS loop, tests of the Gibbs conditionals) hand
in torch generators."""
from __future__ import annotations

import numpy as np
import torch

_NUMPY_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


class TorchDraws:
    """Uniforms and normals from a torch generator (or torch's global one), drawn on the
    generator's device and moved to the requested one."""

    def __init__(self, generator: torch.Generator | None = None):
        self.generator = generator

    def uniform(self, shape, device, dtype=torch.float32) -> torch.Tensor:
        if self.generator is None:
            return torch.rand(shape, device=device, dtype=dtype)
        return torch.rand(shape, generator=self.generator, device=self.generator.device, dtype=dtype).to(device)

    def normal(self, shape, device, dtype=torch.float32) -> torch.Tensor:
        if self.generator is None:
            return torch.randn(shape, device=device, dtype=dtype)
        return torch.randn(shape, generator=self.generator, device=self.generator.device, dtype=dtype).to(device)


class NumpyDraws:
    """CPU uniforms and normals from numpy's SFC64, written straight into torch tensors."""

    def __init__(self, seed: int):
        self.rng = np.random.Generator(np.random.SFC64(seed))

    def uniform(self, shape, device, dtype=torch.float32) -> torch.Tensor:
        out = torch.empty(shape, dtype=dtype)
        self.rng.random(out=out.numpy(), dtype=_NUMPY_DTYPES[dtype])
        return out.to(device)

    def normal(self, shape, device, dtype=torch.float32) -> torch.Tensor:
        out = torch.empty(shape, dtype=dtype)
        self.rng.standard_normal(out=out.numpy(), dtype=_NUMPY_DTYPES[dtype])
        return out.to(device)


Draws = TorchDraws | NumpyDraws


def as_draws(source: torch.Generator | Draws | None) -> Draws:
    """A torch generator (or None) as TorchDraws; Draws pass through."""
    return source if isinstance(source, (TorchDraws, NumpyDraws)) else TorchDraws(source)


def fast_draws(generator: torch.Generator | Draws | None, device: torch.device) -> Draws:
    """The draws of one annealing run on ``device``: NumpyDraws seeded by one draw from
    ``generator`` on CPU, the generator itself elsewhere. Draws pass through unchanged."""
    if isinstance(generator, (TorchDraws, NumpyDraws)):
        return generator
    if torch.device(device).type != "cpu" or (generator is not None and generator.device.type != "cpu"):
        return TorchDraws(generator)
    seed = torch.randint(0, 2**62, (1,), generator=generator)
    return NumpyDraws(int(seed))


def bernoulli(probs: torch.Tensor, draws: Draws) -> torch.Tensor:
    """0./1. samples with P(1) = probs, in probs' dtype: the comparison is written into the
    float32 uniforms in place when the dtypes agree (no bool tensor to convert)."""
    uniform = draws.uniform(probs.shape, probs.device)
    if uniform.dtype == probs.dtype:
        return uniform.lt_(probs)
    return (uniform < probs).to(probs.dtype)
