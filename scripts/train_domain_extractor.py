"""Train a domain feature extractor (a small CNN classifier) for FID/KID/IS on one image dataset.

    python scripts/train_domain_extractor.py digits
    python scripts/train_domain_extractor.py mnist
    python scripts/train_domain_extractor.py fashion_mnist

Writes ``dgmbench/metrics/weights/<dataset>-cnn.pt`` (float32 state dict) and prints its test
accuracy and sha256; paste the sha256 (and the accuracy) into the extractor's entry in
``dgmbench/metrics/features.py``, which refuses weights whose hash differs.

Data:
* digits: the dgmbench digits splits (train 1,257 / test 360), grey levels 0..16 mapped to
  uint8 exactly as the metric does: round(level * 255 / 16).
* mnist, fashion_mnist: the official IDX files in $DGMBENCH_DATA_DIR/<dataset>/ (60,000 train,
  10,000 test), read directly so that the extractor does not depend on how the benchmark
  splits train into train/valid.

Every training batch has a random half of its images binarized the way the binary boards are
made (digits: level >= 8; MNIST/Fashion: Bernoulli(pixel / 255), i.e. dynamic binarization),
so one extractor gives meaningful features on both the grey-level and the binary boards.
Seeded (torch.manual_seed(0)); CPU training takes well under a few minutes.
"""
from __future__ import annotations

import argparse
import gzip
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dgmbench.metrics.features import EXTRACTORS, SmallCNN, file_sha256

# epochs, batch size, learning rate
SCHEDULE = {"digits": (60, 64, 2e-3), "mnist": (1, 64, 1e-3), "fashion_mnist": (2, 64, 1e-3)}


def read_idx(path: Path) -> np.ndarray:
    with gzip.open(path, "rb") as handle:
        data = handle.read()
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def load(dataset: str):
    """(train images uint8 (N,1,H,W), train labels, test images, test labels, binarize fn)."""
    if dataset == "digits":
        from dgmbench.data import load_dataset

        data = load_dataset("digits/17level")
        to_uint8 = lambda levels: torch.round(levels * 255 / 16).to(torch.uint8)
        binarize = lambda images, generator: (images >= 128).to(torch.uint8) * 255
        return (to_uint8(data.split("train")), data.labels["train"],
                to_uint8(data.split("test")), data.labels["test"], binarize)
    root = Path(os.environ.get("DGMBENCH_DATA_DIR", "/work/shared/data")) / dataset
    arrays = {
        split: (
            torch.from_numpy(read_idx(root / f"{prefix}-images-idx3-ubyte.gz").copy()).unsqueeze(1),
            torch.from_numpy(read_idx(root / f"{prefix}-labels-idx1-ubyte.gz").astype(np.int64)),
        )
        for split, prefix in (("train", "train"), ("test", "t10k"))
    }

    def binarize(images, generator):
        probabilities = images.to(torch.float32) / 255
        return (torch.rand(images.shape, generator=generator) < probabilities).to(torch.uint8) * 255

    return (*arrays["train"], *arrays["test"], binarize)


@torch.no_grad()
def accuracy(network, images, labels) -> float:
    network.eval()
    correct = sum(
        (network(chunk.float() / 255)[1].argmax(1) == target).sum().item()
        for chunk, target in zip(images.split(1000), labels.split(1000))
    )
    return correct / len(labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", choices=sorted(SCHEDULE))
    parser.add_argument("--out", default=None, help="weights file (default: the committed location)")
    parser.add_argument("--epochs", type=int, default=None, help="override the schedule's epochs")
    args = parser.parse_args()

    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    spec = EXTRACTORS.get(f"{args.dataset}-cnn")
    train_x, train_y, test_x, test_y, binarize = load(args.dataset)
    epochs, batch_size, lr = SCHEDULE[args.dataset]
    epochs = args.epochs or epochs

    network = SmallCNN.for_spec(spec)
    optimizer = torch.optim.Adam(network.parameters(), lr=lr)
    start = time.time()
    for epoch in range(epochs):
        network.train()
        order = torch.randperm(len(train_x), generator=generator)
        for batch in order.split(batch_size):
            images = train_x[batch]
            binary = torch.rand(len(batch), generator=generator) < 0.5
            images = torch.where(binary[:, None, None, None], binarize(images, generator), images)
            loss = F.cross_entropy(network(images.float() / 255)[1], train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        print(f"epoch {epoch + 1}/{epochs}: last batch loss {loss.item():.4f} ({time.time() - start:.0f} s)")

    grey = accuracy(network, test_x, test_y)
    binary = accuracy(network, binarize(test_x, torch.Generator().manual_seed(1)), test_y)
    out = Path(args.out) if args.out else spec.weights_file
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save({k: v.detach().clone() for k, v in network.state_dict().items()}, out)
    print(f"{spec.name}: test accuracy {grey:.4f} grey ({round(grey * len(test_y))}/{len(test_y)}), "
          f"{binary:.4f} binarized; {sum(p.numel() for p in network.parameters())} parameters")
    print(f"wrote {out} ({out.stat().st_size} bytes), sha256 {file_sha256(out)}")


if __name__ == "__main__":
    main()
