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


# --- training curves and board plots ------------------------------------------------------

CURVE_SUFFIX = "__curves"  # <record stem>__curves.png beside <record stem>.png


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def curves_path(sample_grid: Path) -> Path:
    """Where the training curves of the run whose sample grid is `sample_grid` go."""
    sample_grid = Path(sample_grid)
    return sample_grid.with_name(sample_grid.stem + CURVE_SUFFIX + ".png")


def save_training_curves(history: list[dict], path: Path, title: str = "") -> Path | None:
    """Training scalars (top) and the validation score (bottom) against epoch (left) and
    cumulative training wall time (right, where the history records ``seconds``), one PNG.
    Returns None for an empty history (nothing was trained)."""
    if not history:
        return None
    import math

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    plt = _pyplot()
    epochs = [entry["epoch"] for entry in history]
    seconds = [entry.get("seconds") for entry in history]
    axes_x = [("epoch", epochs)]
    if all(s is not None for s in seconds):
        axes_x.append(("training wall time (s)", seconds))
    scalars = [k for k in history[0] if k not in ("epoch", "seconds", "valid")
               and all(isinstance(e.get(k), (int, float)) for e in history)]
    valid = [e.get("valid") for e in history]
    has_valid = any(v is not None and math.isfinite(v) for v in valid)
    fig, axes = plt.subplots(2, len(axes_x), figsize=(4.2 * len(axes_x), 5.2), dpi=100, squeeze=False)
    for column, (xlabel, x) in enumerate(axes_x):
        top, bottom = axes[0, column], axes[1, column]
        for key in scalars:
            top.plot(x, [e[key] for e in history], marker=".", lw=1, label=key)
        top.set_ylabel("training (mean per epoch)")
        if scalars:
            top.legend(fontsize=7)
        if has_valid:
            bottom.plot(x, [v if v is not None else float("nan") for v in valid], marker=".", lw=1, color="C3")
            bottom.set_ylabel("validation score (lower is better)")
        else:
            bottom.text(0.5, 0.5, "no validation score", ha="center", va="center", transform=bottom.transAxes)
        bottom.set_xlabel(xlabel)
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def plot_board(results_dir: Path, dataset: str, output: Path, metric: str | None = None,
               suite: str = "all") -> list[Path]:
    """For one board: `metric` (default NLL, else the board's headline metric) against
    training wall-clock time for every run (validation curves where the history has wall
    times, the test value as a marker), and the models' sample grids side by side (each
    model's best run by that metric). Returns the two PNG paths."""
    from PIL import Image

    from dgmbench.report import METRICS
    from dgmbench.results_frame import load_results

    results_dir, output = Path(results_dir), Path(output)
    frame = load_results(results_dir)
    if suite in ("quick", "full"):
        frame = frame[frame.suite == suite]
    boards = sorted({b for b in frame.board if b == dataset or b.split("/")[0] == dataset})
    if not boards:
        raise ValueError(f"no results for {dataset!r} in {results_dir}; boards with results: "
                         f"{', '.join(sorted(set(frame.board))) or 'none'}")
    if len(boards) > 1:
        raise ValueError(f"{dataset!r} has several boards ({', '.join(boards)}); name one, e.g. --dataset {boards[0]}")
    board = boards[0]
    frame = frame[frame.board == board]
    present = set(frame.metric)
    if metric is None:
        metric = next((m for m in ("nll", "bpd", "iwae_nll", "neg_elbo", "ais_nll", "vlb_nll", "fid") if m in present), None)
    if metric not in present:
        raise ValueError(f"no {metric!r} results on {board}; metrics there: {', '.join(sorted(present))}")
    runs = frame[frame.metric == metric].sort_values("created").drop_duplicates("run_key", keep="last")
    higher = bool(runs.higher_is_better.iloc[0])
    title = METRICS.get(metric, (metric,))[0]
    unit = runs.unit.iloc[0]

    plt = _pyplot()
    output.mkdir(parents=True, exist_ok=True)
    stem = board.replace("/", "__")
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    for i, (model, group) in enumerate(runs.groupby("model")):
        color, marker = plt.get_cmap("tab20")(i % 20), "os^Dv<>p*h"[i % 10]
        for _, run in group.iterrows():
            history = _history(results_dir, run.record)
            if metric == "nll" and history and all(e.get("seconds") is not None for e in history):
                valid = [e.get("valid") for e in history]
                if any(v is not None and v == v for v in valid):
                    ax.plot([e["seconds"] for e in history], valid, color=color, lw=0.8, alpha=0.5)
        ax.scatter(group.train_seconds.clip(lower=1e-3), group.value, color=color, marker=marker, label=model,
                   s=22, zorder=3)
    ax.set_xscale("log")
    ax.set_xlabel("training wall-clock time (s)")
    ax.set_ylabel(f"test {title}" + (f" ({unit})" if unit and unit != title else ""))
    ax.set_title(f"{board}: test {title} against training time (lines: validation {title} during training)"
                 if metric == "nll" else f"{board}: test {title} against training time", fontsize=8)
    ax.legend(fontsize=6, ncol=2, loc="best")
    fig.tight_layout()
    time_plot = output / f"{stem}__{metric}_vs_time.png"
    fig.savefig(time_plot)
    plt.close(fig)

    best = runs.sort_values("value", ascending=not higher).drop_duplicates("model")
    grids = [(run.model, results_dir / "samples" / f"{run.record}.png") for _, run in best.iterrows()]
    grids = [(model, path) for model, path in grids if path.is_file()]
    if not grids:
        raise ValueError(f"no sample grids for {board} under {results_dir / 'samples'}")
    columns = min(6, len(grids))
    rows = -(-len(grids) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.2 * columns, 2.7 * rows), dpi=110, squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, (model, path) in zip(axes.flat, grids):
        with Image.open(path) as image:
            ax.imshow(image.convert("RGB"), interpolation="nearest")
        ax.set_title(model, fontsize=8)
    fig.suptitle(f"{board}: samples (each model's best run by {title})", fontsize=9)
    fig.tight_layout()
    samples_plot = output / f"{stem}__samples.png"
    fig.savefig(samples_plot)
    plt.close(fig)
    return [time_plot, samples_plot]


def _history(results_dir: Path, record: str) -> list[dict]:
    import json

    try:
        return json.loads((results_dir / "records" / f"{record}.json").read_text())["training"]["history"]
    except (OSError, ValueError, KeyError, TypeError):
        return []
