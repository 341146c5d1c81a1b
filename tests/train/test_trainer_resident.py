"""The trainer keeps the training set on a CUDA device when it fits (trainer.resident):
unchanged tensors on CPU or when the set is too large, and on CUDA the same batches and the
same training results as copying each batch from the host."""
import pytest
import torch

from dgmbench.train import trainer


def test_resident_is_the_identity_on_cpu():
    x = torch.rand(10, 3)
    assert trainer.resident(x, torch.device("cpu")) is x
    assert trainer.resident(None, torch.device("cpu")) is None


def test_resident_leaves_a_set_too_large_for_the_device_on_the_host(monkeypatch):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device=None: (1000, 10_000))
    x = torch.rand(100, 3)  # 1,200 bytes > 0.25 * 1,000 free
    assert trainer.resident(x, torch.device("cuda")) is x


def _tiny_dataset():
    from conftest import vector_info
    from dgmbench.data.base import Dataset

    x = torch.bernoulli(torch.full((300, 12), 0.3), generator=torch.Generator().manual_seed(0))
    return Dataset(vector_info(12), {"train": x, "valid": x[:50], "test": x[:50]})


def _history_and_state(dataset, run_dir, device):
    from dgmbench.models.base import TrainConfig, build_model

    torch.manual_seed(0)
    model = build_model("fvsbn", dataset.info)
    config = TrainConfig(epochs=2, batch_size=32, lr=1e-2, seed=0)
    summary = trainer.fit(model, dataset, config, run_dir, device, progress=False, log=lambda _: None)
    return [entry["loss"] for entry in summary.history], model.state_dict()


def test_training_on_a_moved_copy_gives_the_same_batches_and_results(monkeypatch, tmp_path):
    """CPU stand-in for the device path: fit slicing batches from a separate copy of the
    set (what resident returns on CUDA) trains exactly as from the original."""
    dataset = _tiny_dataset()
    direct = _history_and_state(dataset, tmp_path / "direct", torch.device("cpu"))
    copies = []
    monkeypatch.setattr(trainer, "resident", lambda x, device: None if x is None else copies.append(x) or x.clone())
    moved = _history_and_state(dataset, tmp_path / "moved", torch.device("cpu"))
    assert copies, "fit asks resident for its training and validation sets"
    assert direct[0] == moved[0]
    assert all(torch.equal(direct[1][k], moved[1][k]) for k in direct[1])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_resident_training_matches_host_copies(monkeypatch, tmp_path):
    dataset = _tiny_dataset()
    x = dataset.train_epoch(0)
    moved = trainer.resident(x, torch.device("cuda"))
    assert moved.device.type == "cuda" and torch.equal(moved.cpu(), x)

    def train(fraction, run_dir):
        monkeypatch.setattr(trainer, "RESIDENT_FRACTION", fraction)
        return _history_and_state(dataset, run_dir, torch.device("cuda"))

    on_device, state_device = train(0.25, tmp_path / "device")
    from_host, state_host = train(0.0, tmp_path / "host")  # 0: never resident
    assert on_device == from_host
    assert all(torch.equal(state_device[k], state_host[k]) for k in state_host)
