"""Issue 8 item 6: a checkpoint, feature cache or samples file that is not a plain tensor file
(a malicious pickle, a truncated file) is refused with one line naming the file and why --
and the code in a malicious pickle never runs."""
from __future__ import annotations

import pickle

import pytest
import torch

from dgmbench.cli import main
from dgmbench.metrics.fidelity import _cached
from dgmbench.train.checkpoint import UntrustedFileError, load_checkpoint, load_tensor_file


class RunsCode:
    """Unpickling this calls open(marker, "w"): creating the marker file proves code ran."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def malicious_files(tmp_path):
    marker = tmp_path / "code_ran"
    torch.save({"model": RunsCode(marker)}, tmp_path / "torch_save.pt")  # zip container, evil payload
    with open(tmp_path / "raw_pickle.pt", "wb") as handle:  # a bare pickle
        pickle.dump({"model": RunsCode(marker)}, handle)
    return marker, [tmp_path / "torch_save.pt", tmp_path / "raw_pickle.pt"]


def test_the_marker_would_be_created_by_an_unsafe_load(tmp_path):
    # the test's payload really runs code when loaded unsafely, so the checks below mean something
    marker, (path, _) = malicious_files(tmp_path)
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_malicious_and_corrupt_files_are_refused_in_one_line(tmp_path):
    marker, paths = malicious_files(tmp_path)
    for path in paths:
        with pytest.raises(UntrustedFileError) as err:
            load_checkpoint(path)
        message = str(err.value)
        assert "\n" not in message and str(path) in message and "not a plain checkpoint" in message
        assert "could run code" in message
    assert "it would import io.open" in str(pytest.raises(UntrustedFileError, load_tensor_file, paths[0]).value)
    assert not marker.exists()
    good = tmp_path / "good.pt"
    torch.save({"x": torch.ones(3), "n": 1, "s": "a"}, good)
    (tmp_path / "truncated.pt").write_bytes(good.read_bytes()[:40])
    with pytest.raises(UntrustedFileError, match=r"cannot read .*truncated\.pt: not a readable checkpoint"):
        load_checkpoint(tmp_path / "truncated.pt")
    assert torch.equal(load_checkpoint(good)["x"], torch.ones(3))


def test_a_malicious_feature_cache_is_refused_and_not_run(tmp_path):
    marker, (path, _) = malicious_files(tmp_path)
    with pytest.raises(UntrustedFileError, match=r"refused to load .*torch_save\.pt: not a plain feature cache file"):
        _cached(str(path), lambda: torch.zeros(2))
    assert not marker.exists()


def test_a_malicious_checkpoint_in_a_run_directory_stops_the_cli_in_one_line(tmp_path, capsys):
    args = ["run", "--model", "fvsbn", "--dataset", "digits/binary", "--epochs", "1", "-e",
            'metrics=["exact_likelihood"]', "--results-dir", str(tmp_path / "results"),
            "--workdir", str(tmp_path / "work"), "--no-progress"]
    assert main(args + ["--force"]) == 0
    (run_dir,) = (tmp_path / "work" / "runs").iterdir()
    marker = tmp_path / "code_ran"
    torch.save({"model": RunsCode(marker)}, run_dir / "last.pt")
    assert main(args + ["--force"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"refused to load {run_dir / 'last.pt'}" in err
    assert not marker.exists()
