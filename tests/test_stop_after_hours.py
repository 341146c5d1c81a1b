"""`--stop-after-hours`: a run longer than one invocation pauses at an epoch boundary, keeps its
checkpoint, writes an interim record (never in records/), and the same command continues it
to exactly the result of an uninterrupted run, whose final record replaces the interim one."""
from __future__ import annotations

import time

import pytest
import torch

from dgmbench.cli import main
from dgmbench.data.base import load_dataset
from dgmbench.models.base import TrainConfig, build_model
from dgmbench.results import ResultsStore
from dgmbench.train.trainer import LAST, fit

FVSBN = ["--model", "fvsbn", "--dataset", "digits/binary", "--epochs", "3", "-t", "patience=none",
         "-e", 'metrics=["exact_likelihood"]', "--no-progress"]


def _fvsbn():
    data = load_dataset("digits/binary")
    torch.manual_seed(0)
    return build_model("fvsbn", data.info), data


def test_fit_pauses_before_the_deadline_and_continues_to_the_uninterrupted_parameters(tmp_path):
    train = TrainConfig(epochs=3, batch_size=50, lr=0.01, patience=None)
    model, data = _fvsbn()
    whole = fit(model, data, train, tmp_path / "whole", torch.device("cpu"), progress=False, log=lambda m: None)
    assert not whole.paused_at_deadline

    paused_model, _ = _fvsbn()
    first = fit(paused_model, data, train, tmp_path / "paused", torch.device("cpu"), progress=False,
                log=lambda m: None, deadline=time.time())  # any epoch would pass it: pause after one
    assert first.paused_at_deadline and first.epochs_completed == 1
    assert torch.load(tmp_path / "paused" / LAST, weights_only=False)["epoch"] == 1

    continued_model, _ = _fvsbn()
    rest = fit(continued_model, data, train, tmp_path / "paused", torch.device("cpu"), progress=False,
               log=lambda m: None)
    assert not rest.paused_at_deadline and rest.resumed_from_epoch == 1 and rest.epochs_completed == 3
    for a, b in zip(model.state_dict().values(), continued_model.state_dict().values()):
        assert torch.equal(a, b)


def test_no_pause_after_the_last_epoch_or_with_time_left(tmp_path):
    train = TrainConfig(epochs=2, batch_size=50, lr=0.01, patience=None)
    model, data = _fvsbn()
    summary = fit(model, data, train, tmp_path / "run", torch.device("cpu"), progress=False, log=lambda m: None,
                  deadline=time.time() + 3600)
    assert not summary.paused_at_deadline and summary.epochs_completed == 2


def test_interim_record_then_the_same_command_finishes_and_replaces_it(tmp_path, monkeypatch, capsys):
    store = ResultsStore(tmp_path / "results")
    where = ["--results-dir", str(tmp_path / "results"), "--workdir", str(tmp_path / "work")]
    # a limit any epoch passes: the run pauses after its first epoch
    monkeypatch.setattr("dgmbench.runner.time", clock_jumping_by(3600.0))
    assert main(["run", *FVSBN, *where, "--stop-after-hours", "0.5"]) == 0
    monkeypatch.undo()
    out = capsys.readouterr().out
    assert "paused after epoch 1 of 3" in out
    assert store.load() == []  # nothing in records/: leaderboards and checks never see it
    (interim,) = store.load_interim()
    assert interim["interim"]["epochs_completed"] == 1 and interim["interim"]["planned_epochs"] == 3
    assert interim["interim"]["continue"].endswith("--stop-after-hours 0.5")
    assert len(interim["training"]["history"]) == 1
    assert "--stop-after-hours" not in interim["command"]  # the protocol, not the invocation

    assert main(["run", *FVSBN, *where, "--stop-after-hours", "0.5"]) == 0  # time enough now
    assert "resuming" in capsys.readouterr().out
    (final,) = store.load()
    assert store.load_interim() == [] and final["run_key"] == interim["run_key"]
    assert final["training"]["epochs_completed"] == 3 and final["training"]["resumed_from_epoch"] == 1

    other = ["--results-dir", str(tmp_path / "whole"), "--workdir", str(tmp_path / "work2")]
    assert main(["run", *FVSBN, *other]) == 0
    (whole,) = ResultsStore(tmp_path / "whole").load()
    assert whole["run_key"] == final["run_key"]
    assert final["metrics"][0]["value"] == pytest.approx(whole["metrics"][0]["value"], abs=1e-9)


@pytest.mark.parametrize("hours", ["0", "-1", "nan"])
def test_a_limit_that_is_not_a_positive_number_is_one_line(tmp_path, capsys, hours):
    assert main(["run", *FVSBN, "--results-dir", str(tmp_path / "r"), "--workdir", str(tmp_path / "w"),
                 "--stop-after-hours", hours]) == 2
    err = capsys.readouterr().err
    assert "--stop-after-hours" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def clock_jumping_by(seconds: float):
    """The runner's `time` module with a perf_counter whose first reading (the run's start) is
    `seconds` in the past, so that the invocation's limit has passed when training starts."""
    readings = []

    class Clock:
        def __getattr__(self, name):
            return getattr(time, name)

        @staticmethod
        def perf_counter():
            readings.append(None)
            return time.perf_counter() - (seconds if len(readings) == 1 else 0.0)

    return Clock()
