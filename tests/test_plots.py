"""Pictures: training curves saved by every run beside its sample grid, and `dgmbench plot`
(NLL against wall-clock time for every model, the models' samples side by side)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from dgmbench.cli import main
from dgmbench.plots import curves_path, plot_board, save_training_curves

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "results"


def _not_blank(path: Path) -> np.ndarray:
    with Image.open(path) as image:
        pixels = np.asarray(image.convert("L"))
    assert pixels.std() > 5  # something was drawn
    return pixels


def test_training_curves_against_epoch_and_wall_time(tmp_path):
    history = [{"epoch": e, "seconds": 0.5 * e, "loss": 10.0 / e, "valid": 12.0 / e} for e in range(1, 6)]
    path = save_training_curves(history, tmp_path / "run__curves.png", title="run")
    with Image.open(path) as image:
        two_columns = image.size
    _not_blank(path)
    no_times = save_training_curves([{k: v for k, v in e.items() if k != "seconds"} for e in history],
                                    tmp_path / "old__curves.png")
    with Image.open(no_times) as image:
        assert image.size[0] < two_columns[0]  # records from before wall times: epoch panels only
    assert save_training_curves([], tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    assert curves_path(Path("results/samples/a__b__seed0__k.png")) == Path("results/samples/a__b__seed0__k__curves.png")


def test_every_run_saves_its_curves_beside_its_sample_grid(tmp_path):
    assert main(["run", "--model", "fvsbn", "--dataset", "digits/binary", "--epochs", "3", "--no-progress",
                 "-e", 'metrics=["exact_likelihood"]', "--results-dir", str(tmp_path / "results"),
                 "--workdir", str(tmp_path / "work")]) == 0
    (record_path,) = (tmp_path / "results" / "records").glob("*.json")
    record = json.loads(record_path.read_text())
    grid = Path(record["samples"])
    assert grid.is_file() and curves_path(grid).is_file()
    _not_blank(curves_path(grid))
    seconds = [entry["seconds"] for entry in record["training"]["history"]]
    assert len(seconds) == 3 and all(b >= a for a, b in zip(seconds, seconds[1:]))
    assert seconds[-1] == pytest.approx(record["training"]["train_seconds"], abs=2e-3)


def test_plot_board_draws_nll_against_time_and_samples_side_by_side(tmp_path):
    time_plot, samples_plot = plot_board(RESULTS, "digits/binary", tmp_path)
    assert time_plot.name == "digits__binary__nll_vs_time.png" and samples_plot.name == "digits__binary__samples.png"
    _not_blank(time_plot)
    pixels = _not_blank(samples_plot)
    assert pixels.shape[1] > 1000  # several grids side by side
    (fid_plot, _) = plot_board(RESULTS, "binarized_mnist", tmp_path, metric="fid")  # one board: the dataset is enough
    assert fid_plot.name == "binarized_mnist__fixed__fid_vs_time.png"


def test_plot_errors_are_one_line(tmp_path, capsys):
    assert main(["plot", "--dataset", "digits", "--results-dir", str(RESULTS), "--output", str(tmp_path)]) == 2
    assert "several boards (digits/17level, digits/binary, digits/dequantized)" in capsys.readouterr().err
    assert main(["plot", "--dataset", "digits/binary", "--metric", "nl", "--results-dir", str(RESULTS),
                 "--output", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no 'nl' results on digits/binary; metrics there:" in err
    assert main(["plot", "--dataset", "cifar10", "--results-dir", str(RESULTS), "--output", str(tmp_path)]) == 2
    assert not list(tmp_path.iterdir())
