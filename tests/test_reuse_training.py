"""`dgmbench run --reuse-training RUN`: a finished run evaluated again under other -e
settings gives exactly the record that training again would give (same key, same numbers),
trains nothing, says whose training it reused, and refuses a run trained differently."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dgmbench.cli import main
from dgmbench.results import ResultsStore
from dgmbench.train.checkpoint import load_checkpoint, save_checkpoint

VAE = ["--model", "vae", "--dataset", "digits/binary", "--epochs", "2", "-o", "latent=4", "-o", "hidden=16",
       "-e", 'metrics=["elbo_iwae"]', "--no-progress"]


def _run(root: Path, *extra: str) -> int:
    return main(["run", *VAE, *extra, "--results-dir", str(root / "results"), "--workdir", str(root / "work")])


def _records(root: Path) -> dict[int, dict]:
    return {r["eval_settings"].get("iwae_k"): r for r in ResultsStore(root / "results").load()}


def _run_dir(root: Path, key: str) -> Path:
    (path,) = (root / "work" / "runs").glob(f"*__{key[:12]}")
    return path


def test_reusing_a_finished_run_equals_training_again(tmp_path):
    reuse, fresh = tmp_path / "reuse", tmp_path / "fresh"
    assert _run(reuse, "-e", "iwae_k=10") == 0
    source = _records(reuse)[10]
    assert _run(reuse, "-e", "iwae_k=40", "--reuse-training", source["run_key"][:12]) == 0
    reused = _records(reuse)[40]
    assert _run(fresh, "-e", "iwae_k=40") == 0  # the same protocol, trained again from scratch
    retrained = _records(fresh)[40]

    assert reused["run_key"] == retrained["run_key"] and reused["command"] == retrained["command"]
    values = {m["name"]: m["value"] for m in reused["metrics"]}
    assert values == pytest.approx({m["name"]: m["value"] for m in retrained["metrics"]}, rel=1e-6)
    assert {m["protocol"].get("k") for m in reused["metrics"] if m["name"] == "iwae_nll"} == {40}
    # nothing trained: the source's history and training time, its key named in the record
    assert reused["training"]["history"] == source["training"]["history"]
    assert reused["training"]["train_seconds"] == source["training"]["train_seconds"]
    assert reused["training_reused_from"]["run_key"] == source["run_key"]
    assert retrained["training_reused_from"] is None


def test_a_differently_trained_or_unfinished_run_is_refused_in_one_line(tmp_path, capsys):
    assert _run(tmp_path, "-e", "iwae_k=10") == 0
    source = _records(tmp_path)[10]
    key = source["run_key"][:12]
    capsys.readouterr()
    assert _run(tmp_path, "-e", "iwae_k=40", "-o", "hidden=32", "--reuse-training", key) != 0
    err = capsys.readouterr().err.strip()
    assert "trained differently (model_config)" in err and "\n" not in err
    assert _run(tmp_path, "-e", "iwae_k=40", "--seed", "1", "--reuse-training", key) != 0
    assert "trained differently (seed)" in capsys.readouterr().err
    assert _run(tmp_path, "-e", "iwae_k=10", "--reuse-training", key) != 0
    assert "this very run" in capsys.readouterr().err

    last = _run_dir(tmp_path, source["run_key"]) / "last.pt"
    ckpt = load_checkpoint(last)
    ckpt["epoch"] = 1
    save_checkpoint(ckpt, last)
    assert _run(tmp_path, "-e", "iwae_k=40", "--reuse-training", key) != 0
    assert "has trained 1 of 2 epochs; finish it first" in capsys.readouterr().err
    assert len(ResultsStore(tmp_path / "results").load()) == 1  # nothing recorded by the refusals


def test_a_run_that_stopped_early_resumes_without_training_further(tmp_path):
    # patience 1 on a tiny lr: stops early; then the record is deleted as if the process had
    # died before writing it, and the same command must record it without another epoch
    # (its last checkpoint says epoch = epochs once stopped, which --reuse-training relies on too)
    args = ("-t", "patience=1", "-t", "lr=1e-9", "--epochs", "6")
    assert _run(tmp_path, *args) == 0
    (record,) = ResultsStore(tmp_path / "results").load()
    assert record["training"]["stopped_early"] and record["training"]["epochs_completed"] < 6
    Path(record["_path"]).unlink()
    assert _run(tmp_path, *args) == 0
    (again,) = ResultsStore(tmp_path / "results").load()
    assert again["training"]["history"] == record["training"]["history"]
