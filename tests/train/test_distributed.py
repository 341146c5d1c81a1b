"""Data-parallel training: 2 gloo processes on CPU train the same parameters as one process
with the same global batch, and only rank 0 writes the record."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from dgmbench.cli import main


def _dgmbench(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "dgmbench.cli", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=900)


def test_two_gloo_processes_match_one_process(tmp_path):
    # digits' 1,257 training examples in batches of 100: the last batch (57) splits 29/28,
    # so the per-rank loss weighting is exercised too.
    common = ["run", "--model", "nade", "--quick", "-t", "epochs=2", "--no-progress"]
    one = _dgmbench(*common, "--results-dir", "r1", "--workdir", "w1", cwd=tmp_path)
    assert one.returncode == 0, one.stderr
    two = _dgmbench(*common, "--nproc", "2", "--results-dir", "r2", "--workdir", "w2", cwd=tmp_path)
    assert two.returncode == 0, two.stdout + two.stderr

    (ckpt_one,), (ckpt_two,) = (list((tmp_path / w / "runs").glob("*/last.pt")) for w in ("w1", "w2"))
    a = torch.load(ckpt_one, weights_only=True)["model"]
    b = torch.load(ckpt_two, weights_only=True)["model"]
    for name in a:
        torch.testing.assert_close(a[name].float(), b[name].float(), rtol=1e-5, atol=1e-5)

    (record_one,), (record_two,) = (list((tmp_path / r / "records").glob("*.json")) for r in ("r1", "r2"))
    assert record_one.name == record_two.name  # same run key: the same experiment
    two_record = json.loads(record_two.read_text())
    assert two_record["data_parallel"]["world_size"] == 2 and two_record["data_parallel"]["backend"] == "gloo"
    assert json.loads(record_one.read_text())["data_parallel"] is None
    nll = {json.loads(p.read_text())["metrics"][0]["value"] for p in (record_one, record_two)}
    assert max(nll) - min(nll) < 1e-4


def test_models_with_their_own_learning_rule_are_refused(tmp_path, capsys):
    code = main(["run", "--model", "rbm", "--quick", "--nproc", "2", "--results-dir", str(tmp_path / "r"),
                 "--workdir", str(tmp_path / "w")])
    err = capsys.readouterr().err
    assert code == 2 and "own learning rule" in err and "Traceback" not in err
    assert not (tmp_path / "w").exists() and not (tmp_path / "r").exists()
