"""Issue 8 item 4: after a non-finite loss the message is true (it names a checkpoint only
if one exists) and its advice works: the exact command it prints continues from the last
good checkpoint with a lower learning rate, and the record says what it continued from."""
from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from torch import nn

from dgmbench.cli import main
from dgmbench.models.base import MODELS, ExactLikelihood, GenerativeModel
from dgmbench.results import ResultsStore


@dataclass
class UnstableConfig:
    blow_up_at_update: int = 2  # the update whose loss becomes NaN when lr > stable_lr (1: the first)
    stable_lr: float = 0.05


class Unstable(GenerativeModel, ExactLikelihood):
    """Independent Bernoullis trained full-batch (one update per epoch); with a learning
    rate above stable_lr its loss becomes NaN at update `blow_up_at_update` -- as a real
    model diverging at a too-high learning rate, but deterministic."""

    Config = UnstableConfig
    family = "test"
    train_defaults = {"batch_size": None, "patience": None}

    def __init__(self, config, info):
        super().__init__(config, info)
        self.logit = nn.Parameter(torch.zeros(info.dim))
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))  # checkpointed with the model

    def log_prob(self, x):
        return -nn.functional.binary_cross_entropy_with_logits(
            self.logit.expand_as(x.flatten(1)), x.flatten(1), reduction="none").sum(1)

    def loss(self, x):
        return -self.log_prob(x).mean()

    def training_step(self, x, optimizers, train, y=None):
        self.updates += 1
        if train.lr > self.config.stable_lr and self.updates.item() >= self.config.blow_up_at_update:
            return {"loss": float("nan")}
        return super().training_step(x, optimizers, train)

    def sample(self, n):
        return torch.bernoulli(torch.sigmoid(self.logit).expand(n, *self.info.shape[:0], -1)).view(n, *self.info.shape)


@pytest.fixture
def unstable(monkeypatch):
    MODELS.names()  # load the registry before adding to it
    monkeypatch.setitem(MODELS._items, "unstable_test", Unstable)
    monkeypatch.setattr(Unstable, "registry_name", "unstable_test", raising=False)


def dgmbench(tmp_path, *args) -> int:
    return main(["run", *args, "-e", 'metrics=["exact_likelihood"]', "--results-dir", str(tmp_path / "results"),
                 "--workdir", str(tmp_path / "work"), "--no-progress"])


def advised_command(err: str) -> list[str]:
    match = re.search(r"learning rate: (dgmbench run .*)$", err.strip())
    assert match, err
    return shlex.split(match.group(1))


def test_the_advised_command_continues_from_the_last_good_checkpoint(tmp_path, capsys, unstable):
    assert dgmbench(tmp_path, "--model", "unstable_test", "--dataset", "digits/binary", "--epochs", "4",
                    "-t", "lr=0.1") == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    (run_dir,) = (tmp_path / "work" / "runs").iterdir()
    assert "non-finite training value" in err and "at epoch 2, step 1" in err
    assert f"its last good checkpoint is {run_dir / 'last.pt'} (after epoch 1)" in err
    assert (run_dir / "last.pt").exists()
    assert not (tmp_path / "results").exists()  # nothing recorded for the failed run

    words = advised_command(err)
    assert words[:2] == ["dgmbench", "run"]
    assert "lr=0.01" in words and words[words.index("--resume-from") + 1] == str(run_dir)
    assert main(words[1:] + ["--no-progress"]) == 0  # the advice works, as printed
    (record,) = ResultsStore(tmp_path / "results").load()
    assert record["continued_from"]["run"] == run_dir.name and record["continued_from"]["epoch"] == 1
    assert record["continued_from"]["train_config"]["lr"] == 0.1  # what it continued from
    assert record["train_config"]["lr"] == 0.01
    assert [h["epoch"] for h in record["training"]["history"]] == [1, 2, 3, 4]
    assert record["metrics"][0]["name"] == "nll" and torch.isfinite(torch.tensor(record["metrics"][0]["value"]))
    assert "--resume-from" in record["command"]
    # the continued run is its own run: a fresh run with lr=0.01 gets another key
    assert record["run_key"] not in str(run_dir)


def test_without_a_checkpoint_the_message_says_so_and_advises_a_fresh_start(tmp_path, capsys, unstable):
    assert dgmbench(tmp_path, "--model", "unstable_test", "--dataset", "digits/binary", "--epochs", "2",
                    "-o", "blow_up_at_update=1", "-t", "lr=0.2") == 1
    err = capsys.readouterr().err
    assert "no checkpoint was saved" in err and "last.pt" not in err
    words = advised_command(err)
    assert "--resume-from" not in words and "lr=0.02" in words
    assert main(words[1:] + ["--no-progress"]) == 0
    (record,) = ResultsStore(tmp_path / "results").load()
    assert record["continued_from"] is None and record["train_config"]["lr"] == 0.02


def test_resume_from_refuses_a_run_of_another_model_or_one_already_trained(tmp_path, capsys, unstable):
    assert dgmbench(tmp_path, "--model", "unstable_test", "--dataset", "digits/binary", "--epochs", "4",
                    "-t", "lr=0.1") == 1
    (run_dir,) = (tmp_path / "work" / "runs").iterdir()
    capsys.readouterr()
    assert dgmbench(tmp_path, "--model", "fvsbn", "--dataset", "digits/binary", "--resume-from", str(run_dir)) == 2
    assert "is not a run of fvsbn" in capsys.readouterr().err
    assert dgmbench(tmp_path, "--model", "unstable_test", "--dataset", "digits/binary", "--epochs", "1",
                    "--resume-from", str(run_dir)) == 2
    assert "already trained 1 epochs" in capsys.readouterr().err
    # a run key prefix works as well as the directory
    key = run_dir.name.rsplit("__", 1)[1]
    assert dgmbench(tmp_path, "--model", "unstable_test", "--dataset", "digits/binary", "--epochs", "2",
                    "-t", "lr=0.01", "--resume-from", key[:8]) == 0
    (record,) = ResultsStore(tmp_path / "results").load()
    assert record["continued_from"]["run_dir"] == str(Path(run_dir).resolve())
