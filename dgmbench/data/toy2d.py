"""Toy 2-D densities, as in the flow literature (FFJORD, Grathwohl et al. 2019; Neural
Spline Flows, Durkan et al. 2019), each a registered dataset with variant ``continuous``,
shape (2,), and a fixed seeded 20,000 / 5,000 / 5,000 train / valid / test split (seeds
0 / 1 / 2 of a torch.Generator).

``SAMPLERS[name](n, generator) -> (n, 2)`` draws from each; ``EXACT_LOG_DENSITY[name](x)``
gives log p(x) in nats for those whose density has a closed form:

* ``eight_gaussians``  equal mixture of 8 isotropic Gaussians, means at radius 2*sqrt(2) at
                       angles k*pi/4, std sqrt(2)/4 (FFJORD's: scale 4, std 0.5, divided by
                       1.414). log p(x) = logsumexp_k log N(x; mu_k, s^2 I) - log 8.
* ``checkerboard``     uniform on the 8 "black" 2x2 squares of a 4x4 board on [-4, 4]^2,
                       black meaning floor(x1/2) + floor(x2/2) even (FFJORD's board).
                       p = 1/32 there, 0 elsewhere.
* ``pinwheel``         5 Gaussian arms (FFJORD's radial std 0.3, tangential std 0.1, rate
                       0.25), built as a RADIUS-dependent rotation of Gaussian blobs:
                       z ~ (1/5) sum_k N(R_k (1, 0), R_k diag(0.3^2, 0.1^2) R_k^T), R_k the
                       rotation by 2 pi k / 5, then x = 2 R(0.25 exp|z|) z. In polar
                       coordinates the twist is (r, phi) -> (r, phi + 0.25 exp r): its
                       Jacobian is [[1, 0], [0.25 exp r, 1]], determinant 1, and r is kept,
                       so the twist preserves area (r dr dphi). Hence
                       log p(x) = log p_z(R(-0.25 exp|x/2|) x/2) - log 4, exactly. (FFJORD
                       twists by the blob's first coordinate instead of |z|; that map is
                       not area-preserving, which is why we twist by the radius.)

* ``ring8`` / ``grid25``  the mode-coverage mixtures of VEEGAN (Srivastava et al. 2017) and
                       PacGAN (Lin et al. 2018): equal mixtures of isotropic Gaussians, 8
                       at angles 2 pi k / 8 on the unit circle with std 0.01, and 25 on
                       {-4, -2, 0, 2, 4}^2 with std 0.05 (``MODE_MIXTURES`` holds the
                       means and std, which dgmbench.metrics.mode_coverage scores against;
                       their exact log density is ``log_density_mode_mixture``).

No closed form (none in EXACT_LOG_DENSITY):

* ``two_moons``   scikit-learn's two moons, t ~ U(0, pi) continuous rather than evenly
                  spaced, noise std 0.1, then FFJORD's affine map x * 2 + (-1, -0.2).
* ``swiss_roll``  t = 1.5 pi (1 + 2u), (t cos t, t sin t) + N(0, I), divided by 5 (scikit-
                  learn's make_swiss_roll(noise=1) restricted to its x/z plane, as FFJORD).

Both are Gaussian blurs of a curve, so their density is a one-dimensional integral with no
closed form; we do not provide one.
"""
from __future__ import annotations

import math
from typing import Callable

import torch

from dgmbench.data.base import DataInfo, Dataset, DatasetSpec, register_dataset

SPLIT_SIZES = {"train": 20_000, "valid": 5_000, "test": 5_000}
SPLIT_SEEDS = {"train": 0, "valid": 1, "test": 2}

Sampler = Callable[[int, torch.Generator], torch.Tensor]


def _uniform(n: int, generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(n, *shape, generator=generator)


def _normal(n: int, generator: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.randn(n, *shape, generator=generator)


def _rotate(points: torch.Tensor, angle: torch.Tensor) -> torch.Tensor:
    """Rotate each point (..., 2) counter-clockwise by its angle (...)."""
    cos, sin = torch.cos(angle), torch.sin(angle)
    x, y = points[..., 0], points[..., 1]
    return torch.stack([cos * x - sin * y, sin * x + cos * y], dim=-1)


# --- eight Gaussians ---------------------------------------------------------------------

EIGHT_GAUSSIANS_RADIUS = 2 * math.sqrt(2)
EIGHT_GAUSSIANS_STD = math.sqrt(2) / 4


def _eight_gaussian_means(device=None, dtype=torch.float32) -> torch.Tensor:
    angles = torch.arange(8, device=device, dtype=dtype) * (math.pi / 4)
    return EIGHT_GAUSSIANS_RADIUS * torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)


def sample_eight_gaussians(n: int, generator: torch.Generator) -> torch.Tensor:
    component = torch.randint(0, 8, (n,), generator=generator)
    return _eight_gaussian_means()[component] + EIGHT_GAUSSIANS_STD * _normal(n, generator, 2)


def log_density_eight_gaussians(x: torch.Tensor) -> torch.Tensor:
    means = _eight_gaussian_means(x.device, x.dtype)
    squared_distance = ((x[:, None, :] - means) ** 2).sum(-1)  # (N, 8)
    log_normal = -squared_distance / (2 * EIGHT_GAUSSIANS_STD**2) - math.log(2 * math.pi * EIGHT_GAUSSIANS_STD**2)
    return torch.logsumexp(log_normal, dim=1) - math.log(8)


# --- checkerboard ------------------------------------------------------------------------

CHECKERBOARD_SQUARE = 2.0  # side of a square; the board is 4x4 squares on [-4, 4]^2
CHECKERBOARD_HALF_WIDTH = 4.0
CHECKERBOARD_LOG_DENSITY = -math.log(8 * CHECKERBOARD_SQUARE**2)


def sample_checkerboard(n: int, generator: torch.Generator) -> torch.Tensor:
    column = torch.randint(0, 4, (n,), generator=generator)
    # a black square's row has the column's parity: pick one of the two such rows
    row = 2 * torch.randint(0, 2, (n,), generator=generator) + column % 2
    square = torch.stack([column, row], dim=-1).float()
    return CHECKERBOARD_SQUARE * (square + _uniform(n, generator, 2)) - CHECKERBOARD_HALF_WIDTH


def log_density_checkerboard(x: torch.Tensor) -> torch.Tensor:
    square = torch.floor(x / CHECKERBOARD_SQUARE)
    on_board = ((x >= -CHECKERBOARD_HALF_WIDTH) & (x < CHECKERBOARD_HALF_WIDTH)).all(dim=-1)
    black = (square.sum(dim=-1) % 2) == 0
    inside = torch.full_like(x[:, 0], CHECKERBOARD_LOG_DENSITY)
    return torch.where(on_board & black, inside, torch.full_like(inside, -math.inf))


# --- pinwheel ----------------------------------------------------------------------------

PINWHEEL_ARMS = 5
PINWHEEL_RADIAL_STD = 0.3
PINWHEEL_TANGENTIAL_STD = 0.1
PINWHEEL_RATE = 0.25
PINWHEEL_SCALE = 2.0


def pinwheel_twist(z: torch.Tensor, inverse: bool = False) -> torch.Tensor:
    """z -> R(rate * exp|z|) z: an area-preserving bijection of the plane (see docstring)."""
    angle = PINWHEEL_RATE * torch.exp(z.norm(dim=-1))
    return _rotate(z, -angle if inverse else angle)


def _arm_angles(device=None, dtype=torch.float32) -> torch.Tensor:
    return torch.arange(PINWHEEL_ARMS, device=device, dtype=dtype) * (2 * math.pi / PINWHEEL_ARMS)


def sample_pinwheel(n: int, generator: torch.Generator) -> torch.Tensor:
    arm = torch.randint(0, PINWHEEL_ARMS, (n,), generator=generator)
    blob = _normal(n, generator, 2) * torch.tensor([PINWHEEL_RADIAL_STD, PINWHEEL_TANGENTIAL_STD])
    blob[:, 0] += 1.0
    z = _rotate(blob, _arm_angles()[arm])
    return PINWHEEL_SCALE * pinwheel_twist(z)


def log_density_pinwheel(x: torch.Tensor) -> torch.Tensor:
    z = pinwheel_twist(x / PINWHEEL_SCALE, inverse=True)
    # each arm's blob coordinates: rotate z back by the arm's angle, for all arms at once
    blob = _rotate(z[:, None, :], -_arm_angles(x.device, x.dtype))  # (N, arms, 2)
    radial, tangential = blob[..., 0] - 1.0, blob[..., 1]
    log_blob = (
        -0.5 * (radial / PINWHEEL_RADIAL_STD) ** 2
        - 0.5 * (tangential / PINWHEEL_TANGENTIAL_STD) ** 2
        - math.log(2 * math.pi * PINWHEEL_RADIAL_STD * PINWHEEL_TANGENTIAL_STD)
    )
    log_z = torch.logsumexp(log_blob, dim=1) - math.log(PINWHEEL_ARMS)
    return log_z - 2 * math.log(PINWHEEL_SCALE)  # x = 2 * (area-preserving map of z)


# --- mode-coverage mixtures (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018) --------


def _ring_means(device=None, dtype=torch.float32) -> torch.Tensor:
    angles = torch.arange(8, device=device, dtype=dtype) * (2 * math.pi / 8)
    return torch.stack([torch.cos(angles), torch.sin(angles)], dim=-1)


def _grid_means(device=None, dtype=torch.float32) -> torch.Tensor:
    axis = torch.arange(-4, 5, 2, device=device, dtype=dtype)
    return torch.cartesian_prod(axis, axis)


# name -> (function giving the (K, 2) means, isotropic std): equal-weight Gaussian mixtures
MODE_MIXTURES: dict[str, tuple[Callable[..., torch.Tensor], float]] = {
    "ring8": (_ring_means, 0.01),  # 8 modes on the unit circle, std 0.01
    "grid25": (_grid_means, 0.05),  # 25 modes on {-4, -2, 0, 2, 4}^2, std 0.05
}


def mixture_means(name: str, device=None, dtype=torch.float32) -> torch.Tensor:
    return MODE_MIXTURES[name][0](device, dtype)


def _mixture_sampler(name: str) -> Sampler:
    def sample(n: int, generator: torch.Generator) -> torch.Tensor:
        means, std = mixture_means(name), MODE_MIXTURES[name][1]
        component = torch.randint(0, len(means), (n,), generator=generator)
        return means[component] + std * _normal(n, generator, 2)

    return sample


def log_density_mode_mixture(name: str, x: torch.Tensor) -> torch.Tensor:
    """log p(x) = logsumexp_k log N(x; mu_k, std^2 I) - log K for a MODE_MIXTURES board."""
    means, std = mixture_means(name, x.device, x.dtype), MODE_MIXTURES[name][1]
    squared_distance = ((x[:, None, :] - means) ** 2).sum(-1)
    log_normal = -squared_distance / (2 * std**2) - math.log(2 * math.pi * std**2)
    return torch.logsumexp(log_normal, dim=1) - math.log(len(means))


# --- two moons and swiss roll (no closed-form density) -------------------------------------

TWO_MOONS_NOISE = 0.1


def sample_two_moons(n: int, generator: torch.Generator) -> torch.Tensor:
    t = math.pi * _uniform(n, generator)
    lower = torch.randint(0, 2, (n,), generator=generator).bool()
    upper_moon = torch.stack([torch.cos(t), torch.sin(t)], dim=-1)
    lower_moon = torch.stack([1 - torch.cos(t), 0.5 - torch.sin(t)], dim=-1)
    moons = torch.where(lower[:, None], lower_moon, upper_moon) + TWO_MOONS_NOISE * _normal(n, generator, 2)
    return 2 * moons + torch.tensor([-1.0, -0.2])


def sample_swiss_roll(n: int, generator: torch.Generator) -> torch.Tensor:
    t = 1.5 * math.pi * (1 + 2 * _uniform(n, generator))
    roll = torch.stack([t * torch.cos(t), t * torch.sin(t)], dim=-1)
    return (roll + _normal(n, generator, 2)) / 5


SAMPLERS: dict[str, Sampler] = {
    "two_moons": sample_two_moons,
    "eight_gaussians": sample_eight_gaussians,
    "checkerboard": sample_checkerboard,
    "pinwheel": sample_pinwheel,
    "swiss_roll": sample_swiss_roll,
    **{name: _mixture_sampler(name) for name in MODE_MIXTURES},
}
EXACT_LOG_DENSITY: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "eight_gaussians": log_density_eight_gaussians,
    "checkerboard": log_density_checkerboard,
    "pinwheel": log_density_pinwheel,
}


def _loader(name: str, description: str):
    def load(variant: str) -> Dataset:
        info = DataInfo(name=name, variant=variant, shape=(2,), value_type="continuous")
        splits = {
            split: SAMPLERS[name](size, torch.Generator().manual_seed(SPLIT_SEEDS[split]))
            for split, size in SPLIT_SIZES.items()
        }
        return Dataset(info, splits, description=description)

    return load


for _name, _what in {
    "two_moons": "two noisy half-circles (no closed-form density)",
    "eight_gaussians": "mixture of 8 Gaussians on a circle (exact density)",
    "checkerboard": "uniform on 8 squares of a 4x4 board (exact density)",
    "pinwheel": "5 radius-twisted Gaussian arms (exact density)",
    "swiss_roll": "noisy 2-D spiral (no closed-form density)",
    "ring8": "8 Gaussians (std 0.01) on the unit circle, the VEEGAN/PacGAN mode-coverage ring (exact density)",
    "grid25": "25 Gaussians (std 0.05) on {-4,-2,0,2,4}^2, the VEEGAN/PacGAN mode-coverage grid (exact density)",
}.items():
    _description = f"toy 2-D: {_what}; seeded 20k/5k/5k samples"
    register_dataset(
        DatasetSpec(
            name=_name,
            variants=("continuous",),
            loader=_loader(_name, _description),
            description=_description,
            source="embedded (sampled, dgmbench.data.toy2d)",
        )
    )
