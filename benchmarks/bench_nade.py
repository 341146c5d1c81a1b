"""asv: NADE at MNIST size (D = 784, H = 500, the paper's binarized-MNIST model), one Adam
training step at batch 100 and 1000, ours and the per-pixel-loop NADE (pytorch-generative's
design, benchmarks/peers/nade_loop.py) side by side; CPU, and CUDA when present.

``track_ratio_vs_loop`` is the median over interleaved runs of time(ours) / time(loop)
(below 1: faster), so a regression against the peer shows across commits;
``track_peak_memory_mb`` is the peak resident memory a batch-1000 training step adds, each
implementation measured alone in a fresh subprocess (getrusage maxrss after minus before).
The pytest-benchmark twin (tests/benchmarks/test_bench_nade.py) imports these helpers."""
from __future__ import annotations

import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks.peers.nade_loop import LoopNADE
from dgmbench.data.base import DataInfo
from dgmbench.models.base import TrainConfig, build_model
from dgmbench.provenance import thread_info

DIM, HIDDEN = 784, 500
BATCHES = (100, 1000)
IMPLEMENTATIONS = ("dgmbench", "loop")
INFO = DataInfo(name="bench", variant="binary", shape=(DIM,), value_type="binary", num_levels=2)
REPO = Path(__file__).resolve().parent.parent


def devices() -> list[str]:
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def batch_of(size: int, device: str = "cpu") -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    return torch.bernoulli(torch.full((size, DIM), 0.13), generator=generator).to(device)


def training_step(implementation: str, batch: int, device: str = "cpu"):
    """A callable running one Adam step (lr 1e-3) of the chosen NADE on a fixed batch."""
    torch.manual_seed(0)
    x = batch_of(batch, device)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if implementation == "dgmbench":
        model = build_model("nade", INFO, hidden=HIDDEN).to(device)
        train = TrainConfig(lr=1e-3, batch_size=batch)
        optimizers = model.configure_optimizers(train)

        def step():
            model.training_step(x, optimizers, train)
            sync()

        return step
    if implementation == "loop":
        model = LoopNADE(DIM, HIDDEN).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)

        def step():
            optimizer.zero_grad(set_to_none=True)
            model.loss(x).backward()
            optimizer.step()
            sync()

        return step
    raise ValueError(f"unknown implementation {implementation!r}; valid: {', '.join(IMPLEMENTATIONS)}")


def interleaved(batch: int, pairs: int, device: str = "cpu") -> dict:
    """Median of time(ours) / time(loop) over `pairs` interleaved steps (which runs first
    alternates), with both medians as examples per second and the thread counts."""
    ours, loop = training_step("dgmbench", batch, device), training_step("loop", batch, device)
    ours(), loop()  # warm-up: optimizer state, first-call allocations
    times = {"dgmbench": [], "loop": []}
    for pair in range(pairs):
        order = [("dgmbench", ours), ("loop", loop)]
        for name, step in order if pair % 2 == 0 else order[::-1]:
            tic = time.perf_counter()
            step()
            times[name].append(time.perf_counter() - tic)
    ratios = [a / b for a, b in zip(times["dgmbench"], times["loop"])]
    return {
        "batch": batch,
        "ratio_vs_loop": statistics.median(ratios),
        "dgmbench_examples_per_second": batch / statistics.median(times["dgmbench"]),
        "loop_examples_per_second": batch / statistics.median(times["loop"]),
        "dgmbench_seconds": times["dgmbench"],
        "loop_seconds": times["loop"],
        "threads": thread_info(),
    }


_PEAK_MEMORY_SCRIPT = """
import json, resource, sys
import torch
sys.path.insert(0, {repo!r})
torch.set_num_threads({threads})
from benchmarks.bench_nade import training_step
step = training_step({implementation!r}, {batch})
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
step()
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"peak_mb": (after - before) / 1024}}))
"""


def peak_memory_mb(implementation: str, batch: int, threads: int = 1) -> float:
    """Peak resident memory (MB) that one training step adds on CPU, in a fresh process:
    getrusage's maxrss after the step minus before it (Linux reports kilobytes)."""
    script = _PEAK_MEMORY_SCRIPT.format(repo=str(REPO), threads=threads, implementation=implementation, batch=batch)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=1800)
    return json.loads(done.stdout.strip().splitlines()[-1])["peak_mb"]


class NADETrainingStep784x500:
    params = (devices(), list(BATCHES), list(IMPLEMENTATIONS))
    param_names = ("device", "batch", "implementation")
    number = 1
    repeat = (2, 5, 120.0)
    warmup_time = 0.0
    timeout = 600

    def setup(self, device, batch, implementation):
        self.step = training_step(implementation, batch, device)
        self.step()

    def time_training_step(self, device, batch, implementation):
        self.step()


class NADEVersusLoop:
    """Ours against the per-pixel-loop NADE on the same batch, interleaved."""

    params = (devices(), list(BATCHES))
    param_names = ("device", "batch")
    number = 1
    repeat = 1
    warmup_time = 0.0
    timeout = 1200

    def track_ratio_vs_loop(self, device, batch):
        return interleaved(batch, pairs=5 if batch <= 100 else 3, device=device)["ratio_vs_loop"]

    track_ratio_vs_loop.unit = "time ours / time loop"

    def track_examples_per_second(self, device, batch):
        return interleaved(batch, pairs=3, device=device)["dgmbench_examples_per_second"]

    track_examples_per_second.unit = "examples/s"


class NADEPeakMemory:
    """Peak memory a batch-1000 step adds (CPU, one thread, fresh process per measurement)."""

    params = (list(IMPLEMENTATIONS),)
    param_names = ("implementation",)
    number = 1
    repeat = 1
    warmup_time = 0.0
    timeout = 1800

    def track_peak_memory_mb(self, implementation):
        return peak_memory_mb(implementation, 1000)

    track_peak_memory_mb.unit = "MB"
