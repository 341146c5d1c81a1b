"""Sample grids: images as a grid PNG, 2-D points as a scatter plot, sequences as lines."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from dgmbench.data.base import DataInfo

MIN_DISPLAY_SIDE = 28  # nearest-neighbour upscaling of smaller images, so grids are legible


def to_unit_interval(samples: torch.Tensor, info: DataInfo) -> torch.Tensor:
    """Map samples to [0, 1] for display, following the data's value convention."""
    if info.value_type == "discrete":
        return samples / (info.num_levels - 1)
    return samples.clamp(0, 1)


def save_sample_grid(samples: torch.Tensor, info: DataInfo, path: Path, title: str = "") -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = samples.detach().float().cpu()
    if info.is_image:
        from torchvision.utils import save_image

        nrow = int(math.ceil(math.sqrt(len(samples))))
        images = to_unit_interval(samples, info)
        scale = max(1, math.ceil(MIN_DISPLAY_SIDE / images.shape[-1]))  # 8x8 digits -> 32x32 on screen
        images = images.repeat_interleave(scale, dim=-2).repeat_interleave(scale, dim=-1)
        save_image(images, path, nrow=nrow, padding=1, pad_value=0.5)
        return path
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    if info.shape == (2,):
        ax.scatter(samples[:, 0], samples[:, 1], s=2, alpha=0.5)
        ax.set_aspect("equal")
    else:
        for row in samples[:16].flatten(1):
            ax.plot(row, lw=0.5)
    ax.set_title(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
