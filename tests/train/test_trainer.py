"""The one trainer: non-finite losses stop the run and keep the last good checkpoint;
an interrupted run resumes exactly; early stopping follows the validation score."""
from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
from torch import nn

from conftest import vector_info
from dgmbench.data.base import Dataset
from dgmbench.models import GenerativeModel, TrainConfig
from dgmbench.train import NonFiniteLossError, fit, load_checkpoint
from dgmbench.train.checkpoint import save_checkpoint


@dataclass
class ToyConfig:
    blow_up_at_epoch: int | None = None


class Toy(GenerativeModel):
    """Bernoulli with one logit per dimension; can be told to produce NaN at an epoch."""

    Config = ToyConfig
    family = "test"

    def __init__(self, config, info):
        super().__init__(config, info)
        self.logit = nn.Parameter(torch.zeros(info.dim))
        self.register_buffer("epoch_seen", torch.zeros((), dtype=torch.long))

    def loss(self, x):
        return nn.functional.binary_cross_entropy_with_logits(self.logit.expand_as(x), x)

    def training_step(self, x, optimizers, train):
        scalars = super().training_step(x, optimizers, train)
        if self.config.blow_up_at_epoch is not None and self.epoch_seen.item() >= self.config.blow_up_at_epoch:
            with torch.no_grad():
                self.logit.fill_(float("nan"))
            return {"loss": float("nan")}
        return scalars

    def sample(self, n):
        return torch.bernoulli(torch.sigmoid(self.logit).expand(n, -1))


def toy_dataset(n=64, dim=5) -> Dataset:
    g = torch.Generator().manual_seed(0)
    x = torch.bernoulli(torch.full((n, dim), 0.3), generator=g)
    return Dataset(vector_info(dim), {"train": x, "valid": x[:16], "test": x[:16]})


class EpochCounter:
    """Counts epochs through the dataset hook (the trainer calls train_epoch once per epoch)."""

    def __init__(self, model, dataset):
        self.model, self.dataset = model, dataset

    def __call__(self, epoch):
        self.model.epoch_seen.fill_(epoch)
        return self.dataset.splits["train"]


def test_non_finite_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
    data = toy_dataset()
    model = Toy(ToyConfig(blow_up_at_epoch=3), data.info)
    data.resample_train = EpochCounter(model, data)
    with pytest.raises(NonFiniteLossError, match="epoch 4"):
        fit(model, data, TrainConfig(epochs=10, batch_size=16, patience=None), tmp_path, torch.device("cpu"), progress=False)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    assert ckpt["epoch"] == 3
    assert torch.isfinite(ckpt["model"]["logit"]).all()


def test_non_finite_message_names_a_checkpoint_only_if_one_exists(tmp_path):
    # issue 8 item 4: the message must be true about what is on disk
    data = toy_dataset()
    model = Toy(ToyConfig(blow_up_at_epoch=0), data.info)
    data.resample_train = EpochCounter(model, data)
    with pytest.raises(NonFiniteLossError) as err:
        fit(model, data, TrainConfig(epochs=3, batch_size=16, patience=None), tmp_path / "a", torch.device("cpu"),
            progress=False)
    assert "no checkpoint was saved" in str(err.value) and "last.pt" not in str(err.value)
    assert err.value.checkpoint is None and not (tmp_path / "a" / "last.pt").exists()
    assert "rerun to resume" not in str(err.value)

    model = Toy(ToyConfig(blow_up_at_epoch=2), data.info)
    data.resample_train = EpochCounter(model, data)
    with pytest.raises(NonFiniteLossError) as err:
        fit(model, data, TrainConfig(epochs=5, batch_size=16, patience=None), tmp_path / "b", torch.device("cpu"),
            progress=False)
    assert err.value.checkpoint == tmp_path / "b" / "last.pt" and err.value.checkpoint_epoch == 2
    assert f"its last good checkpoint is {tmp_path / 'b' / 'last.pt'} (after epoch 2)" in str(err.value)


def test_a_checkpoint_without_optimiser_state_continues_with_fresh_optimisers(tmp_path):
    # what runner --resume-from writes: the source's state with "optimizers": None, so the new
    # training options (here lr) take effect instead of the saved optimiser's
    data = toy_dataset()
    model = Toy(ToyConfig(), data.info)
    fit(model, data, TrainConfig(epochs=2, batch_size=16, patience=None, lr=0.5), tmp_path, torch.device("cpu"),
        progress=False)
    ckpt = load_checkpoint(tmp_path / "last.pt")
    ckpt["optimizers"] = None
    save_checkpoint(ckpt, tmp_path / "last.pt")
    seen_lr = []
    continued = Toy(ToyConfig(), data.info)
    original = continued.configure_optimizers

    def recording(train):
        optimizers = original(train)
        seen_lr.append(optimizers["model"].param_groups[0]["lr"])
        return optimizers

    continued.configure_optimizers = recording
    summary = fit(continued, data, TrainConfig(epochs=4, batch_size=16, patience=None, lr=0.01), tmp_path,
                  torch.device("cpu"), progress=False)
    assert summary.resumed_from_epoch == 2 and [h["epoch"] for h in summary.history] == [1, 2, 3, 4]
    assert load_checkpoint(tmp_path / "last.pt")["optimizers"]["model"]["param_groups"][0]["lr"] == 0.01
    assert seen_lr == [0.01]


def test_interrupted_run_resumes_to_the_same_result(tmp_path):
    data = toy_dataset()
    train = TrainConfig(epochs=6, batch_size=8, patience=None, lr=0.05)
    straight = Toy(ToyConfig(), data.info)
    torch.manual_seed(0)
    fit(straight, data, train, tmp_path / "straight", torch.device("cpu"), progress=False)

    interrupted = Toy(ToyConfig(), data.info)
    fit(interrupted, data, TrainConfig(**{**train.__dict__, "epochs": 3}), tmp_path / "split", torch.device("cpu"), progress=False)
    resumed = Toy(ToyConfig(), data.info)  # a fresh process: new model, state from disk
    summary = fit(resumed, data, train, tmp_path / "split", torch.device("cpu"), progress=False)
    assert summary.resumed_from_epoch == 3 and summary.epochs_completed == 6
    assert torch.allclose(resumed.logit, straight.logit, atol=1e-6)


def test_early_stopping_after_patience(tmp_path):
    data = toy_dataset()
    model = Toy(ToyConfig(), data.info)
    scores = iter([5.0, 4.0, 4.5, 4.6, 4.7, 1.0])
    model.validation_score = lambda x: next(scores)
    summary = fit(model, data, TrainConfig(epochs=6, batch_size=None, patience=3, eval_batch_size=1000),
                  tmp_path, torch.device("cpu"), progress=False)
    assert summary.stopped_early and summary.epochs_completed == 5 and summary.best_epoch == 2


def test_checkpoints_load_with_weights_only(tmp_path):
    data = toy_dataset()
    fit(Toy(ToyConfig(), data.info), data, TrainConfig(epochs=1, patience=None), tmp_path, torch.device("cpu"), progress=False)
    for name in ("last.pt", "best.pt"):
        torch.load(tmp_path / name, weights_only=True)


class LabelChecker(Toy):
    """A class-conditional toy: checks that each batch arrives with its own labels."""

    uses_labels = True
    batches_seen = 0

    def training_step(self, x, optimizers, train, y=None):
        assert y is not None and torch.equal(y, x.sum(1).long()), "labels must stay aligned with x"
        LabelChecker.batches_seen += 1
        return super().training_step(x, optimizers, train)


def test_class_conditional_models_get_aligned_labels(tmp_path):
    data = toy_dataset()
    data.labels = {split: x.sum(1).long() for split, x in data.splits.items()}
    fit(LabelChecker(ToyConfig(), data.info), data, TrainConfig(epochs=2, batch_size=8, patience=None),
        tmp_path, torch.device("cpu"), progress=False)
    assert LabelChecker.batches_seen == 2 * 64 // 8


def test_conditional_gated_pixelcnn_trains_through_the_runner(tmp_path):
    from dgmbench.results import ResultsStore
    from dgmbench.runner import RunSpec, run

    run(RunSpec(model="gated_pixelcnn", dataset="digits/binary", quick=True, results_dir=str(tmp_path / "r"),
                workdir=str(tmp_path / "w"), model_options={"conditional": True}, train_options={"epochs": 1},
                eval_options={"metrics": ["exact_likelihood"]}, progress=False), log=lambda m: None)
    (record,) = ResultsStore(tmp_path / "r").load()
    assert record["model_config"]["conditional"] and record["metrics"][0]["name"] == "nll"
